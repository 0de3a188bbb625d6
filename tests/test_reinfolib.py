"""The 不動産情報ライブラリ API source against a local server implementing its contract.

Client (key header, gzip, retries, budget), failure reasons, tile-edge merging in both
response formats, the cache in both stores (TTL, stale fallback, carried over by a
rebuild), and the key never leaking.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from shapely.geometry import Point, box, shape

from geoservice.build import build
from geoservice.catalogue import load_layer
from geoservice.config import Settings
from geoservice.reinfolib.client import ReinfolibClient
from geoservice.reinfolib.errors import ReinfolibError
from geoservice.reinfolib.source import LayerResult, ReinfolibSource
from geoservice.reinfolib.tiles import Tile, covering
from geoservice.store import open_store
from tests.conftest import ROOT, pg_settings_for, settings_for
from tests.reinfolib_server import FIXTURES, ReinfolibServer, use_server, write_api_layer

DEMO = ROOT / "data" / "demo"
#: a site on the 第一種低層住居専用地域 fixture polygon, which crosses z15 tile edges
SITE = box(139.7045, 35.5775, 139.7065, 35.5790)
USE = [
    {"name": "use_district", "source": "use_area_ja"},
    {"name": "floor_area_ratio", "type": "number", "source": "u_floor_area_ratio_ja"},
    {"name": "floor_area_ratio_text", "source": "u_floor_area_ratio_ja"},
    {"name": "building_coverage_ratio", "type": "number",
     "source": "u_building_coverage_ratio_ja"},
    {"name": "municipality_code", "source": "city_code"},
]
PRICES = [
    {"name": "point_id", "source": "point_id"},
    {"name": "price_per_m2", "type": "integer", "source": "u_current_years_price_ja"},
    {"name": "price_text", "source": "u_current_years_price_ja"},
    {"name": "change_rate", "type": "number", "source": "year_on_year_change_rate"},
]


@pytest.fixture
def server(reinfolib_server: ReinfolibServer) -> ReinfolibServer:
    """The contract server, with its key in the environment variable the config names."""
    return reinfolib_server


def _layers(tmp: Path) -> Path:
    layers = tmp / "layers"
    write_api_layer(layers, "rf-use", "XKT002", 15, USE)
    write_api_layer(layers, "rf-prices", "XPT002", 13, PRICES, params={"year": 2024},
                    identity=["point_id"])
    shutil.copy(ROOT / "layers" / "admin-boundaries.yml", layers)
    return layers


def _built(settings: Settings) -> Settings:
    build(settings, mirror=DEMO)
    return settings


@pytest.fixture(params=["gpkg", "postgis"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A store with two API layers (empty) and the demo admin boundaries, on each backend."""
    if request.param == "gpkg":
        return _built(settings_for(tmp_path, _layers(tmp_path)))
    make: Callable[[str], str] = request.getfixturevalue("pg_database")
    return _built(pg_settings_for(tmp_path, _layers(tmp_path), make(f"rf{uuid.uuid4().hex[:8]}")))


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _site(settings: Settings, layer: str = "rf-use", area: Any = SITE,
          budget: float = 5.0) -> LayerResult:
    store = open_store(settings)
    try:
        source = ReinfolibSource.open(settings, store)

        async def go() -> LayerResult:
            try:
                return await source.site_features(source.layers[layer], area,
                                                  deadline=time.monotonic() + budget)
            finally:
                await source.aclose()

        return _run(go())  # type: ignore[no-any-return]
    finally:
        store.close()


def _tile(settings: Settings, api: str = "XKT002", tile: Tile | None = None,
          params: dict[str, Any] | None = None, fmt: str | None = None) -> Any:
    tile = tile or Tile(15, 29100, 12914)
    rs = settings.reinfolib
    client = ReinfolibClient(rs, rs.api_key())

    async def go() -> Any:
        try:
            return await client.tile(api, tile, params, fmt=fmt)
        finally:
            await client.aclose()

    return _run(go())


def _reason(settings: Settings, **kw: Any) -> str:
    with pytest.raises(ReinfolibError) as err:
        _tile(settings, **kw)
    assert "5ecret" not in err.value.description
    return err.value.reason


# -- the contract server itself ---------------------------------------------------------


