"""Benchmark of the hazard card over HTTP: p50 / p99 for a point and a 1,000 m² polygon.

A store is built from ``../shared/data`` (plus the bundled layers and the synthetic
flood-depth COG) into a temp dir, served by ``uvicorn geoservice.asgi:app`` (subprocess,
127.0.0.1, one worker, no access log) and queried by a keep-alive httpx client, sequential
requests, after a warm-up.  Rows:

- ``GET /api/hazards?lon=&lat=`` at points in 葛飾区 (raster + risk ranks), 八王子市 (a
  debris-flow zone, Hachioji shelters) and 新宿区 (Tokyo-wide layers only), in rotation;
- ``POST /api/hazards`` with a ~1,000 m² square (31.6 m side, in EPSG:6677) at the same
  places, in rotation;
- ``in-process card`` — cards/s of ``HazardService.card`` without HTTP (point, polygon).

Usage (from the project root)::

    .venv/bin/python bench/hazards.py                       # build from ../shared/data
    .venv/bin/python bench/hazards.py --requests 1000 --json bench/results/hazards.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pyproj import Transformer
from shapely.geometry import Point, shape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geoservice.config import Settings, load_settings  # noqa: E402

PLACES = {
    "葛飾区": (139.8300, 35.7500),
    "八王子市": (139.3229, 35.6510),
    "新宿区": (139.7000, 35.6900),
}


from common import pct, serving  # noqa: E402


def square_1000m2(lon: float, lat: float) -> dict[str, Any]:
    """A 1,000 m² square (side 31.62 m in EPSG:6677) centred on lon/lat, as GeoJSON."""
    to_m = Transformer.from_crs("OGC:CRS84", "EPSG:6677", always_xy=True)
    to_ll = Transformer.from_crs("EPSG:6677", "OGC:CRS84", always_xy=True)
    x, y = to_m.transform(lon, lat)
    h = 1000**0.5 / 2
    ring = [to_ll.transform(px, py) for px, py in
            ((x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h), (x - h, y - h))]
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


def build_store(mirror: Path, tmp: Path) -> Settings:
    from geoservice.build import build

    base = load_settings(ROOT / "config.yml", env={})
    store = base.store.model_copy(update={"path": tmp / "store.gpkg", "backend": "gpkg"})
    settings = base.model_copy(update={"store": store, "work_dir": tmp})
    t0 = time.perf_counter()
    build(settings, mirror=mirror)
    print(f"built a store from {mirror} in {time.perf_counter() - t0:.1f} s")
    return settings


def run_http(settings: Settings, tmp: Path, n: int, warmup: int) -> dict[str, dict[str, float]]:
    points = list(PLACES.values())
    polygons = [square_1000m2(*p) for p in points]
    out: dict[str, dict[str, float]] = {}
    with (serving(settings, tmp, "/api/hazards?lon=139.7&lat=35.7") as server,
          httpx.Client(timeout=30, headers={"Accept-Encoding": "identity"}) as client):
        base = f"{server}/api/hazards"

        def point_req(i: int) -> httpx.Response:
            lon, lat = points[i % len(points)]
            return client.get(base, params={"lon": lon, "lat": lat})

        def poly_req(i: int) -> httpx.Response:
            return client.post(base, json=polygons[i % len(polygons)])

        for name, fn in (("GET point", point_req), ("POST 1,000 m² polygon", poly_req)):
            for i in range(warmup):
                fn(i).raise_for_status()
            times: list[float] = []
            size = 0
            for i in range(n):
                t0 = time.perf_counter()
                r = fn(i)
                times.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"{name}: HTTP {r.status_code}: {r.text[:300]}")
                size = max(size, len(r.content))
            out[name] = {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99),
                         "req_s": 1000 * len(times) / sum(times), "bytes": size, "n": n}
    return out


def run_inprocess(settings: Settings, seconds: float) -> dict[str, float]:
    from geoservice.hazards.raster import raster_path
    from geoservice.hazards.service import HazardService
    from geoservice.store import open_store

    store = open_store(settings)
    try:
        specs = {c: store.spec(c) for c in store.collections()}
        t0 = time.perf_counter()
        svc = HazardService.build(store, specs, raster_path(settings))
        built = time.perf_counter() - t0
        out = {"index_build_s": built}
        sites = {"point": [Point(*p) for p in PLACES.values()],
                 "polygon": [square_1000m2(*p) for p in PLACES.values()]}
        for name, geoms in sites.items():
            n = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                svc.card(geoms[n % len(geoms)])
                n += 1
            out[f"{name}_cards_per_s"] = n / (time.perf_counter() - t0)
        return out
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--requests", type=int, default=int(os.environ.get("BENCH_REQUESTS", 500)))
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=2.0, help="in-process run per row")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    assert abs(_area(square_1000m2(*PLACES["葛飾区"])) - 1000) < 1
    with tempfile.TemporaryDirectory(prefix="bench-hazards-") as d:
        tmp = Path(d)
        settings = build_store(args.mirror.resolve(), tmp)
        http = run_http(settings, tmp, args.requests, args.warmup)
        local = run_inprocess(settings, args.seconds)
    print(f"\nhazard card over HTTP ({args.requests} sequential requests per row, 1 worker)")
    print(f"{'row':<26}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'bytes':>9}")
    for name, row in http.items():
        print(f"{name:<26}{row['p50_ms']:9.2f}{row['p99_ms']:9.2f}{row['req_s']:9.0f}"
              f"{row['bytes']:9.0f}")
    print(f"\nin-process: index build {local['index_build_s']:.2f} s, "
          f"{local['point_cards_per_s']:.0f} point cards/s, "
          f"{local['polygon_cards_per_s']:.0f} polygon cards/s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"http": http, "in_process": local}, indent=1), "utf-8")


def _area(geojson: dict[str, Any]) -> float:
    from geoservice.crs import to_6677

    return float(to_6677(shape(geojson)).area)


if __name__ == "__main__":
    main()
