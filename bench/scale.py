"""`bench/scale.py`: issue 17 - this service at city size vs tipg on the same tables.

``python bench/scale.py [N ...]`` (default ``1000 300000``; the documented large run is
``python bench/scale.py 1000 300000 2000000``).  For each size N:

1. writes N SYNTHETIC buildings with ``geoservice city3d synth`` (cached per N and seed in
   ``BENCH_SCALE_CACHE``, default /tmp/bench-scale-cache) and builds them, as the layer
   ``scale-buildings`` (the ``buildings`` spec's schema and tile rules, marked synthetic),
   with ``geoservice build`` into a scratch PostGIS database and into a GeoPackage (whose
   build also makes the static layer's tile pyramid); build time and peak memory are
   printed;
2. serves ours on PostGIS, ours on the GeoPackage (one uvicorn worker each, tile cache
   off: every tile request is made or read from the pyramid) and tipg 1.6.1 (its own
   virtualenv, ``TIPG_DB_SCHEMAS=["geoservice"]``, the very same table);
3. checks the answers equal before timing: ``numberMatched`` and the first page's ids of
   the unfiltered, bbox and CQL2 rows on all three servers (tipg asked with
   ``sortby=id``; a row whose answers differ is reported as failed, not timed);
4. times each row with ``wrk`` (1 thread, 8 connections, ``BENCH_DURATION`` s): items
   unfiltered limit=10; 500 m bboxes limit=100 and CQL2 ``measured_height > h`` limit=10,
   each request a different box / value (no count cache helps); feature by id (distinct
   ids); tiles at z11-z16, distinct addresses over the city (z11 has only a few), with
   p50/p99 and, per tile, mean bytes and features (coalesced squares count as features).

Targets printed: ours PostGIS >= 1.5x tipg on every row with tiles <= 500 KB; ours
GeoPackage >= 1x tipg.  Then, per row, how p50 grows from the smallest to the largest N.
Results: ``bench/results/scale.json``.  Knobs: BENCH_DURATION (3), BENCH_WARMUP (0.5),
BENCH_CONCURRENCY (8), BENCH_KEEP_DB=1, BENCH_TIPG_VENV, BENCH_SCALE_CACHE;
BENCH_SCALE_STORES (``postgis,gpkg``; ``postgis`` alone for the 2,000,000 run, whose targets
are PostGIS's and whose GeoPackage build would double an hour-long run) and BENCH_SCALE_DB
(the name of a database kept by an earlier run with BENCH_KEEP_DB=1: its PostGIS build is
reused, not repeated, so rows can be re-timed after a change without rebuilding).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import psycopg
import yaml
from common import ROOT, Server, free_port, uvicorn_cmd, write_config
from postgis import (
    ADMIN_URL,
    TIPG_PACKAGES,
    TIPG_VENV,
    as_uri,
    drop_database,
    ensure_venv,
    load,
    make_database,
    tile_of,
)
from psycopg.conninfo import make_conninfo

LAYER = "scale-buildings"
RESULTS = ROOT / "bench" / "results" / "scale.json"
CACHE = Path(os.environ.get("BENCH_SCALE_CACHE", "/tmp/bench-scale-cache"))
STORES = {"postgis": "ours-pg", "gpkg": "ours-gpkg"}
#: The servers of this run: ours on each chosen store, then tipg.
SERVERS = tuple(STORES[b] for b in os.environ.get("BENCH_SCALE_STORES", "postgis,gpkg")
                .split(",")) + ("tipg",)
ZOOMS = range(11, 17)
DISTINCT = 400  # different boxes / values / ids / tiles per row (at most)
BUDGET = 500_000


def synth(n: int) -> Path:
    """The synthetic CityGML of n buildings (made once per n)."""
    path = CACHE / f"synth-{n}-seed1.gml"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        subprocess.run([sys.executable, "-c", "from geoservice.cli import main; main()",
                        "city3d", "synth", "--out", str(tmp), "--n", str(n)], check=True,
                       stdout=subprocess.DEVNULL)
        tmp.replace(path)
    return path


def layer_spec(tmp: Path) -> Path:
    """A layers dir holding ``scale-buildings``: the buildings spec over the synthetic file."""
    spec = yaml.safe_load((ROOT / "layers" / "buildings.yml").read_text("utf-8"))
    spec.update(id=LAYER, title="Synthetic buildings (benchmark)", synthetic=True,
                description="SYNTHETIC buildings from geoservice city3d synth (benchmark)")
    spec["source"] = {**spec["source"], "paths": ["synth.gml"], "options": {}}
    layers = tmp / "layers"
    layers.mkdir(exist_ok=True)
    (layers / f"{LAYER}.yml").write_text(yaml.safe_dump(spec, allow_unicode=True), "utf-8")
    return layers


#: Runs the CLI, then writes the peak RSS (KB) of it and of its own workers to argv[1].
_MEASURED = ("import resource, sys\nfrom geoservice.cli import main\nout = sys.argv.pop(1)\n"
             "try:\n    main()\nfinally:\n    r = resource.getrusage\n"
             "    open(out, 'w').write(f'{r(resource.RUSAGE_SELF).ru_maxrss} "
             "{r(resource.RUSAGE_CHILDREN).ru_maxrss}')\n")


def build(cfg: Path, mirror: Path) -> dict[str, float]:
    """``geoservice build`` of the layer: wall time and the peak RSS of this build's own
    process and of its worker processes (not of the synth step before it)."""
    peak_file = cfg.with_suffix(".peak")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", _MEASURED, str(peak_file), "build",
                    "-c", str(cfg), "--mirror", str(mirror)], check=True,
                   stdout=subprocess.DEVNULL)
    main_kb, workers_kb = (int(v) for v in peak_file.read_text().split())
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": main_kb / 1024,
            "peak_rss_workers_mb": workers_kb / 1024}


# -- rows -------------------------------------------------------------------------------------
def city_rows(url: str) -> list[tuple[str, dict[str, list[str]]]]:
    """(row, {server: paths}) for every row, addresses drawn from the built table."""
    rng = random.Random(17)
    with psycopg.connect(url) as con:
        ext = con.execute(f'SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM'
                          f' (SELECT ST_Extent(geom) e FROM geoservice."{LAYER}") s').fetchone()
        ids = con.execute(f'SELECT fid, id FROM geoservice."{LAYER}" ORDER BY random()'
                          f" LIMIT {DISTINCT}").fetchall()
    assert ext is not None
    w, s, e, n = ext
    d_lat, d_lon = 500 / 110_950, 500 / 90_100
    ours = f"/ogc/collections/{LAYER}"
    tipg = f"/collections/geoservice.{LAYER}"

    def both(tail_ours: list[str], tail_tipg: list[str]) -> dict[str, list[str]]:
        return {"ours-pg": [ours + t for t in tail_ours], "ours-gpkg": [ours + t for t in
                                                                       tail_ours],
                "tipg": [tipg + t for t in tail_tipg]}

    boxes = []
    for _ in range(DISTINCT):
        x0 = rng.uniform(w, max(w, e - d_lon))
        y0 = rng.uniform(s, max(s, n - d_lat))
        boxes.append(f"{x0:.6f},{y0:.6f},{x0 + d_lon:.6f},{y0 + d_lat:.6f}")
    heights = [f"{3 + i * 0.05:.2f}" for i in range(DISTINCT)]
    out = [
        ("items limit=10", both(["/items?limit=10"], ["/items?limit=10&sortby=id"])),
        ("bbox 500 m limit=100", both([f"/items?bbox={b}&limit=100" for b in boxes],
                                      [f"/items?bbox={b}&limit=100&sortby=id" for b in boxes])),
        ("CQL2 height>h limit=10", both(
            [f"/items?filter-lang=cql2-text&filter=measured_height%3E{h}&limit=10"
             for h in heights],
            [f"/items?filter-lang=cql2-text&filter=measured_height%3E{h}&limit=10&sortby=id"
             for h in heights])),
        ("feature by id", {"ours-pg": [f"{ours}/items/{i}" for _, i in ids],
                           "ours-gpkg": [f"{ours}/items/{i}" for _, i in ids],
                           "tipg": [f"{tipg}/items/{f}" for f, _ in ids]}),
    ]
    for z in ZOOMS:
        (x0, y1), (x1, y0) = tile_of(w, s, z), tile_of(e, n, z)
        tiles = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
        rng.shuffle(tiles)
        tiles = tiles[:DISTINCT]
        out.append((f"tile z{z} ({len(tiles)} distinct)", both(
            [f"/tiles/WebMercatorQuad/{z}/{y}/{x}" for x, y in tiles],
            [f"/tiles/WebMercatorQuad/{z}/{x}/{y}" for x, y in tiles])))
    return out


def answers(base: str, paths: list[str]) -> list[tuple[Any, ...]]:
    """What each of the first few requests answers: (numberMatched, ids) or tile stats."""
    out: list[tuple[Any, ...]] = []
    for p in paths[:5]:
        # tipg answers a JSON array of properties to Accept: application/json
        r = httpx.get(base + p, timeout=120, headers={"Accept": "application/geo+json"})
        if "/tiles/" in p:
            layers = mapbox_vector_tile.decode(r.content) if r.content else {}
            out.append(("tile", r.status_code, len(r.content),
                        sum(len(v["features"]) for v in layers.values())))
        elif "/items/" in p:
            out.append((r.status_code,))
        else:
            doc = r.json() if r.headers.get("content-type", "").find("json") >= 0 else None
            if not isinstance(doc, dict):
                out.append((r.status_code, r.text[:300]))
                continue
            out.append((r.status_code, doc.get("numberMatched"),
                        # tipg's feature id is its key (fid); our id is its "id" column
                        tuple(str(f["properties"].get("id", f.get("id")))
                              for f in doc.get("features", []))))
    return out


def tile_stats(base: str, paths: list[str]) -> dict[str, float]:
    """Mean and max bytes and mean features of (up to 40 of) the row's tiles."""
    sizes, feats = [], []
    for p in paths[:40]:
        r = httpx.get(base + p, timeout=120)
        sizes.append(len(r.content))
        layers = mapbox_vector_tile.decode(r.content) if r.content else {}
        feats.append(sum(len(v["features"]) for v in layers.values()))
    return {"tile_mean_bytes": sum(sizes) / len(sizes), "tile_max_bytes": max(sizes),
            "tile_mean_features": sum(feats) / len(feats)}


