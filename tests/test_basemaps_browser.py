"""Basemaps and terrain on the map pages, in headless Chromium, against a LOCAL tile server.

The tests' tile server (tests/tileserver.py) stands in for 地理院タイル: flat-coloured image
tiles per layer and 標高タイル PNGs of a known synthetic height field. Checked: tiles are
requested, drawn (pixels of the layer's colour in a screenshot) and credited (地理院タイル
linked to its terms page); the switcher works from the keyboard; the 3D viewer's terrain
decodes the PNG encoding (positive, negative and no-data heights) onto the geoid-based
ground of the buildings; with an unreachable tile server every page still works and says
so quietly, without page errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from geoservice.city3d.tiles3d import TOKYO_GEOID_M
from tests.browser import browser_page, console_errors, screenshot
from tests.conftest import ROOT, LiveServer, free_port, settings_for
from tests.tileserver import COLOURS, basemaps_at, height_tp, shared_tile_server

pytestmark = pytest.mark.browser

GSI_TERMS = "https://maps.gsi.go.jp/development/ichiran.html"


@pytest.fixture(scope="module")
def offline(real_store: Path) -> Iterator[tuple[LiveServer, str]]:
    """The app with every basemap pointed at a port nobody listens on."""
    dead = f"http://127.0.0.1:{free_port()}"
    settings = settings_for(real_store, ROOT / "layers", free_port())
    with LiveServer(settings.model_copy(update={"basemaps": basemaps_at(dead)})) as srv:
        yield srv, dead


def share_of_colour(png: Path, rgb: tuple[int, int, int], tol: int = 12) -> float:
    """Share of the screenshot's pixels within ``tol`` of ``rgb`` on every channel."""
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    close = np.all(np.abs(img - np.array(rgb)) <= tol, axis=-1)
    return float(close.mean())