def test_contract_server_checks_key_parameters_and_api(server: ReinfolibServer) -> None:
    base, key = server.url, {"Ocp-Apim-Subscription-Key": server.key}
    ok = {"response_format": "geojson", "z": 15, "x": 29100, "y": 12914}
    assert httpx.get(f"{base}/XKT002", params=ok).status_code == 401
    assert httpx.get(f"{base}/XKT002", params=ok,
                     headers={"Ocp-Apim-Subscription-Key": "wrong"}).status_code == 401
    assert httpx.get(f"{base}/XKT002", params={**ok, "z": ""}, headers=key).status_code == 400
    assert httpx.get(f"{base}/XKT002", params={**ok, "z": 16}, headers=key).status_code == 400
    assert httpx.get(f"{base}/XPT002", params={**ok, "z": 12, "year": 2024},
                     headers=key).status_code == 400  # XPT002 starts at zoom 13
    assert httpx.get(f"{base}/XPT001", params={**ok, "from": "20241"},
                     headers=key).status_code == 400  # `to` missing
    assert httpx.get(f"{base}/XPT002", params={**ok, "z": 13, "x": 7275, "y": 3228},
                     headers=key).status_code == 400  # `year` missing
    assert httpx.get(f"{base}/XKT999", params=ok, headers=key).status_code == 404
    raw = httpx.get(f"{base}/XKT002", params=ok, headers={**key, "Accept-Encoding": "gzip"})
    assert raw.status_code == 200 and raw.headers["content-encoding"] == "gzip"
    names = {f["properties"]["use_area_ja"] for f in raw.json()["features"]}
    assert names == {"第一種低層住居専用地域"}


# -- client failures: each one a typed, key-free reason --------------------------------


def test_every_failure_has_its_reason(server: ReinfolibServer, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    s = use_server(settings_for(tmp_path, tmp_path), server, timeout_s=0.5, retries=1,
                   backoff_s=0.05)
    assert _reason(s, tile=Tile(16, 58200, 25828)) == "zoom-out-of-range"
    assert _reason(s, api="XPT002", tile=Tile(13, 7275, 3228)) == "bad-request"  # no year
    assert _reason(s, api="XKT998") == "not-found"  # not a documented API: nothing sent
    assert server.served == []
    assert _reason(s, fmt="xml") == "bad-request"  # the server's 400
    wrong_path = s.model_copy(update={"reinfolib": s.reinfolib.model_copy(
        update={"base_url": server.url + "/v9"})})
    assert _reason(wrong_path) == "not-found"  # the server's 404
    server.inject("hang", count=2, seconds=2)  # the first try and its retry
    assert _reason(s) == "timeout"
    server.inject("429", count=2, retry_after=0)
    assert _reason(s) == "rate-limited"
    server.inject("503", count=2)
    assert _reason(s) == "server-error"
    server.inject("truncated")
    assert _reason(s) == "bad-body"
    server.inject("cut")
    assert _reason(s) == "bad-body"
    server.inject("non-json")
    assert _reason(s) == "bad-body"
    server.inject("bad-pbf")
    assert _reason(s, fmt="pbf") == "bad-pbf"
    server.inject("403")
    assert _reason(s) == "unauthorized"
    server.inject("204")
    assert _tile(s).features == []  # an empty tile, not an error
    monkeypatch.setenv("REINFOLIB_API_KEY", "not-the-key")
    assert _reason(s) == "unauthorized"
    monkeypatch.delenv("REINFOLIB_API_KEY")
    n = len(server.served)
    assert _reason(s) == "not-configured"
    assert len(server.served) == n  # nothing sent without a key


def test_retries_honour_retry_after_then_succeed(server: ReinfolibServer,
                                                  tmp_path: Path) -> None:
    s = use_server(settings_for(tmp_path, tmp_path), server, backoff_s=0.01)
    server.inject("429", retry_after=1)
    started = time.monotonic()
    answer = _tile(s)
    assert time.monotonic() - started >= 1.0  # waited as told, not the 0.01 s back-off
    assert [r.status for r in server.served] == [429, 200]
    assert len(answer.features) == 1
    server.clear()
    server.inject("500")
    assert len(_tile(s).features) == 1
    assert [r.status for r in server.served] == [500, 200]


def test_request_budget_per_minute(server: ReinfolibServer, tmp_path: Path) -> None:
    s = use_server(settings_for(tmp_path, tmp_path), server, requests_per_minute=2)
    rs = s.reinfolib
    client = ReinfolibClient(rs, rs.api_key())

    async def go() -> list[Any]:
        tiles = [Tile(15, 29100 + i, 12914) for i in range(3)]
        deadline = time.monotonic() + 2
        try:
            return await asyncio.gather(*(client.tile("XKT002", t, deadline=deadline)
                                          for t in tiles), return_exceptions=True)
        finally:
            await client.aclose()

    outcomes = _run(go())
    refused = [o for o in outcomes if isinstance(o, ReinfolibError)]
    assert len(refused) == 1 and refused[0].reason == "budget-exhausted"
    assert len(server.served) == 2


def test_concurrency_cap_holds_across_loops_and_threads(server: ReinfolibServer,
                                                        tmp_path: Path) -> None:
    s = use_server(_built(settings_for(tmp_path, _layers(tmp_path))), server, concurrency=2)
    server.state.latency_s = 0.2
    store = open_store(s)
    source = ReinfolibSource.open(s, store)
    spec = source.layers["rf-use"]
    west, east = box(139.70, 35.57, 139.72, 35.575), box(139.74, 35.57, 139.76, 35.575)
    results: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: results.update(
        source.site_layers_blocking([spec], west, budget_s=20)))  # e.g. a guide job
    worker.start()

    async def from_a_loop() -> LayerResult:  # e.g. an async route on the app's loop
        return await source.site_features(spec, east, deadline=time.monotonic() + 20)

    east_result = _run(from_a_loop())
    worker.join()
    _run(source.aclose())
    store.close()
    assert results["rf-use"].ok and east_result.ok
    assert len(server.served) == len(covering(west, 15)) + len(covering(east, 15)) >= 6
    assert server.state.max_in_flight == 2  # one cap for the whole process


