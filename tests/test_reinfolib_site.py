"""The guide and the hazard card answering from the 不動産情報ライブラリ API.

Through the local contract server (tests/reinfolib_server.py, fixtures in
tests/data/reinfolib/ around 大田区): official layers with their source stated, the same
answers in geojson and pbf, every failure mode a per-layer reason and ``undetermined``
(never a silent not-required), precedence and disagreement with the local official file.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geoservice.app import create_app
from geoservice.build import build
from geoservice.catalogue import load_catalogue
from geoservice.config import Settings
from geoservice.reinfolib.values import PARSERS
from tests.browser import assert_local_only, browser_page, record_requests, screenshot
from tests.conftest import ROOT, LiveServer, free_port, pg_settings_for, settings_for
from tests.reinfolib_server import ReinfolibServer, use_server

CREDIT = "このサービスは、国土交通省の不動産情報ライブラリのAPI機能を使用していますが"
#: On the 急傾斜地崩壊危険区域 and 第一種低層住居専用地域 fixtures, 市街化区域 (大田区).
SLOPE = {"type": "Polygon", "coordinates": [[[139.7045, 35.5775], [139.7065, 35.5775],
                                             [139.7065, 35.5790], [139.7045, 35.5790],
                                             [139.7045, 35.5775]]]}
#: Inside the PLATEAU 第1種住居地域 polygon and the API's 商業地域 fixture.
DISAGREE = [139.7205, 35.5595]
WORKS = {"activities": ["new-building", "land-development"], "site_area_m2": 600,
         "use": "apartment-for-sale-or-rent",
         "floor_area_m2": 800, "building_height_m": 12, "storeys": 4}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReinfolibServer]:
    """The contract server, with its key in the environment variable the config names."""
    with ReinfolibServer() as srv:
        monkeypatch.setenv("REINFOLIB_API_KEY", srv.key)
        yield srv


def _client(real_store: Path, tmp: Path, server: ReinfolibServer, **changes: Any) -> TestClient:
    """An app over a private copy of the real store (the API cache writes into it)."""
    shutil.copytree(real_store, tmp / "store", dirs_exist_ok=True)
    settings: Settings = use_server(settings_for(tmp / "store", ROOT / "layers"), server,
                                    **changes)
    return TestClient(create_app(settings), raise_server_exceptions=False)


def _guide(client: TestClient, site: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/api/guide", json={"site": site, "works": WORKS})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _proc(answer: dict[str, Any], pid: str) -> dict[str, Any]:
    return next(p for p in answer["procedures"] if p["id"] == pid)


def _source(answer: dict[str, Any], layer: str) -> dict[str, Any]:
    return next(s for s in answer["sources"] if s["layer"] == layer)


def _essence(answer: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the response format (ids of merged features may, and
    distances move by the MVT grid's quantisation, well under a metre at z14)."""
    return {
        "statuses": {p["id"]: p["status"] for p in answer["procedures"]},
        "kinds": {s["layer"]: s["kind"] for s in answer["sources"]},
        "prices": [p["price_per_m2"] for p in answer["real_estate"]["land_prices"]],
        "deals": answer["real_estate"]["transactions"],
    }


def test_every_parse_option_names_a_parser() -> None:
    specs = load_catalogue(ROOT / "layers")
    api = [s for s in specs.values() if s.source.kind == "reinfolib"]
    assert len(api) == 14
    for spec in api:
        assert CREDIT in spec.attribution and not spec.synthetic
        for prop, parser in (spec.source.options.get("parse") or {}).items():
            assert parser in PARSERS and spec.property(prop) is not None, (spec.id, prop)


def test_guide_answers_from_official_layers_in_both_formats(
    real_store: Path, tmp_path: Path, server: ReinfolibServer
) -> None:
    answers = {}
    for fmt in ("geojson", "pbf"):
        with _client(real_store, tmp_path / fmt, server, response_format=fmt) as c:
            answers[fmt] = _guide(c, {"geometry": SLOPE})
    a = answers["geojson"]
    src = _source(a, "area-divisions")
    assert src["kind"] == "official-api" and src["api"] == "XKT001"
    assert "不動産情報ライブラリ API XKT001" in src["label"] and src["fetched_at"]
    assert _source(a, "zoning-use-districts")["used"] == "reinfolib-use-districts"
    dev = _proc(a, "development-permit")
    assert dev["status"] == "required"  # 市街化区域 in a special ward, >= 500 m2
    slope = _proc(a, "steep-slope-permit")
    assert slope["status"] == "required"
    assert any("田園調布" in r.get("detail", "") for r in slope["reasons"])
    assert any(CREDIT in c for c in a["credits"])
    prices = a["real_estate"]["land_prices"]
    assert prices and prices[0]["distance_m"] < 100 and prices[0]["price_per_m2"] > 100_000
    deals = a["real_estate"]["transactions"]
    assert deals["count"] >= 1 and deals["median_price_per_m2"] > 10_000  # 万円 read as yen
    fire = _source(a, "fire-prevention-districts")  # shown, though no rule decides on it
    assert fire["kind"] == "official-api" and fire["api"] == "XKT014"
    layers = {lay["layer"]: lay["features"] for lay in a["site"]["layers"]}
    assert {f["properties"]["function"] for f in layers["fire-prevention-districts"]} == {
        "準防火地域"}
    zoning = layers["zoning-use-districts"][0]["properties"]
    assert zoning["function"] == "第1種低層住居専用地域" and zoning["function_code"] == "1"
    assert (zoning["floor_area_ratio"], zoning["floor_area_ratio_text"]) == (100.0, "100%")
    assert zoning["building_coverage_ratio"] == 50.0
    assert _essence(answers["pbf"]) == _essence(a)
    pbf = answers["pbf"]["real_estate"]["land_prices"]
    assert all(abs(x["distance_m"] - y["distance_m"]) < 2 for x, y in zip(pbf, prices, strict=True))