def measure(servers: dict[str, Server], url: str) -> list[dict[str, Any]]:
    table = []
    for label, per in city_rows(url):
        entry: dict[str, Any] = {"row": label, "servers": {}, "equal": True}
        seen = {s: answers(servers[s].base, per[s]) for s in SERVERS}
        if "tile" not in label and "by id" not in label:
            entry["equal"] = all(v == seen["tipg"] for v in seen.values())
            if not entry["equal"]:
                entry["answers"] = {s: v[:2] for s, v in seen.items()}
                print(f"  {label}: answers differ: {entry['answers']}"[:1500], flush=True)
        elif "by id" in label:
            entry["equal"] = all(a == (200,) for v in seen.values() for a in v)
        for s in SERVERS:
            res = asdict(load(servers[s].base, per[s]))
            if "tile" in label:
                res.update(tile_stats(servers[s].base, per[s]))
            entry["servers"][s] = res
        tipg = entry["servers"]["tipg"]["rps"] or math.nan
        for b, key in (("ours-pg", "pg_tipg"), ("ours-gpkg", "gpkg_tipg")):
            if b in entry["servers"]:
                entry[key] = entry["servers"][b]["rps"] / tipg
        table.append(entry)
        print(f"  {label}: " + ", ".join(f"{s} {entry['servers'][s]['rps']:.0f}"
                                          for s in SERVERS) + " req/s"
              + ("" if entry["equal"] else "  ANSWERS DIFFER"), flush=True)
    return table


