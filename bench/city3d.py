#!/usr/bin/env python3
"""Benchmark: CityGML -> 3D Tiles end to end on synthetic PLATEAU LOD1 files.

For each size N (default 20,000 and 100,000) a synthetic file is written once (cached in
``--work``, not timed), then converted in a **fresh child process** so peak memory is
that run's own: ``geoservice.city3d.tiles3d.write_tiles`` (parse, mesh, spill, quadtree,
glb + metadata, tileset.json).  Printed per size: buildings/s, wall seconds, peak RSS
(``resource.getrusage``, main process and meshing workers), CPU seconds (useful on a
shared machine where wall time is noisy) and, with ``--tracemalloc``, the peak of Python allocations
(slower).  Memory should not grow with N (streaming + spill files): compare the rows.

Usage::

    .venv/bin/python bench/city3d.py                 # 20k and 100k
    .venv/bin/python bench/city3d.py --sizes 100000 --validate
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
CODELISTS = PROJECT.parent / "shared" / "data" / "plateau" / "codelists"


def _cpu() -> float:
    """CPU seconds of this process and its finished children (meshing workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def child(n: int, src: Path, out: Path, trace: bool) -> dict[str, float]:
    """Run one conversion in this process; return its figures."""
    import tracemalloc

    from geoservice.city3d.tiles3d import write_tiles
    from geoservice.loaders.codelists import CodeLists

    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    cpu0 = _cpu()
    report = write_tiles(
        [src], out, CodeLists(CODELISTS if CODELISTS.is_dir() else None), synthetic=True
    )
    seconds = time.perf_counter() - started
    cpu = _cpu() - cpu0
    figures = {
        "n": n,
        "buildings": report.buildings,
        "leaves": report.leaves,
        "seconds": round(seconds, 2),
        "buildings_per_s": round(report.buildings / seconds, 1),
        "cpu_seconds": round(cpu, 2),
        "buildings_per_cpu_s": round(report.buildings / cpu, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "workers_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
        "output_mb": round(sum(p.stat().st_size for p in out.rglob("*")) / 2**20, 1),
    }
    if trace:
        figures["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geotwin-3d")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--validate", action="store_true", help="validate the largest tileset")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        src = args.work / f"synthetic_{args.child}.gml"
        print(
            json.dumps(child(args.child, src, args.work / f"tiles_{args.child}", args.tracemalloc))
        )
        return 0
    from geoservice.city3d.synthetic import write_synthetic

    rows = []
    for n in args.sizes:
        src = args.work / f"synthetic_{n}.gml"
        if not src.exists():
            t = time.perf_counter()
            write_synthetic(src, n, seed=1)
            print(
                f"wrote {src} ({src.stat().st_size / 2**20:.0f} MB) "
                f"in {time.perf_counter() - t:.1f} s",
                file=sys.stderr,
            )
        cmd = [sys.executable, __file__, "--child", str(n), "--work", str(args.work)]
        if args.tracemalloc:
            cmd.append("--tracemalloc")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    print("\nCityGML -> 3D Tiles (synthetic LOD1, end to end; meshing workers for big inputs)")
    print(
        f"{'buildings':>10} {'seconds':>8} {'bldg/s':>8} {'bldg/CPU-s':>10} "
        f"{'peak RSS MB':>12} {'worker RSS MB':>14} {'out MB':>7}"
    )
    for r in rows:
        print(
            f"{r['buildings']:>10} {r['seconds']:>8} {r['buildings_per_s']:>8} "
            f"{r['buildings_per_cpu_s']:>10} {r['peak_rss_mb']:>12} "
            f"{r['workers_peak_rss_mb']:>14} {r['output_mb']:>7}"
        )
    if args.validate:
        from geoservice.city3d.validate import validate_all

        tileset = args.work / f"tiles_{args.sizes[-1]}" / "tileset.json"
        report = validate_all(tileset)
        print(
            f"validate {tileset}: {len(report.errors)} errors, {len(report.warnings)} "
            f"warnings, {report.features} features"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
