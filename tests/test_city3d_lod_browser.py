"""The level-of-detail buildings tileset in the 3D viewer (/3d/), headless Chromium.

3,000 synthetic buildings in a five-level hierarchy (merged blocks above, buildings at the
leaves, external tilesets every level) served by the app over an empty store.  From high
above, CesiumJS shows the merged blocks only - no leaf is fetched, no building id is known;
looking down from 250 m it replaces them with the buildings under the camera.  No tile
fails, no page error, nothing fetched from outside.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from geoservice.build import build
from geoservice.city3d.synthetic import write_synthetic
from geoservice.city3d.tiles3d import write_tiles
from tests.browser import assert_local_only, browser_page, record_requests
from tests.conftest import LiveServer, free_port, settings_for

pytestmark = pytest.mark.browser
DONE = "window.viewer3d && window.viewer3d.loaded && window.viewer3d.tilesLoaded"


@pytest.fixture(scope="module")
def lod_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("lodview")
    src = write_synthetic(tmp / "syn.gml", 3000, seed=7)
    write_tiles(
        [src],
        tmp / "tiles" / "buildings",
        max_per_leaf=100,
        cell_deg=0.001,
        subtree_levels=1,
        workers=1,
        synthetic=True,
    )
    (tmp / "layers").mkdir()
    settings = settings_for(tmp, tmp / "layers", free_port())
    flat = settings.basemaps.model_copy(update={"terrain": None})
    settings = settings.model_copy(update={"tiles_dir": tmp / "tiles", "basemaps": flat})
    build(settings)  # an empty store: the page needs one; the tiles are static files
    with LiveServer(settings) as srv:
        yield srv


def _centre(srv: LiveServer) -> tuple[float, float]:
    doc = json.loads((srv.settings.tiles_dir / "buildings" / "tileset.json").read_text("utf-8"))
    w, s, e, n, _, _ = doc["root"]["boundingVolume"]["region"]
    return math.degrees((w + e) / 2), math.degrees((s + n) / 2)


def _has_buildings(glb: Path) -> bool:
    """Whether the tile holds buildings (a leaf), not merged blocks: its property table
    has a building_id column."""
    data = glb.read_bytes()
    (length,) = struct.unpack_from("<I", data, 12)
    doc = json.loads(data[20 : 20 + length])
    table = doc["extensions"]["EXT_structural_metadata"]["propertyTables"][0]
    return "building_id" in table["properties"]


def _glbs(requests: list[str]) -> list[str]:
    return [m.group(1) for u in requests if (m := re.search(r"/tiles/(\d+_\d+_\d+)\.glb$", u))]


def test_blocks_from_afar_buildings_close_up(lod_server: LiveServer) -> None:
    lon, lat = _centre(lod_server)
    tiles = lod_server.settings.tiles_dir / "buildings" / "tiles"
    leaves = {p.stem for p in tiles.glob("*.glb") if _has_buildings(p)}
    assert leaves and len(leaves) < len(list(tiles.glob("*.glb")))
    with browser_page() as page:
        requests = record_requests(page)
        page.goto(f"{lod_server.url}/3d/#cam={lon},{lat},30000,0,-90,0&imagery=none")
        page.wait_for_function(DONE, timeout=90000)
        far = _glbs(requests)
        assert "0_0_0" in far, far
        assert not leaves & set(far), "no building leaf is needed from 30 km"
        assert page.evaluate("window.viewer3d.buildingIds()") == []
        page.evaluate("a => window.viewer3d.lookDown(a[0], a[1], a[2])", [lon, lat, 250.0])
        page.wait_for_timeout(3000)  # Cesium holds requests back while the camera moves
        page.wait_for_function(DONE, timeout=90000)
        near = set(_glbs(requests)) - set(far)
        assert leaves & near, near
        ids = page.evaluate("window.viewer3d.buildingIds()")
        assert ids and all(i.startswith("SYN7-bldg-") for i in ids)
        assert page.evaluate("window.viewer3d.failures") == []
        assert page.errors == []
        assert_local_only(requests)
