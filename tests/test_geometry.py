"""One parser for clients' geometries (``geoservice.geometry``): every failure is a 400
``InvalidGeometry`` naming the field, what was wrong and what is accepted."""

from __future__ import annotations

from typing import Any

import pytest
from shapely.geometry import Point

from geoservice.geometry import InvalidGeometry, checked, parse_geometry

BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        ({"type": "Polygon"}, "expected a GeoJSON geometry object"),
        ([139.7, 35.6], "expected a GeoJSON geometry object"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}, "not a valid GeoJSON"),
        ({"type": "Polygon", "coordinates": []}, "empty"),
        ({"type": "Point", "coordinates": [float("nan"), 1]}, "finite"),
        ({"type": "Point", "coordinates": [139.7, 95]}, "lon in [-180, 180]"),
        (BOWTIE, "Self-intersection"),
    ],
)
def test_each_failure_is_one_error_that_names_field_and_reason(obj: Any, needle: str) -> None:
    with pytest.raises(InvalidGeometry) as err:
        parse_geometry(obj, "site.geometry")
    assert err.value.status == 400 and err.value.code == "InvalidGeometry"
    assert err.value.description.startswith("site.geometry") and needle in err.value.description


def test_types_are_limited_and_the_accepted_ones_listed() -> None:
    with pytest.raises(InvalidGeometry, match=r"'Point' is not accepted; use one of \['Polygon'\]"):
        parse_geometry({"type": "Point", "coordinates": [139.7, 35.6]}, "area", ["Polygon"])


def test_content_crs_is_applied_before_the_range_check() -> None:
    # EPSG:6677 metres are far outside lon/lat degrees; after the transform they are Tokyo.
    g = parse_geometry({"type": "Point", "coordinates": [-5000.0, -35000.0]},
                       content_crs="http://www.opengis.net/def/crs/EPSG/0/6677")
    assert 139 < g.x < 140.5 and 35 < g.y < 36
    assert checked(Point(139.7, 35.6)).equals(Point(139.7, 35.6))
