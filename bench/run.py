"""`make bench`: this service vs pygeoapi's own providers, same data, same machine.

Builds a GeoPackage store from the real extracts in ../shared/data into a temp dir, serves
it with uvicorn (one worker, subprocess), and serves two peers with pygeoapi (one worker
each, subprocess): its ``GeoJSONProvider`` on the same two raw GeoJSON files, and its own
``SQLiteGPKG`` provider on the SAME GeoPackage (a copy of our store file, so the comparison
measures the server, not the file format).  Drives each with an async httpx client at fixed
concurrency; prints req/s, p50, p99 per row and the ratios ours/peer; writes
``bench/results/latest.json``.

pygeoapi's SQLite provider writes table names into its SQL unquoted, so in its copy of the
store the two tables are renamed ``wildlife-sightings`` → ``wildlife_sightings`` (rows,
columns, geometry blobs and the file format are untouched).  It loads SpatiaLite
(``libsqlite3-mod-spatialite``) into Python's sqlite3, which needs a Python built with
extension loading: that peer runs from its own virtualenv on the system Python
(``BENCH_SYSTEM_PYTHON``, default /usr/bin/python3; venv ``BENCH_PYGEOAPI_SQLITE_VENV``,
default /tmp/bench-venv-pygeoapi-sqlite, created on first use with our pygeoapi version).

Environment knobs: BENCH_DURATION (s per row per server, default 3), BENCH_WARMUP (s,
default 0.5), BENCH_CONCURRENCY (default 8).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from shapely.geometry import box, shape

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BEAR = DATA / "bear" / "tokyo_bear_sightings_2023-2025.geojson"
ZONES = DATA / "hazard" / "tokyo_dosekiryu_tokubetsu.json"
LAYERS = ["admin-boundaries", "wildlife-sightings", "sediment-special-zones"]
RESULTS = ROOT / "bench" / "results" / "latest.json"

DURATION = float(os.environ.get("BENCH_DURATION", "3"))
MIN_REQUESTS = int(os.environ.get("BENCH_MIN_REQUESTS", "40"))  # so p99 means something
MAX_DURATION = 15.0  # ... but a slow server never holds a row longer than this
WARMUP = float(os.environ.get("BENCH_WARMUP", "0.5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
BBOX = (139.0, 35.7, 139.3, 35.9)
BBOX_Q = ",".join(str(v) for v in BBOX)

# Both servers are asked for JSON and uncompressed bodies, so neither pays for gzip.
HEADERS = {"Accept": "application/geo+json, application/json", "Accept-Encoding": "identity"}
RE_RETURNED = re.compile(rb'"numberReturned"\s*:\s*(\d+)')
RE_MATCHED = re.compile(rb'"numberMatched"\s*:\s*(\d+)')


# --------------------------------------------------------------------------- ground truth

from common import Server, free_port, pygeoapi_config, uvicorn_cmd, write_config  # noqa: E402


def load_fc(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text("utf-8"))["features"])


def count_bbox(features: list[dict[str, Any]]) -> int:
    b = box(*BBOX)
    return sum(1 for f in features if f["geometry"] and shape(f["geometry"]).intersects(b))


def count_eq(features: list[dict[str, Any]], prop: str, value: str) -> int:
    return sum(1 for f in features if str(f["properties"].get(prop)) == value)


# --------------------------------------------------------------------------- rows

@dataclass
class Side:
    """One server's request(s) for a row and the answer it must give."""

    paths: list[str]                     # cycled through during the run
    expect_returned: int | None = None   # items: numberReturned
    expect_matched: int | None = None    # items: numberMatched (None = not checked)
    expect_ids: list[str] | None = None  # feature: the id in each body (same order as paths)


@dataclass
class Row:
    name: str
    dataset: str
    ours: Side
    pyg: Side
    note: str = ""

    @property
    def gpkg(self) -> Side:
        """pygeoapi's SQLiteGPKG peer reads our store: the same requests as ours."""
        return self.ours