def test_concurrent_answers_share_requests(server: ReinfolibServer, tmp_path: Path) -> None:
    s = use_server(_built(settings_for(tmp_path, _layers(tmp_path))), server)
    server.state.latency_s = 0.2
    store = open_store(s)
    source = ReinfolibSource.open(s, store)
    spec = source.layers["rf-use"]

    async def twice() -> list[LayerResult]:
        deadline = time.monotonic() + 10
        try:
            return list(await asyncio.gather(*(source.site_features(spec, SITE, deadline=deadline)
                                               for _ in range(2))))
        finally:
            await source.aclose()

    first, second = _run(twice())
    store.close()
    assert first.ok and second.ok and [f.id for f in first.features] == [
        f.id for f in second.features]
    assert len(server.served) == len(covering(SITE, 15))  # each tile asked for once


# -- tile edges and formats --------------------------------------------------------------


def test_split_polygon_merges_to_one_feature_same_in_both_formats(
        server: ReinfolibServer, tmp_path: Path) -> None:
    results = {}
    for fmt in ("geojson", "pbf"):
        s = use_server(_built(settings_for(tmp_path / fmt, _layers(tmp_path / fmt))), server,
                       response_format=fmt)
        results[fmt] = _site(s, area=box(139.701, 35.571, 139.719, 35.589))
    geo, pbf = results["geojson"], results["pbf"]
    assert geo.ok and pbf.ok
    tiles = covering(box(139.701, 35.571, 139.719, 35.589), 15)
    assert len(tiles) > 1  # the polygon really was cut into several tiles
    by_id = {f.id: f for f in geo.features}
    assert sorted(by_id) == sorted(f.id for f in pbf.features)
    fixture = next(shape(f["geometry"]) for f in _fixture("XKT002")
                   if f["properties"]["use_area_ja"] == "第一種低層住居専用地域")
    (low,) = [f for f in geo.features if f.properties["use_district"] == "第一種低層住居専用地域"]
    assert low.properties["floor_area_ratio"] == 100.0
    assert low.properties["floor_area_ratio_text"] == "100%"
    assert low.properties["building_coverage_ratio"] == 50.0
    assert low.geometry.geom_type == "MultiPolygon" and len(low.geometry.geoms) == 1
    assert low.geometry.symmetric_difference(fixture).area < 1e-9  # whole again, no seams
    for f in pbf.features:
        other = by_id[f.id]
        assert f.properties == other.properties
        assert f.geometry.symmetric_difference(other.geometry).area < 0.001 * other.geometry.area


def _fixture(api: str) -> list[dict[str, Any]]:
    import json

    return json.loads((FIXTURES / f"{api}.geojson").read_text("utf-8"))["features"]  # type: ignore[no-any-return]


