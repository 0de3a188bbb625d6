"""`bench/cql2_count.py`: issue 17 - the CQL2 ``measured_height > h`` row of ``scale.py``,
without and with the layer's declared index, ours (PostGIS, GeoPackage) vs tipg 1.6.1.

``python bench/cql2_count.py [N]`` (default 300000).  Why a script of its own: the row is
a filter's exact count (``numberMatched``) over N rows, and ``scale.py`` spends ~20 min
parsing CityGML and making tile pyramids before it gets there.  Here the N SYNTHETIC rows
are made by SQL with ``geoservice.city3d.synthetic``'s distributions (storeys: 55% 1-3,
35% 4-10, 9% 11-25, 1% 26-50; height = storeys x 3.0-3.6 m + 0.3-1.5 m), in a scratch
PostgreSQL database with the ``scale-buildings`` spec (``layers/buildings.yml``) and copied
into a GeoPackage by the store's own ``bulk_load``.  Then two phases, fresh servers each
(no count cache carries over):

- ``before``: no index on ``measured_height``, table ANALYZEd only (as before ``indexes:``);
- ``after``: the declared index and VACUUM (ANALYZE), as ``create_collection`` and
  ``bulk_load`` make them now.

Each phase checks numberMatched and the first page's ids equal on all three servers, then
times the row with ``wrk`` (a different h per request, 2,000 values).  Knobs as
``postgis.py`` (BENCH_DURATION, BENCH_CONCURRENCY), BENCH_KEEP_DB=1, BENCH_PHASES=after
(one phase only).  Since ``store.value_index`` our servers answer this row's count from
sorted heights in memory (the layer is static and declares the index) in both phases;
``before`` then only says what a missing b-tree costs the first, loading request.
Results: ``bench/results/cql2_count.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
from common import ROOT, Server, free_port, uvicorn_cmd, write_config
from postgis import (
    TIPG_PACKAGES,
    TIPG_VENV,
    drop_database,
    ensure_venv,
    load,
    make_database,
    tipg_server,
)
from scale import LAYER, answers, layer_spec

from geoservice.catalogue import LayerSpec, load_layer
from geoservice.store.gpkg import GpkgStore
from geoservice.store.postgis import PostgisStore

RESULTS = ROOT / "bench" / "results" / "cql2_count.json"
INDEX = f"idx_{LAYER}_measured_height"
ROWS_SQL = """
INSERT INTO geoservice."{t}" (id, geom, building_id, measured_height, storeys, usage,
  usage_code, class, class_code, flood_depth_m, flood_rank, flood_scale, flood_source,
  district_zone, lod, source_file)
SELECT 'bldg_synthetic_' || lpad(i::text, 8, '0'),
  ST_Multi(ST_Expand(ST_MakePoint(139.6 + (i %% 548) * 0.0002, 35.6 + (i / 548) * 0.00018),
                     0.00005)),
  'b' || i, round((st * (3.0 + random() * 0.6) + 0.3 + random() * 1.2)::numeric, 1), st,
  (ARRAY['業務施設', '商業施設', '宿泊施設', '住宅', '共同住宅'])[1 + (random() * 4)::int],
  '411', '普通建物', '3001', CASE WHEN random() < 0.3 THEN random() * 3 END,
  '0.5m以上3m未満', 'L2', '多摩川', '第一種住居地域', 1, 'synthetic'
FROM (SELECT i, CASE WHEN r < 0.55 THEN 1 + (random() * 2)::int
                     WHEN r < 0.9 THEN 4 + (random() * 6)::int
                     WHEN r < 0.99 THEN 11 + (random() * 14)::int
                     ELSE 26 + (random() * 24)::int END st
      FROM (SELECT i, random() r FROM generate_series(1, %s) i) a) b