def make_rows() -> list[Row]:
    bears, zones = load_fc(BEAR), load_fc(ZONES)
    nb, nz = len(bears), len(zones)
    b_bbox, z_bbox = count_bbox(bears), count_bbox(zones)
    b_high = count_eq(bears, "accuracy", "high")
    city = "奥多摩町"
    z_city = count_eq(zones, "new_city", city)
    bear_ids = [str(bears[i]["properties"]["number"]) for i in range(0, nb, max(1, nb // 8))][:8]
    zone_ids = [str(zones[i]["properties"]["keiryunum"]) for i in range(0, nz, max(1, nz // 8))][:8]
    if len({f["properties"]["keiryunum"] for f in zones}) != nz:
        raise SystemExit("keiryunum is not unique in the zones extract: pick another id_field")
    ci = "/collections/wildlife-sightings/items"
    cz = "/collections/sediment-special-zones/items"
    ignored = "pygeoapi's GeoJSON provider ignores `filter`"
    eq = "queryable equality param, which both implement"

    def same(path: str, returned: int, matched: int) -> tuple[Side, Side]:
        return Side([path], returned, matched), Side([path], returned, matched)

    return [
        Row("items limit=10", "bears", *same(f"{ci}?limit=10&f=json", 10, nb)),
        Row("bbox limit=100", "bears",
            *same(f"{ci}?bbox={BBOX_Q}&limit=100&f=json", min(100, b_bbox), b_bbox)),
        Row("feature by id", "bears",
            Side([f"{ci}/tokyo-kumap-{i}?f=json" for i in bear_ids],
                 expect_ids=[f"tokyo-kumap-{i}" for i in bear_ids]),
            Side([f"{ci}/{i}?f=json" for i in bear_ids], expect_ids=bear_ids)),
        Row("CQL2 filter", "bears",
            Side([f"{ci}?filter=reliability%3D%27high%27&limit=10&f=json"], 10, b_high),
            Side([f"{ci}?filter=accuracy%3D%27high%27&limit=10&f=json"], 10, b_high),
            note="ours: filter=reliability='high'; pygeoapi: filter=accuracy='high' "
                 f"(raw field name); {ignored}"),
        Row("property eq", "bears",
            Side([f"{ci}?reliability=high&limit=10&f=json"], 10, b_high),
            Side([f"{ci}?accuracy=high&limit=10&f=json"], 10, b_high),
            note=f"?reliability=high / ?accuracy=high: {eq}"),
        Row("items limit=10", "zones", *same(f"{cz}?limit=10&f=json", 10, nz)),
        Row("bbox limit=100", "zones",
            *same(f"{cz}?bbox={BBOX_Q}&limit=100&f=json", min(100, z_bbox), z_bbox)),
        Row("feature by id", "zones",
            Side([f"{cz}/{i}?f=json" for i in zone_ids], expect_ids=zone_ids),
            Side([f"{cz}/{i}?f=json" for i in zone_ids], expect_ids=zone_ids)),
        Row("CQL2 filter", "zones",
            *same(f"{cz}?filter=new_city%3D%27{city}%27&limit=10&f=json", 10, z_city),
            note=f"both: filter=new_city='{city}'; {ignored}"),
        Row("property eq", "zones", *same(f"{cz}?new_city={city}&limit=10&f=json", 10, z_city),
            note=f"?new_city={city}: {eq}"),
    ]


# --------------------------------------------------------------------------- servers

def start_ours(tmp: Path) -> Server:
    from geoservice.build import build
    from geoservice.config import load_settings

    port = free_port()
    path = write_config(tmp, port, LAYERS, server={"title": "Tokyo GeoTwin (bench)"})
    t0 = time.perf_counter()
    report = build(load_settings(path), DATA, layers=LAYERS)
    print(f"built store in {time.perf_counter() - t0:.1f} s: {report.counts}")
    srv = Server("ours", uvicorn_cmd("geoservice.asgi:app", port), port,
                 {"GEOSERVICE_CONFIG": str(path)},
                 "/ogc/collections/wildlife-sightings/items?limit=1&f=json", tmp / "ours.log",
                 api_prefix="/ogc")  # this service mounts the OGC API under /ogc
    srv.start()
    return srv


def start_pygeoapi(tmp: Path) -> Server:
    port = free_port()

    def resource(title: str, data: Path, id_field: str, bbox: list[float]) -> dict[str, Any]:
        return {
            "type": "collection", "title": title, "description": title, "keywords": ["bench"],
            "links": [],
            "extents": {"spatial": {"bbox": bbox,
                                    "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "providers": [{"type": "feature", "name": "GeoJSON", "data": str(data),
                           "id_field": id_field}],
        }

    cfg = pygeoapi_config(port, {
        "wildlife-sightings": resource("bears", BEAR, "number",
                                       [138.94, 35.50, 139.50, 35.90]),
        # keiryunum is unique over all 1,688 zones (checked in make_rows).
        "sediment-special-zones": resource("zones", ZONES, "keiryunum",
                                           [138.98, 26.63, 142.22, 35.86]),
    })
    return _pygeoapi_server("pygeoapi", tmp, port, cfg)


SYSTEM_PYTHON = os.environ.get("BENCH_SYSTEM_PYTHON", "/usr/bin/python3")
SQLITE_VENV = Path(os.environ.get("BENCH_PYGEOAPI_SQLITE_VENV", "/tmp/bench-venv-pygeoapi-sqlite"))
GPKG_TABLES = {"wildlife-sightings": "wildlife_sightings",
               "sediment-special-zones": "sediment_special_zones"}


def gpkg_copy_for_pygeoapi(store: Path, tmp: Path) -> Path:
    """A copy of our store with the two tables renamed to names pygeoapi's SQL can hold."""
    path = tmp / "pygeoapi-store.gpkg"
    with sqlite3.connect(store) as src, sqlite3.connect(path) as dst:
        src.backup(dst)  # a consistent page-for-page copy (our server may hold the WAL)
    con = sqlite3.connect(path)
    try:
        for old, new in GPKG_TABLES.items():
            con.execute(f'ALTER TABLE "{old}" RENAME TO "{new}"')
            for meta in ("gpkg_contents", "gpkg_geometry_columns"):
                con.execute(f"UPDATE {meta} SET table_name = ? WHERE table_name = ?", (new, old))
        con.commit()
    finally:
        con.close()
    return path


def spatialite_pygeoapi() -> Path:
    """bin/ of a virtualenv on a Python whose sqlite3 can load SpatiaLite, with pygeoapi."""
    import pygeoapi

    probe = ("import sqlite3; c = sqlite3.connect(':memory:'); c.enable_load_extension(True); "
             "c.execute(\"SELECT load_extension('mod_spatialite.so')\")")
    if subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode != 0:
        raise SystemExit(f"{SYSTEM_PYTHON} cannot load mod_spatialite into sqlite3: install "
                         "libsqlite3-mod-spatialite or set BENCH_SYSTEM_PYTHON")
    if not (SQLITE_VENV / "bin" / "pygeoapi").exists():
        print(f"creating {SQLITE_VENV} (pygeoapi {pygeoapi.__version__}) ...", flush=True)
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(SQLITE_VENV)], check=True)
        subprocess.run([str(SQLITE_VENV / "bin" / "pip"), "install", "-q",
                        f"pygeoapi=={pygeoapi.__version__}", "starlette", "uvicorn"], check=True)
    return SQLITE_VENV / "bin"


def start_pygeoapi_gpkg(tmp: Path, store: Path) -> Server:
    """pygeoapi's own SQLite/GeoPackage provider on (a renamed copy of) our store file."""
    port = free_port()
    bin_dir = spatialite_pygeoapi()
    data = gpkg_copy_for_pygeoapi(store, tmp)

    def resource(coll: str, bbox: list[float]) -> dict[str, Any]:
        return {
            "type": "collection", "title": coll, "description": coll, "keywords": ["bench"],
            "links": [],
            "extents": {"spatial": {"bbox": bbox,
                                    "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "providers": [{"type": "feature", "name": "SQLiteGPKG", "data": str(data),
                           "id_field": "id", "table": GPKG_TABLES[coll]}],
        }

    cfg = pygeoapi_config(port, {
        "wildlife-sightings": resource("wildlife-sightings", [138.94, 35.50, 139.50, 35.90]),
        "sediment-special-zones": resource("sediment-special-zones",
                                           [138.98, 26.63, 142.22, 35.86]),
    })
    return _pygeoapi_server("pygeoapi-gpkg", tmp, port, cfg, bin_dir)


def _pygeoapi_server(name: str, tmp: Path, port: int, cfg: dict[str, Any],
                     bin_dir: Path = Path(sys.executable).parent) -> Server:
    cfg_path, oa_path = tmp / f"{name}.yml", tmp / f"{name}-openapi.yml"
    cfg_path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    env = {"PYGEOAPI_CONFIG": str(cfg_path), "PYGEOAPI_OPENAPI": str(oa_path)}
    gen = subprocess.run([str(bin_dir / "pygeoapi"), "openapi", "generate",
                          str(cfg_path), "--output-file", str(oa_path)],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    if gen.returncode != 0 or not oa_path.exists():
        raise RuntimeError("pygeoapi openapi generate failed:\n"
                           f"{gen.stdout[-1500:]}{gen.stderr[-1500:]}")
    srv = Server(name, uvicorn_cmd("pygeoapi.starlette_app:APP", port, str(bin_dir / "python")),
                 port, env,
                 "/collections/wildlife-sightings/items?limit=1&f=json", tmp / f"{name}.log")
    srv.start()
    return srv


# --------------------------------------------------------------------------- load

@dataclass
class Result:
    requests: int = 0
    errors: int = 0          # non-200 or transport errors
    wrong: int = 0           # 200 but the body does not carry the expected answer
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_bytes: float = 0.0
    number_matched: int | None = None
    samples: list[str] = field(default_factory=list)  # first few problems


def check(side: Side, idx: int, status: int, body: bytes) -> str | None:
    """None when the response is the expected answer, else a short description."""
    if status != 200:
        return f"HTTP {status}"
    if side.expect_ids is not None:
        fid = side.expect_ids[idx]
        if not re.search(rb'"id"\s*:\s*"?' + re.escape(fid.encode()) + rb'"?\s*[,}]', body):
            return f"id {fid} not in body"
        return None
    m = RE_RETURNED.search(body)
    returned = int(m.group(1)) if m else _features_in(body)  # a peer may omit numberReturned
    if side.expect_returned is not None and returned != side.expect_returned:
        return f"numberReturned {returned} != {side.expect_returned}"
    mm = RE_MATCHED.search(body)
    if side.expect_matched is not None and mm and int(mm.group(1)) != side.expect_matched:
        return f"numberMatched {mm.group(1).decode()} != {side.expect_matched}"
    return None


def _features_in(body: bytes) -> int | None:
    """How many features a FeatureCollection body holds (None: not one)."""
    try:
        feats = json.loads(body).get("features")
    except (ValueError, AttributeError):
        return None
    return len(feats) if isinstance(feats, list) else None


async def run_side(base: str, side: Side) -> Result:
    res = Result()
    lat: list[float] = []
    sizes: list[int] = []
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, headers=HEADERS, limits=limits,
                                 timeout=60.0, http2=False) as client:
        # one full check first: records numberMatched as the server reports it
        r0 = await client.get(side.paths[0])
        mm = RE_MATCHED.search(r0.content)
        res.number_matched = int(mm.group(1)) if mm else None
        counter = 0
        measuring = False
        stop_at = hard_stop = 0.0

        def more() -> bool:
            now = time.perf_counter()
            return now < stop_at or (measuring and counter < MIN_REQUESTS and now < hard_stop)

        async def worker() -> None:
            nonlocal counter
            while more():
                i = counter % len(side.paths)
                counter += 1
                t0 = time.perf_counter()
                try:
                    r = await client.get(side.paths[i])
                    status, body = r.status_code, r.content
                except httpx.HTTPError as exc:
                    status, body = 0, repr(exc).encode()
                dt = time.perf_counter() - t0
                if not measuring:
                    continue
                lat.append(dt)
                sizes.append(len(body))
                problem = check(side, i, status, body)
                if problem:
                    if status == 200:
                        res.wrong += 1
                    else:
                        res.errors += 1
                    if len(res.samples) < 3:
                        res.samples.append(problem)

        stop_at = time.perf_counter() + WARMUP
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        measuring = True
        counter = 0
        t_start = time.perf_counter()
        stop_at, hard_stop = t_start + DURATION, t_start + MAX_DURATION
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - t_start
    res.requests = len(lat)
    res.rps = res.requests / elapsed if elapsed else 0.0
    if lat:
        lat.sort()
        res.p50_ms = statistics.median(lat) * 1000
        res.p99_ms = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))] * 1000
        res.mean_bytes = sum(sizes) / len(sizes)
    return res


# --------------------------------------------------------------------------- main

def fmt(r: Result) -> str:
    flag = ""
    if r.errors:
        flag += f" E{r.errors}"
    if r.wrong:
        flag += f" W{r.wrong}"
    return f"{r.rps:8.1f} {r.p50_ms:7.1f} {r.p99_ms:7.1f}{flag:>7}"


def like_for_like(ours: Result, peer: Result) -> float | None:
    """ours/peer req/s, only when neither side erred nor gave a wrong answer."""
    clean = not (ours.errors or peer.errors or ours.wrong or peer.wrong) and peer.rps > 0
    return ours.rps / peer.rps if clean else None


def fmt_ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.1f}"