def test_same_official_answer_on_postgis_and_geopackage(
    tmp_path: Path, server: ReinfolibServer, pg_database: Callable[[str], str]
) -> None:
    """The API cache and the answers built on it do not depend on the store backend."""
    demo = ROOT / "data" / "demo"
    gpkg = settings_for(tmp_path / "gpkg", ROOT / "layers")
    pg = pg_settings_for(tmp_path / "pg", ROOT / "layers", pg_database(f"rs{uuid.uuid4().hex[:8]}"))
    answers = []
    for settings in (gpkg, pg):
        build(settings, mirror=demo)
        with TestClient(create_app(use_server(settings, server))) as c:
            answers.append(_guide(c, {"geometry": SLOPE}))
            fetched = len(server.served)
            answers.append(_guide(c, {"geometry": SLOPE}))  # now from the store's cache
            assert len(server.served) == fetched
    assert _source(answers[1], "area-divisions")["kind"] == "official-api"
    assert all(_essence(a) == _essence(answers[0]) for a in answers[1:])


@pytest.mark.parametrize("fmt", ["geojson", "pbf"])
def test_hazard_card_official_sections(
    real_store: Path, tmp_path: Path, server: ReinfolibServer, fmt: str
) -> None:
    with _client(real_store, tmp_path, server, response_format=fmt) as c:
        card = c.get("/api/hazards", params={"lon": 139.735, "lat": 35.55}).json()
        risk = c.get("/api/hazards", params={"lon": 139.7075, "lat": 35.587}).json()
    rows = {r["layer"]: r for r in card["official"]}
    liq = rows["reinfolib-liquefaction"]
    assert liq["status"] == "hit" and liq["source"].startswith("不動産情報ライブラリ API XKT025")
    assert liq["zones"][0]["landform"] == "干拓地" and str(liq["zones"][0]["tendency_level"]) == "5"
    assert rows["reinfolib-steep-slope-areas"]["status"] == "clear"
    assert any(CREDIT in x for x in card["credits"])
    zones = {r["layer"]: r for r in risk["official"]}["reinfolib-disaster-risk-areas"]["zones"]
    assert zones[0]["ordinance"] == "東京都建築安全条例"


def test_async_job_answers_from_the_api_like_the_rest_route(
    real_store: Path, tmp_path: Path, server: ReinfolibServer
) -> None:
    """An OGC async job runs in a worker thread (its own event loop): same official answer."""
    b = {"site": {"geometry": SLOPE}, "works": WORKS}
    with _client(real_store, tmp_path, server) as c:
        server.state.latency_s = 0.02  # the job fetches for real: nothing is cached yet
        created = c.post("/ogc/processes/procedure-guide/execution", json={"inputs": b},
                         headers={"Prefer": "respond-async"})
        assert created.status_code == 201, created.text
        job = "/ogc/jobs/" + created.json()["jobID"]
        deadline = time.monotonic() + 30
        while c.get(job).json()["status"] not in ("successful", "failed"):
            assert time.monotonic() < deadline, "job did not finish"
            time.sleep(0.05)
        result = c.get(job + "/results").json()
        fetched = len(server.served)
        rest = _guide(c, {"geometry": SLOPE})
    assert fetched >= 10 and len(server.served) == fetched  # the REST answer hit the cache
    assert _source(result, "area-divisions")["kind"] == "official-api"
    assert _proc(result, "steep-slope-permit")["status"] == "required"
    assert _essence(result) == _essence(rest)


def test_no_area_division_polygon_means_outside_every_city_planning_area(
    real_store: Path, tmp_path: Path, server: ReinfolibServer
) -> None:
    """The API layer is complete nationally: no 区域区分 at a site is 都市計画区域外."""
    with _client(real_store, tmp_path, server) as c:
        r = c.post("/api/guide", json={"site": {"point": [139.05, 35.80]}, "works": {
            "activities": ["land-development"], "site_area_m2": 12_000}})
    assert r.status_code == 200, r.text
    dev = _proc(r.json(), "development-permit")
    assert dev["status"] == "required"
    assert any("都市計画区域外" in str(x) for x in dev["reasons"])


