"""Resumable, atomically published 3D Tiles builds: staging, manifest, unit records.

Why: a city-size build (10^6 buildings) takes a quarter of an hour.  Killed at minute 14 it
must not start again from nothing, and nobody may ever be served a half-written tileset.

Layout beside the output ``<dir>/<name>`` (``tiles/buildings``)::

    <name>                 -> .<name>.r<stamp>-<random>   symlink: the served tileset
    .<name>.r<stamp>-<random>/   a complete tileset (tileset.json, tiles/)
    .<name>.lock           flock: one build of <name> at a time
    .<name>.staging/       the build in progress
        manifest.json      inputs fingerprint, phase, spill checkpoint (temp + fsync + rename)
        spill/             per-cell spill files (CRC-framed; truncated to the checkpoint)
        units/             one record per completed tile unit (temp + rename)
        tileset/           the content being written; renamed to the release when done

Readers (the ``/3dtiles/`` mount) resolve ``<name>`` at each request, so they get the old
release or the new one; dot-names are never served (``city3d/static.py``).

Units and phases (``manifest.json`` ``phase``):

* ``spill`` - the streaming mesh pass.  At every spill flush (buffer full, or
  ``CHECKPOINT_S`` seconds) the manifest records how many buildings were consumed (file
  index and offset), the cells' counts and bounds (in first-seen order) and every spill
  file's size.  A restart truncates the spill files to those sizes, skips the files
  already read, re-parses (but does not mesh again) the consumed buildings of the current
  one, and goes on.
* ``tree`` - the quadtree.  Each node (leaf or inner tile) writes its files, then its record
  ``units/<name>.leaf|node.pkl`` (its tile dict, raster, counts and the size + SHA-256 of
  every file of its subtree).  A restart reuses a node whose record loads and whose files
  still match, without reading its spill files or its subtree; a missing record means the
  node is redone (its output files are simply rewritten).  A leaf's spill files are
  deleted once it is recorded (disk use stays flat), so a recorded leaf whose file was
  damaged afterwards (a machine crash, not a kill) makes the build start over.
* ``complete`` - everything is written; publication (rename + symlink swap) is idempotent,
  so a restart in this phase only publishes.

Worker processes die with the build (``die_with_parent``), so nothing of a killed build
writes on while a rerun works in the same staging directory.

A restart resumes only when the inputs fingerprint is equal: the source files (path, size,
mtime, SHA-256 of their first and last MiB), the options that shape the output, the code
lists directory listing, the geoid and the code (the sources of the modules that shape the
tiles, the versions of numpy, mapbox-earcut and pyproj).  Anything else: the staging
directory is discarded and the log says why.  fsync: the manifest (and its directory) at
every checkpoint, and the whole release before the symlink swap - what a power loss could
otherwise tear.  Spill frames
carry a CRC32 and unit files are re-hashed when reused, so damage that a kill -9 cannot
cause but a machine crash can is detected and redone, not published.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pickle
import re
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
#: modules whose source shapes the output: a change to any of them starts a build over
CODE_MODULES = (
    "city3d/tiles3d.py",
    "city3d/lod.py",
    "city3d/resume.py",
    "loaders/citygml.py",
    "loaders/plateau_bldg.py",
    "loaders/codelists.py",
    "loaders/gml.py",
    "loaders/common.py",
)
#: libraries whose version shapes the output (triangulation, datum shifts, arrays)
CODE_PACKAGES = ("numpy", "mapbox-earcut", "pyproj")
_PACKAGE = Path(__file__).resolve().parents[1]
_HASH_EDGE = 1 << 20


class BuildBusy(ValueError):
    """Another process is building the same output."""


class StagingDamaged(RuntimeError):
    """Checkpointed data no longer matches its manifest (a machine crash, a hand edit)."""


# --------------------------------------------------------------------------- fingerprint


def _file_print(path: Path) -> list[Any]:
    """(path, size, mtime_ns, SHA-256 of the first and last MiB) of a source file (a
    missing one is recorded as missing: the reader reports it as a problem)."""
    try:
        st = path.stat()
    except OSError:
        return [str(path), None, None, None]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        h.update(fh.read(_HASH_EDGE))
        if st.st_size > 2 * _HASH_EDGE:
            fh.seek(-_HASH_EDGE, os.SEEK_END)
        h.update(fh.read(_HASH_EDGE))
    return [str(path.resolve()), st.st_size, st.st_mtime_ns, h.hexdigest()]


def code_version() -> str:
    """SHA-256 of the sources that write the tiles and the versions of ``CODE_PACKAGES``
    (a resumed build must not mix the output of two code versions)."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256()
    for package in CODE_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            h.update(f"{package} {version(package)};".encode())
    for rel in CODE_MODULES:
        h.update((_PACKAGE / rel).read_bytes())
    return h.hexdigest()


