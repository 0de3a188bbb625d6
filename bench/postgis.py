"""`bench/postgis.py`: this service vs tipg and pygeoapi over the same PostGIS tables.

1. Creates a scratch database (``BENCH_DATABASE_URL``, default the local test cluster),
   builds admin-boundaries, wildlife-sightings and sediment-special-zones from the real
   extracts in ../shared/data into it with ``geoservice build`` (backend postgis), and the
   same three layers into a GeoPackage (the embedded backend).
2. Serves, one uvicorn worker each, no access log:
   - ours on PostGIS and ours on the GeoPackage (``uvicorn geoservice.asgi:app``);
   - tipg 1.6.1 (``uvicorn tipg.main:app``) from a SEPARATE virtualenv
     (``BENCH_TIPG_VENV``, default /tmp/bench-venv-tipg, created on first use) with
     ``TIPG_DB_SCHEMAS=["geoservice"]`` - the very same tables;
   - pygeoapi 0.21.0 with its PostgreSQL feature provider and MVT-postgresql tile provider
     on the same tables, from another virtualenv (``BENCH_PYGEOAPI_VENV``, default
     /tmp/bench-venv-pygeoapi: pygeoapi, geoalchemy2, psycopg2-binary).
3. Drives each row with ``wrk`` (Debian package; ``make bench`` installs it when run as
   root) at fixed concurrency, else with an async httpx client; prints req/s, p50, p99,
   errors and the ratios (ours PostGIS / tipg >= 1.5, ours GeoPackage / tipg >= 1.0);
   then a mixed load on the public bear-map endpoints (the requests /map/ makes) with
   errors and p99.  Writes bench/results/postgis.json.

Caveats (printed too): our wildlife-sightings reads pass the sightings read policy (only
``published`` rows, sensitive records generalised, one probe query per bbox/tile read);
tipg and pygeoapi serve the raw table.  Feature by id uses each server's own key (ours the
``id`` text column, tipg and pygeoapi the primary key ``fid``).  The load generator shares
the two CPUs with the servers and PostgreSQL.

Knobs: BENCH_DURATION (s per row per server, default 3), BENCH_WARMUP (0.5),
BENCH_CONCURRENCY (8), BENCH_LOAD_DURATION (bear-map load, 10), BENCH_LOAD_CONCURRENCY
(32), BENCH_KEEP_DB=1 (keep the scratch database), BENCH_NO_WRK=1 (use the httpx client).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BEAR = DATA / "bear" / "tokyo_bear_sightings_2023-2025.geojson"
LAYERS = ["admin-boundaries", "wildlife-sightings", "sediment-special-zones"]
RESULTS = ROOT / "bench" / "results" / "postgis.json"
ADMIN_URL = os.environ.get(
    "BENCH_DATABASE_URL",
    os.environ.get(
        "GEOSERVICE_TEST_DATABASE_URL", "postgresql://geoservice:geoservice@127.0.0.1:5432/postgres"
    ),
)
TIPG_VENV = Path(os.environ.get("BENCH_TIPG_VENV", "/tmp/bench-venv-tipg"))
PYGEOAPI_VENV = Path(os.environ.get("BENCH_PYGEOAPI_VENV", "/tmp/bench-venv-pygeoapi"))
TIPG_PACKAGES = ["tipg==1.6.1", "uvicorn"]
PYGEOAPI_PACKAGES = ["pygeoapi==0.21.0", "geoalchemy2", "psycopg2-binary", "starlette", "uvicorn"]
DURATION = float(os.environ.get("BENCH_DURATION", "3"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "0.5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
LOAD_DURATION = float(os.environ.get("BENCH_LOAD_DURATION", "10"))
LOAD_CONCURRENCY = int(os.environ.get("BENCH_LOAD_CONCURRENCY", "32"))
WRK = None if os.environ.get("BENCH_NO_WRK") == "1" else shutil.which("wrk")
BBOX = "139.0,35.7,139.3,35.9"
HEADERS = {"Accept-Encoding": "identity"}
SERVERS = ("ours-pg", "ours-gpkg", "tipg", "pygeoapi")


from common import Server, free_port, pygeoapi_config, uvicorn_cmd, write_config  # noqa: E402


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    return int((lon + 180) / 360 * n), int(
        (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    )


# -- set-up -----------------------------------------------------------------------------------
def ensure_venv(venv: Path, packages: list[str]) -> Path:
    """A peer's own virtualenv (its dependencies may conflict with ours); its bin/."""
    if not (venv / "bin" / "uvicorn").exists():
        print(f"creating {venv} with {' '.join(packages)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], check=True)
    return venv / "bin"


def make_database() -> tuple[str, str]:
    name = f"geoservice_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(ADMIN_URL, dbname=name)
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return name, url


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as con:
        con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def as_uri(conninfo: str) -> str:
    """tipg (asyncpg) wants a postgresql:// URI."""
    p = conninfo_to_dict(conninfo)
    return (f"postgresql://{p.get('user')}:{p.get('password')}@{p.get('host', '127.0.0.1')}:"
            f"{p.get('port', 5432)}/{p['dbname']}")


def tipg_server(port: int, url: str, tipg_py: str, log: Path) -> Server:
    """tipg serving the scratch database's ``geoservice`` schema."""
    return Server("tipg", uvicorn_cmd("tipg.main:app", port, tipg_py), port,
                  {"DATABASE_URL": as_uri(url), "TIPG_DB_SCHEMAS": '["geoservice"]'},
                  "/collections", log)


def our_config(tmp: Path, backend: str, url: str, port: int, tile_cache_mb: int = 64,
               suffix: str = "") -> Path:
    """Our config for ``backend`` (postgis: the scratch database; gpkg: a file in tmp)."""
    return write_config(tmp, port, LAYERS, name=f"config-{backend}{suffix}.yml",
                        server={"tile_cache_mb": tile_cache_mb},
                        store={"backend": backend,
                               "database_url": url if backend == "postgis" else None})


def serve_pygeoapi_env(tmp: Path, url: str, port: int) -> dict[str, str]:
    """pygeoapi's config with the PostgreSQL feature and MVT tile providers on our tables;
    returns the environment that serves it."""
    p = conninfo_to_dict(url)
    data = {"host": p.get("host", "127.0.0.1"), "port": int(p.get("port", 5432)),
            "dbname": p["dbname"], "user": p.get("user"), "password": p.get("password"),
            "search_path": ["geoservice", "public"]}
    def resource(table: str) -> dict[str, Any]:
        common = {"data": data, "id_field": "fid", "table": table, "geom_field": "geom"}
        return {
            "type": "collection", "title": table, "description": table, "keywords": ["bench"],
            "links": [],
            "extents": {"spatial": {"bbox": [122, 20, 154, 46],
                                    "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "providers": [
                {"type": "feature", "name": "PostgreSQL", **common},
                {"type": "tile", "name": "MVT-postgresql", **common,
                 "options": {"zoom": {"min": 0, "max": 16}},
                 "format": {"name": "pbf", "mimetype": "application/vnd.mapbox-vector-tile"}},
            ],
        }

    cfg = pygeoapi_config(port, {t: resource(t) for t in ("wildlife-sightings",
                                                        "sediment-special-zones")})
    cfg_path, oa_path = tmp / "pygeoapi.yml", tmp / "pygeoapi-openapi.yml"
    cfg_path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    env = {"PYGEOAPI_CONFIG": str(cfg_path), "PYGEOAPI_OPENAPI": str(oa_path)}
    subprocess.run([str(PYGEOAPI_VENV / "bin" / "pygeoapi"), "openapi", "generate",
                    str(cfg_path), "--output-file", str(oa_path)],
                   env={**os.environ, **env}, check=True, capture_output=True, timeout=300)
    return env


# -- load -------------------------------------------------------------------------------------
@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_bytes: float = 0.0
    matched: int | None = None
    status: int = 0


@dataclass(frozen=True)
class Answer:
    """What one server answered to a row's request: compared across servers before timing."""

    status: int
    matched: int | None = None
    ids: tuple[str, ...] | None = None  # our ``id`` of each feature (first page), in order


def _key(feature: dict[str, Any]) -> str:
    # ours use the ``id`` column as feature id; tipg and pygeoapi use the primary key
    # ``fid`` and carry ``id`` as a property: compare by the ``id`` column everywhere
    return str((feature.get("properties") or {}).get("id", feature.get("id")))


def first_answer(base: str, path: str) -> Answer:
    """Status, numberMatched and the first page's feature ids of one request."""
    r = httpx.get(base + path, headers=HEADERS, timeout=60)
    if r.status_code != 200 or "json" not in r.headers.get("content-type", ""):
        return Answer(r.status_code)
    doc = r.json()
    feats = doc.get("features")
    ids = tuple(_key(f) for f in feats) if isinstance(feats, list) else \
        (_key(doc),) if doc.get("type") == "Feature" else None
    return Answer(r.status_code, doc.get("numberMatched"), ids)


def disagreement(answers: dict[str, Answer]) -> str | None:
    """Why the servers' answers to one row differ (numberMatched, first-page ids), or None.

    A server that answered with an error is left out here (it is shown n/a for the row).
    """
    answers = {s: a for s, a in answers.items() if a.status in (200, 204)}
    for attr in ("matched", "ids"):
        seen = {s: getattr(a, attr) for s, a in answers.items() if getattr(a, attr) is not None}
        if len(set(seen.values())) > 1:
            shown = {s: (v if attr == "matched" else f"{len(v)} ids, first {v[:3]}")
                     for s, v in seen.items()}
            return f"{'numberMatched' if attr == 'matched' else 'first-page ids'} differ: {shown}"
    return None


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    if not m:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
    return float(m.group(1)) * scale[m.group(2)]


def wrk(base: str, paths: list[str], duration: float, concurrency: int) -> Result:
    """``wrk`` (one thread) over ``paths`` in turn; non-2xx and socket errors are errors."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    quoted = ", ".join(json.dumps(p) for p in paths)
    script.write_text(
        f"local paths = {{{quoted}}}\nlocal i = 0\n"
        "request = function()\n  i = i % #paths + 1\n"
        "  return wrk.format('GET', paths[i], {['Accept-Encoding'] = 'identity'})\nend\n",
        "utf-8",
    )
    try:
        out = subprocess.run(
            [WRK, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--latency",
             "--timeout", "10s",
             "-s", str(script), base],
            capture_output=True, text=True, check=True, timeout=duration + 60,
        ).stdout
    finally:
        script.unlink()
    res = Result()
    res.rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    res.requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    # the distribution lines only ("Req/Sec ... 62.50%" must not match "50%")
    res.p50_ms = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    res.p99_ms = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non2 = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res.errors = (int(non2.group(1)) if non2 else 0) + (
        sum(int(x) for x in sock.groups()) if sock else 0)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    if transfer and res.rps:
        scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}.get(transfer.group(2), 1)
        res.mean_bytes = float(transfer.group(1)) * scale / res.rps
    return res


async def _httpx_load(base: str, paths: list[str], duration: float, concurrency: int) -> Result:
    res = Result()
    lat: list[float] = []
    sizes: list[int] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=HEADERS, limits=limits,
                                 timeout=60) as client:
        measuring, stop, turn = False, time.perf_counter() + WARMUP, 0

        async def worker() -> None:
            nonlocal turn
            while time.perf_counter() < stop:
                path = paths[turn % len(paths)]
                turn += 1
                t0 = time.perf_counter()
                try:
                    r = await client.get(path)
                    ok, n = 200 <= r.status_code < 300, len(r.content)
                except httpx.HTTPError:
                    ok, n = False, 0
                if measuring:
                    lat.append(time.perf_counter() - t0)
                    sizes.append(n)
                    res.errors += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        measuring, t_start = True, time.perf_counter()
        stop = t_start + duration
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t_start
    lat.sort()
    res.requests = len(lat)
    res.rps = len(lat) / elapsed
    res.p50_ms = statistics.median(lat) * 1000
    res.p99_ms = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] * 1000
    res.mean_bytes = sum(sizes) / len(sizes)
    return res


def load(base: str, paths: list[str], duration: float = DURATION,
         concurrency: int = CONCURRENCY) -> Result:
    """One row's figures: a first request (status, numberMatched), a warm-up, the run."""
    first = first_answer(base, paths[0])
    status, matched = first.status, first.matched
    if WRK:
        # the warm-up walks the list from its end: the timed run starts at its head, so a
        # server with a count or page cache does not get the warm-up's requests again
        wrk(base, paths[::-1], WARMUP, concurrency)
        res = wrk(base, paths, duration, concurrency)
    else:
        res = asyncio.run(_httpx_load(base, paths, duration, concurrency))
    res.status, res.matched = status, matched
    return res


def rows(url: str) -> list[tuple[str, dict[str, str]]]:
    """(row name, {server: path}) for every row."""
    bears = json.loads(BEAR.read_text("utf-8"))["features"]
    (bx, by), _ = Counter(
        tile_of(*f["geometry"]["coordinates"][:2], 10) for f in bears
    ).most_common(1)[0]
    with psycopg.connect(url) as con:
        fid, fid_text = con.execute(
            'SELECT fid, id FROM geoservice."wildlife-sightings" ORDER BY id LIMIT 1 OFFSET 100'
        ).fetchone()  # type: ignore[misc]
        zfid, zid, lon, lat = con.execute(
            'SELECT fid, id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom))'
            ' FROM geoservice."sediment-special-zones" ORDER BY id LIMIT 1 OFFSET 100'
        ).fetchone()  # type: ignore[misc]
    zx, zy = tile_of(lon, lat, 12)
    b, z = "wildlife-sightings", "sediment-special-zones"
    cql = "filter=municipality_code%3D%2713308%27&filter-lang=cql2-text&limit=10&sortby=id"

    def paths(coll: str, tail: str, tipg_tail: str | None = None,
              pyg_tail: str | None = None) -> dict[str, str]:
        ours = f"/ogc/collections/{coll}/{tail}"
        return {"ours-pg": ours, "ours-gpkg": ours,
                "tipg": f"/collections/geoservice.{coll}/{tipg_tail or tail}",
                "pygeoapi": f"/collections/{coll}/{pyg_tail or tipg_tail or tail}"}

    def json_f(path: str) -> str:  # pygeoapi answers HTML to a client without Accept
        return path + ("&" if "?" in path else "?") + "f=json"

    def tile(z_: int, x: int, y: int) -> dict[str, str]:
        t = f"tiles/WebMercatorQuad/{z_}"
        return paths(coll, f"{t}/{y}/{x}", f"{t}/{x}/{y}", f"{t}/{y}/{x}?f=mvt")

    out: list[tuple[str, dict[str, str]]] = []
    for coll, label, fid_o, fid_t in ((b, "bears", fid_text, fid), (z, "zones", zid, zfid)):
        # sorted by our id so every server's first page must hold the same features
        first = "items?limit=10&sortby=id"
        out.append((f"{label} items limit=10", paths(coll, first, pyg_tail=json_f(first))))
        bbox = f"items?bbox={BBOX}&limit=100&sortby=id"
        out.append((f"{label} bbox limit=100", paths(coll, bbox, pyg_tail=json_f(bbox))))
        out.append((f"{label} feature by id", paths(coll, f"items/{fid_o}", f"items/{fid_t}",
                                                    json_f(f"items/{fid_t}"))))
        if coll == b:
            # pygeoapi 0.21 names the language cql-text (same expression)
            pyg_cql = json_f(f"items?{cql}").replace("cql2-text", "cql-text")
            out.append((f"{label} CQL2 filter", paths(coll, f"items?{cql}", pyg_tail=pyg_cql)))
            out.append((f"{label} tile z10", tile(10, bx, by)))
            out.append((f"{label} tile z10 cache off", tile(10, bx, by)))
        else:
            out.append((f"{label} tile z12", tile(12, zx, zy)))
            out.append((f"{label} tile z12 cache off", tile(12, zx, zy)))
    return out


def bear_map_paths() -> list[str]:
    """What /map/ asks for when it opens (page, collection, boundaries, recent sightings),
    then what a citizen's filters ask for (one species, one municipality, a date range)."""
    items = "/ogc/collections/wildlife-sightings/items?f=json&limit=1000"
    return [
        "/map/",
        "/ogc/collections/wildlife-sightings",
        "/ogc/collections/admin-boundaries/items?f=json&limit=1000",
        items,
        f"{items}&datetime=2025-01-01T00:00:00Z/..",
        f"{items}&species=asian-black-bear",
        f"{items}&municipality_code=13308",
        f"{items}&filter-lang=cql2-text&filter=species%20IN%20(%27asian-black-bear%27,%27wild-boar%27)",
    ]


# -- report -----------------------------------------------------------------------------------
def cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return f"{'n/a':>8} {'':>7} {'':>7} {'':>3}"
    if not r["requests"]:  # not one answer within the run (pygeoapi's MVT under load)
        return f"{'stalled':>8} {'':>7} {'':>7} {'':>3}"
    return f"{r['rps']:>8.0f} {r['p50_ms']:>6.1f}m {r['p99_ms']:>6.1f}m {r['errors']:>3}"


def ratio(out: dict[str, Any], a: str, b: str) -> float | None:
    ra, rb = out.get(a), out.get(b)
    if not ra or not rb or not rb["rps"] or ra["errors"] or rb["errors"]:
        return None
    return float(ra["rps"] / rb["rps"])


def fmt_ratio(x: float | None, target: float) -> str:
    return f"{'n/a':>5} {'':>3}" if x is None else f"{x:>5.2f} {'ok' if x >= target else 'NO':>3}"


def cached_tile(row: dict[str, Any]) -> bool:
    """A tile row served from our tile cache (its cache-off twin is the one judged)."""
    return " tile " in f" {row['row']} " and "cache off" not in row["row"]


def report(table: list[dict[str, Any]], load_runs: dict[str, Any]) -> None:
    tool = "wrk 1 thread" if WRK else "httpx async client"
    print(f"\n{tool}, concurrency {CONCURRENCY}, {DURATION:.0f} s per row per server, one "
          "uvicorn worker each; req/s, p50, p99 (ms), E = errors (non-2xx/transport)\n")
    head = (f"{'row':<27}| {'ours PostGIS':^28}| {'ours GeoPackage':^28}| {'tipg':^28}| "
            f"{'pygeoapi PG':^28}| pg/tipg   | gpkg/tipg | pg/pygeoapi")
    print(head)
    print("-" * len(head))
    for row in table:
        r = row["servers"]
        if row["failed"]:
            print(f"{row['row']:<27}| FAILED (answers differ, not timed): {row['failed']}")
            continue
        note = "  (tile cache: not in the verdict)" if cached_tile(row) else ""
        print(f"{row['row']:<27}| " + "| ".join(cell(r.get(s)) for s in SERVERS) + "| "
              f"{fmt_ratio(row['pg_tipg'], 1.5)} | {fmt_ratio(row['gpkg_tipg'], 1.0)} | "
              f"{fmt_ratio(row['pg_pygeoapi'], 1.0)}{note}")
    print("\ntargets: ours PostGIS >= 1.5x tipg on every row; ours GeoPackage >= tipg.")
    print("  'tile' rows ask for the same tile again and again: ours serve it from the tile cache"
          " (keyed by the data version); 'cache off' rows are our servers with "
          "server.tile_cache_mb: 0, encoding every tile. The verdict counts the cache-off tile "
          "rows (tipg has no tile cache), not the cached ones.")
    judged = [r for r in table if not cached_tile(r)]
    failed = [r["row"] for r in table if r["failed"]]
    short = [r["row"] for r in judged if not r["failed"] and (r["pg_tipg"] or 0) < 1.5]
    short_g = [r["row"] for r in judged if not r["failed"] and (r["gpkg_tipg"] or 0) < 1.0]
    print(f"  rows FAILED (answers differ between servers): {', '.join(failed) or 'none'}")
    print(f"  PostGIS rows below 1.5x tipg: {', '.join(short) or 'none'}")
    print(f"  GeoPackage rows below tipg: {', '.join(short_g) or 'none'}")
    verdict = not failed and not short
    print(f"  verdict ours PostGIS >= 1.5x tipg: {'yes' if verdict else 'NO'}")
    odd = [(r["row"], s, r["servers"][s]["matched"]) for r in table for s in SERVERS
           if not r["failed"]
           if r["servers"].get(s) and r["servers"][s]["matched"] is not None]
    print("  numberMatched per row/server: " + "; ".join(f"{a} {b}={c}" for a, b, c in odd))
    print(f"\nbear-map load: /map/ page + the {len(bear_map_paths()) - 1} API requests it and "
          f"its filters make, in turn, {LOAD_CONCURRENCY} connections, {LOAD_DURATION:.0f} s")
    for name, r in load_runs.items():
        print(f"  {name:<10} {r['rps']:>7.0f} req/s  p50 {r['p50_ms']:.1f} ms  p99 "
              f"{r['p99_ms']:.1f} ms  errors {r['errors']} of {r['requests']}")
    print("\ncaveats: our wildlife-sightings reads apply the sightings read policy (published only,"
          " sensitive records generalised); tipg/pygeoapi serve the raw table. by-id uses each "
          "server's own key. The load generator shares the 2 CPUs with servers and PostgreSQL.")


def main() -> int:
    if not WRK:
        print("wrk not found (apt-get install wrk): using the slower httpx async client, "
              "which compresses the ratios", flush=True)
    tipg_bin = ensure_venv(TIPG_VENV, TIPG_PACKAGES)
    pyg_bin = ensure_venv(PYGEOAPI_VENV, PYGEOAPI_PACKAGES)
    name, url = make_database()
    table: list[dict[str, Any]] = []
    load_runs: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pg-") as d:
            tmp = Path(d)
            ports = {s: free_port() for s in (*SERVERS, "ours-pg-nocache", "ours-gpkg-nocache")}
            cfg_pg = our_config(tmp, "postgis", url, ports["ours-pg"])
            cfg_gpkg = our_config(tmp, "gpkg", url, ports["ours-gpkg"])
            cfg_pg0 = our_config(tmp, "postgis", url, ports["ours-pg-nocache"], 0, "-nocache")
            cfg_gpkg0 = our_config(tmp, "gpkg", url, ports["ours-gpkg-nocache"], 0, "-nocache")
            for cfg in (cfg_pg, cfg_gpkg):  # the -nocache configs share these stores
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", "from geoservice.cli import main; main()",
                                "build", "-c", str(cfg), "--mirror", str(DATA)], check=True,
                               cwd=tmp, stdout=subprocess.DEVNULL)
                print(f"built {', '.join(LAYERS)} ({cfg.stem}) in "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
            me = sys.executable
            tipg_py, pyg_py = str(tipg_bin / "python"), str(pyg_bin / "python")

            def ours(name: str, cfg: Path) -> Server:
                return Server(name, uvicorn_cmd("geoservice.asgi:app", ports[name], me),
                              ports[name], {"GEOSERVICE_CONFIG": str(cfg)}, "/ogc/conformance",
                              tmp / f"{name}.log")

            servers = {
                "ours-pg": ours("ours-pg", cfg_pg),
                "ours-gpkg": ours("ours-gpkg", cfg_gpkg),
                "ours-pg-nocache": ours("ours-pg-nocache", cfg_pg0),
                "ours-gpkg-nocache": ours("ours-gpkg-nocache", cfg_gpkg0),
                "tipg": Server("tipg", uvicorn_cmd("tipg.main:app", ports["tipg"], tipg_py),
                               ports["tipg"], {"DATABASE_URL": as_uri(url),
                                               "TIPG_DB_SCHEMAS": '["geoservice"]'},
                               "/collections", tmp / "tipg.log"),
                "pygeoapi": Server("pygeoapi",
                                   uvicorn_cmd("pygeoapi.starlette_app:APP", ports["pygeoapi"],
                                               pyg_py),
                                   ports["pygeoapi"],
                                   serve_pygeoapi_env(tmp, url, ports["pygeoapi"]),
                                   "/collections?f=json", tmp / "pygeoapi.log"),
            }
            with contextlib.ExitStack() as up:
                for srv in servers.values():
                    up.enter_context(srv)
                table = measure(servers, rows(url))
                for sname in ("ours-pg", "ours-gpkg"):
                    load_runs[sname] = asdict(load(servers[sname].base, bear_map_paths(),
                                                   LOAD_DURATION, LOAD_CONCURRENCY))
    finally:
        if os.environ.get("BENCH_KEEP_DB") != "1":
            drop_database(name)
    report(table, load_runs)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"tool": "wrk" if WRK else "httpx",
                                   "concurrency": CONCURRENCY, "duration": DURATION,
                                   "rows": table, "bear_map_load": load_runs}, indent=2), "utf-8")
    return 0


