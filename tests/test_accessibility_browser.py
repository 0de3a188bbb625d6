"""Accessibility: axe-core finds no violation of any impact on every page, desktop and phone.

Anchor: JIS X 8341-3:2016 level AA (WCAG 2.0 AA), which Tokyo's own sites follow. Each page
is opened in headless Chromium at 1280×900 and 390×844, left to finish loading its data,
checked by axe-core (npm ``axe-core``) and shown in a screenshot; no console error either.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import axe_violations, browser_page, console_errors, get_json, screenshot
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

DESKTOP = (1280, 900)
PHONE = (390, 844)

LOADED = "document.readyState === 'complete'"
#: path → a JavaScript condition that says the page has finished loading its data
PAGES: dict[str, str] = {
    "/": LOADED,
    "/map/?now=2025-11-20": "window.bearmap && window.bearmap.idle",
    "/guide/": "document.body.getAttribute('data-guide-ready') === 'true'",
    "/3d/": "window.viewer3d && window.viewer3d.viewer",
    "/ogc/?f=html": LOADED,
    "/ogc/conformance?f=html": LOADED,
    "/ogc/collections?f=html": LOADED,
    "/ogc/collections/wildlife-sightings?f=html": LOADED,
    "/ogc/collections/wildlife-sightings/queryables?f=html": LOADED,
    "/ogc/collections/wildlife-sightings/items?f=html&limit=5": LOADED,
}


def _check(page: Any, url: str, ready: str, name: str) -> list[dict[str, Any]]:
    page.goto(url)
    page.wait_for_function(ready, timeout=60000)
    page.wait_for_timeout(300)
    screenshot(page, name)
    found = axe_violations(page)
    assert console_errors(page) == [], url
    assert page.errors == [], url
    return found


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_no_axe_violations_on_any_page(live: LiveServer, viewport: tuple[int, int]) -> None:
    item = get_json(f"{live.url}/ogc/collections/wildlife-sightings/items?f=json&limit=1")
    fid = item["features"][0]["id"]
    pages = {**PAGES, f"/ogc/collections/wildlife-sightings/items/{fid}?f=html": PAGES["/"]}
    report: dict[str, list[dict[str, Any]]] = {}
    with browser_page(viewport) as page:
        for path, ready in pages.items():
            name = "a11y-" + ("phone" if viewport == PHONE else "desktop") + "-"
            name += path.strip("/").split("?")[0].replace("/", "-") or "portal"
            found = _check(page, f"{live.url}{path}", ready, name)
            if found:
                report[path] = found
    assert report == {}


def test_keyboard_only_site_and_point(live: LiveServer) -> None:
    """Keyboard alternatives to clicking a map: coordinates on the guide, Enter on the map."""
    with browser_page() as page:
        page.goto(f"{live.url}/guide/")
        page.wait_for_function(PAGES["/guide/"], timeout=60000)
        page.locator("input[name=site-mode][value=point]").focus()
        page.keyboard.press("Space")
        page.locator("#point-coords").focus()
        page.keyboard.type("35.6812, 139.7671")
        page.keyboard.press("Enter")
        site = page.evaluate("window.guide.state.site")
        assert site["point"] == pytest.approx([139.7671, 35.6812])
        page.locator("input[name=site-mode][value=polygon]").focus()
        page.keyboard.press("Space")
        page.locator("#poly-coords").fill("35.681, 139.766\n35.681, 139.767\n35.680, 139.767")
        page.locator("#poly-set").focus()
        page.keyboard.press("Enter")
        ring = page.evaluate("window.guide.state.site.geometry.coordinates[0]")
        assert len(ring) == 4 and ring[0] == ring[-1] == [139.766, 35.681]
        page.locator("#poly-coords").fill("not a coordinate")
        page.locator("#poly-set").focus()
        page.keyboard.press("Enter")
        assert page.locator("#coords-error").is_visible()
        assert console_errors(page) == [] and page.errors == []
    with browser_page() as page:
        page.goto(f"{live.url}/map/?now=2025-11-20")
        page.wait_for_function(PAGES["/map/?now=2025-11-20"], timeout=60000)
        page.locator("#bm-pick").focus()
        page.keyboard.press("Enter")
        page.locator("#bm-map canvas").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("window.bearmap.idle && window.bearmap.query()", timeout=30000)
        dists = page.locator("#bm-list tbody td.bm-dist-col").all_inner_texts()
        values = [float(d.replace("km", "").strip()) for d in dists if d.strip()]
        assert values and values == sorted(values)  # nearest first once a point is set
        # list → map by keyboard: Enter on a focused row selects it on the map
        row = page.locator("#bm-list tbody tr").first
        row.focus()
        page.keyboard.press("Enter")
        assert page.evaluate("window.bearmap.selected()") == row.get_attribute("data-id")
        assert page.locator(".maplibregl-popup").count() == 1
        assert page.errors == []


def test_phone_bear_map_puts_map_and_list_first(live: LiveServer) -> None:
    with browser_page(PHONE) as page:
        page.goto(f"{live.url}/map/?now=2025-11-20")
        page.wait_for_function(PAGES["/map/?now=2025-11-20"], timeout=60000)
        assert not page.evaluate("document.getElementById('bm-drawer').open")
        map_box = page.locator("#bm-map").bounding_box()
        list_box = page.locator("#bm-list").bounding_box()
        filters = page.locator("#bm-drawer > summary").bounding_box()
        assert map_box["y"] < filters["y"] < list_box["y"]
        assert map_box["y"] < 844 and map_box["width"] <= 390
        page.locator("#bm-drawer > summary").focus()
        page.keyboard.press("Enter")
        assert page.locator("#bm-muni").is_visible()
        screenshot(page, "a11y-phone-map-drawer")
