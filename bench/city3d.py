#!/usr/bin/env python3
"""Benchmark: CityGML -> 3D Tiles end to end on synthetic PLATEAU LOD1 files, and the
3D viewer flying over the result in headless Chromium.

**Build** (default): for each size N (default 20,000 and 100,000) a synthetic file is written
once (cached in ``--work``, not timed), then converted in a **fresh child process** so peak
memory is that run's own: ``geoservice.city3d.tiles3d.write_tiles`` (parse, mesh, spill,
level-of-detail quadtree, glb + metadata, tileset.json), ``--workers`` processes (default 2).
Printed per size: buildings/s, wall seconds, peak RSS (``resource.getrusage``, main process
and worker processes), CPU seconds (useful on a shared machine where wall time is noisy),
tiles/leaves/blocks, output size, ``tileset.json`` size, the bytes of the root and level-1
tiles (what a viewer loads first) and the largest tile; with ``--tracemalloc``, the peak of
Python allocations (slower).  Memory should not grow with N: compare the rows.

**Browser** (``--browser``): for the largest size, the level-of-detail tileset and the flat
layout (``merged=False``, leaves of 2,000: the tileset before the hierarchy) are each served
by the app (``/3d/``, an empty store, flat ground) and opened in headless Chromium
(``tests/browser.py``: Debian's Chromium, SwiftShader WebGL).  First view: the camera where the
viewer puts it for a whole-city overview (2.6 bounding radii away, pitch -35 degrees, from the
south), until Cesium reports every tile of the view loaded (or ``--settle`` seconds):
seconds, tile requests, bytes.  Then a scripted flight (``--fly`` seconds, 400 m high, pitch
-20 degrees, 3 km south-west -> north-east over the centre), the camera moved every
``requestAnimationFrame``: frame times (rAF deltas p50/p95/max), frames; then until the
end view has loaded: seconds, tile requests and bytes fetched for the flight and the end
view (Cesium defers requests while the camera moves: ``cullRequestsWhileMoving``).
Results: ``bench/results/city3d.json``.

**Interrupted** (``--interrupt F``): each LOD build is run again from nothing, killed with
SIGKILL at F of the uninterrupted run's wall time, and run once more - it resumes from the
checkpoints (:mod:`geoservice.city3d.resume`).  Printed: where it was killed (phase,
buildings checkpointed, leaves done), the resumed run's seconds, the total against the
uninterrupted run, and whether every file's bytes equal the uninterrupted tileset's.

Usage::

    .venv/bin/python bench/city3d.py                 # 20k and 100k, build only
    .venv/bin/python bench/city3d.py --sizes 100000 --validate
    .venv/bin/python bench/city3d.py --sizes 20000 --browser --fly 10
    .venv/bin/python bench/city3d.py --sizes 100000 --browser-only   # tilesets of a run
    .venv/bin/python bench/city3d.py --sizes 20000 --interrupt 0.5   # kill at half, resume
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
CODELISTS = PROJECT.parent / "shared" / "data" / "plateau" / "codelists"
RESULTS = PROJECT / "bench" / "results" / "city3d.json"
LAYOUTS = {"lod": {}, "flat": {"merged": False, "max_per_leaf": 2000}, "resumed": {}}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (meshing workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def tiles_dir(work: Path, layout: str, n: int) -> Path:
    """The directory served as ``tiles_dir`` (the tileset is its ``buildings/``)."""
    return work / f"{layout}_{n}"


def shape(tileset: Path) -> dict[str, float]:
    """Sizes a viewer cares about: tileset.json, root + level-1 contents, largest tile."""

    def content(tile: dict, base: Path) -> list[tuple[dict, Path]]:
        """(tile, base) with external tilesets resolved to their root."""
        uri = (tile.get("content") or {}).get("uri", "")
        if uri.endswith(".json"):
            ext = base / uri
            return [(json.loads(ext.read_text("utf-8"))["root"], ext.parent)]
        return [(tile, base)]

    def size(tile: dict, base: Path) -> int:
        uri = (tile.get("content") or {}).get("uri")
        return (base / uri).stat().st_size if uri else 0

    doc = json.loads(tileset.read_text("utf-8"))
    ((root, base),) = content(doc["root"], tileset.parent)
    first = size(root, base)
    for child in root.get("children", []):
        first += sum(size(t, b) for t, b in content(child, base))
    glbs = [p.stat().st_size for p in tileset.parent.rglob("*.glb")]
    return {
        "tileset_kb": round(tileset.stat().st_size / 1024, 1),
        "root_level1_kb": round(first / 1024, 1),
        "max_tile_kb": round(max(glbs) / 1024, 1),
        "tiles_mb": round(sum(glbs) / 2**20, 1),
    }


def child(n: int, work: Path, layout: str, workers: int, trace: bool) -> dict[str, float]:
    """Run one conversion in this process; return its figures."""
    import tracemalloc

    from geoservice.city3d.tiles3d import write_tiles
    from geoservice.loaders.codelists import CodeLists

    if trace:
        tracemalloc.start()
    src = work / f"synthetic_{n}.gml"
    out = tiles_dir(work, layout, n) / "buildings"
    started = time.perf_counter()
    cpu0 = _cpu()
    report = write_tiles(
        [src],
        out,
        CodeLists(CODELISTS if CODELISTS.is_dir() else None),
        synthetic=True,
        workers=workers,
        **LAYOUTS[layout],  # type: ignore[arg-type]
    )
    seconds = time.perf_counter() - started
    cpu = _cpu() - cpu0
    figures = {
        "n": n,
        "layout": layout,
        "buildings": report.buildings,
        "tiles": report.tiles,
        "leaves": report.leaves,
        "blocks": report.blocks,
        "leaves_built": report.leaves_built,
        "resume_note": report.resume_note,
        "seconds": round(seconds, 2),
        "buildings_per_s": round(report.buildings / seconds, 1),
        "cpu_seconds": round(cpu, 2),
        "buildings_per_cpu_s": round(report.buildings / cpu, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "workers_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
        **shape(out / "tileset.json"),
    }
    if trace:
        figures["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    return figures


def build(n: int, work: Path, layout: str, workers: int, trace: bool) -> dict[str, float]:
    """Write the synthetic file (once) and convert it in a fresh child process."""
    from geoservice.city3d.synthetic import write_synthetic

    src = work / f"synthetic_{n}.gml"
    if not src.exists():
        t = time.perf_counter()
        write_synthetic(src, n, seed=1)
        print(
            f"wrote {src} ({src.stat().st_size / 2**20:.0f} MB) "
            f"in {time.perf_counter() - t:.1f} s",
            file=sys.stderr,
        )
    cmd = [sys.executable, __file__, "--child", str(n), "--work", str(work)]
    cmd += ["--layout", layout, "--workers", str(workers)]
    if trace:
        cmd.append("--tracemalloc")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def digests(tileset_dir: Path) -> dict[str, str]:
    """SHA-256 of every file of a tileset, by relative path."""
    import hashlib

    return {
        str(p.relative_to(tileset_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(tileset_dir.rglob("*"))
        if p.is_file()
    }


def interrupted(n: int, work: Path, workers: int, fraction: float, clean: dict) -> dict:
    """The LOD build of ``n`` killed (SIGKILL) at ``fraction`` of the uninterrupted run's
    wall time, then run again (it resumes); its figures and whether the bytes are equal."""
    from geoservice.city3d.resume import discard, status

    out = tiles_dir(work, "resumed", n) / "buildings"
    discard(out)  # from nothing, like the uninterrupted run
    cmd = [sys.executable, __file__, "--child", str(n), "--work", str(work)]
    cmd += ["--layout", "resumed", "--workers", str(workers)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        proc.wait(timeout=fraction * clean["seconds"])
        raise RuntimeError("the build ended before it was killed")
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    killed_at = time.perf_counter() - started
    st = status(out)
    again = build(n, work, "resumed", workers, False)
    lod = tiles_dir(work, "lod", n) / "buildings"
    return {
        "n": n,
        "uninterrupted_s": clean["seconds"],
        "killed_at_s": round(killed_at, 1),
        "killed_in_phase": st.phase if st else None,
        "buildings_checkpointed": st.buildings_checkpointed if st else 0,
        "leaves_done_at_kill": len(st.leaves_done) if st else 0,
        "resumed_s": again["seconds"],
        "total_s": round(killed_at + again["seconds"], 1),
        "resume_note": again["resume_note"],
        "identical": digests(out) == digests(lod),
    }


# --------------------------------------------------------------------------- browser

#: Moves the camera every animation frame along a straight line; resolves to the rAF deltas.
FLY_JS = """([a, b, h, heading, pitch, secs]) => new Promise((resolve) => {
  const cam = window.viewer3d.viewer.camera, deltas = [];
  let t0 = null, last = null;
  function step(ts) {
    if (t0 === null) t0 = ts; else deltas.push(ts - last);
    last = ts;
    const f = Math.min(1, (ts - t0) / (secs * 1000));
    cam.setView({
      destination: Cesium.Cartesian3.fromDegrees(a[0] + (b[0] - a[0]) * f,
                                                 a[1] + (b[1] - a[1]) * f, h),
      orientation: { heading: Cesium.Math.toRadians(heading),
                     pitch: Cesium.Math.toRadians(pitch), roll: 0 } });
    if (f < 1) requestAnimationFrame(step); else resolve(deltas);
  }
  requestAnimationFrame(step);
})"""
_M_PER_DEG = 111_320.0


def _offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    import math

    return (
        lon + east_m / (_M_PER_DEG * math.cos(math.radians(lat))),
        lat + north_m / _M_PER_DEG,
    )


def _tile_bytes(urls: list[str], root: Path) -> tuple[int, int]:
    """(tile requests, bytes) of the /3dtiles/ URLs, sized from the files served."""
    from urllib.parse import urlsplit

    count = size = 0
    for u in urls:
        path = urlsplit(u).path
        if path.startswith("/3dtiles/"):
            count += 1
            f = root / path[len("/3dtiles/") :]
            size += f.stat().st_size if f.is_file() else 0
    return count, size


def browse(root: Path, settle: float, fly: float) -> dict[str, float]:
    """Open /3d/ over the tileset in ``root`` (a tiles_dir); first view, then the flight."""
    import math

    from common import free_port, pct

    from geoservice.build import build as build_store
    from tests.browser import browser_page
    from tests.conftest import LiveServer, settings_for

    app = root.with_name(root.name + "_app")
    (app / "layers").mkdir(parents=True, exist_ok=True)
    settings = settings_for(app, app / "layers", free_port())
    flat_ground = settings.basemaps.model_copy(update={"terrain": None})
    settings = settings.model_copy(update={"tiles_dir": root, "basemaps": flat_ground})
    build_store(settings)  # an empty store: the page needs one, the tiles are static files
    doc = json.loads((root / "buildings" / "tileset.json").read_text("utf-8"))
    w, s, e, n, _h0, _h1 = (math.degrees(v) for v in doc["root"]["boundingVolume"]["region"])
    lon, lat = (w + e) / 2, (s + n) / 2
    radius = math.hypot((e - w) * _M_PER_DEG * math.cos(math.radians(lat)), (n - s) * _M_PER_DEG)
    radius /= 2
    dist = 2.6 * radius  # the viewer's own overview (viewer3d.js loadTileset)
    cam_lon, cam_lat = _offset(lon, lat, 0.0, -dist * math.cos(math.radians(35)))
    cam = f"{cam_lon:.6f},{cam_lat:.6f},{dist * math.sin(math.radians(35)):.0f},0,-35,0"
    figures: dict[str, float] = {}
    with LiveServer(settings) as srv, browser_page() as page:
        urls: list[str] = []
        page.on("requestfinished", lambda r: urls.append(r.url))  # loaded, not just asked
        t0 = time.perf_counter()
        page.goto(f"{srv.url}/3d/#cam={cam}&imagery=none")
        done = "window.viewer3d && window.viewer3d.loaded && window.viewer3d.tilesLoaded"
        settled = True
        try:
            page.wait_for_function(done, timeout=settle * 1000)
        except TimeoutError:
            settled = False
        figures["first_view_s"] = round(time.perf_counter() - t0, 1)
        figures["first_view_settled"] = settled
        count, size = _tile_bytes(urls, root)
        figures["first_view_requests"] = count
        figures["first_view_kb"] = round(size / 1024, 1)
        a = _offset(lon, lat, -1060.0, -1060.0)
        b = _offset(lon, lat, 1060.0, 1060.0)
        before = len(urls)
        t1 = time.perf_counter()
        deltas = page.evaluate(FLY_JS, [list(a), list(b), 400.0, 45.0, -20.0, fly])
        # a few frames for Cesium to ask for what the end view needs (it holds requests back
        # while the camera moves), then until they have loaded
        page.wait_for_timeout(5000)
        try:
            page.wait_for_function(done, timeout=settle * 1000)
        except TimeoutError:
            figures["end_view_settled"] = False
        figures["fly_and_settle_s"] = round(time.perf_counter() - t1, 1)
        count, size = _tile_bytes(urls[before:], root)
        figures.update(
            {
                "fly_s": fly,
                "frames": len(deltas),
                "frame_p50_ms": round(pct(deltas, 0.5), 1),
                "frame_p95_ms": round(pct(deltas, 0.95), 1),
                "frame_max_ms": round(max(deltas), 1),
                "fly_requests": count,
                "fly_kb": round(size / 1024, 1),
                "page_errors": len(page.errors),
                "end_view_tiles": page.evaluate(
                    "window.viewer3d.tileset.statistics.numberOfTilesWithContentReady"
                ),
            }
        )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geotwin-3d")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--validate", action="store_true", help="validate the largest tileset")
    parser.add_argument("--browser", action="store_true", help="fly over the largest tileset")
    parser.add_argument("--settle", type=float, default=180.0, help="first-view timeout, s")
    parser.add_argument("--fly", type=float, default=20.0, help="flight seconds")
    parser.add_argument(
        "--browser-only", action="store_true", help="reuse the tilesets built in --work"
    )
    parser.add_argument(
        "--interrupt",
        type=float,
        metavar="F",
        help="also kill each LOD build at F (0-1) of its wall time and resume it",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--layout", default="lod", choices=sorted(LAYOUTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        figures = child(args.child, args.work, args.layout, args.workers, args.tracemalloc)
        print(json.dumps(figures))
        return 0
    rows = []
    largest = args.sizes[-1]
    if args.browser_only:
        args.browser = True
    else:
        for n in args.sizes:
            rows.append(build(n, args.work, "lod", args.workers, args.tracemalloc))
            print(json.dumps(rows[-1]))
        if args.browser:
            rows.append(build(largest, args.work, "flat", args.workers, args.tracemalloc))
            print(json.dumps(rows[-1]))
    print(f"\nCityGML -> 3D Tiles (synthetic LOD1, end to end, workers={args.workers})")
    cols = "layout buildings seconds buildings_per_cpu_s peak_rss_mb workers_peak_rss_mb"
    cols += " tiles blocks tiles_mb tileset_kb root_level1_kb max_tile_kb"
    print(" ".join(f"{c[:11]:>11}" for c in cols.split()))
    for r in rows:
        print(" ".join(f"{r[c]!s:>11}" for c in cols.split()))
    results: dict[str, object] = {"builds": rows}
    if args.interrupt:
        lods = [r for r in rows if r["layout"] == "lod"]
        results["interrupted"] = [
            interrupted(r["n"], args.work, args.workers, args.interrupt, r) for r in lods
        ]
        for r in results["interrupted"]:  # type: ignore[attr-defined]
            print("interrupted", json.dumps(r))
    if args.browser_only and RESULTS.is_file():  # keep the builds of the run being reused
        results["builds"] = json.loads(RESULTS.read_text("utf-8")).get("builds", [])
    if args.browser:
        views = {}
        for layout in ("lod", "flat"):
            views[layout] = browse(tiles_dir(args.work, layout, largest), args.settle, args.fly)
            print(layout, json.dumps(views[layout]))
        results["browser"] = {"n": largest, **views}
        keys = sorted(set(views["lod"]) | set(views["flat"]))
        print(f"\n/3d/ over {largest} buildings, headless Chromium (SwiftShader)")
        print(f"{'':>22} {'lod':>10} {'flat':>10}")
        for k in keys:
            lod, flat = views["lod"].get(k, ""), views["flat"].get(k, "")
            print(f"{k:>22} {lod!s:>10} {flat!s:>10}")
    if args.validate:
        from geoservice.city3d.validate import validate_all

        tileset = tiles_dir(args.work, "lod", largest) / "buildings" / "tileset.json"
        report = validate_all(tileset)
        print(
            f"validate {tileset}: {len(report.errors)} errors, {len(report.warnings)} "
            f"warnings, {report.leaf_features} buildings at the leaves"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
