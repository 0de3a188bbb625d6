"""Resumable, atomically published 3D Tiles builds (geoservice.city3d.resume), with real
processes: ``geoservice city3d tiles`` is started as a subprocess (2 worker processes) on
1,200 synthetic buildings, killed with SIGKILL once its manifest shows completed units
(spill checkpoints in the mesh pass, leaf records in the tree), and run again.

Checked: the resumed build's files are byte-identical to a clean build's (tileset.json,
external tilesets, every glb); the rerun reused exactly the units recorded before the kill
(its own count, and the reused leaves' files are the same inodes with the same mtimes); the
build's worker processes died with it; while the build was interrupted the app's
``/3dtiles/`` mount kept serving the previous complete tileset and none of the staging
files; a changed input file (or option, or code) starts over and says why; a build that
dies while publishing publishes on the rerun without rebuilding.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from geoservice.city3d import resume
from geoservice.city3d.resume import BuildBusy, Status, build_lock, open_staging, status
from geoservice.city3d.static import mount_tiles
from geoservice.city3d.synthetic import write_synthetic
from geoservice.city3d.tiles3d import write_tiles
from tests.conftest import ROOT, ThreadedServer, free_port, settings_for

N = 1200
CLI = [sys.executable, "-c", "from geoservice.cli import main; main()", "city3d", "tiles"]
#: small leaves on small cells (~60 leaves) and a small spill buffer (~10 checkpoints), so
#: both phases have many units at a size that builds in seconds
OPTIONS = ["--workers", "2", "--max-per-leaf", "50", "--cell-deg", "0.001", "--synthetic"]
SPILL = ["--spill-mb", "0.2"]


def _cmd(src: Path, out: Path, *extra: str) -> list[str]:
    return [*CLI, str(src), "--out", str(out), "-c", str(ROOT / "config.yml"), *OPTIONS, *extra]


def _run(src: Path, out: Path, *extra: str) -> str:
    """A complete build in a subprocess; its console output (stdout and stderr)."""
    done = subprocess.run(
        _cmd(src, out, *SPILL, *extra), capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _digests(tileset_dir: Path) -> dict[str, str]:
    """SHA-256 of every file of a published tileset, by relative path."""
    return {
        str(p.relative_to(tileset_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(tileset_dir.rglob("*"))
        if p.is_file()
    }


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the build's worker processes)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_when(
    src: Path, out: Path, ready: Callable[[Status], bool], watch: Callable[[], None]
) -> Status:
    """Start a build, SIGKILL it once ``ready(status)``; ``watch()`` runs at every poll.
    Returns the staging status after the build and all its workers are dead."""
    proc = subprocess.Popen(
        _cmd(src, out, *SPILL), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, "the build ended before it could be killed: " + str(
                proc.stderr.read() if proc.stderr else ""
            )
            assert time.monotonic() < deadline, "no progress to kill at"
            st = status(out)
            if st is not None and ready(st):
                break
            watch()
            time.sleep(0.01)
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers):  # they die with the build (PR_SET_PDEATHSIG)
        assert time.monotonic() < deadline, f"orphaned workers still running: {workers}"
        time.sleep(0.05)
    watch()
    after = status(out)
    assert after is not None, "the interrupted build left no manifest"
    return after


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("src") / "syn.gml", N, seed=7)


@pytest.fixture(scope="module")
def clean(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Digests of an uninterrupted build of ``source`` (same command, same options)."""
    out = tmp_path_factory.mktemp("clean") / "buildings"
    log = _run(source, out)
    assert "resumed" not in log
    return _digests(out)


class Served:
    """The app's ``/3dtiles/`` mount (``mount_tiles``, as ``create_app`` mounts it) over a
    tiles directory, on a real HTTP server."""

    def __init__(self, tiles: Path) -> None:
        settings = settings_for(tiles.parent, ROOT / "layers").model_copy(
            update={"tiles_dir": tiles}
        )
        app = Starlette()
        mount_tiles(app, settings)
        self.server = ThreadedServer(app, free_port(), lifespan="off")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.server.url}/3dtiles/{path}", timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    srv = Served(tmp_path / "tiles")
    with srv.server:
        yield srv


