"""`make bench`: this service vs pygeoapi's own GeoJSON provider, same data, same machine.

Builds a GeoPackage store from the real extracts in ../shared/data into a temp dir, serves
it with uvicorn (one worker, subprocess), serves the same two raw GeoJSON files with
pygeoapi's ``GeoJSONProvider`` (one worker, subprocess), and drives both with an async
httpx client at fixed concurrency. Prints req/s, p50, p99 per row and the ratio
ours/pygeoapi; writes ``bench/results/latest.json``.

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
    cfg_path, oa_path = tmp / "pygeoapi.yml", tmp / "pygeoapi-openapi.yml"
    cfg_path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    env = {"PYGEOAPI_CONFIG": str(cfg_path), "PYGEOAPI_OPENAPI": str(oa_path)}
    gen = subprocess.run([str(Path(sys.executable).with_name("pygeoapi")), "openapi", "generate",
                          str(cfg_path), "--output-file", str(oa_path)],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    if gen.returncode != 0 or not oa_path.exists():
        raise RuntimeError("pygeoapi openapi generate failed:\n"
                           f"{gen.stdout[-1500:]}{gen.stderr[-1500:]}")
    srv = Server("pygeoapi", uvicorn_cmd("pygeoapi.starlette_app:APP", port), port, env,
                 "/collections/wildlife-sightings/items?limit=1&f=json", tmp / "pygeoapi.log")
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
    if side.expect_returned is not None and (not m or int(m.group(1)) != side.expect_returned):
        return f"numberReturned {m.group(1).decode() if m else None} != {side.expect_returned}"
    mm = RE_MATCHED.search(body)
    if side.expect_matched is not None and mm and int(mm.group(1)) != side.expect_matched:
        return f"numberMatched {mm.group(1).decode()} != {side.expect_matched}"
    return None


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
        print(f"ours: {ours.base}  pygeoapi {pygeoapi.__version__}: {pyg.base}  "
              f"concurrency={CONCURRENCY} warmup={WARMUP}s duration={DURATION}s per row per server")
        for row in rows:
            r_ours = asyncio.run(run_side(ours.api, row.ours))
            r_pyg = asyncio.run(run_side(pyg.api, row.pyg))
            clean = not (r_ours.errors or r_pyg.errors) and r_pyg.rps > 0
            ratio = r_ours.rps / r_pyg.rps if clean else None
            out.append({"row": row.name, "dataset": row.dataset, "note": row.note,
                        "ours": {"paths": row.ours.paths, **asdict(r_ours)},
                        "pygeoapi": {"paths": row.pyg.paths, **asdict(r_pyg)},
                        "ratio_rps": ratio,
                        "expected_matched": row.ours.expect_matched})
            print(f"  {row.dataset:5} {row.name:15} ours {r_ours.rps:7.1f} req/s   "
                  f"pygeoapi {r_pyg.rps:7.1f} req/s   ratio {fmt_ratio(ratio)}", flush=True)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    hdr = (f"{'row':<23}| {'ours req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'':>7}| "
           f"{'pygeoapi':>8} {'p50 ms':>7} {'p99 ms':>7} {'':>7}| {'ratio':>6}")
    print(hdr)
    print("-" * len(hdr))
    for o in out:
        ro, rp = Result(**{k: v for k, v in o["ours"].items() if k != "paths"}), \
            Result(**{k: v for k, v in o["pygeoapi"].items() if k != "paths"})
        mark = " *" if rp.wrong or ro.wrong else ""
        label = f"{o['dataset']} {o['row']}"
        print(f"{label:<23}| {fmt(ro)}| {fmt(rp)}| {fmt_ratio(o['ratio_rps']):>6}{mark}")
    print("-" * len(hdr))
    print("ratio = ours req/s / pygeoapi req/s.  E<n> = non-200/transport errors, "
          "W<n> = 200 with a wrong answer (* = row not a like-for-like comparison); "
          "ratio n/a when either side had errors.")
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
        for who in ("ours", "pygeoapi"):
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
