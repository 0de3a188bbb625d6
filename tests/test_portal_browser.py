"""The portal page in headless Chromium: links, layer list with credits, synthetic labels."""

from __future__ import annotations

import pytest

from tests.browser import browser_page, screenshot
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


def test_portal_shows_layers_with_credits_and_working_links(live: LiveServer) -> None:
    with browser_page() as page:
        page.goto(live.url + "/")
        rows = page.locator("#layers tbody tr")
        assert rows.count() >= 11
        bear = page.locator("tr[data-layer='wildlife-sightings']")
        assert "東京都環境局" in bear.inner_text() and "CC BY 4.0" in bear.inner_text()
        for row in range(rows.count()):
            assert rows.nth(row).locator("td").nth(4).inner_text().strip()
        synthetic_rows = page.locator("tr.is-synthetic")
        assert synthetic_rows.count() >= 1  # the real store has synthetic demo layers
        for i in range(synthetic_rows.count()):
            assert "synthetic" in synthetic_rows.nth(i).inner_text()
        screenshot(page, "portal")
        page.click("text=OGC API")
        page.wait_for_load_state()
        assert "/ogc" in page.url
        assert page.errors == []


def test_items_html_page_lists_features_with_credit(live: LiveServer) -> None:
    with browser_page() as page:
        page.goto(live.url + "/ogc/collections/sediment-special-zones/items?f=html&limit=5")
        assert page.locator("table.items tbody tr").count() == 5
        assert "東京都建設局" in page.locator("footer").inner_text()
        page.locator("table.items tbody tr a").first.click()
        page.wait_for_load_state()
        assert page.locator("table.item").count() == 1
        screenshot(page, "item")