def test_points_deduplicated_across_tile_buffers(server: ReinfolibServer,
                                                 tmp_path: Path) -> None:
    s = use_server(_built(settings_for(tmp_path, _layers(tmp_path))), server)
    result = _site(s, "rf-prices", box(139.70, 35.55, 139.76, 35.59))
    assert result.ok
    ids = sorted(f.properties["point_id"] for f in result.features)
    assert ids == ["13111-001", "13111-002", "13111-003", "13111-004"]
    price = {f.properties["point_id"]: f.properties["price_per_m2"] for f in result.features}
    assert price["13111-003"] == 1_200_000
    assert all(r.params["year"] == "2024" for r in server.served)


# -- the cache in the store (both backends) ----------------------------------------------


def test_cache_serves_second_answer_and_ttl_refetches(server: ReinfolibServer,
                                                       store_settings: Settings) -> None:
    s = use_server(store_settings, server)
    first = _site(s)
    assert first.ok and first.provenance is not None and not first.provenance.from_cache
    n = len(server.served)
    assert n == len(covering(SITE, 15))
    assert all("5ecret" not in u and "key" not in u.lower() for u in first.provenance.source_urls)
    second = _site(s)
    assert second.provenance is not None and second.provenance.from_cache
    assert len(server.served) == n  # no request: the store had every tile
    assert [f.id for f in second.features] == [f.id for f in first.features]
    assert second.provenance.label().startswith("不動産情報ライブラリ API XKT002, fetched 20")
    expired = use_server(store_settings, server, cache_ttl_days=1e-9)
    third = _site(expired)
    assert len(server.served) == 2 * n and not third.provenance.from_cache  # type: ignore[union-attr]
    assert [f.id for f in third.features] == [f.id for f in first.features]
    server.inject("503", count=10)
    stale = _site(use_server(expired, server, retries=0))
    assert stale.ok and stale.provenance is not None and stale.provenance.stale
    assert [f.id for f in stale.features] == [f.id for f in first.features]


def test_refetch_replaces_what_the_tile_said(store_settings: Settings, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, fixtures)
    with ReinfolibServer(fixtures=fixtures) as srv:
        monkeypatch.setenv("REINFOLIB_API_KEY", srv.key)
        before = _site(use_server(store_settings, srv))
        (old,) = before.features
        text = (fixtures / "XKT002.geojson").read_text("utf-8")
        (fixtures / "XKT002.geojson").write_text(text.replace('"100%"', '"150%"'), "utf-8")
        after = _site(use_server(store_settings, srv, cache_ttl_days=1e-9))
    (new,) = after.features
    assert new.id != old.id and new.properties["floor_area_ratio"] == 150.0
    store = open_store(store_settings)
    try:
        ids = [f.id for f in store.iter_features("rf-use")]
    finally:
        store.close()
    assert new.id in ids and old.id not in ids  # the decision changed: the old one is gone


def test_refused_key_is_not_tried_again(server: ReinfolibServer, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REINFOLIB_API_KEY", "not-the-key")
    s = use_server(_built(settings_for(tmp_path, _layers(tmp_path))), server, concurrency=1)
    area = box(139.70, 35.57, 139.74, 35.59)
    assert len(covering(area, 15)) > 4
    result = _site(s, area=area)
    assert result.error is not None and result.error.reason == "unauthorized"
    assert len(server.served) == 1  # one refusal, then no more requests with that key


def test_failure_makes_layer_unusable_with_reason(server: ReinfolibServer,
                                                  store_settings: Settings) -> None:
    s = use_server(store_settings, server, retries=0)
    server.inject("503", count=100)
    result = _site(s)
    assert not result.ok and result.error is not None
    assert result.error.reason == "server-error"
    assert "HTTP 503" in result.error.description


def test_site_budget_bounds_the_answer(server: ReinfolibServer, tmp_path: Path) -> None:
    s = use_server(_built(settings_for(tmp_path, _layers(tmp_path))), server)
    server.state.latency_s = 5
    started = time.monotonic()
    result = _site(s, budget=1.0)
    assert time.monotonic() - started < 2.0
    assert result.error is not None and result.error.reason == "timeout"


def test_no_key_means_not_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REINFOLIB_API_KEY", raising=False)
    s = _built(settings_for(tmp_path, _layers(tmp_path)))
    result = _site(s)
    assert result.error is not None and result.error.reason == "not-configured"
    assert "REINFOLIB_API_KEY" in result.error.description


def test_rebuild_keeps_the_cache(server: ReinfolibServer, store_settings: Settings) -> None:
    s = use_server(store_settings, server)
    first = _site(s)
    n = len(server.served)
    build(s, mirror=DEMO)
    again = _site(s)
    assert len(server.served) == n and again.provenance is not None
    assert again.provenance.from_cache
    assert [f.id for f in again.features] == [f.id for f in first.features]


# -- specs ------------------------------------------------------------------------------


def test_layer_spec_checked_against_the_manual(tmp_path: Path) -> None:
    ok = write_api_layer(tmp_path, "a", "XKT002", 15, USE)
    assert load_layer(ok).source.format == "reinfolib"
    for api, zoom, params, says in [("XKT002", 16, {}, "zoom 11–15"),
                                    ("XPT002", 12, {"year": 2024}, "zoom 13–15"),
                                    ("XPT002", 14, {}, "missing ['year']"),
                                    ("XPT001", 14, {"from": "20241"}, "missing ['to']"),
                                    ("XKT999", 14, {}, "not a documented")]:
        bad = write_api_layer(tmp_path, "b", "XKT002", 15, USE)
        text = bad.read_text("utf-8").replace("api: XKT002", f"api: {api}").replace(
            "zoom: 15", f"zoom: {zoom}")
        if params:
            text = text.replace(f"zoom: {zoom}", f"zoom: {zoom}\n  params: {dict(params)}")
        bad.write_text(text, "utf-8")
        with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("]", r"\]")):
            load_layer(bad)


