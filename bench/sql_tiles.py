"""`bench/sql_tiles.py`: issue 17 - PostGIS tiles made ON DEMAND at z11-z16 over N SYNTHETIC
buildings (default 300,000): ours vs tipg 1.6.1 on the same table, and optionally an older
checkout of ours ("before"), all in the same run.

``python bench/sql_tiles.py [N]``.  Why a script of its own: ``scale.py`` serves the
buildings' tiles from the pyramid its build makes (a read), and its build takes ~10 min
per store; an editable layer is served on demand.  Here the N rows are made by SQL
(``cql2_count.ROWS_SQL``: ~9 x 11 m boxes on a ~18 m grid, ``geoservice.city3d.synthetic``'s
storeys and heights) into a scratch PostGIS database, as the layer ``scale-buildings`` with
the ``buildings`` tile rules (maxzoom 16, detail_zoom 14, the 500 KB budget) and
``prebuild`` off, so every tile is made when asked.

Servers (one worker each, our tile cache off): ``ours`` (this checkout), ``before`` when
``BENCH_BEFORE`` names another checkout of the repository (run with it first on
``sys.path``), ``tipg``.  Addresses: the ``BENCH_TILES`` (default 8) distinct tiles per
zoom over the city that hold the most rows.  Answers checked before timing: every tile
of ours (and of ``before``) is valid MVT, under the budget, and ours draws as many
features as ``before``; tipg's bytes and features are reported.  Then ``BENCH_ROUNDS``
(default 3) rounds ask every address of every zoom once per server, servers interleaved,
one request at a time: p50 per zoom and server, ratios in the same run.
``BENCH_KEEP_DB=1`` keeps the database.  Results: ``bench/results/sql_tiles.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import psycopg
import yaml
from common import ROOT, Server, free_port, uvicorn_cmd, write_config
from cql2_count import pg_table
from postgis import (
    TIPG_PACKAGES,
    TIPG_VENV,
    drop_database,
    ensure_venv,
    make_database,
    tipg_server,
)
from scale import LAYER, layer_spec

from geoservice.catalogue import load_layer

RESULTS = ROOT / "bench" / "results" / "sql_tiles.json"
ZOOMS = range(11, 17)
TILES = int(os.environ.get("BENCH_TILES", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BUDGET = 500_000


def on_demand_spec(tmp: Path) -> Path:
    """The layers dir of ``scale-buildings`` with ``tiles.prebuild`` off (as an editable
    layer: every tile made when asked)."""
    layers = layer_spec(tmp)
    path = layers / f"{LAYER}.yml"
    spec = yaml.safe_load(path.read_text("utf-8"))
    spec["tiles"] = {**spec["tiles"], "prebuild": False}
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), "utf-8")
    return layers


def addresses(url: str) -> dict[int, list[tuple[int, int]]]:
    """Per zoom, the TILES distinct (x, y) over the city holding the most rows (the dense
    interior: an edge tile of the city is small at any zoom)."""
    with psycopg.connect(url) as con:
        ext = con.execute(f'SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM'
                          f' (SELECT ST_Extent(geom) e FROM geoservice."{LAYER}") s').fetchone()
        assert ext is not None
        w, s, e, n = ext
        out = {}
        for z in ZOOMS:
            k = 2**z

            def col(lon: float, k: int = k) -> int:
                return int((lon + 180) / 360 * k)

            def row(lat: float, k: int = k) -> int:
                return int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * k)

            count = {(x, y): con.execute(
                f'SELECT count(*) FROM geoservice."{LAYER}" WHERE geom && ST_Transform('
                "ST_TileEnvelope(%s, %s, %s), 4326)", (z, x, y)).fetchone()[0]  # type: ignore[index]
                for x in range(col(w), col(e) + 1) for y in range(row(n), row(s) + 1)}
            out[z] = sorted(sorted(count, key=lambda t: -count[t])[:TILES])
    return out


def paths(server: str, z: int, x: int, y: int) -> str:
    if server == "tipg":
        return f"/collections/geoservice.{LAYER}/tiles/WebMercatorQuad/{z}/{x}/{y}"
    return f"/ogc/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{y}/{x}"


def answer(client: httpx.Client, server: str, z: int, x: int, y: int) -> tuple[int, int, int]:
    """(status, bytes, features) of one tile, decoded (a tile that does not decode fails)."""
    r = client.get(paths(server, z, x, y), timeout=300)
    if r.status_code not in (200, 204):
        raise SystemExit(f"{server} z{z}/{x}/{y}: HTTP {r.status_code} {r.text[:300]}")
    layers = mapbox_vector_tile.decode(r.content) if r.content else {}
    return r.status_code, len(r.content), sum(len(v["features"]) for v in layers.values())


def check(clients: dict[str, httpx.Client],
          tiles: dict[int, list[tuple[int, int]]]) -> dict[str, Any]:
    """Every tile from every server once: ours (and before) under the budget, ours as many
    features as before.  Per zoom and server: mean and max KB, mean features."""
    out: dict[str, Any] = {}
    for z, xys in tiles.items():
        seen = {s: [answer(c, s, z, x, y) for x, y in xys] for s, c in clients.items()}
        for s in ("ours", "before"):
            over = [a for a in seen.get(s, []) if a[1] > BUDGET]
            if over:
                raise SystemExit(f"{s} z{z}: tiles over the {BUDGET}-byte budget: {over}")
        if "before" in seen and [a[2] for a in seen["ours"]] != [a[2] for a in seen["before"]]:
            raise SystemExit(f"z{z}: ours and before draw different feature counts: {seen}")
        out[str(z)] = {s: {"mean_kb": statistics.mean(a[1] for a in v) / 1000,
                           "max_kb": max(a[1] for a in v) / 1000,
                           "mean_features": statistics.mean(a[2] for a in v)}
                       for s, v in seen.items()}
    return out


def timed(clients: dict[str, httpx.Client],
          tiles: dict[int, list[tuple[int, int]]]) -> dict[str, dict[str, list[float]]]:
    """ROUNDS rounds: every address of every zoom once per server, servers interleaved
    (the first server rotates), one request at a time; ms per (zoom, server)."""
    ms: dict[str, dict[str, list[float]]] = {str(z): {s: [] for s in clients} for z in tiles}
    order = list(clients)
    for r in range(ROUNDS):
        for z, xys in tiles.items():
            for i, (x, y) in enumerate(xys):
                turn = order[(r + i) % len(order):] + order[:(r + i) % len(order)]
                for s in turn:
                    t0 = time.perf_counter()
                    clients[s].get(paths(s, z, x, y), timeout=300).raise_for_status()
                    ms[str(z)][s].append((time.perf_counter() - t0) * 1000)
    return ms


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    before = os.environ.get("BENCH_BEFORE")
    tipg_py = str(ensure_venv(TIPG_VENV, TIPG_PACKAGES) / "python")
    name, url = make_database()
    print(f"== {n:,} synthetic buildings, tiles made on demand (database {name}) ==", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sql-tiles-") as d:
            tmp = Path(d)
            layers = on_demand_spec(tmp)
            t0 = time.perf_counter()
            pg_table(n, url, load_layer(layers / f"{LAYER}.yml"),
                     "SYNTHETIC (bench/sql_tiles.py)").close()
            with psycopg.connect(url, autocommit=True) as con:
                con.execute(f'VACUUM (ANALYZE) geoservice."{LAYER}"')
            print(f"  rows made in {time.perf_counter() - t0:.0f} s", flush=True)
            tiles = addresses(url)
            names = ["ours", *(["before"] if before else []), "tipg"]
            ports = {s: free_port() for s in names}

            def ours(s: str, app_dir: str) -> Server:
                cfg = write_config(tmp, ports[s], [LAYER], name=f"{s}.yml",
                                   server={"tile_cache_mb": 0}, layers_dir=str(layers),
                                   store={"backend": "postgis", "database_url": url})
                # uvicorn puts --app-dir first on sys.path (else the cwd, this checkout)
                cmd = uvicorn_cmd("geoservice.asgi:app", ports[s]) + ["--app-dir", app_dir]
                return Server(s, cmd, ports[s], {"GEOSERVICE_CONFIG": str(cfg)},
                              "/ogc/conformance", tmp / f"{s}.log", start_timeout=300)

            servers = {"ours": ours("ours", str(ROOT))}
            if before:
                servers["before"] = ours("before", before)
            servers["tipg"] = tipg_server(ports["tipg"], url, tipg_py, tmp / "tipg.log")
            with contextlib.ExitStack() as up:
                for srv in servers.values():
                    up.enter_context(srv)
                clients = {s: up.enter_context(httpx.Client(base_url=servers[s].base))
                           for s in names}
                sizes = check(clients, tiles)
                load_before = os.getloadavg()
                ms = timed(clients, tiles)
        out = {"n": n, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "load_average": [load_before, os.getloadavg()], "tiles": {
                   str(z): len(v) for z, v in tiles.items()}, "sizes": sizes, "ms": ms}
        report(out)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=1), "utf-8")
    finally:
        if os.environ.get("BENCH_KEEP_DB") != "1":
            drop_database(name)
    return 0


def report(out: dict[str, Any]) -> None:
    names = list(next(iter(out["ms"].values())))
    print(f"\n{out['date']}, load average {out['load_average']}; p50 ms per tile (requests),"
          " mean KB / mean features:")
    print("| zoom | " + " | ".join(names) + " | " + " | ".join(
        f"{s}/ours" for s in names if s != "ours") + " |")
    for z, per in out["ms"].items():
        p50 = {s: statistics.median(v) for s, v in per.items()}
        size = out["sizes"][z]
        cells = [f"{p50[s]:.0f} ({len(per[s])}) {size[s]['mean_kb']:.0f} KB /"
                 f" {size[s]['mean_features']:.0f}" for s in names]
        print(f"| z{z} | " + " | ".join(cells) + " | " + " | ".join(
            f"{p50[s] / p50['ours']:.1f}x" for s in names if s != "ours") + " |")


if __name__ == "__main__":
    raise SystemExit(main())
