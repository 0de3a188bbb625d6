"""Benchmark of the procedure guide: one site against every rule and layer.

Rows (all in one run, same machine, same store):

- ``http POST /api/guide`` — p50/p99 latency over HTTP: a uvicorn subprocess (one worker,
  ``geoservice.asgi:app``) and a keep-alive httpx client, sequential requests;
- ``in-process GuideService.answer`` — sites/s, the service built once (indexes in memory),
  with the hazard card embedded as the HTTP answer embeds it, with and without serialising
  the answer to JSON;
- ``naive geopandas`` — the baseline: every layer the rules need read ONCE from the built
  GeoPackage with geopandas (its load time is reported apart), then per request
  ``gpd.sjoin`` of the site with each layer, the same rule evaluation and the same card.

Answers are checked first: the in-process answer must equal the HTTP answer, and the
naive answer must equal the in-process one; a speed-up is printed only when they agree.

Usage (from the project root)::

    .venv/bin/python bench/guide.py                    # the store of config.yml (make run)
    .venv/bin/python bench/guide.py --mirror ../shared/data   # build a fresh real store first
    .venv/bin/python bench/guide.py --requests 500 --json bench/results/guide.json

Targets: p50 ≤ 20 ms over HTTP, ≥ 500 sites/s in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
from shapely.geometry import shape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geoservice.config import Settings, load_settings  # noqa: E402
from geoservice.guide import GuideService  # noqa: E402
from geoservice.guide.engine import FeatureHit, LayerFacts, SiteFacts  # noqa: E402
from geoservice.guide.spatial import area_m2  # noqa: E402
from geoservice.hazards import raster as rastermod  # noqa: E402
from geoservice.hazards.service import HazardService  # noqa: E402
from geoservice.reinfolib.source import ReinfolibSource  # noqa: E402
from geoservice.store import open_store  # noqa: E402

SITE = {"type": "Polygon", "coordinates": [[[139.6885, 35.5700], [139.6895, 35.5700],
                                            [139.6895, 35.5708], [139.6885, 35.5708],
                                            [139.6885, 35.5700]]]}  # 大田区, ~7,300 m2
BODY: dict[str, Any] = {
    "site": {"geometry": SITE},
    "works": {
        "activities": ["new-building", "land-development", "earthwork", "land-purchase",
                       "outdoor-advertisement", "tree-felling", "road-occupation"],
        "floor_area_m2": 12000, "building_height_m": 45, "eaves_height_m": 44, "storeys": 12,
        "structure": "rc", "use": "apartment-for-sale-or-rent",
        "earthwork": {"cut_height_m": 3, "fill_height_m": 1.5, "area_m2": 4000},
        "demolition_floor_area_m2": 900, "contract_amount_yen": 3e9,
        "built_before_1981_06": False, "hazardous_substance_facility": False,
    },
}


from common import pct, serving  # noqa: E402


def settings_for(args: argparse.Namespace, tmp: Path) -> Settings:
    base = load_settings(ROOT / "config.yml", env={})
    if args.mirror is None:
        return base.model_copy(update={"work_dir": tmp})
    from geoservice.build import build

    store = base.store.model_copy(update={"path": tmp / "store.gpkg"})
    settings = base.model_copy(update={"store": store, "work_dir": tmp})
    t0 = time.perf_counter()
    build(settings, mirror=Path(args.mirror).resolve())
    print(f"built a store from {args.mirror} in {time.perf_counter() - t0:.1f} s")
    return settings


def bench_http(settings: Settings, tmp: Path, n: int, warmup: int) -> dict[str, Any]:
    with (serving(settings, tmp, "/api/guide/rules") as base,
          httpx.Client(timeout=30, headers={"Accept-Encoding": "identity"}) as client):
        url = f"{base}/api/guide"
        first = client.post(url, json=BODY)
        first.raise_for_status()
        for _ in range(warmup):
            client.post(url, json=BODY).raise_for_status()
        times: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.post(url, json=BODY)
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
    return {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99),
            "req_s": 1000 * len(times) / sum(times), "bytes": len(first.content),
            "answer": first.json()}


def bench_inprocess(service: GuideService, seconds: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, dump in (("answer", False), ("answer+json", True)):
        n, times = 0, []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            ans = service.answer(BODY)
            if dump:
                json.dumps(ans.model_dump(mode="json"), ensure_ascii=False)
            times.append((time.perf_counter() - t0) * 1000)
            n += 1
        out[label] = n / sum(times) * 1000
        out[f"{label}_p50_ms"] = pct(times, 0.5)
        out[f"{label}_p99_ms"] = pct(times, 0.99)
    return out


def _plain(value: Any) -> Any:
    """A geopandas cell as the store gives it: numpy scalars as Python values."""
    return value.item() if hasattr(value, "item") else value


class NaiveIndex:
    """The baseline's spatial pass: layers read once with geopandas, ``sjoin`` per request.

    It stands in for the service's ``SpatialIndex`` (same ``facts``; the site geometry and
    the coverage areas come from the real one), so the rest of the answer — API layers,
    rules, hazard card — is the very same code and only the spatial lookup differs.
    """

    def __init__(self, gpkg: Path, index: Any) -> None:
        self.index = index
        self.frames: dict[str, gpd.GeoDataFrame | None] = {}
        for lid in ["admin-boundaries", *index.layers]:
            try:
                df = gpd.read_file(gpkg, layer=lid, engine="pyogrio")
            except Exception:
                self.frames[lid] = None
                continue
            self.frames[lid] = df if df.crs is not None else df.set_crs("OGC:CRS84")

    def site_geometry(self, site: Any) -> Any:
        return self.index.site_geometry(site)

    def _hits(self, lid: str, site: gpd.GeoDataFrame) -> tuple[FeatureHit, ...]:
        df = self.frames.get(lid)
        if df is None:
            return ()
        hits = gpd.sjoin(df, site.to_crs(df.crs), predicate="intersects", how="inner")
        props = hits.drop(columns=["geometry", "index_right"], errors="ignore")
        return tuple(
            FeatureHit(str(r.get("id", i)), {k: _plain(v) for k, v in r.items()
                                             if k != "id" and not _missing(v)})
            for i, r in props.iterrows()
        )

    def facts(self, geom: Any, municipality_code: str | None = None) -> SiteFacts:
        site = gpd.GeoDataFrame(geometry=[geom], crs="OGC:CRS84")
        admin = self._hits("admin-boundaries", site)
        muni = admin[0].properties if admin else {}
        code = muni.get("municipality_code")
        layers: dict[str, LayerFacts] = {}
        for lid, idx in self.index.layers.items():
            cov = idx.coverage_of(geom)
            layers[lid] = LayerFacts("none") if cov == "none" else \
                LayerFacts(cov, self._hits(lid, site))
        return SiteFacts(area_m2(geom), municipality_code or (None if code is None else str(code)),
                         muni.get("name"), layers)


def naive_service(gpkg: Path, service: GuideService) -> GuideService:
    """The service with its spatial index swapped for the geopandas baseline."""
    naive = copy.copy(service)
    naive.index = NaiveIndex(gpkg, service.index)  # type: ignore[assignment]
    return naive


def _missing(value: Any) -> bool:
    try:
        return bool(value != value)  # NaN (a property absent from this feature)
    except (TypeError, ValueError):
        return False


def bench_naive(naive: GuideService, n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        naive.answer(BODY)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99),
            "sites_s": 1000 * len(times) / sum(times)}


def _as_json(answer: Any) -> Any:
    return json.loads(json.dumps(answer.model_dump(mode="json"), ensure_ascii=False,
                                 default=str))


def differences(a: Any, b: Any) -> list[str]:
    """Which parts of two answers (JSON) differ: procedure ids, or a top-level key."""
    out = [k for k in ("site", "timeline", "hazards", "disclaimer") if a.get(k) != b.get(k)]
    pa = {p["id"]: p for p in a.get("procedures", [])}
    pb = {p["id"]: p for p in b.get("procedures", [])}
    out += [pid for pid in sorted(set(pa) | set(pb)) if pa.get(pid) != pb.get(pid)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", help="build a fresh store from this mirror first")
    ap.add_argument("--requests", type=int, default=300, help="HTTP requests (sequential)")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=3.0, help="in-process duration per row")
    ap.add_argument("--naive", type=int, default=15, help="naive baseline iterations")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="guide-bench-") as t:
        tmp = Path(t)
        settings = settings_for(args, tmp)
        store = open_store(settings)
        specs = {c: store.spec(c) for c in store.collections()}
        t0 = time.perf_counter()
        service = GuideService(store, specs)
        source = ReinfolibSource.open(settings, store, specs.values())
        service.use_source(source)  # as the app does (no key: its layers say so)
        if rastermod.serves_hazards(specs) and not rastermod.raster_path(settings).exists():
            rastermod.write_flood_cog(settings)  # as the server does at start-up
        hazards = HazardService.build(store, specs, rastermod.raster_path(settings))
        # the HTTP answer embeds the hazard card (guide.api.attach): so does this row
        service.hazard_card = lambda geom, results: hazards.card(geom, official=results)
        service.card_layers = lambda: list(hazards.api_layers)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        naive = naive_service(Path(settings.store.path), service)
        naive_load_s = time.perf_counter() - t0
        ours = _as_json(service.answer(BODY))
        naive_diff = differences(ours, _as_json(naive.answer(BODY)))
        inproc = bench_inprocess(service, args.seconds)
        base = bench_naive(naive, args.naive)
        if source is not None:
            asyncio.run(source.aclose())
        store.close()
        http = bench_http(settings, tmp, args.requests, args.warmup)
    http_diff = differences(ours, http.pop("answer"))
    layers = len(service.layer_ids) + 1
    print(f"\nguide benchmark — one {area_m2(shape(SITE)):.0f} m2 site, {len(service.rules)} "
          f"rules, {layers} layers; index build {build_s * 1000:.0f} ms (naive layer load "
          f"{naive_load_s * 1000:.0f} ms, once); store {settings.store.path}")
    print(f"in-process answer equals the HTTP answer: {not http_diff} {http_diff or ''}")
    print(f"naive answer equals the in-process answer: {not naive_diff} {naive_diff or ''}\n")
    rows = [
        ("http POST /api/guide (uvicorn, 1 worker)", http["p50_ms"], http["p99_ms"],
         http["req_s"], "p50 <= 20 ms", http["p50_ms"] <= 20 and not http_diff),
        ("in-process GuideService.answer (+ card)", inproc["answer_p50_ms"],
         inproc["answer_p99_ms"], inproc["answer"], ">= 500 sites/s", inproc["answer"] >= 500),
        ("in-process answer + JSON", inproc["answer+json_p50_ms"],
         inproc["answer+json_p99_ms"], inproc["answer+json"], "", None),
        ("naive: layers read once, sjoin per request", base["p50_ms"], base["p99_ms"],
         base["sites_s"], "baseline", None),
    ]
    head = (f"{'row':<44} {'p50 ms':>8} {'p99 ms':>8} {'sites/s':>9} {'1/p50':>7}  target")
    print(head)
    print("-" * len(head) + "-" * 16)
    for name, p50, p99, rate, target, ok in rows:
        mark = "" if ok is None else (" OK" if ok else " MISSED")
        print(f"{name:<44} {p50:>8.2f} {p99:>8.2f} {rate:>9.0f} {1000 / p50:>7.0f}  "
              f"{target}{mark}")
    print("sites/s = requests / total time (mean); 1/p50 = the median rate. On a loaded "
          "machine\n(load average above the CPU count) the mean and p99 carry the preemptions.")
    if naive_diff or http_diff:
        print("\nno speed-up printed: the answers differ (see above)")
    else:
        print(f"\nspeed-up over the naive baseline (in-process, same answer): "
              f"{inproc['answer'] / base['sites_s']:.1f}x; HTTP response {http['bytes']} bytes")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"http": http, "in_process": inproc, "naive": base,
                                         "index_build_s": build_s, "naive_load_s": naive_load_s,
                                         "naive_differs": naive_diff, "http_differs": http_diff},
                                        indent=2), "utf-8")


if __name__ == "__main__":
    main()
