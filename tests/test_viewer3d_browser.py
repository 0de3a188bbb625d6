"""The planners' 3D viewer (/3d/) in headless Chromium, over the real PLATEAU extracts.

The buildings tileset is written with the city3d pipeline (``write_tiles``) into a tiles
directory of this module's own server (the ``live`` store, ``tiles_dir`` in tmp), so the test
never touches the project's ``tiles/``. Checks: every tile loads, the tileset sits in Tokyo
at a sane height, picking a building shows the OGC API's attributes, the colour switch
restyles, overlays load from the OGC API with credits and the synthetic banner, measurements
agree with pyproj's geodesics, the share link restores camera + layers, no page errors and
nothing is fetched from outside localhost.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyproj import Geod
from shapely.geometry import shape

from tests.browser import (
    assert_local_only,
    browser_page,
    get_json,
    record_requests,
    screenshot,
)
from tests.conftest import DATA, ROOT, LiveServer, free_port, settings_for

pytestmark = pytest.mark.browser

KNOWN = "13111-bldg-726"  # a Haneda (大田区) LOD2 building with 多摩川 flood attributes
GEOD = Geod(ellps="WGS84")


def write_buildings_tiles(store: Path, tiles: Path) -> None:
    """The buildings layer's CityGML sources -> 3D Tiles, with the city3d pipeline."""
    from geoservice.city3d.tiles3d import write_tiles
    from geoservice.loaders.codelists import CodeLists
    from geoservice.store.gpkg import GpkgStore

    st = GpkgStore(store / "store.gpkg")
    try:
        spec = st.spec("buildings")
    finally:
        st.close()
    files = [DATA / p for p in spec.source.paths]
    report = write_tiles(
        files,
        tiles / "buildings",
        CodeLists(DATA / "plateau" / "codelists"),
        attribution=spec.attribution,
    )
    assert report.problems == [] and report.buildings > 0


