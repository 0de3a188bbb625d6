"""The two cache-off tile rows of ``bench/postgis.py`` for two revisions of the GeoPackage store.

``.venv/bin/python bench/tiles_ab.py [--base REV] [--rounds 5] [--duration 3]`` (about 3
minutes; PostgreSQL + PostGIS and wrk as for ``bench/postgis.py``, whose functions it uses):
builds the benchmark's three layers once into a scratch database (for tipg) and one
GeoPackage, then serves that GeoPackage with ``server.tile_cache_mb: 0`` twice - the code of
``REV`` (``git archive``, default ``main``) as **before** and this working tree as **after** -
beside **tipg** on the scratch tables, and runs wrk (one thread, 8 connections) on the
busiest bear z10 tile and the zone z12 tile in interleaved rounds (before / after / tipg,
each round), so that the ratios share the machine's load.  Before/after tile bytes must be
equal or the run stops.  Why rounds: on the shared 2-core machine single 3 s runs of the same
server vary by 2x.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import postgis as pb  # noqa: E402  (the benchmark's own rows, build and wrk)
from common import ROOT, Server, free_port, uvicorn_cmd  # noqa: E402

# the servers' cwd is this tree (first on sys.path): the old code is put ahead of it
_BEFORE = ("import sys; sys.path.insert(0, {base!r}); import geoservice, uvicorn; "
           "print('before code:', geoservice.__file__, file=sys.stderr, flush=True); "
           "sys.argv[0] = 'uvicorn'; uvicorn.main()")


def checkout(rev: str, into: Path) -> Path:
    """``rev``'s ``geoservice`` package in ``into`` (with this tree's built vendor files,
    which git does not hold)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "geoservice"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    vendor = ROOT / "geoservice" / "web" / "static" / "vendor"
    if vendor.exists():
        shutil.copytree(vendor, into / "geoservice" / "web" / "static" / "vendor",
                        dirs_exist_ok=True)
    return into


def servers(tmp: Path, url: str, base: Path, tipg_python: str) -> dict[str, Server]:
    """before (old code), after (this tree), both on one GeoPackage, cache off; tipg."""
    ports = {s: free_port() for s in ("before", "after", "tipg", "pg")}
    cfg_pg = pb.our_config(tmp, "postgis", url, ports["pg"])
    cfg = {s: pb.our_config(tmp, "gpkg", url, ports[s], 0, f"-{s}") for s in ("before", "after")}
    for c in (cfg_pg, cfg["after"]):  # before shares after's GeoPackage (same path)
        subprocess.run([sys.executable, "-c", "from geoservice.cli import main; main()",
                        "build", "-c", str(c), "--mirror", str(pb.DATA)], check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL)
    me = sys.executable
    before = [me, "-c", _BEFORE.format(base=str(base))] + uvicorn_cmd(
        "geoservice.asgi:app", ports["before"], me)[3:]
    return {
        "before": Server("before", before, ports["before"],
                         {"GEOSERVICE_CONFIG": str(cfg["before"])}, "/ogc/conformance",
                         tmp / "before.log"),
        "after": Server("after", uvicorn_cmd("geoservice.asgi:app", ports["after"], me),
                        ports["after"], {"GEOSERVICE_CONFIG": str(cfg["after"])},
                        "/ogc/conformance", tmp / "after.log"),
        "tipg": Server("tipg", uvicorn_cmd("tipg.main:app", ports["tipg"], tipg_python),
                       ports["tipg"], {"DATABASE_URL": pb.as_uri(url),
                                       "TIPG_DB_SCHEMAS": '["geoservice"]'},
                       "/collections", tmp / "tipg.log"),
    }


def row(label: str, up: dict[str, Server], paths: dict[str, str], rounds: int,
        duration: float) -> None:
    """One row: answers checked, then interleaved rounds; summed req/s and the ratios."""
    got = {s: httpx.get(up[s].base + paths[s], headers=pb.HEADERS, timeout=60) for s in up}
    if got["before"].content != got["after"].content:
        raise SystemExit(f"{label}: before and after tiles differ")
    print(f"{label}: status {[g.status_code for g in got.values()]}, bytes "
          f"{[len(g.content) for g in got.values()]} (before == after)", flush=True)
    total = dict.fromkeys(up, 0.0)
    for r in range(rounds):
        line = []
        for s in up:
            pb.wrk(up[s].base, [paths[s]], pb.WARMUP, pb.CONCURRENCY)
            res = pb.wrk(up[s].base, [paths[s]], duration, pb.CONCURRENCY)
            total[s] += res.rps
            line.append(f"{s} {res.rps:.0f} (p50 {res.p50_ms:.0f} ms, errors {res.errors})")
        print(f"  round {r + 1}: " + ", ".join(line), flush=True)
    print("  summed req/s: " + " / ".join(f"{s} {v:.0f}" for s, v in total.items())
          + f"; before {total['before'] / total['tipg']:.2f}x tipg, after "
          f"{total['after'] / total['tipg']:.2f}x tipg, after/before "
          f"{total['after'] / total['before']:.2f}x; load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="main", help="revision served as 'before'")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    args = ap.parse_args()
    if not pb.WRK:
        raise SystemExit("wrk not found (apt-get install wrk)")
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), f"before = {args.base}", flush=True)
    tipg = pb.ensure_venv(pb.TIPG_VENV, pb.TIPG_PACKAGES)
    name, url = pb.make_database()
    try:
        with tempfile.TemporaryDirectory(prefix="tiles-ab-") as d:
            tmp = Path(d)
            base = checkout(args.base, tmp / "before-code")
            up = servers(tmp, url, base, str(tipg / "python"))
            with contextlib.ExitStack() as stack:
                for s in up.values():
                    stack.enter_context(s)
                if str(base) not in (tmp / "before.log").read_text("utf-8", "replace"):
                    raise SystemExit("the 'before' server does not run the old code")
                for label, per in pb.rows(url):
                    if "cache off" in label:
                        paths = {"before": per["ours-gpkg"], "after": per["ours-gpkg"],
                                 "tipg": per["tipg"]}
                        row(label, up, paths, args.rounds, args.duration)
    finally:
        pb.drop_database(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