def test_tiles_cover_a_site() -> None:
    tiles = covering(Point(139.7671, 35.6812), 15)
    assert tiles == [Tile(15, 29105, 12903)]
    w, s, e, n = tiles[0].bounds()
    assert w < 139.7671 < e and s < 35.6812 < n
    square = box(139.70, 35.57, 139.72, 35.59)
    assert shapely.union_all([box(*t.bounds()) for t in covering(square, 15)]).contains(square)


def test_gzip_is_requested(server: ReinfolibServer, tmp_path: Path) -> None:
    s = use_server(settings_for(tmp_path, tmp_path), server)
    assert len(_tile(s).features) == 1
    assert server.served[0].gzip and server.served[0].status == 200


def test_request_budget_is_the_services_not_a_processs(server: ReinfolibServer,
                                                       store_settings: Settings) -> None:
    """Two processes (or hosts) on one store share one per-minute budget: with 3 a minute,
    two sources asking 2 tiles each get 3 requests through and one ``budget-exhausted``."""
    s = use_server(store_settings, server, requests_per_minute=3)
    stores = [open_store(s) for _ in range(2)]
    sources = [ReinfolibSource.open(s, st) for st in stores]

    async def fetch(source: ReinfolibSource, xs: list[int]) -> list[Any]:
        deadline = time.monotonic() + 1.5
        try:
            return await asyncio.gather(*(source.client.tile(
                "XKT002", Tile(15, x, 12914), deadline=deadline) for x in xs),
                return_exceptions=True)
        finally:
            await source.aclose()

    try:
        outcomes = _run(fetch(sources[0], [29100, 29101]))
        outcomes += _run(fetch(sources[1], [29102, 29103]))
    finally:
        for st in stores:
            st.close()
    refused = [o for o in outcomes if isinstance(o, ReinfolibError)]
    assert [o.reason for o in refused] == ["budget-exhausted"], outcomes
    assert len(server.served) == 3


def test_budget_falls_back_to_the_process_when_the_store_cannot_count(
        server: ReinfolibServer, tmp_path: Path) -> None:
    """A shared count that fails (a locked GeoPackage, a fail-over) does not fail the
    answer: the process's own budget still holds (2 a minute: 2 through, 1 refused)."""
    s = use_server(settings_for(tmp_path, tmp_path), server, requests_per_minute=2)
    client = ReinfolibClient(s.reinfolib, s.reinfolib.api_key())

    def locked(_per_minute: int) -> float:
        raise sqlite3.OperationalError("database is locked")

    client.budget.shared = locked

    async def go() -> list[Any]:
        deadline = time.monotonic() + 5
        try:
            return await asyncio.gather(*(client.tile("XKT002", Tile(15, 29100 + i, 12914),
                                                      deadline=deadline) for i in range(3)),
                                        return_exceptions=True)
        finally:
            await client.aclose()

    outcomes = _run(go())
    refused = [o for o in outcomes if isinstance(o, ReinfolibError)]
    assert [o.reason for o in refused] == ["budget-exhausted"], outcomes
    assert len(server.served) == 2