"""


def pg_table(n: int, url: str, spec: LayerSpec, source: str) -> PostgisStore:
    """The layer ``spec`` in PostGIS holding the N SYNTHETIC rows of ``ROWS_SQL``."""
    pg = PostgisStore(url, create=True)
    pg.create_collection(spec, source=source, synthetic=True)
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("SELECT setseed(0.17)")
        con.execute(ROWS_SQL.format(t=LAYER), (n,))
        con.execute('UPDATE geoservice.geoservice_layers SET row_count = %s'
                    ' WHERE collection = %s', (n, LAYER))
    return pg


def make_tables(n: int, url: str, tmp: Path) -> Path:
    """The N-row table in PostGIS and the same rows in a GeoPackage; its path."""
    spec = load_layer(layer_spec(tmp) / f"{LAYER}.yml")
    pg = pg_table(n, url, spec, "SYNTHETIC (bench/cql2_count.py)")
    gpkg = tmp / "store.gpkg"
    g = GpkgStore(gpkg, create=True)
    g.create_collection(spec, source="SYNTHETIC (bench/cql2_count.py)", synthetic=True)
    g.bulk_load(LAYER, pg.iter_features(LAYER))
    g.close()
    pg.close()
    return gpkg


def set_phase(phase: str, url: str, gpkg: Path) -> None:
    """Drop the height index (``before``) or make it as the stores do (``after``)."""
    with contextlib.closing(sqlite3.connect(gpkg)) as sq, sq:
        sq.execute(f'DROP INDEX IF EXISTS "{INDEX}"')
        if phase == "after":
            sq.execute(f'CREATE INDEX "{INDEX}" ON "{LAYER}" (measured_height)')
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'DROP INDEX IF EXISTS geoservice."{INDEX}"')
        if phase == "after":
            con.execute(f'CREATE INDEX "{INDEX}" ON geoservice."{LAYER}" (measured_height)')
            con.execute(f'VACUUM (ANALYZE) geoservice."{LAYER}"')
        else:
            con.execute(f'ANALYZE geoservice."{LAYER}"')


def run_phase(phase: str, url: str, gpkg: Path, tmp: Path, tipg_py: str) -> dict[str, Any]:
    heights = [f"{3 + i * 0.01:.2f}" for i in range(2000)]
    tail = "/items?filter-lang=cql2-text&filter=measured_height%3E{}&limit=10"
    ours = [f"/ogc/collections/{LAYER}" + tail.format(h) for h in heights]
    paths = {"ours-pg": ours, "ours-gpkg": ours,
             "tipg": [f"/collections/geoservice.{LAYER}" + tail.format(h) + "&sortby=id"
                      for h in heights]}
    ports = {s: free_port() for s in paths}
    servers = {
        s: Server(s, uvicorn_cmd("geoservice.asgi:app", ports[s]), ports[s],
                  {"GEOSERVICE_CONFIG": str(write_config(
                      tmp, ports[s], [LAYER], name=f"{s}-{phase}.yml",
                      server={"tile_cache_mb": 0}, layers_dir=str(tmp / "layers"),
                      store={"backend": "postgis", "database_url": url} if s == "ours-pg"
                      else {"backend": "gpkg", "path": str(gpkg)}))},
                  "/ogc/conformance", tmp / f"{s}-{phase}.log", start_timeout=300)
        for s in ("ours-pg", "ours-gpkg")}
    servers["tipg"] = tipg_server(ports["tipg"], url, tipg_py, tmp / "tipg.log")
    with contextlib.ExitStack() as up:
        for srv in servers.values():
            up.enter_context(srv)
        # checked on values the timed run reaches last (no count is cached before timing)
        seen = {s: answers(servers[s].base, p[1500:]) for s, p in paths.items()}
        if not seen["ours-pg"] == seen["ours-gpkg"] == seen["tipg"]:
            raise SystemExit(f"{phase}: answers differ: {seen}")
        out = {s: asdict(load(servers[s].base, p)) for s, p in paths.items()}
    out["load_average"] = os.getloadavg()
    print(f"  {phase}: " + ", ".join(f"{s} {out[s]['rps']:.0f} req/s (p50 {out[s]['p50_ms']:.0f}"
                                     f" ms)" for s in paths)
          + f"; pg/tipg {out['ours-pg']['rps'] / out['tipg']['rps']:.2f}x, gpkg/tipg"
          f" {out['ours-gpkg']['rps'] / out['tipg']['rps']:.2f}x; load"
          f" {out['load_average'][0]:.1f}", flush=True)
    return out


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    tipg_py = str(ensure_venv(TIPG_VENV, TIPG_PACKAGES) / "python")
    name, url = make_database()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cql2-") as d:
            tmp = Path(d)
            gpkg = make_tables(n, url, tmp)
            print(f"{n:,} SYNTHETIC rows; CQL2 measured_height > h limit=10", flush=True)
            runs = {}
            for phase in os.environ.get("BENCH_PHASES", "before,after").split(","):
                set_phase(phase, url, gpkg)
                runs[phase] = run_phase(phase, url, gpkg, tmp, tipg_py)
    finally:
        if os.environ.get("BENCH_KEEP_DB") != "1":
            drop_database(name)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"n": n, **runs}, indent=2), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