def measure(servers: dict[str, Server],
            table_rows: list[tuple[str, dict[str, str]]]) -> list[dict[str, Any]]:
    """Every row on every server (idle servers cost nothing), with the ratios."""
    table: list[dict[str, Any]] = []
    for label, per_server in table_rows:
        entry: dict[str, Any] = {"row": label, "servers": {}, "pg_tipg": None,
                                 "gpkg_tipg": None, "pg_pygeoapi": None, "failed": None}

        # "cache off" rows: our servers started with server.tile_cache_mb: 0
        chosen = {s: servers.get(f"{s}-nocache", servers[s]) if "cache off" in label
                  else servers[s] for s in SERVERS}
        firsts = {s: first_answer(chosen[s].base, per_server[s]) for s in SERVERS}
        why = disagreement(firsts)
        if why is not None:  # different answers: timing them would compare unlike work
            entry["failed"] = why
            table.append(entry)
            print(f"  {label}: FAILED, not timed: {why}", flush=True)
            continue
        for sname in SERVERS:
            srv = chosen[sname]
            if firsts[sname].status not in (200, 204):
                print(f"  {label}: {sname} answered {firsts[sname].status}: n/a for it",
                      flush=True)
                if firsts[sname].status >= 500:  # the traceback, before tmp is deleted
                    print(srv.log.read_text("utf-8", "replace")[-3000:], flush=True)
                entry["servers"][sname] = None
                continue
            res = load(srv.base, [per_server[sname]])
            if res.errors or not res.requests:
                # timed-out requests may still be running in that server: restart it so
                # its backlog does not load the machine during the next rows
                srv.stop()
                srv.start()
            if res.status not in (200, 204):
                print(f"  {label}: {sname} answered {res.status}: n/a for it", flush=True)
                entry["servers"][sname] = None
                continue
            entry["servers"][sname] = asdict(res)
        entry["pg_tipg"] = ratio(entry["servers"], "ours-pg", "tipg")
        entry["gpkg_tipg"] = ratio(entry["servers"], "ours-gpkg", "tipg")
        entry["pg_pygeoapi"] = ratio(entry["servers"], "ours-pg", "pygeoapi")
        table.append(entry)
        print(f"  {label}: " + ", ".join(
            f"{s} {entry['servers'][s]['rps']:.0f}" if entry["servers"][s] else f"{s} n/a"
            for s in SERVERS) + " req/s", flush=True)
    return table


if __name__ == "__main__":
    sys.exit(main())