# -- one size ---------------------------------------------------------------------------------
def run_size(n: int, tipg_py: str) -> dict[str, Any]:
    print(f"\n== {n:,} synthetic buildings ==", flush=True)
    reuse = os.environ.get("BENCH_SCALE_DB")
    gml = synth(n)
    name, url = (reuse, make_conninfo(ADMIN_URL, dbname=reuse)) if reuse else make_database()
    out: dict[str, Any] = {"n": n, "servers": SERVERS}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as d:
            tmp = Path(d)
            mirror = tmp / "mirror"
            mirror.mkdir()
            (mirror / "synth.gml").symlink_to(gml)
            layers = layer_spec(tmp)
            ports = {s: free_port() for s in SERVERS}
            cfgs = {b: write_config(tmp, ports[sname], [LAYER], name=f"config-{b}.yml",
                                    server={"tile_cache_mb": 0},
                                    store={"backend": b,
                                           "database_url": url if b == "postgis" else None},
                                    layers_dir=str(layers))
                    for b, sname in STORES.items() if sname in SERVERS}
            out["build"] = {b: build(c, mirror) for b, c in cfgs.items()
                            if not (reuse and b == "postgis")}
            print("  build: " + ", ".join(
                f"{b} {v['seconds']:.0f} s, peak RSS {v['peak_rss_mb']:.0f} MB (workers "
                f"{v['peak_rss_workers_mb']:.0f} MB)" for b, v in out["build"].items()),
                flush=True)

            def ours(sname: str, cfg: Path) -> Server:
                return Server(sname, uvicorn_cmd("geoservice.asgi:app", ports[sname]),
                              ports[sname], {"GEOSERVICE_CONFIG": str(cfg)},
                              "/ogc/conformance", tmp / f"{sname}.log", start_timeout=300)

            servers = {sname: ours(sname, cfgs[b]) for b, sname in STORES.items()
                       if sname in SERVERS}
            servers.update({
                "tipg": Server("tipg", uvicorn_cmd("tipg.main:app", ports["tipg"], tipg_py),
                               ports["tipg"], {"DATABASE_URL": as_uri(url),
                                               "TIPG_DB_SCHEMAS": '["geoservice"]'},
                               "/collections", tmp / "tipg.log"),
            })
            with contextlib.ExitStack() as up:
                for srv in servers.values():
                    up.enter_context(srv)
                out["rows"] = measure(servers, url)
    finally:
        if os.environ.get("BENCH_KEEP_DB") != "1" and not reuse:
            drop_database(name)
        else:
            print(f"  kept database {name} (BENCH_SCALE_DB={name} re-times it)", flush=True)
    return out


