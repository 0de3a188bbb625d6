"""The public bear map (/map/) in headless Chromium, over the real TOKYOくまっぷ extract.

Checks markers, recency colours against a pinned date, list ↔ map sync, the filters
(municipality, species, period, distance), the language toggle, the credit, that nothing
is fetched from outside localhost, and that a hostile description stays inert text.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import Point

from geoservice.build import build
from geoservice.features import Feature
from geoservice.store.gpkg import GpkgStore
from tests.browser import (
    assert_local_only,
    browser_page,
    get_json,
    record_requests,
    screenshot,
)
from tests.conftest import DATA, ROOT, LiveServer, free_port, settings_for

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
NOW = "2025-11-20"
JST = timedelta(hours=9)


def matched(live: LiveServer, **params: str) -> int:
    q = urllib.parse.urlencode({"f": "json", "limit": "1", **params})
    doc = get_json(f"{live.url}/ogc/collections/wildlife-sightings/items?{q}")
    return int(doc["numberMatched"])


def wait_idle(page: Any, loads_before: int | None = None) -> None:
    if loads_before is None:
        page.wait_for_function("window.bearmap && window.bearmap.idle", timeout=30000)
    else:
        page.wait_for_function(
            f"window.bearmap.idle && window.bearmap.loads > {loads_before}", timeout=30000
        )


def loads(page: Any) -> int:
    return int(page.evaluate("window.bearmap.loads"))


def open_map(page: Any, live: LiveServer, query: str = f"now={NOW}") -> list[str]:
    """Go to /map/, wait for the data; returns the list of requested URLs (kept updating)."""
    requests = record_requests(page)
    page.goto(f"{live.url}/map/?{query}")
    wait_idle(page)
    page.wait_for_function("window.bearmap.renderedCount() > 0", timeout=30000)
    return requests


def jst_day(iso: str) -> str:
    """The Japan-time calendar day of an ISO 8601 UTC instant."""
    return (datetime.fromisoformat(iso.replace("Z", "+00:00")) + JST).date().isoformat()


def test_markers_recency_list_and_popup(live: LiveServer) -> None:
    total = matched(live)
    with browser_page() as page:
        requests = open_map(page, live)
        assert page.evaluate("window.bearmap.count()") == total == 790
        assert page.evaluate("window.bearmap.sourceCount()") == total
        assert page.evaluate("window.bearmap.renderedCount()") > 0
        assert page.locator("#bm-list tbody tr").count() == total
        assert "790" in page.locator("#bm-count").inner_text()

        # recency colours relative to the pinned date (red ≤ 1 month, yellow ≤ 3, blue older)
        items = f"{live.url}/ogc/collections/wildlife-sightings/items?f=json&limit=1000"
        feats = get_json(items)["features"]
        by_day = {f["id"]: jst_day(f["properties"]["observed_at"]) for f in feats}
        nov = next(i for i, d in by_day.items() if d.startswith("2025-11"))
        sep = next(i for i, d in by_day.items() if d.startswith("2025-09"))
        old = next(i for i, d in by_day.items() if d.startswith("2024"))
        assert page.evaluate("id => window.bearmap.recency(id)", nov) == "red"
        assert page.evaluate("id => window.bearmap.recency(id)", sep) == "yellow"
        assert page.evaluate("id => window.bearmap.recency(id)", old) == "blue"
        assert page.evaluate("id => window.bearmap.icon(id)", nov).split("-")[2] == "red"
        colours = page.evaluate("ids => ids.map(id => window.bearmap.colour(id))", [nov, sep, old])
        assert colours == ["#d7191c", "#f4c20d", "#2c7bb6"]
        # every feature's class agrees with its age
        ref = datetime(2025, 11, 20, tzinfo=UTC) - JST
        classes = page.evaluate("ids => ids.map(id => window.bearmap.recency(id))", list(by_day))
        for (fid, _), cls in zip(by_day.items(), classes, strict=True):
            obs = datetime.fromisoformat(
                next(f for f in feats if f["id"] == fid)["properties"]["observed_at"].replace(
                    "Z", "+00:00"
                )
            )
            days = (ref - obs).days
            if days <= 27:
                assert cls == "red", (fid, obs)
            elif 32 <= days <= 88:
                assert cls == "yellow", (fid, obs)
            elif days >= 93:
                assert cls == "blue", (fid, obs)
        # the list row carries the same class as the map
        row = page.locator(f"#bm-list tbody tr[data-id='{nov}']")
        assert row.get_attribute("data-recency") == "red"
        screenshot(page, "map-overview")

        # list → map: click a row, the popup shows that feature
        first = page.locator("#bm-list tbody tr").first
        fid = first.get_attribute("data-id")
        first.click()
        popup = page.locator(".maplibregl-popup .bm-popup")
        popup.wait_for(state="visible", timeout=10000)
        assert popup.get_attribute("data-id") == fid
        text = popup.inner_text()
        assert fid in text and "ツキノワグマ" in text and "TOKYOくまっぷ" in text
        feat = next(f for f in feats if f["id"] == fid)
        assert jst_day(feat["properties"]["observed_at"]) in text
        assert page.evaluate("window.bearmap.selected()") == fid
        assert "is-selected" in (first.get_attribute("class") or "")
        page.wait_for_timeout(900)  # fly-to animation
        screenshot(page, "map-popup")

        # map → list: click a marker on the map, its row is highlighted
        page.locator(".maplibregl-popup-close-button").click()
        pos = page.evaluate(
            """() => { const m = window.bearmap.map();
                 const f = m.queryRenderedFeatures({layers: ['sightings']});
                 const c = m.getCanvas().getBoundingClientRect();
                 const w = c.width, h = c.height;
                 for (const x of f) {
                   const p = m.project(x.geometry.coordinates);
                   if (p.x > 40 && p.y > 40 && p.x < w - 60 && p.y < h - 40) {
                     const near = f.filter(o => { const q = m.project(o.geometry.coordinates);
                       return Math.hypot(q.x - p.x, q.y - p.y) < 14; });
                     if (near.length === 1)
                       return {x: c.left + p.x, y: c.top + p.y, id: x.properties.fid};
                   }
                 }
                 return null; }"""
        )
        assert pos is not None
        page.mouse.click(pos["x"], pos["y"])
        page.wait_for_function(f"window.bearmap.selected() === {json.dumps(pos['id'])}")
        row = page.locator(f"#bm-list tbody tr[data-id='{pos['id']}']")
        assert "is-selected" in (row.get_attribute("class") or "")
        assert page.locator(".maplibregl-popup .bm-popup").get_attribute("data-id") == pos["id"]

        # footer credit from the collection metadata; real data: no synthetic banner
        footer = page.locator("footer").inner_text()
        assert "東京都環境局" in footer and "CC BY 4.0" in footer
        assert page.locator("#bm-synthetic").is_hidden()
        assert page.errors == []
        assert_local_only(requests)


def test_filters_change_counts(live: LiveServer) -> None:
    with browser_page() as page:
        requests = open_map(page, live)
        total = page.evaluate("window.bearmap.count()")

        # municipality (names from admin-boundaries)
        options = page.locator("#bm-muni option").all_inner_texts()
        assert "奥多摩町" in options and "八王子市" in options
        n = loads(page)
        page.select_option("#bm-muni", label="奥多摩町")
        wait_idle(page, n)
        okutama = matched(live, municipality_code="13308")
        assert page.evaluate("window.bearmap.count()") == okutama == 317
        assert "municipality_code=13308" in page.evaluate("window.bearmap.query()")
        places = set(page.locator("#bm-list tbody td.bm-place").all_inner_texts())
        assert places == {"奥多摩町"}
        screenshot(page, "map-okutama")
        n = loads(page)
        page.select_option("#bm-muni", value="")
        wait_idle(page, n)
        assert page.evaluate("window.bearmap.count()") == total

        # species: only wild boar → none in this extract; bear only → all; two → CQL2 IN
        def only(*species: str) -> None:
            for cb in page.locator("#bm-species input").all():
                want = cb.get_attribute("value") in species
                if cb.is_checked() != want:
                    n = loads(page)
                    cb.set_checked(want)
                    wait_idle(page, n)

        only("wild-boar")
        assert page.evaluate("window.bearmap.count()") == 0
        assert "species=wild-boar" in page.evaluate("window.bearmap.query()")
        only("asian-black-bear", "wild-boar")
        assert page.evaluate("window.bearmap.count()") == total
        assert "filter=" in page.evaluate("window.bearmap.query()")
        only(*page.locator("#bm-species input").evaluate_all("e => e.map(x => x.value)"))
        assert page.evaluate("window.bearmap.count()") == total

        # period 2025-01-01..2025-12-31 (Japan days) → same as the API's numberMatched
        n = loads(page)
        page.fill("#bm-from", "2025-01-01")
        wait_idle(page, n)
        n = loads(page)
        page.fill("#bm-to", "2025-12-31")
        wait_idle(page, n)
        dt = "2024-12-31T15:00:00Z/2025-12-31T14:59:59Z"
        q = urllib.parse.parse_qs(page.evaluate("window.bearmap.query()"))
        assert q["datetime"] == [dt]
        in_2025 = matched(live, datetime=dt)
        assert 0 < in_2025 < total
        assert page.evaluate("window.bearmap.count()") == in_2025
        days = page.locator("#bm-list tbody td.bm-date").all_inner_texts()
        assert all(d.strip().startswith("2025-") for d in days)
        n = loads(page)
        page.click("[data-quick='']")
        wait_idle(page, n)
        assert page.evaluate("window.bearmap.count()") == total

        # distance: "pick a point" then click the map centre; 5 km radius → fewer
        page.select_option("#bm-radius", "5")
        page.click("#bm-pick")
        assert page.locator("#bm-map-hint").is_visible()
        box = page.locator("#bm-map").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_function(f"window.bearmap.count() < {total}")
        near5 = page.evaluate("window.bearmap.count()")
        assert page.locator("#bm-clear-point").is_visible()
        assert page.locator("#bm-list th.bm-dist-col").is_visible()
        dists = [
            float(x.split()[0])
            for x in page.locator("#bm-list tbody td.bm-dist-col").all_inner_texts()
        ]
        assert len(dists) == near5 and all(d <= 5.0 for d in dists)
        page.select_option("#bm-radius", "20")
        page.wait_for_function(f"window.bearmap.count() !== {near5}")
        assert near5 < page.evaluate("window.bearmap.count()") <= total
        screenshot(page, "map-distance")
        page.click("#bm-clear-point")
        page.wait_for_function(f"window.bearmap.count() === {total}")
        assert page.errors == []
        assert_local_only(requests)


def test_my_location_and_language_toggle(live: LiveServer) -> None:
    with browser_page() as page:
        page.context.grant_permissions(["geolocation"], origin=live.url)
        page.context.set_geolocation({"latitude": 35.805, "longitude": 139.095})  # 奥多摩
        requests = open_map(page, live)
        total = page.evaluate("window.bearmap.count()")
        page.select_option("#bm-radius", "3")
        page.click("#bm-locate")
        page.wait_for_function(f"window.bearmap.count() < {total}")
        assert 0 < page.evaluate("window.bearmap.count()") < total
        assert "35.8050" in page.locator("#bm-point-msg").inner_text()

        assert page.evaluate("document.documentElement.lang") == "ja"
        assert page.locator("#bm-title").inner_text() == "クマ出没マップ（東京都）"
        page.click("#bm-lang")
        assert page.evaluate("document.documentElement.lang") == "en"
        assert page.locator("#bm-title").inner_text() == "Bear sightings map (Tokyo)"
        assert "Municipality" in page.locator("#bm-filters").inner_text()
        assert "Sighting" in page.locator("#bm-legend").inner_text()
        assert page.locator("#bm-list thead").inner_text().split()[0] == "Date"
        assert "records" in page.locator("#bm-count").inner_text()
        assert "lang=en" in page.url
        page.locator("#bm-list tbody tr").first.click()
        popup = page.locator(".maplibregl-popup .bm-popup")
        popup.wait_for(state="visible")
        assert "Asian black bear" in popup.inner_text()
        screenshot(page, "map-english")
        page.click("#bm-lang")
        assert page.locator("#bm-title").inner_text() == "クマ出没マップ（東京都）"
        assert "ツキノワグマ" in page.locator(".maplibregl-popup .bm-popup").inner_text()
        assert page.errors == []
        assert_local_only(requests)


@pytest.fixture(scope="module")
def xss_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    """A small store (sightings + boundaries) with one feature whose description is hostile."""
    tmp = tmp_path_factory.mktemp("map-xss")
    settings = settings_for(tmp, ROOT / "layers", free_port())
    build(settings, mirror=DATA, layers=["wildlife-sightings", "admin-boundaries"])
    store = GpkgStore(Path(settings.store.path))
    fid = "xss-test-1"
    store.create(
        "wildlife-sightings",
        Feature(
            fid,
            {
                "species": "asian-black-bear",
                "kind": "witness",
                "reliability": "high",
                "observed_at": "2025-11-19T03:30:00Z",
                "municipality_code": "13308",
                "count": 1,
                "description": XSS,
                "source": "test <b>source</b>",
                "status": "published",
            },
            Point(139.05, 35.81),
        ),
    )
    store.close()
    with LiveServer(settings) as srv:
        yield srv, fid


def test_hostile_description_is_inert_text(xss_live: tuple[LiveServer, str]) -> None:
    live, fid = xss_live
    with browser_page() as page:
        requests = open_map(page, live)
        assert page.evaluate("window.bearmap.count()") == 791
        row = page.locator(f"#bm-list tbody tr[data-id='{fid}']")
        assert row.locator("td.bm-time").inner_text() == "12:30"  # 03:30Z in Japan time
        row.click()
        popup = page.locator(".maplibregl-popup .bm-popup")
        popup.wait_for(state="visible")
        page.wait_for_timeout(500)
        assert XSS in popup.inner_text()
        assert "test <b>source</b>" in popup.inner_text()
        assert popup.locator("img[src='x'], script, b").count() == 0
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert page.evaluate("id => window.bearmap.recency(id)", fid) == "red"
        screenshot(page, "map-xss")
        assert page.errors == []
        assert_local_only(requests)