def map_shot(page: Any, selector: str, name: str) -> Path:
    path = screenshot(page, name)
    box = page.locator(selector).bounding_box()
    crop = Path(str(path).replace(".png", "-map.png"))
    Image.open(path).crop(
        (int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"]))
    ).save(crop)
    return crop


def wait_basemap(page: Any, handle: str, layer: str) -> None:
    """Until a tile of ``layer`` has loaded and the map has drawn it."""
    page.wait_for_function(f"{handle} && {handle}.loadedTiles('{layer}') > 0", timeout=30000)
    page.wait_for_timeout(300)


def test_bear_map_draws_credits_and_switches_basemap(live: LiveServer) -> None:
    tiles = shared_tile_server()
    before = len(tiles.requests)
    with browser_page() as page:
        page.goto(f"{live.url}/map/?now=2025-11-20")
        page.wait_for_function("window.bearmap && window.bearmap.idle", timeout=30000)
        wait_basemap(page, "window.bearmap.basemap()", "pale")
        assert any(r[0] == "pale" for r in tiles.requests[before:])
        page.wait_for_function("window.bearmap.map().loaded()", timeout=30000)
        shot = map_shot(page, "#bm-map", "basemap-map-pale")
        assert share_of_colour(shot, COLOURS["pale"], tol=30) > 0.05
        # credited on the map (attribution control) and in the footer, linked to the terms
        attribution = page.locator("#bm-map .maplibregl-ctrl-attrib a", has_text="地理院タイル")
        assert attribution.get_attribute("href") == GSI_TERMS
        footer = page.locator("footer .basemap-credit a", has_text="地理院タイル")
        assert footer.get_attribute("href") == GSI_TERMS
        # keyboard only: focus the switcher's checked radio, arrow to the next (標準地図)
        page.locator(".gt-basemaps input[value=pale]").focus()
        page.keyboard.press("ArrowDown")
        assert page.locator(".gt-basemaps input[value=std]").is_checked()
        wait_basemap(page, "window.bearmap.basemap()", "std")
        assert page.evaluate("window.bearmap.basemap().current()") == "std"
        page.wait_for_function("window.bearmap.map().loaded()", timeout=30000)
        shot = map_shot(page, "#bm-map", "basemap-map-std")
        assert share_of_colour(shot, COLOURS["std"], tol=30) > 0.05
        assert share_of_colour(shot, COLOURS["pale"], tol=10) < 0.01
        assert page.errors == []
        assert console_errors(page) == []


def test_guide_map_basemap(live: LiveServer) -> None:
    with browser_page() as page:
        page.goto(f"{live.url}/guide/")
        page.wait_for_selector("body[data-guide-ready=true]", timeout=30000)
        wait_basemap(page, "window.guide.basemap", "pale")
        assert page.locator("#map .maplibregl-ctrl-attrib a", has_text="地理院タイル").count() == 1
        assert page.locator("#credits-box .basemap-credit a").get_attribute("href") == GSI_TERMS
        assert page.errors == []
        assert console_errors(page) == []


def test_pages_work_offline_and_say_so(offline: tuple[LiveServer, str]) -> None:
    srv, dead = offline
    with browser_page() as page:
        page.goto(f"{srv.url}/map/?now=2025-11-20")
        page.wait_for_function("window.bearmap && window.bearmap.idle", timeout=30000)
        page.wait_for_function("window.bearmap.renderedCount() > 0", timeout=30000)
        note = page.locator("#bm-map .gt-basemap-note")
        note.wait_for(state="visible", timeout=30000)
        assert "背景地図を利用できません" in note.inner_text()
        assert page.locator("#bm-list tbody tr").count() > 0
        screenshot(page, "basemap-map-offline")
        assert page.errors == []
        assert console_errors(page, ignore_origin=dead) == []
    with browser_page() as page:
        page.goto(f"{srv.url}/guide/")
        page.wait_for_selector("body[data-guide-ready=true]", timeout=30000)
        page.locator("#map .gt-basemap-note").wait_for(state="visible", timeout=30000)
        assert page.errors == []
        assert console_errors(page, ignore_origin=dead) == []


@pytest.fixture(scope="module")
def v3(real_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app over the real store with a freshly written buildings tileset."""
    from tests.test_viewer3d_browser import write_buildings_tiles

    tiles = tmp_path_factory.mktemp("tiles3d")
    write_buildings_tiles(real_store, tiles)
    settings = settings_for(real_store, ROOT / "layers", free_port())
    with LiveServer(settings.model_copy(update={"tiles_dir": tiles})) as srv:
        yield srv


def test_3d_imagery_terrain_and_credit(v3: LiveServer) -> None:
    tiles = shared_tile_server()
    before = len(tiles.requests)
    with browser_page() as page:
        page.goto(f"{v3.url}/3d/")
        page.wait_for_function("window.viewer3d && window.viewer3d.loaded", timeout=60000)
        page.wait_for_function(
            "(b => b.imageryStats && b.imageryStats.loaded > 0 && b.terrainStats.loaded > 0)"
            "(window.viewer3d.basemap())",
            timeout=60000,
        )
        seen = {r[0] for r in tiles.requests[before:]}
        assert {"seamlessphoto", "dem_png"} <= seen
        # the 標高タイル encoding: x = 2^16 R + 2^8 G + B, 0.01 m steps, 2^23 = no data
        decode = "([r, g, b]) => window.viewer3d.decodeDem(r, g, b)"
        assert page.evaluate(decode, [0, 0, 1]) == pytest.approx(0.01)
        assert page.evaluate(decode, [0, 14, 16]) == pytest.approx(36.00)
        assert page.evaluate(decode, [128, 0, 0]) is None
        assert page.evaluate(decode, [255, 255, 255]) == pytest.approx(-0.01)
        assert page.evaluate(decode, [127, 255, 255]) == pytest.approx(83886.07)
        # heights from the served PNGs: above the geoid, shifted onto the ellipsoid like the
        # buildings' 3D Tiles (T.P. + TOKYO_GEOID_M): positive, negative and no-data areas
        for lon, lat in [(139.3, 35.75), (139.7, 35.7), (139.95, 35.7), (139.6, 35.5)]:
            got = page.evaluate(
                "([lon, lat]) => window.viewer3d.terrainHeight(lon, lat, 12)", [lon, lat]
            )
            want = float(np.nan_to_num(height_tp(lon, lat))) + TOKYO_GEOID_M
            assert got == pytest.approx(want, abs=1.0), (lon, lat)
        # credited on the globe and in the footer
        assert page.locator(f"#v3-map a[href='{GSI_TERMS}']").count() >= 1
        assert page.locator(f"footer .basemap-credit a[href='{GSI_TERMS}']").count() == 1
        # a point overlay on the terrain: each point placed at the sampled terrain height
        page.locator("input[data-overlay='wildlife-sightings']").check()
        page.wait_for_function(
            "window.viewer3d.overlayCount('wildlife-sightings') > 0", timeout=60000
        )
        assert page.evaluate("window.viewer3d.overlayError('wildlife-sightings')") is None
        screenshot(page, "basemap-3d")
        # keyboard: imagery radio group and the terrain switch
        page.locator("input[name=imagery][value=seamlessphoto]").focus()
        page.keyboard.press("ArrowDown")
        page.wait_for_function(
            "window.viewer3d.basemap().imagery === 'pale'"
            " && window.viewer3d.basemap().imageryStats.loaded > 0",
            timeout=30000,
        )
        assert "imagery=pale" in page.url
        page.locator("#v3-terrain").focus()
        page.keyboard.press("Space")
        page.wait_for_function("!window.viewer3d.basemap().terrain", timeout=10000)
        assert "terrain=0" in page.url
        assert page.errors == []
        assert console_errors(page) == []


def test_3d_offline(offline: tuple[LiveServer, str]) -> None:
    srv, dead = offline
    with browser_page() as page:
        page.goto(f"{srv.url}/3d/")
        page.wait_for_function("window.viewer3d && window.viewer3d.viewer", timeout=60000)
        note = page.locator("#v3-basemap-note")
        note.wait_for(state="visible", timeout=60000)
        assert "利用できません" in note.inner_text()
        page.wait_for_function("!window.viewer3d.basemap().terrain", timeout=10000)
        screenshot(page, "basemap-3d-offline")
        assert page.errors == []
        assert console_errors(page, ignore_origin=dead) == []