# -- report -----------------------------------------------------------------------------------
def report(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        names = run.get("servers", SERVERS)
        ours = [(s, k, t) for s, k, t in (("ours-pg", "pg_tipg", 1.5), ("ours-gpkg",
                                                                         "gpkg_tipg", 1.0))
                if s in names]
        print(f"\n{run['n']:,} buildings: req/s, p50/p99 ms; tiles: mean KB (max), features")
        head = (f"{'row':<26}| " + " | ".join(f"{s:^30}" for s in names) + " | "
                + " | ".join(k.replace("_", "/") for _, k, _ in ours))
        print(head + "\n" + "-" * len(head))
        for row in run["rows"]:
            cells = []
            for s in names:
                r = row["servers"][s]
                c = f"{r['rps']:>6.0f} {r['p50_ms']:>6.1f}/{r['p99_ms']:<6.1f}"
                if "tile_mean_bytes" in r:
                    c += (f" {r['tile_mean_bytes'] / 1024:>4.0f}K"
                          f"({r['tile_max_bytes'] / 1024:.0f}) {r['tile_mean_features']:.0f}f")
                cells.append(f"{c:<30}")
            verdicts = []
            for s, key, target in ours:
                ok = row[key] >= target and row["equal"] and (
                    "tile" not in row["row"] or s != "ours-pg"
                    or row["servers"][s]["tile_max_bytes"] <= BUDGET)
                verdicts.append(f"{row[key]:>5.2f} {'ok' if ok else 'NO'}")
            flag = "" if row["equal"] else "  FAILED: answers differ"
            print(f"{row['row']:<26}| " + " | ".join(cells) + " | " + " | ".join(verdicts)
                  + flag)
    if len(runs) > 1:
        lo, hi = runs[0], runs[-1]
        print(f"\ngrowth of p50 from {lo['n']:,} to {hi['n']:,} buildings (x times):")
        for a, b in zip(lo["rows"], hi["rows"], strict=False):
            print(f"  {b['row']:<26} " + "  ".join(
                f"{s} {b['servers'][s]['p50_ms'] / max(a['servers'][s]['p50_ms'], 1e-3):.1f}x"
                for s in b["servers"] if s in a["servers"]))
    print("\ntargets: ours PostGIS >= 1.5x tipg on every row, tiles <= 500 KB; ours "
          "GeoPackage >= 1x tipg. Ours serve with the tile cache off; tiles of this static "
          "layer are read from the pyramid made by the build. Load: wrk, 1 thread, "
          "sharing the 2 CPUs with the servers and PostgreSQL.")


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 300_000]
    tipg_py = str(ensure_venv(TIPG_VENV, TIPG_PACKAGES) / "python")
    runs = [run_size(n, tipg_py) for n in sizes]
    report(runs)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(runs, indent=2), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