def _previous(tiles: Path) -> dict[str, str]:
    """A complete earlier tileset at ``tiles/buildings`` (another, smaller city)."""
    src = write_synthetic(tiles.parent / "old.gml", 150, seed=3)
    write_tiles([src], tiles / "buildings", synthetic=True, workers=1)
    return _digests(tiles / "buildings")


_RESUMED = re.compile(
    r"resumed an interrupted build \(run 2\): (\d+) buildings meshed before, "
    r"(\d+) of (\d+) leaf tiles reused, (\d+) built"
)


@pytest.mark.parametrize("phase", ["spill", "tree"])
def test_killed_build_resumes_to_the_same_bytes(
    phase: str, source: Path, clean: dict[str, str], served: Served, tmp_path: Path
) -> None:
    tiles = tmp_path / "tiles"
    out = tiles / "buildings"
    old = _previous(tiles)
    uri = next(k for k in old if k.endswith(".glb"))

    def still_previous() -> None:
        code, body = served.get("buildings/tileset.json")
        assert code == 200
        assert hashlib.sha256(body).hexdigest() == old["tileset.json"]
        assert served.get(f"buildings/{uri}")[0] == 200

    def ready(st: Status) -> bool:
        if phase == "spill":
            return st.phase == "spill" and st.spill_checkpoints >= 3
        return len(st.leaves_done) >= 3

    st = _kill_when(source, out, ready, still_previous)
    # nothing of the staging directory is reachable through the mount
    assert served.get(".buildings.staging/manifest.json")[0] == 404
    assert served.get(".buildings.staging/tileset/tiles/0_0_0.glb")[0] == 404
    if phase == "spill":
        assert 0 < st.buildings_checkpointed < N and st.leaves_done == []
    staged = out.parent / ".buildings.staging" / "tileset" / "tiles"
    before = {
        name: ((p := staged / f"{name}.glb").stat().st_ino, p.stat().st_mtime_ns)
        for name in st.leaves_done
    }

    log = _run(source, out)  # the same command again
    m = _RESUMED.search(log)
    assert m, log
    meshed_before, reused, leaves, built = map(int, m.groups())
    assert meshed_before == (N if phase == "tree" else st.buildings_checkpointed)
    assert reused == len(st.leaves_done) and built == leaves - reused
    assert _digests(out) == clean
    for name, ident in before.items():  # the reused leaves were not written again
        p = out / "tiles" / f"{name}.glb"
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == ident, name
    code, body = served.get("buildings/tileset.json")
    assert code == 200 and hashlib.sha256(body).hexdigest() == clean["tileset.json"]
    left = sorted(p.name for p in tiles.iterdir())
    assert left[0] == ".buildings.lock" and left[2] == "buildings" and len(left) == 3, left
    assert out.is_symlink() and os.readlink(out) == left[1]


def test_changed_input_starts_over(tmp_path: Path) -> None:
    src = write_synthetic(tmp_path / "syn.gml", N, seed=7)
    out = tmp_path / "tiles" / "buildings"
    _kill_when(src, out, lambda st: len(st.leaves_done) >= 2, lambda: None)
    assert not out.exists()  # nothing was ever published
    write_synthetic(src, N - 200, seed=8)  # the source changed under the interrupted build
    log = _run(src, out)
    assert "discarding the interrupted build (inputs changed: files); starting over" in log
    assert "resumed" not in log
    assert f"{N - 200} buildings in" in log
    assert resume.status(out) is None