def main() -> int:
    import pygeoapi

    if not BEAR.exists() or not ZONES.exists():
        print(f"missing extracts under {DATA}", file=sys.stderr)
        return 2
    rows = make_rows()
    tmp = Path(tempfile.mkdtemp(prefix="geotwin-bench-"))
    servers: list[Server] = []
    out: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    try:
        ours = start_ours(tmp)
        servers.append(ours)
        pyg = start_pygeoapi(tmp)
        servers.append(pyg)
        pyg_gpkg = start_pygeoapi_gpkg(tmp, tmp / "store.gpkg")
        servers.append(pyg_gpkg)
        print(f"ours: {ours.base}  pygeoapi {pygeoapi.__version__}: GeoJSON {pyg.base}, "
              f"SQLiteGPKG {pyg_gpkg.base}  concurrency={CONCURRENCY} warmup={WARMUP}s "
              f"duration={DURATION}s per row per server")
        for row in rows:
            r_ours = asyncio.run(run_side(ours.api, row.ours))
            r_pyg = asyncio.run(run_side(pyg.api, row.pyg))
            r_gpkg = asyncio.run(run_side(pyg_gpkg.api, row.gpkg))
            ratio, ratio_gpkg = like_for_like(r_ours, r_pyg), like_for_like(r_ours, r_gpkg)
            out.append({"row": row.name, "dataset": row.dataset, "note": row.note,
                        "ours": {"paths": row.ours.paths, **asdict(r_ours)},
                        "pygeoapi": {"paths": row.pyg.paths, **asdict(r_pyg)},
                        "pygeoapi_gpkg": {"paths": row.gpkg.paths, **asdict(r_gpkg)},
                        "ratio_rps": ratio, "ratio_rps_gpkg": ratio_gpkg,
                        "expected_matched": row.ours.expect_matched})
            print(f"  {row.dataset:5} {row.name:15} ours {r_ours.rps:7.1f} req/s   "
                  f"pygeoapi GeoJSON {r_pyg.rps:7.1f} (ratio {fmt_ratio(ratio)})   "
                  f"pygeoapi SQLiteGPKG {r_gpkg.rps:7.1f} (ratio {fmt_ratio(ratio_gpkg)})",
                  flush=True)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    hdr = (f"{'row':<23}| {'ours req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'':>7}| "
           f"{'GeoJSON':>8} {'p50 ms':>7} {'p99 ms':>7} {'':>7}| {'ratio':>6} | "
           f"{'SQLiteGPKG':>8} {'p50 ms':>7} {'p99 ms':>7} {'':>7}| {'ratio':>6}")
    print("peers: pygeoapi GeoJSON provider (raw files) | pygeoapi SQLiteGPKG provider "
          "(the same GeoPackage as ours)")
    print(hdr)
    print("-" * len(hdr))
    for o in out:
        ro, rp, rg = (Result(**{k: v for k, v in o[who].items() if k != "paths"})
                      for who in ("ours", "pygeoapi", "pygeoapi_gpkg"))
        mark = " *" if rp.wrong or ro.wrong or rg.wrong else ""
        label = f"{o['dataset']} {o['row']}"
        print(f"{label:<23}| {fmt(ro)}| {fmt(rp)}| {fmt_ratio(o['ratio_rps']):>6} | "
              f"{fmt(rg)}| {fmt_ratio(o['ratio_rps_gpkg']):>6}{mark}")
    print("-" * len(hdr))
    print("ratio = ours req/s / peer req/s.  E<n> = non-200/transport errors, "
          "W<n> = 200 with a wrong answer (* = row not a like-for-like comparison); "
          "ratio n/a when either side had errors or a wrong answer.")
    print("\nnotes:")
    for o in out:
        ro, rp = o["ours"], o["pygeoapi"]
        size = (f"mean body ours {ro['mean_bytes'] / 1024:.1f} KiB / "
                f"pygeoapi {rp['mean_bytes'] / 1024:.1f} KiB")
        line = f"  {o['dataset']} {o['row']}: {size}"
        if ro["number_matched"] is not None or rp["number_matched"] is not None:
            line += (f"; numberMatched ours {ro['number_matched']} / "
                     f"pygeoapi {rp['number_matched']} (expected {o['expected_matched']})")
        print(line)
        if o["note"]:
            print(f"      {o['note']}")
        for who in ("ours", "pygeoapi", "pygeoapi_gpkg"):
            if o[who]["samples"]:
                print(f"      {who} problems: {'; '.join(o[who]['samples'])}")
    pyg_filter = [o for o in out if o["row"] == "CQL2 filter"]
    ignored = [o for o in pyg_filter if o["pygeoapi"]["number_matched"] != o["expected_matched"]]
    if ignored:
        print("  pygeoapi's GeoJSON provider IGNORED the CQL2/ECQL `filter` parameter: its "
              "numberMatched is the whole collection, so its 'CQL2 filter' rows measure an "
              "unfiltered page (wrong answer). The 'property eq' rows are the filtered "
              "comparison pygeoapi can actually answer.")
    elapsed = time.perf_counter() - t_all
    print(f"\ntotal {elapsed:.0f} s; load generator runs in this process on the same "
          f"{os.cpu_count()} CPU(s) as the server under test.")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(), "platform": platform.platform(),
        "cpus": os.cpu_count(), "pygeoapi": pygeoapi.__version__,
        "concurrency": CONCURRENCY, "warmup_s": WARMUP, "duration_s": DURATION,
        "bbox": BBOX, "rows": out,
    }, ensure_ascii=False, indent=2), "utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    bad = sum(o["ours"]["errors"] + o["ours"]["wrong"] for o in out)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