def fingerprint(
    files: list[Path], options: dict[str, Any], codelists: Path | None, geoid: str
) -> dict[str, Any]:
    """What the output depends on (module docstring); equal prints allow a resume."""
    listing = None
    if codelists is not None and codelists.is_dir():
        listing = sorted(
            [p.name, p.stat().st_size, p.stat().st_mtime_ns]
            for p in codelists.iterdir()
            if p.is_file()
        )
    return {
        "files": [_file_print(Path(p)) for p in files],
        "options": options,
        "codelists": listing,
        "geoid": geoid,
        "code": code_version(),
    }


# --------------------------------------------------------------------------- atomic writes


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool) -> None:
    """Write ``data`` to a temp file and rename it over ``path`` (readers see old or new)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as fh:
        fh.write(data)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def file_digest(path: Path) -> tuple[int, str]:
    """(size, SHA-256) of a written file."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return path.stat().st_size, h.hexdigest()


def die_with_parent(parent: int) -> None:
    """In a worker process: be killed when the build process ``parent`` dies (kill -9
    included), so no orphan goes on writing into a staging directory that a restarted
    build is using (Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere nothing)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)


# --------------------------------------------------------------------------- staging


@dataclass
class Staging:
    """The staging directory of one output and its manifest (module docstring)."""

    out: Path
    root: Path
    manifest: dict[str, Any]

    @property
    def content(self) -> Path:
        """Where the tileset is written (renamed into a release when complete)."""
        return self.root / "tileset"

    @property
    def spill(self) -> Path:
        """The spill files of the mesh pass."""
        return self.root / "spill"

    @property
    def units(self) -> Path:
        """Records of completed tile units."""
        return self.root / "units"

    @property
    def phase(self) -> str:
        """``spill``, ``tree`` or ``complete``."""
        return str(self.manifest["phase"])

    def save(self, **changes: Any) -> None:
        """Update the manifest durably (temp file, fsync, rename, fsync of the directory)."""
        self.manifest.update(changes)
        data = json.dumps(self.manifest, separators=(",", ":")).encode()
        write_atomic(self.root / "manifest.json", data, durable=True)


def staging_dir(out: Path) -> Path:
    """``.<name>.staging`` beside the output (same file system: renames stay atomic)."""
    return out.with_name(f".{out.name}.staging")


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((root / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("version") == MANIFEST_VERSION else None


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


@contextlib.contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` for the build (released by the kernel even on kill -9)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_name(f".{out.name}.lock")
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise BuildBusy(
                f"another build of {out} is running (pid {fh.read().strip() or '?'})"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def open_staging(out: Path, inputs: dict[str, Any], *, resume: bool = True) -> Staging:
    """The staging directory for ``inputs``: the interrupted build's when its inputs are
    equal (and ``resume``), else a new one (the old is discarded; the log says why)."""
    root = staging_dir(out)
    old = _read_manifest(root) if root.exists() else None
    if old is not None and resume and old.get("inputs") == inputs:
        old.setdefault("runs", []).append({"pid": os.getpid(), "started": time.time()})
        staging = Staging(out, root, old)
        staging.save()
        log.info("%s: resuming the interrupted build (phase %s)", out, staging.phase)
        return staging
    if root.exists():
        if old is None:
            why = "its manifest is missing or unreadable"
        elif not resume:
            why = "a fresh build was asked for"
        else:
            why = "inputs changed: " + ", ".join(_differences(old.get("inputs", {}), inputs))
        log.warning("%s: discarding the interrupted build (%s); starting over", out, why)
        shutil.rmtree(root)
    for sub in ("spill", "units", "tileset/tiles"):
        (root / sub).mkdir(parents=True)
    manifest = {
        "version": MANIFEST_VERSION,
        "inputs": inputs,
        "phase": "spill",
        "spill": None,
        "runs": [{"pid": os.getpid(), "started": time.time()}],
    }
    staging = Staging(out, root, manifest)
    staging.save()
    return staging


def discard(out: Path) -> None:
    """Remove an interrupted build's staging directory (nothing served changes)."""
    shutil.rmtree(staging_dir(out), ignore_errors=True)


# --------------------------------------------------------------------------- unit records


def record_path(units: Path, name: str, leaf: bool) -> Path:
    """``units/<name>.leaf.pkl`` or ``units/<name>.node.pkl``."""
    return units / f"{name}.{'leaf' if leaf else 'node'}.pkl"


def recorded(units: Path, name: str) -> bool:
    """Whether unit ``name`` (leaf or inner node) has a record."""
    return record_path(units, name, True).exists() or record_path(units, name, False).exists()