def test_changed_options_or_code_start_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    src = write_synthetic(tmp_path / "syn.gml", 10, seed=1)
    out = tmp_path / "buildings"
    base = resume.fingerprint([src], {"max_per_leaf": 600}, None, "geoid")
    open_staging(out, base)
    caplog.set_level(logging.INFO, logger="geoservice.city3d.resume")
    assert open_staging(out, base).manifest["runs"][-1]["pid"] == os.getpid()
    assert "resuming the interrupted build" in caplog.text
    changed = resume.fingerprint([src], {"max_per_leaf": 500}, None, "geoid")
    open_staging(out, changed)
    assert "inputs changed: options" in caplog.text
    open_staging(out, changed, resume=False)  # --fresh
    assert "(a fresh build was asked for); starting over" in caplog.text
    package = tmp_path / "pkg"
    for rel in resume.CODE_MODULES:
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_bytes((Path(resume.__file__).parents[1] / rel).read_bytes())
    monkeypatch.setattr(resume, "_PACKAGE", package)
    assert resume.code_version() == changed["code"]
    with (package / "city3d" / "lod.py").open("a") as fh:
        fh.write("\n# a change\n")
    open_staging(out, resume.fingerprint([src], {"max_per_leaf": 500}, None, "geoid"))
    assert "inputs changed: code" in caplog.text


def test_one_build_of_an_output_at_a_time(tmp_path: Path) -> None:
    out = tmp_path / "buildings"
    with build_lock(out), pytest.raises(BuildBusy, match="another build of .* is running"):
        with build_lock(out):
            pass
    with build_lock(out):  # released when the holder ends
        pass