@pytest.mark.parametrize(("inject", "changes", "reason"), [
    ("500", {"retries": 1, "backoff_s": 0.01}, "server-error"),
    ("429", {"retries": 0}, "rate-limited"),
    ("truncated", {"retries": 0}, "bad-body"),
    ("non-json", {"retries": 0}, "bad-body"),
    ("hang", {"site_budget_s": 1.0, "timeout_s": 0.5, "retries": 0}, None),
    ("bad-pbf", {"response_format": "pbf"}, "bad-pbf"),
    ("wrong-key", {}, "unauthorized"),
    ("no-key", {}, "not-configured"),
])
def test_failures_are_per_layer_reasons_never_not_required(
    real_store: Path, tmp_path: Path, server: ReinfolibServer, monkeypatch: pytest.MonkeyPatch,
    inject: str, changes: dict[str, Any], reason: str | None,
) -> None:
    if inject == "wrong-key":
        monkeypatch.setenv("REINFOLIB_API_KEY", "not-the-key")
    elif inject == "no-key":
        monkeypatch.delenv("REINFOLIB_API_KEY")
    elif inject == "bad-pbf":
        server.inject(inject, count=10_000)
    else:
        server.inject(inject, count=10_000, seconds=5.0)
    with _client(real_store, tmp_path, server, **changes) as c:
        a = _guide(c, {"geometry": SLOPE})
    slope = _proc(a, "steep-slope-permit")
    assert slope["status"] == "undetermined"
    src = _source(a, "reinfolib-steep-slope-areas")
    assert src["kind"] == "unavailable" and src["reason"]
    assert reason is None or src["reason_code"] == reason
    assert any("XKT022" in r.get("detail", "") for r in slope["reasons"])
    dev = _source(a, "area-divisions")
    if inject == "no-key":  # the demo: the synthetic layer answers, and says so
        assert dev["kind"] == "synthetic" and dev["reason_code"] == "not-configured"
    else:  # a key is set: a synthetic polygon must not decide
        assert dev["kind"] == "unavailable"
        assert _proc(a, "development-permit")["status"] == "undetermined"
    assert "not-the-key" not in str(a) and server.key not in str(a)


def test_precedence_and_disagreement(
    real_store: Path, tmp_path: Path, server: ReinfolibServer
) -> None:
    with _client(real_store, tmp_path / "ok", server) as c:
        a = _guide(c, {"point": DISAGREE})
    zoning = _source(a, "zoning-use-districts")
    assert zoning["kind"] == "official-api"
    assert "商業地域" in zoning["disagreement"] and "第1種住居地域" in zoning["disagreement"]
    server.inject("500", count=10_000)
    with _client(real_store, tmp_path / "down", server, retries=0) as c:
        b = _guide(c, {"point": DISAGREE})
    zoning = _source(b, "zoning-use-districts")  # the local official file answers
    assert zoning["kind"] == "official-file" and zoning["reason_code"] == "server-error"
    assert _source(b, "area-divisions")["kind"] == "unavailable"  # synthetic never used


@pytest.mark.browser
def test_guide_page_shows_sources_land_prices_and_the_credit(
    real_store: Path, tmp_path: Path, server: ReinfolibServer
) -> None:
    shutil.copytree(real_store, tmp_path / "store")
    settings = use_server(settings_for(tmp_path / "store", ROOT / "layers", free_port()), server)
    with LiveServer(settings) as live, browser_page(viewport=(1400, 1000)) as page:
        requests = record_requests(page)
        page.goto(live.url + "/guide/")
        page.wait_for_selector("body[data-guide-ready='true']", timeout=30000)
        page.check("input[name=site-mode][value='point']")
        page.evaluate("() => window.guide.setPoint(139.7055, 35.5782)")
        page.fill("input[name=site_area_m2]", "600")
        page.check("input[name=activities][value='new-building']")
        page.click("#guide-submit")
        page.wait_for_selector("#report-sources tr[data-layer='area-divisions']", timeout=30000)
        row = page.locator("#report-sources tr[data-layer='area-divisions']")
        assert row.get_attribute("data-kind") == "official-api"
        label = row.locator(".source-label").inner_text()
        assert "不動産情報ライブラリ API XKT001, fetched" in label
        unavailable = page.locator("#report-sources tr[data-kind='unavailable']")
        assert unavailable.count() == 0
        assert CREDIT in page.locator("#api-credit").inner_text()
        assert page.locator("#land-prices tbody tr").count() >= 1
        assert "円/㎡" in page.locator("#land-prices").inner_text()
        assert "中央値" in page.locator("#transactions").inner_text()
        steep = page.locator("article[data-procedure='steep-slope-permit']")
        assert steep.get_attribute("data-status") == "required"
        assert "田園調布" in steep.inner_text()
        assert page.errors == []  # type: ignore[attr-defined]
        screenshot(page, "guide-official-api")
        assert_local_only(requests)
