"""The procedure-guide page /guide/ in headless Chromium against the live server.

One walk through the page as a builder would use it: find a parcel by 地番, click a point
inside a real 土砂災害特別警戒区域 in 八王子市, draw a polygon, submit the works, read the
grouped results with their reasons, see the zone drawn, print, switch the language.  The
page must raise no script error and request nothing from any host but the live server.
"""

from __future__ import annotations

import urllib.error
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from shapely.geometry import shape

from tests.browser import (
    assert_local_only,
    browser_page,
    get_json,
    record_requests,
    screenshot,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

PERMIT = "sediment-specific-development-permit"
HACHIOJI = "13201"
OTA = "13111"


def _get(live: LiveServer, path: str) -> Any:
    return get_json(live.url + path)


def _red_zone_in_hachioji(live: LiveServer) -> tuple[str, Any]:
    """A real 土砂災害特別警戒区域 feature in 八王子市 (id, shapely geometry)."""
    fc = _get(
        live,
        "/ogc/collections/sediment-special-zones/items?f=json&limit=50"
        "&bbox=139.15,35.60,139.40,35.72",
    )
    for f in fc["features"]:
        geom = shape(f["geometry"])
        if f["properties"].get("new_city") == "八王子市" and geom.area > 2e-7:
            return str(f["id"]), geom
    raise AssertionError("no 八王子市 sediment special warning zone in the store")


def _demo_parcel(live: LiveServer) -> dict[str, Any]:
    """A parcel from the 地番 search of 八王子市 or 大田区 (the demo parcels)."""
    for code in (HACHIOJI, OTA):
        fc = _get(live, f"/api/parcels?municipality_code={code}&q=&limit=5")
        if fc["features"]:
            return dict(fc["features"][0])
    raise AssertionError("no parcel in 八王子市 or 大田区 from /api/parcels")


def _in_synthetic_layer(live: LiveServer, feature_id: str) -> bool:
    """Whether a parcel id belongs to a synthetic parcel layer."""
    for layer in _get(live, "/api/guide/rules").get("parcel_layers", []):
        meta = _get(live, f"/ogc/collections/{layer}?f=json")
        try:
            _get(live, f"/ogc/collections/{layer}/items/{quote(feature_id, safe='')}?f=json")
        except urllib.error.HTTPError:
            continue
        return bool(meta.get("synthetic"))
    return False


def _wait_ready(page: Any) -> None:
    page.wait_for_selector("body[data-guide-ready='true']", timeout=30000)


def _submit(page: Any) -> None:
    page.click("#guide-submit")
    page.wait_for_function("() => !document.querySelector('#guide-submit').disabled", timeout=30000)


def _click_map_at(page: Any, lon: float, lat: float) -> None:
    """A real mouse click on the map canvas at a geographic position (via map.project)."""
    pos = page.evaluate(
        "([lon, lat]) => { const p = window.guide.map.project([lon, lat]); return [p.x, p.y]; }",
        [lon, lat],
    )
    box = page.locator("#map canvas").bounding_box()
    assert box is not None
    assert 0 <= pos[0] <= box["width"] and 0 <= pos[1] <= box["height"], pos
    page.mouse.click(box["x"] + pos[0], box["y"] + pos[1])


def _jump(page: Any, lon: float, lat: float, zoom: float) -> None:
    page.evaluate(
        "([lon, lat, z]) => window.guide.map.jumpTo({center: [lon, lat], zoom: z})",
        [lon, lat, zoom],
    )
    page.wait_for_function("() => window.guide.map.loaded()", timeout=15000)


def test_guide_page_end_to_end(live: LiveServer) -> None:
    zone_id, zone = _red_zone_in_hachioji(live)
    inside = zone.representative_point()
    parcel = _demo_parcel(live)
    with browser_page(viewport=(1400, 1000)) as page:
        # a consultant abroad: the printed report must still say the time in Japan
        page.context.new_cdp_session(page).send(
            "Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
        requests = record_requests(page)
        page.goto(live.url + "/guide/")
        _wait_ready(page)
        assert page.locator("html").get_attribute("lang") == "ja"
        assert "手続きガイド" in page.locator("#guide-title").inner_text()
        # the data credits are in the footer, synthetic layers marked
        credits = page.locator("#credits")
        assert "東京都建設局" in credits.inner_text()
        assert page.locator("#credits li.is-synthetic .badge").count() >= 1

        # 1. parcel by 地番: municipality + chiban → search → pick → site = parcel
        props = parcel["properties"]
        page.select_option("#municipality", props["municipality_code"])
        page.fill("#chiban", props["chiban"])
        page.click("#parcel-search")
        page.wait_for_selector("#parcel-results button")
        page.locator("#parcel-results button").first.click()
        site = page.evaluate("() => window.guide.state.site")
        assert site == {
            "parcel": {"municipality_code": props["municipality_code"], "chiban": props["chiban"]}
        }
        assert props["chiban"] in page.locator("#site-summary").inner_text()
        if _in_synthetic_layer(live, parcel["id"]):
            page.wait_for_selector("#site-summary .badge")
        page.check("input[name=activities][value='new-building']")
        page.select_option("select[name=use]", "detached-house")
        _submit(page)
        assert page.locator("#guide-error").is_hidden(), page.locator("#guide-error").inner_text()
        assert page.locator("#results .procedure").count() >= 20
        screenshot(page, "guide-parcel")

        # 2. a real click inside the red zone (point mode): site = point; site area matters
        page.check("input[name=site-mode][value='point']")
        _jump(page, inside.x, inside.y, 17)
        _click_map_at(page, inside.x, inside.y)
        point = page.evaluate("() => window.guide.state.site.point")
        assert abs(point[0] - inside.x) < 2e-5 and abs(point[1] - inside.y) < 2e-5, point
        assert shape({"type": "Point", "coordinates": point}).within(zone)
        # without a site area the API refuses a point: the error is shown as text
        page.fill("input[name=site_area_m2]", "")
        _submit(page)
        error = page.locator("#guide-error")
        assert error.is_visible()
        assert "site_area_m2" in error.inner_text()
        assert error.locator("script, img, iframe").count() == 0
        page.fill("input[name=site_area_m2]", "450")
        page.select_option("select[name=use]", "apartment-for-sale-or-rent")
        page.fill("input[name=floor_area_m2]", "900")
        page.fill("input[name=building_height_m]", "12")
        page.fill("input[name=storeys]", "3")
        page.select_option("select[name=structure]", "rc")
        _submit(page)
        assert error.is_hidden(), error.inner_text()
        card = page.locator(f"#group-required article[data-procedure='{PERMIT}']")
        assert card.count() == 1
        reasons = card.locator(".reasons li")
        assert reasons.count() >= 2
        text = card.inner_text()
        assert zone_id in text and "土砂災害特別警戒区域" in text
        assert "土砂災害警戒区域等における土砂災害防止対策の推進に関する法律" in text
        assert card.locator(f"a[data-feature-id='{zone_id}']").count() == 1
        # the other groups are there too, each procedure once
        assert page.locator("#results article.procedure").count() == len(
            page.evaluate("() => window.guide.state.answer.procedures")
        )
        assert page.locator("#timeline li").count() >= 1
        # the deadline is exact and says how the law counts it (7 clear days: start - 8)
        recycling = page.locator("article[data-procedure='construction-recycling-notice']")
        timing = recycling.locator(".timing").text_content() or ""
        assert "8日前まで" in timing and "初日不算入" in timing, timing
        assert page.locator("#disclaimer-answer").is_visible()
        # the zone is drawn: the hits source holds the red-zone feature
        hits = page.evaluate(
            "() => window.guide.state.hits.features"
            ".map(f => [f.properties.layer, f.properties.feature_id])"
        )
        assert ["sediment-special-zones", zone_id] in hits
        page.wait_for_function(
            "(id) => window.guide.map.loaded() && window.guide.map.querySourceFeatures('hits')"
            ".some(f => f.properties.feature_id === id)",
            arg=zone_id,
            timeout=15000,
        )
        screenshot(page, "guide-point-red-zone")

        # 3. draw a polygon around the point with real clicks; finish with the button
        page.check("input[name=site-mode][value='polygon']")
        _jump(page, inside.x, inside.y, 17)
        d = 0.0004
        for dx, dy in ((-d, -d), (d, -d), (d, d), (-d, d)):
            _click_map_at(page, inside.x + dx, inside.y + dy)
        assert page.evaluate("() => window.guide.state.vertices.length") == 4
        page.click("#poly-finish")
        geom = page.evaluate("() => window.guide.state.site.geometry")
        assert geom["type"] == "Polygon" and len(geom["coordinates"][0]) == 5
        assert shape(geom).intersects(zone)
        page.check("input[name=activities][value='land-development']")
        _submit(page)
        assert error.is_hidden(), error.inner_text()
        assert page.locator(f"#group-required article[data-procedure='{PERMIT}']").count() == 1
        area_text = page.locator("#report-site").inner_text()
        assert "m²" in area_text
        page.wait_for_function("() => window.guide.map.loaded()", timeout=15000)
        screenshot(page, "guide-polygon")

        # 4. the language toggle switches the labels
        page.click("#lang-toggle")
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.locator("#guide-title").inner_text().strip() == "Procedure guide"
        assert "Required" in page.locator("#group-required h3").inner_text()
        assert (
            "Reasons"
            in page.locator(f"#group-required article[data-procedure='{PERMIT}']").inner_text()
        )
        # the hazard card's plain texts follow the language too
        card = page.evaluate("() => window.guide.state.answer.hazards || {}")
        if card.get("layers") and isinstance(card.get("disclaimer"), dict):
            assert card["disclaimer"]["en"] in page.locator("#report-hazards").inner_text()
        screenshot(page, "guide-en")
        page.click("#lang-toggle")
        assert page.locator("html").get_attribute("lang") == "ja"
        assert "必要" in page.locator("#group-required h3").inner_text()
        if card.get("layers") and isinstance(card.get("disclaimer"), dict):
            assert card["disclaimer"]["ja"] in page.locator("#report-hazards").inner_text()

        # 5. the print view: the report for the counter
        page.emulate_media(media="print")
        page.wait_for_function(
            "() => Math.abs(document.querySelector('#map canvas').getBoundingClientRect().width"
            " - document.querySelector('#map').clientWidth) < 3",
            timeout=10000,
        )
        page.wait_for_function("() => window.guide.map.loaded()", timeout=15000)
        assert page.locator("#guide-form").is_hidden()
        assert page.locator("#print-table").is_visible()
        row = page.locator(f"#print-table tr[data-procedure='{PERMIT}']")
        assert row.count() == 1 and zone_id in row.inner_text()
        assert page.locator("#report-site").is_visible()
        assert page.locator("#report-works").is_visible()
        stamp = page.locator("#report-date").inner_text()
        tokyo = [datetime.now(ZoneInfo("Asia/Tokyo")) - timedelta(minutes=m) for m in (0, 5)]
        assert "JST" in stamp and any(f"{t.year}/{t.month}/{t.day} {t.hour}:" in stamp
                                      for t in tokyo), stamp
        assert page.locator("#timeline").is_visible()
        assert page.locator("#disclaimer").is_visible()
        assert page.locator("#credits").is_visible()
        screenshot(page, "guide-print")
        page.emulate_media(media="screen")

        assert page.errors == []
        assert_local_only(requests)


def test_portal_links_to_the_guide(live: LiveServer) -> None:
    with browser_page() as page:
        page.goto(live.url + "/")
        link = page.locator("a[href='/guide/']")
        assert link.count() == 1
        link.click()
        page.wait_for_load_state()
        assert page.url.endswith("/guide/")
        _wait_ready(page)
        assert page.errors == []
