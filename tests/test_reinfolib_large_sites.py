"""A site far larger than a parcel (or an area thin and long, or in scattered parts) must
neither build the grid of its bounding box nor spend the API budget: the layer is unusable
with a reason, and the covering of a wide, sparse area follows the tiles it touches."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from geoservice.reinfolib import tiles as tilemod
from geoservice.reinfolib.tiles import TooManyTiles, covering
from tests.conftest import settings_for
from tests.reinfolib_server import ReinfolibServer, use_server
from tests.test_reinfolib import _built, _layers, _site

#: Tokyo's islands: a few small parts spread over ~12 degrees (小笠原村-like), tiny in area.
ISLANDS = MultiPolygon([box(139.35, 34.70, 139.45, 34.80), box(142.15, 27.05, 142.25, 27.15),
                        box(153.95, 24.25, 154.00, 24.30), box(136.05, 20.40, 136.10, 20.45)])


def test_a_site_of_too_many_tiles_is_refused_without_a_request(
        reinfolib_server: ReinfolibServer, tmp_path: Path) -> None:
    s = use_server(_built(settings_for(tmp_path, _layers(tmp_path))), reinfolib_server,
                   requests_per_minute=6000)
    result = _site(s, area=box(139.5, 35.5, 139.9, 35.8), budget=5.0)  # ~1,300 tiles at z15
    assert result.error is not None and result.error.reason == "site-too-large"
    assert "tiles at zoom 15" in result.error.description
    assert reinfolib_server.served == []


def test_sparse_wide_area_is_covered_by_descent_like_the_grid(
        monkeypatch: pytest.MonkeyPatch) -> None:
    area = box(139.60, 35.50, 139.75, 35.62)
    grid = covering(area, 15)
    monkeypatch.setattr(tilemod, "GRID_MAX", 16)  # force the descent on the same area
    assert covering(area, 15) == grid
    monkeypatch.undo()
    started = time.monotonic()
    found = covering(ISLANDS, 15)  # the grid of its bounding box: ~1.4 million tiles
    assert time.monotonic() - started < 5
    # the same tiles as the grids of its parts, each small enough for the grid
    assert found == sorted({t for part in ISLANDS.geoms for t in covering(part, 15)})
    sliver = Polygon([(130, 30), (145, 45), (145, 45.00001), (130, 30.00001)])
    with pytest.raises(TooManyTiles):
        covering(sliver, 15, limit=256)
