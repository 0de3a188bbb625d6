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