@pytest.fixture(scope="module")
def v3(real_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app over the real store with a freshly written buildings tileset."""
    tiles = tmp_path_factory.mktemp("tiles3d")
    write_buildings_tiles(real_store, tiles)
    settings = settings_for(real_store, ROOT / "layers", free_port())
    # flat ground at the geoid (terrain: null): the measurements below are checked against
    # it; terrain from 標高タイル is tested in test_basemaps_browser
    flat = settings.basemaps.model_copy(update={"terrain": None})
    with LiveServer(settings.model_copy(update={"tiles_dir": tiles, "basemaps": flat})) as srv:
        yield srv  # /3dtiles/ is the app's own mount (geoservice.city3d.static)


def open_viewer(page: Any, srv: LiveServer, fragment: str = "") -> list[str]:
    """Go to /3d/ and wait until every tile of the view has loaded."""
    requests = record_requests(page)
    page.goto(f"{srv.url}/3d/{fragment}")
    wait_tiles(page)
    return requests


def wait_tiles(page: Any) -> None:
    page.wait_for_function(
        "window.viewer3d && window.viewer3d.loaded && window.viewer3d.tilesLoaded", timeout=60000
    )


def building(srv: LiveServer, building_id: str) -> dict[str, Any]:
    q = urllib.parse.urlencode({"f": "json", "building_id": building_id})
    feats = get_json(f"{srv.url}/ogc/collections/buildings/items?{q}")["features"]
    assert len(feats) == 1
    return dict(feats[0])


def look_at(page: Any, lon: float, lat: float, height: float = 350.0) -> None:
    """Camera straight down over (lon, lat); wait for the tiles of the new view."""
    page.evaluate("a => window.viewer3d.lookDown(a[0], a[1], a[2])", [lon, lat, height])
    page.wait_for_timeout(300)
    wait_tiles(page)
    page.wait_for_timeout(500)


def test_tiles_load_in_tokyo_with_credits(v3: LiveServer) -> None:
    with browser_page() as page:
        requests = open_viewer(page, v3)
        assert page.evaluate("window.viewer3d.failures") == []
        c = page.evaluate("window.viewer3d.centre()")
        assert 139.0 <= c["lon"] <= 140.5 and 35.3 <= c["lat"] <= 36.0, c
        assert -100 <= c["height"] <= 500, c
        ogc = get_json(f"{v3.url}/ogc/collections/buildings/items?f=json&limit=1000")
        ids = {f["properties"]["building_id"] for f in ogc["features"]}
        assert set(page.evaluate("window.viewer3d.buildingIds()")) == ids
        assert str(len(ids)) in page.locator("#v3-status").inner_text()

        meta = get_json(f"{v3.url}/ogc/collections/buildings?f=json")
        page.wait_for_selector("#v3-credits li[data-collection=buildings]")
        assert meta["attribution"] in page.locator("#v3-credits").inner_text()
        assert page.locator("canvas").count() >= 1
        screenshot(page, "viewer3d_initial")
        assert page.errors == []
        assert_local_only(requests)
        assert any("/3dtiles/buildings/tiles/" in u for u in requests)


def test_pick_building_shows_ogc_attributes(v3: LiveServer) -> None:
    feat = building(v3, KNOWN)
    props = feat["properties"]
    pt = shape(feat["geometry"]).representative_point()
    with browser_page() as page:
        requests = open_viewer(page, v3)
        look_at(page, pt.x, pt.y)
        xy = page.evaluate("a => window.viewer3d.screenOf(a[0], a[1], 60)", [pt.x, pt.y])
        page.mouse.click(xy["pageX"], xy["pageY"])
        page.wait_for_selector("#v3-info:not([hidden])")
        cell = page.locator("#v3-info tr[data-key=building_id] td")
        assert cell.inner_text() == KNOWN
        assert page.evaluate("window.viewer3d.selected.building_id") == props["building_id"]
        height = page.locator("#v3-info tr[data-key=measured_height] td").inner_text()
        assert float(height) == pytest.approx(props["measured_height"])
        depth = page.locator("#v3-info tr[data-key=flood_depth_m] td").inner_text()
        assert float(depth) == pytest.approx(props["flood_depth_m"], abs=0.01)
        # the OGC item link resolves to the feature id (gml:id), the guide link is there
        page.wait_for_selector("#v3-link-item[data-fid]")
        href = page.get_attribute("#v3-link-item", "href")
        assert href == f"/ogc/collections/buildings/items/{urllib.parse.quote(feat['id'])}?f=html"
        assert page.get_attribute("#v3-link-guide", "href") == "/guide/"
        assert f"sel={KNOWN}" in page.evaluate("location.hash")
        screenshot(page, "viewer3d_pick")
        # a click on empty ground clears the selection
        page.mouse.click(xy["pageX"] + 250, xy["pageY"] + 250)
        page.wait_for_selector("#v3-info[hidden]", state="attached")
        assert page.errors == []
        assert_local_only(requests)


def test_colour_switch_restyles(v3: LiveServer) -> None:
    with browser_page() as page:
        open_viewer(page, v3)
        by_height = page.evaluate("id => window.viewer3d.featureColour(id)", KNOWN)
        style_h = page.evaluate("JSON.stringify(window.viewer3d.tileset.style.style)")
        legend_h = page.locator("#v3-legend").inner_text()
        page.check("input[name=colour][value=flood]")
        page.wait_for_timeout(300)
        by_flood = page.evaluate("id => window.viewer3d.featureColour(id)", KNOWN)
        style_f = page.evaluate("JSON.stringify(window.viewer3d.tileset.style.style)")
        assert style_f != style_h and "flood_depth_m" in style_f
        assert by_height == "#90d743"  # 11.5 m: the 10–20 m class
        assert by_flood == "#ffd8c0"  # 2.16 m: MLIT rank 2 (0.5–3 m)
        assert page.locator("#v3-legend").inner_text() != legend_h
        assert "colour=flood" in page.evaluate("location.hash")
        page.check("input[name=colour][value=usage]")
        page.wait_for_timeout(300)
        style_u = page.evaluate("JSON.stringify(window.viewer3d.tileset.style.style)")
        assert style_u not in (style_h, style_f) and "usage" in style_u
        screenshot(page, "viewer3d_usage")
        assert page.errors == []


def test_overlays_credits_and_synthetic_banner(v3: LiveServer) -> None:
    collections = {c["id"] for c in get_json(f"{v3.url}/ogc/collections?f=json")["collections"]}
    wanted = [
        c
        for c in ("sediment-warning-zones", "shelters", "wildlife-sightings", "incidents")
        if c in collections
    ]
    with browser_page() as page:
        requests = open_viewer(page, v3)
        page.wait_for_function("window.viewer3d.overlayFeatures('zoning-use-districts') > 0")
        for cid in wanted:
            page.check(f"input[data-overlay='{cid}']")
        for cid in wanted:
            page.wait_for_function(
                f"window.viewer3d.overlayFeatures('{cid}') !== null", timeout=60000
            )
            matched = get_json(f"{v3.url}/ogc/collections/{cid}/items?f=json&limit=1")
            assert page.evaluate(f"window.viewer3d.overlayFeatures('{cid}')") == min(
                matched["numberMatched"], 5000
            ), cid
            assert page.evaluate(f"window.viewer3d.overlayShown('{cid}')")
        synthetic = []
        for cid in ["buildings", "zoning-use-districts", *wanted]:
            meta = get_json(f"{v3.url}/ogc/collections/{cid}?f=json")
            page.wait_for_function(
                f"document.querySelector(\"#v3-credits li[data-collection='{cid}']\")"
            )
            li = page.locator(f"#v3-credits li[data-collection='{cid}']").inner_text()
            assert meta["attribution"] in li
            if meta.get("synthetic"):
                synthetic.append(meta["title"])
        banner = page.locator("#v3-synthetic")
        assert banner.is_visible() == bool(synthetic)
        for title in synthetic:
            assert title in banner.inner_text()
        page.evaluate("window.viewer3d.lookDown(139.7, 35.68, 60000)")
        page.wait_for_timeout(1500)
        screenshot(page, "viewer3d_overlays")
        page.uncheck(f"input[data-overlay='{wanted[0]}']")
        assert not page.evaluate(f"window.viewer3d.overlayShown('{wanted[0]}')")
        assert wanted[0] not in page.evaluate("location.hash")
        assert page.errors == []
        assert_local_only(requests)


def test_measurement_on_the_ellipsoid(v3: LiveServer) -> None:
    feat = building(v3, KNOWN)
    pt = shape(feat["geometry"]).representative_point()
    with browser_page() as page:
        open_viewer(page, v3)
        # the geodesic helpers against pyproj (WGS84)
        ring = [[139.77, 35.54], [139.78, 35.54], [139.78, 35.548], [139.77, 35.548]]
        area = page.evaluate("r => window.viewer3d.areaOf(r)", ring)
        lons, lats = zip(*ring, strict=True)
        assert area == pytest.approx(abs(GEOD.polygon_area_perimeter(lons, lats)[0]), rel=1e-4)
        dist = page.evaluate("r => window.viewer3d.distanceOf(r[0], r[2])", ring)
        assert dist == pytest.approx(GEOD.inv(*ring[0], *ring[2])[2], rel=1e-6)

        # height: roof of the known building, then the ground beside it
        look_at(page, pt.x, pt.y, 300)
        roof = page.evaluate("a => window.viewer3d.screenOf(a[0], a[1], 60)", [pt.x, pt.y])
        page.click("#v3-measure-height")
        page.mouse.click(roof["pageX"], roof["pageY"])
        page.mouse.click(roof["pageX"] + 300, roof["pageY"] + 250)
        page.wait_for_function("(window.viewer3d.measurement || {}).kind === 'height'")
        m = page.evaluate("window.viewer3d.measurement")
        assert m["vertical"] == pytest.approx(feat["properties"]["measured_height"], abs=4.0), m
        assert "m" in page.locator("#v3-measure-result").inner_text()
        screenshot(page, "viewer3d_measure_height")

        # area: four clicks on the ground, compared with pyproj on the picked vertices
        page.click("#v3-measure-area")
        base = (roof["pageX"] - 300, roof["pageY"] + 120)
        for dx, dy in ((0, 0), (120, 0), (120, 90), (0, 90)):
            page.mouse.click(base[0] + dx, base[1] + dy)
            page.wait_for_timeout(150)
        page.wait_for_function("((window.viewer3d.measurement || {}).vertices || []).length === 4")
        m = page.evaluate("window.viewer3d.measurement")
        lons, lats = zip(*m["vertices"], strict=True)
        expected = abs(GEOD.polygon_area_perimeter(lons, lats)[0])
        assert expected > 100
        assert m["area"] == pytest.approx(expected, rel=1e-3)
        assert "m²" in page.locator("#v3-measure-result").inner_text()
        screenshot(page, "viewer3d_measure_area")
        assert page.errors == []


def test_share_link_restores_camera_layers_and_language(v3: LiveServer) -> None:
    with browser_page() as page:
        open_viewer(page, v3)
        page.evaluate(
            "() => window.viewer3d.viewer.camera.setView({"
            " destination: Cesium.Cartesian3.fromDegrees(139.776, 35.535, 800),"
            " orientation: {heading: Cesium.Math.toRadians(30), pitch: Cesium.Math.toRadians(-40),"
            " roll: 0}})"
        )
        page.uncheck("input[data-overlay='zoning-use-districts']")
        page.check("input[data-overlay='shelters']")
        page.check("input[name=colour][value=flood]")
        page.click("#v3-lang")
        page.click("#v3-share")
        url = page.input_value("#v3-share-url")
        cam = page.evaluate("window.viewer3d.camera()")
    assert "layers=shelters" in url and "colour=flood" in url and "lang=en" in url
    with browser_page() as page:
        requests = record_requests(page)
        page.goto(url)
        wait_tiles(page)
        restored = page.evaluate("window.viewer3d.camera()")
        assert restored[:2] == pytest.approx(cam[:2], abs=1e-5)
        assert restored[2] == pytest.approx(cam[2], abs=1.0)
        assert restored[3:5] == pytest.approx(cam[3:5], abs=0.05)
        assert page.evaluate("window.viewer3d.state.layers") == ["shelters"]
        page.wait_for_function("window.viewer3d.overlayShown('shelters')", timeout=60000)
        assert page.is_checked("input[name=colour][value=flood]")
        assert not page.is_checked("input[data-overlay='zoning-use-districts']")
        assert page.locator("#v3-title").inner_text() == "3D city viewer"
        assert page.evaluate("document.documentElement.lang") == "en"
        screenshot(page, "viewer3d_shared")
        assert page.errors == []
        assert_local_only(requests)
