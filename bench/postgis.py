"""`bench/postgis.py`: this service vs tipg over the same PostGIS tables, same machine.

1. Creates a scratch database (``BENCH_DATABASE_URL``, default the local test cluster),
   builds admin-boundaries, wildlife-sightings and sediment-special-zones from the real
   extracts in ../shared/data into it with ``geoservice build`` (backend postgis).
2. Serves it with ``uvicorn geoservice.asgi:app`` (one worker, no access log) and with tipg
   1.6.1 (``uvicorn tipg.main:app``, one worker) from a SEPARATE virtualenv
   (``BENCH_TIPG_VENV``, default /tmp/bench-venv-tipg, created on first use) with
   ``DATABASE_URL`` and ``TIPG_DB_SCHEMAS=["geoservice"]`` - the very same tables.
3. Drives each row with an async httpx client at fixed concurrency; prints req/s, p50,
   p99, the ratio ours/tipg and whether it is >= 1.5; writes bench/results/postgis.json.

Caveats (printed too): our wildlife-sightings reads pass the sightings read policy (only
``published`` rows, sensitive records generalised: a Python view over the store, so its
tiles are encoded in Python, not by ST_AsMVT); tipg serves the raw table.  Feature by id
uses each server's own key (ours the ``id`` text column, tipg the primary key ``fid``).
The load generator shares the CPUs with the servers and PostgreSQL.

Knobs: BENCH_DURATION (s per row per server, default 3), BENCH_WARMUP (0.5),
BENCH_CONCURRENCY (8), BENCH_KEEP_DB=1 (keep the scratch database).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
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
from psycopg.conninfo import make_conninfo

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
TIPG_VERSION = "1.6.1"
DURATION = float(os.environ.get("BENCH_DURATION", "3"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "0.5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
BBOX = "139.0,35.7,139.3,35.9"
HEADERS = {"Accept-Encoding": "identity"}


from common import free_port  # noqa: E402


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    return int((lon + 180) / 360 * n), int(
        (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    )


# -- set-up -----------------------------------------------------------------------------------
def ensure_tipg() -> Path:
    """The tipg virtualenv (separate: its dependencies may conflict with ours)."""
    uvicorn = TIPG_VENV / "bin" / "uvicorn"
    if not uvicorn.exists():
        print(f"creating {TIPG_VENV} with tipg=={TIPG_VERSION} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TIPG_VENV)], check=True)
        subprocess.run(
            [str(TIPG_VENV / "bin" / "pip"), "install", "-q", f"tipg=={TIPG_VERSION}", "uvicorn"],
            check=True,
        )
    return uvicorn


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
    p = psycopg.conninfo.conninfo_to_dict(conninfo)
    return (f"postgresql://{p.get('user')}:{p.get('password')}@{p.get('host', '127.0.0.1')}:"
            f"{p.get('port', 5432)}/{p['dbname']}")


def write_config(tmp: Path, url: str, port: int) -> Path:
    cfg = tmp / "config.yml"
    cfg.write_text(yaml.safe_dump({
        "server": {"host": "127.0.0.1", "port": port},
        "store": {"backend": "postgis", "database_url": url, "path": str(tmp / "unused.gpkg")},
        "layers_dir": str(ROOT / "layers"),
        "enabled_layers": LAYERS,
        "work_dir": str(tmp),
        "tiles_dir": str(tmp / "tiles"),
    }), "utf-8")
    return cfg


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], base: str, probe: str,
                 log: Path) -> None:
        self.name, self.cmd, self.base, self.probe, self.log = name, cmd, base, probe, log
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=ROOT, stdout=self._fh,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.base + self.probe, timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()


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


async def load(base: str, path: str) -> Result:
    res = Result()
    lat: list[float] = []
    sizes: list[int] = []
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, headers=HEADERS, limits=limits,
                                 timeout=60) as client:
        first = await client.get(path)
        if first.headers.get("content-type", "").startswith(("application/json",
                                                             "application/geo+json")):
            res.matched = first.json().get("numberMatched")
        measuring, stop = False, time.perf_counter() + WARMUP

        async def worker() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    r = await client.get(path)
                    ok, n = r.status_code == 200 and len(r.content) > 0, len(r.content)
                except httpx.HTTPError:
                    ok, n = False, 0
                if measuring:
                    lat.append(time.perf_counter() - t0)
                    sizes.append(n)
                    res.errors += not ok

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        measuring, t_start = True, time.perf_counter()
        stop = t_start + DURATION
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - t_start
    lat.sort()
    res.requests = len(lat)
    res.rps = len(lat) / elapsed
    res.p50_ms = statistics.median(lat) * 1000
    res.p99_ms = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] * 1000
    res.mean_bytes = sum(sizes) / len(sizes)
    return res


def rows(url: str) -> list[tuple[str, str, str]]:
    """(name, our path, tipg path) per row."""
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
    o, t = "/ogc/collections/", "/collections/geoservice."
    cql = "filter=municipality_code%3D%2713308%27&filter-lang=cql2-text&limit=10"
    return [
        ("bears items limit=10", f"{o}{b}/items?limit=10", f"{t}{b}/items?limit=10"),
        ("bears bbox limit=100", f"{o}{b}/items?bbox={BBOX}&limit=100",
         f"{t}{b}/items?bbox={BBOX}&limit=100"),
        ("bears feature by id", f"{o}{b}/items/{fid_text}", f"{t}{b}/items/{fid}"),
        ("bears CQL2 filter", f"{o}{b}/items?{cql}", f"{t}{b}/items?{cql}"),
        ("zones items limit=10", f"{o}{z}/items?limit=10", f"{t}{z}/items?limit=10"),
        ("zones bbox limit=100", f"{o}{z}/items?bbox={BBOX}&limit=100",
         f"{t}{z}/items?bbox={BBOX}&limit=100"),
        ("zones feature by id", f"{o}{z}/items/{zid}", f"{t}{z}/items/{zfid}"),
        ("bears tile z10", f"{o}{b}/tiles/WebMercatorQuad/10/{by}/{bx}",
         f"{t}{b}/tiles/WebMercatorQuad/10/{bx}/{by}"),
        ("zones tile z12", f"{o}{z}/tiles/WebMercatorQuad/12/{zy}/{zx}",
         f"{t}{z}/tiles/WebMercatorQuad/12/{zx}/{zy}"),
    ]


def main() -> int:
    uvicorn_tipg = ensure_tipg()
    name, url = make_database()
    out: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pg-") as d:
            tmp = Path(d)
            ours_port, tipg_port = free_port(), free_port()
            cfg = write_config(tmp, url, ours_port)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "from geoservice.cli import main; main()",
                            "build", "-c", str(cfg), "--mirror", str(DATA)], check=True,
                           cwd=tmp, stdout=subprocess.DEVNULL)
            print(f"built {', '.join(LAYERS)} into {name} in {time.perf_counter() - t0:.1f} s")
            ours = Server("ours", [sys.executable, "-m", "uvicorn", "geoservice.asgi:app",
                                   "--host", "127.0.0.1", "--port", str(ours_port),
                                   "--workers", "1", "--no-access-log", "--log-level", "warning"],
                          {"GEOSERVICE_CONFIG": str(cfg)}, f"http://127.0.0.1:{ours_port}",
                          "/ogc/conformance", tmp / "ours.log")
            tipg = Server("tipg", [str(uvicorn_tipg), "tipg.main:app", "--host", "127.0.0.1",
                                   "--port", str(tipg_port), "--workers", "1",
                                   "--no-access-log", "--log-level", "warning"],
                          {"DATABASE_URL": as_uri(url), "TIPG_DB_SCHEMAS": '["geoservice"]'},
                          f"http://127.0.0.1:{tipg_port}", "/collections", tmp / "tipg.log")
            table = rows(url)
            with ours, tipg:
                for label, op, tp in table:
                    r_o = asyncio.run(load(ours.base, op))
                    r_t = asyncio.run(load(tipg.base, tp))
                    out.append({"row": label, "ours": asdict(r_o), "tipg": asdict(r_t),
                                "ratio": r_o.rps / r_t.rps if r_t.rps else None})
                    print(f"  {label}: ours {r_o.rps:.0f} req/s, tipg {r_t.rps:.0f} req/s",
                          flush=True)
    finally:
        if os.environ.get("BENCH_KEEP_DB") != "1":
            drop_database(name)
    print(f"\nconcurrency {CONCURRENCY}, {DURATION:.0f} s per row per server, one worker each\n")
    head = (f"{'row':<22} {'ours r/s':>9} {'p50':>7} {'p99':>7} {'E':>3} | "
            f"{'tipg r/s':>9} {'p50':>7} {'p99':>7} {'E':>3} | {'ratio':>6} >=1.5  matched o/t")
    print(head)
    print("-" * len(head))
    for row in out:
        o, t, ratio = row["ours"], row["tipg"], row["ratio"]
        print(f"{row['row']:<22} {o['rps']:>9.0f} {o['p50_ms']:>6.1f}ms {o['p99_ms']:>5.1f}ms "
              f"{o['errors']:>3} | {t['rps']:>9.0f} {t['p50_ms']:>6.1f}ms {t['p99_ms']:>5.1f}ms "
              f"{t['errors']:>3} | {ratio:>6.2f} {'yes' if ratio >= 1.5 else 'NO':>5}  "
              f"{o['matched']}/{t['matched']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"concurrency": CONCURRENCY, "duration": DURATION,
                                   "rows": out}, indent=2), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
