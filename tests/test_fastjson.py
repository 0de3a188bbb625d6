"""``geoservice.fastjson`` writes the same GeoJSON values as ``json.dumps(mapping(g))``.

The fast path (numpy coordinates through orjson, points vectorised) must not change a
single coordinate: numbers are compared after parsing, so only formatting may differ
(orjson writes ``1e-5`` where ``json`` writes ``1e-05``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import mapping

from geoservice.fastjson import dumps, geometries_json, geometry_json

coord = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False, allow_infinity=False)
xy = st.tuples(coord, coord)
xyz = st.tuples(coord, coord, coord)


@st.composite
def geometries(draw: st.DrawFn) -> shapely.Geometry:
    kind = draw(st.sampled_from(["point", "pointz", "line", "polygon", "multi", "collection"]))
    if kind == "point":
        return shapely.Point(draw(xy))
    if kind == "pointz":
        return shapely.Point(draw(xyz))
    if kind == "line":
        return shapely.LineString(draw(st.lists(xy, min_size=2, max_size=6)))
    if kind == "polygon":
        x, y = draw(xy)
        w, h = draw(st.floats(0.001, 10)), draw(st.floats(0.001, 10))
        hole = shapely.box(x + w / 4, y + h / 4, x + w / 2, y + h / 2).exterior.coords
        return shapely.Polygon(shapely.box(x, y, x + w, y + h).exterior.coords, [hole])
    if kind == "multi":
        return shapely.MultiPoint(draw(st.lists(xy, min_size=1, max_size=5)))
    return shapely.GeometryCollection([shapely.Point(draw(xy)),
                                       shapely.LineString(draw(st.lists(xy, min_size=2,
                                                                        max_size=3)))])


def _reference(g: shapely.Geometry | None) -> object:
    return None if g is None else json.loads(json.dumps(mapping(g)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), geometries()), max_size=8))
def test_same_values_as_the_standard_library(geoms: list[shapely.Geometry | None]) -> None:
    assert json.loads(dumps(geometries_json(geoms))) == [_reference(g) for g in geoms]


@settings(max_examples=200, deadline=None)
@given(st.lists(xy, min_size=1, max_size=50))
def test_vectorised_points_equal_one_by_one(points: list[tuple[float, float]]) -> None:
    geoms = [shapely.Point(p) for p in points]
    batch = json.loads(dumps(geometries_json(list(geoms))))
    single = [json.loads(dumps(geometry_json(g))) for g in geoms]
    assert batch == single == [_reference(g) for g in geoms]


def test_empty_geometries_and_other_values() -> None:
    empty = [shapely.from_wkt("POINT EMPTY"), shapely.from_wkt("POLYGON EMPTY")]
    assert json.loads(dumps(geometries_json(empty))) == [_reference(g) for g in empty]
    doc = {"t": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "s": "東京", "n": None}
    assert json.loads(dumps(doc)) == {"t": "2025-01-02T03:04:05+00:00", "s": "東京", "n": None}
