"""CRS handling at the edges: axis order per authority, round trips, bbox transforms."""

from __future__ import annotations

import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

from geoservice import crs
from geoservice.errors import InvalidParameter

TOKYO_STATION = shapely.Point(139.7671, 35.6812)


def test_epsg_4326_and_6668_are_lat_lon() -> None:
    for code in ("EPSG:4326", "EPSG:6668"):
        p = crs.from_crs84(TOKYO_STATION, crs.crs_info(code))
        assert (p.x, p.y) == pytest.approx((35.6812, 139.7671))


def test_plane_rectangular_ix_is_northing_easting() -> None:
    p = crs.from_crs84(TOKYO_STATION, crs.crs_info("EPSG:6677"))
    # Tokyo Station lies south-east of the IX origin (36°N 139°50′E): X ≈ -35.5 km, Y ≈ -6 km
    assert -37000 < p.x < -34000 and -7000 < p.y < -4500


@given(st.floats(138.9, 142.0), st.floats(24.0, 35.9))
def test_round_trip_through_every_crs(lon: float, lat: float) -> None:
    pt = shapely.Point(lon, lat)
    for info in crs.SUPPORTED.values():
        back = crs.to_crs84(crs.from_crs84(pt, info), info)
        assert back.x == pytest.approx(lon, abs=1e-7) and back.y == pytest.approx(lat, abs=1e-7)


def test_bbox_in_lat_lon_order_becomes_crs84() -> None:
    box = crs.bbox_to_crs84((35.6, 139.6, 35.7, 139.8), crs.crs_info("EPSG:4326"))
    assert box == pytest.approx((139.6, 35.6, 139.8, 35.7))


def test_curie_and_unknown_crs() -> None:
    assert crs.crs_info("[EPSG:6677]").code == "EPSG:6677"
    with pytest.raises(InvalidParameter, match="accepted"):
        crs.crs_info("EPSG:2451")