def save_record(units: Path, name: str, leaf: bool, record: dict[str, Any]) -> None:
    """Mark a unit complete, after its files are written (temp file + rename: a record
    is there whole or not at all; unit files are re-hashed on reuse, so no fsync)."""
    data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    write_atomic(record_path(units, name, leaf), data, durable=False)


def load_record(units: Path, content: Path, name: str, leaf: bool) -> dict[str, Any] | None:
    """A completed unit's record, or None (missing, unreadable, or a file of its subtree
    changed size or digest: the unit is redone)."""
    path = record_path(units, name, leaf)
    try:
        record: dict[str, Any] = pickle.loads(path.read_bytes())
        files: dict[str, tuple[int, str]] = record["files"]
    except FileNotFoundError:
        return None
    except Exception as exc:  # a torn or foreign record: redo the unit
        log.warning("unit record %s unreadable (%s): redoing the unit", path.name, exc)
        return None
    for rel, expected in files.items():
        try:
            ok = file_digest(content / rel) == tuple(expected)
        except OSError:
            ok = False
        if not ok:
            log.warning("unit %s: %s changed since it was written: redoing the unit", name, rel)
            return None
    return record


@dataclass
class Status:
    """Progress of an interrupted (or running) build, read from its staging directory."""

    phase: str
    buildings_checkpointed: int
    spill_checkpoints: int
    leaves_done: list[str]
    nodes_done: list[str]


def status(out: Path) -> Status | None:
    """What an interrupted or running build of ``out`` has completed (None: no build)."""
    root = staging_dir(Path(out))
    manifest = _read_manifest(root)
    if manifest is None:
        return None
    spill = manifest.get("spill") or {}
    units = root / "units"
    names = sorted(p.name for p in units.glob("*.pkl")) if units.is_dir() else []
    return Status(
        phase=str(manifest["phase"]),
        buildings_checkpointed=int(spill.get("consumed", 0)),
        spill_checkpoints=int(spill.get("checkpoints", 0)),
        leaves_done=[n.removesuffix(".leaf.pkl") for n in names if n.endswith(".leaf.pkl")],
        nodes_done=[n.removesuffix(".node.pkl") for n in names if n.endswith(".node.pkl")],
    )


# --------------------------------------------------------------------------- publication


def _fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (most are already written back)."""
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def _own(out: Path, kind: str) -> list[Path]:
    """``out``'s own releases (``kind`` ``release``) or leftover swap links (``link``),
    matched by their whole name: a glob ``.city.r*`` would also take ``.city.rev2.r<stamp>``,
    the served release of a tileset named ``city.rev2`` beside it."""
    tail = {"release": r"r(?:\d{8}T\d{6}-[0-9a-f]+|0-legacy-\d+)", "link": r"link-\d+"}[kind]
    own = re.compile(rf"\.{re.escape(out.name)}\.{tail}")
    return sorted(p for p in out.parent.iterdir() if own.fullmatch(p.name))


def publish(staging: Staging) -> None:
    """Make the staged tileset the served one: release directory, then one atomic symlink
    swap; then the previous release and the staging directory go.  Idempotent, so a build
    killed anywhere in here finishes publishing when rerun.

    Known limit: a viewer part-way through the tree when the swap happens (it holds the
    old ``tileset.json``) asks for its tiles by URLs relative to that file, i.e. through
    the published name, so it gets the NEW release's file of that name or a 404 - the
    old release is not reachable by any URL (dot-names are never served), so keeping it
    longer would only cost disk.  Reloading the tileset (the /3d/ page) is the cure; a
    release-addressed URL (``<name>@<release>/...``) would need the served
    ``tileset.json`` to name its release."""
    out = staging.out
    release_name = staging.manifest.get("release")
    if release_name is None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        release_name = f".{out.name}.r{stamp}-{secrets.token_hex(4)}"  # never the served one
        staging.save(phase="complete", release=release_name)
    release = out.with_name(release_name)
    if staging.content.exists():
        _fsync_tree(staging.content)
        os.replace(staging.content, release)
    if out.is_symlink() or not out.exists():
        link = out.with_name(f".{out.name}.link-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(release_name, link)
        os.replace(link, out)  # atomic: readers resolve the old release or the new one
    else:  # a plain directory from an older build: one short gap while it is moved aside
        legacy = out.with_name(f".{out.name}.r0-legacy-{os.getpid()}")
        os.replace(out, legacy)
        os.symlink(release_name, out)
        log.info("%s: the old directory layout was replaced by a release symlink", out)
    fsync_dir(out.parent)
    for old in _own(out, "release"):
        if old.name != release_name:
            shutil.rmtree(old, ignore_errors=True)
    for link in _own(out, "link"):  # left by a build killed mid-swap
        link.unlink(missing_ok=True)
    shutil.rmtree(staging.root, ignore_errors=True)