@pytest.mark.parametrize("dies_at", ["rename", "symlink"])
def test_a_build_killed_while_publishing_publishes_when_rerun(
    dies_at: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publication is idempotent: a process that dies after the tree was finished (before
    the release rename, or between it and the symlink swap) publishes on the rerun without
    rebuilding, and the previous tileset is served until then."""
    src = write_synthetic(tmp_path / "syn.gml", 300, seed=4)
    clean = tmp_path / "clean" / "buildings"
    write_tiles([src], clean, synthetic=True, workers=1, max_per_leaf=100)
    tiles = tmp_path / "tiles"
    old = _previous(tiles)
    out = tiles / "buildings"

    class Died(BaseException):
        """Stands for the process dying at this point (nothing after it runs)."""

    real = {"rename": resume.os.replace, "symlink": resume.os.symlink}[dies_at]

    def die(src_: str | Path, dst: str | Path) -> None:
        if dies_at == "symlink" or Path(src_) == resume.staging_dir(out) / "tileset":
            raise Died
        real(src_, dst)

    monkeypatch.setattr(resume.os, "replace" if dies_at == "rename" else "symlink", die)
    with pytest.raises(Died):
        write_tiles([src], out, synthetic=True, workers=1, max_per_leaf=100)
    monkeypatch.undo()
    st = status(out)
    assert st is not None and st.phase == "complete"
    assert _digests(out) == old  # still the previous tileset
    report = write_tiles([src], out, synthetic=True, workers=1, max_per_leaf=100)
    assert report.leaves_built == 0 and report.leaves > 0  # published, nothing rebuilt
    assert _digests(out) == _digests(clean)
    assert status(out) is None
    assert [p.name for p in tiles.iterdir() if p.name.startswith(".buildings.r")] == [
        os.readlink(out)
    ]


def test_nothing_to_tile_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gml"
    bad.write_text("not CityGML", "utf-8")
    out = tmp_path / "tiles" / "buildings"
    with pytest.raises(ValueError, match="no buildings with geometry"):
        write_tiles([bad], out, workers=1)
    assert status(out) is None and not out.exists()
    assert not resume.staging_dir(out).exists()


@pytest.mark.parametrize("damage", ["tile", "spill"])
def test_damaged_checkpoints_are_redone_not_published(
    damage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What a kill -9 cannot do but a machine crash can: a finished leaf's file torn (its
    digest fails; its spill files are gone, so the build starts over) or a spill frame torn
    (its CRC fails: the build starts over).  Either way the published bytes are right."""
    from geoservice.city3d import lod

    src = write_synthetic(tmp_path / "syn.gml", 300, seed=4)
    opts = {"synthetic": True, "workers": 1, "max_per_leaf": 30, "cell_deg": 0.001}
    clean = tmp_path / "clean" / "buildings"
    write_tiles([src], clean, **opts)  # type: ignore[arg-type]
    out = tmp_path / "tiles" / "buildings"

    class Died(BaseException):
        """Stands for the process dying here."""

    real, calls = lod.write_leaf, []

    def dies_at_the_fifth_leaf(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 5:
            raise Died
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lod, "write_leaf", dies_at_the_fifth_leaf)
    with pytest.raises(Died):
        write_tiles([src], out, **opts)  # type: ignore[arg-type]
    monkeypatch.undo()
    st = status(out)
    assert st is not None and len(st.leaves_done) == 4
    staging = resume.staging_dir(out)
    if damage == "tile":
        torn = staging / "tileset" / "tiles" / f"{st.leaves_done[0]}.glb"
        torn.write_bytes(torn.read_bytes()[:100])
    else:
        spill = sorted((staging / "spill").iterdir())[0]
        data = bytearray(spill.read_bytes())
        data[-1] ^= 0xFF
        spill.write_bytes(bytes(data))
    caplog.set_level(logging.INFO)
    report = write_tiles([src], out, **opts)  # type: ignore[arg-type]
    assert _digests(out) == _digests(clean)
    if damage == "tile":
        assert "changed since it was written: redoing the unit" in caplog.text
        assert "is missing; starting over" in caplog.text
    else:
        assert "is damaged at byte" in caplog.text and "starting over" in caplog.text
    assert report.leaves_built == report.leaves and not report.resume_note


def test_publishing_a_tileset_leaves_other_tilesets_releases_alone(tmp_path: Path) -> None:
    """Tilesets whose names share a prefix (``city`` and ``city.rev2``) live in one tiles
    directory: publishing one removes its own previous releases only, never the release
    the other's name points at."""
    tiles = tmp_path / "tiles"
    src = write_synthetic(tmp_path / "syn.gml", 120, seed=5)
    for name in ("city.rev2", "city", "city"):  # "city" twice: it has a release to replace
        write_tiles([src], tiles / name, synthetic=True, workers=1)
    served = tiles / "city.rev2"
    assert (served / "tileset.json").is_file(), "the other tileset's release was deleted"
    assert _digests(served) == _digests(tiles / "city")
    releases = sorted(p.name for p in tiles.iterdir() if re.match(r"\.city\.r\d", p.name))
    assert releases == [os.readlink(tiles / "city")]


def test_a_tileset_of_the_previous_layout_is_replaced_by_a_release(tmp_path: Path) -> None:
    """An upgrade: ``tiles/buildings`` is still the plain directory an older release wrote.
    The first build replaces it by the symlink to its release; nothing else stays."""
    tiles = tmp_path / "tiles"
    old = tmp_path / "old" / "buildings"
    write_tiles([write_synthetic(tmp_path / "old.gml", 80, seed=6)], old, workers=1)
    shutil.copytree(old.resolve(), tiles / "buildings")  # the old layout: no symlink
    src = write_synthetic(tmp_path / "syn.gml", 120, seed=5)
    write_tiles([src], tiles / "buildings", workers=1)
    new = tmp_path / "new" / "buildings"
    write_tiles([src], new, workers=1)
    assert (tiles / "buildings").is_symlink()
    assert _digests(tiles / "buildings") == _digests(new)
    assert sorted(p.name for p in tiles.iterdir()) == sorted(
        [".buildings.lock", "buildings", os.readlink(tiles / "buildings")])


def test_every_module_that_shapes_the_tiles_is_in_the_fingerprint() -> None:
    """A resumed build must never mix the output of two code versions (a release deployed
    between the kill and the rerun): every geoservice module the tile writers import is
    fingerprinted (``resume.CODE_MODULES``), unless it shapes no byte of the output."""
    import ast

    shapes_nothing = {"catalogue.py", "config.py", "errors.py", "features.py", "runs.py",
                      "loaders/__init__.py", "loaders/sources.py"}
    package = ROOT / "geoservice"
    missing = set()
    for rel in resume.CODE_MODULES:
        for node in ast.walk(ast.parse((package / rel).read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("geoservice."):
                path = node.module.removeprefix("geoservice.").replace(".", "/")  # type: ignore[union-attr]
                dep = f"{path}/__init__.py" if (package / path).is_dir() else f"{path}.py"
                if dep not in resume.CODE_MODULES and dep not in shapes_nothing:
                    missing.add(dep)
    assert not missing, f"modules shaping the tiles but not fingerprinted: {sorted(missing)}"
