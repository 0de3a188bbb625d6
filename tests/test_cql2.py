"""Unit tests for geoservice.cql2: errors, null semantics, LIKE, temporal, spatial_bbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from geoservice.cql2 import (
    CQL2Error,
    compile_filter,
    parse_json,
    parse_text,
    properties_used,
    spatial_bbox,
    to_json,
)
from geoservice.errors import InvalidParameter

SCHEMA = {
    "name": "string",
    "pop": "integer",
    "area": "number",
    "flag": "boolean",
    "day": "date",
    "start": "datetime",
    "end": "datetime",
    "geom": "geometry",
    "tags": "array",
}


def match(text: str, props: dict[str, Any], geom: Any = None) -> bool:
    return compile_filter(parse_text(text), SCHEMA)(props, geom)


# -- errors ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("pop = ", 7, "expected an expression"),
        ("name = 'abc", 8, "unterminated string"),
        ("pop < 1 < 2", 9, "cannot be chained"),
        ("(pop = 1", 9, "missing ')'"),
        ("pop = 1 name", 9, "unexpected token"),
        ("name IS NUL", 9, "NOT] NULL"),
        ("day = DATE('2022-13-01')", 12, "DATE('YYYY-MM-DD')"),
        ("pop = #", 7, "unexpected character"),
        ("S_INTERSECTS(geom, POINT(1))", 27, "expected a number"),
    ],
)
def test_syntax_errors_say_what_and_where(text: str, position: int, fragment: str) -> None:
    with pytest.raises(CQL2Error) as info:
        parse_text(text)
    message = info.value.description
    assert f"at position {position}" in message
    assert fragment in message
    assert "expected" in message


def test_error_is_an_invalid_parameter() -> None:
    assert issubclass(CQL2Error, InvalidParameter)
    assert CQL2Error("x").status == 400


def test_unknown_property_lists_queryables() -> None:
    with pytest.raises(CQL2Error, match=r"unknown property 'nope'; queryables are: area, day"):
        compile_filter(parse_text("nope = 1"), SCHEMA)


def test_unknown_function() -> None:
    with pytest.raises(CQL2Error, match=r"unknown function 'frobnicate'"):
        compile_filter(parse_text("FROBNICATE(name) = 'x'"), SCHEMA)


@pytest.mark.parametrize(
    "text",
    ["pop = 'x'", "day = '2022-01-01'", "name LIKE 3", "S_INTERSECTS(pop, POINT(0 0))", "pop + 1",
     "T_AFTER(name, DATE('2020-01-01'))", "pop AND flag"],
)
def test_type_errors(text: str) -> None:
    with pytest.raises(CQL2Error):
        compile_filter(parse_text(text), SCHEMA)


def test_json_errors_give_path() -> None:
    with pytest.raises(CQL2Error, match=r"\$\.args\[1\]"):
        parse_json({"op": "=", "args": [{"property": "a"}, {"foo": 1}]})
    with pytest.raises(CQL2Error, match="position"):
        parse_json("{not json")


# -- null semantics ---------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["pop = 1", "NOT (pop = 1)", "pop <> 1", "pop IN (1, 2)", "pop NOT IN (1, 2)",
     "pop BETWEEN 0 AND 9", "pop NOT BETWEEN 0 AND 9", "name LIKE 'a%'", "name NOT LIKE 'a%'",
     "NOT (pop + 1 > 0)", "day < DATE('2020-01-01')",
     "T_BEFORE(start, TIMESTAMP('2030-01-01T00:00:00Z'))"],
)
def test_null_never_matches_either_way(text: str) -> None:
    assert match(text, {}) is False


def test_three_valued_logic() -> None:
    assert match("pop = 1 OR flag = true", {"flag": True}) is True
    assert match("NOT (pop = 1 AND flag = true)", {"flag": False}) is True
    assert match("NOT (pop = 1 AND flag = true)", {"flag": True}) is False
    assert match("pop IS NULL", {}) and match("pop IS NOT NULL", {"pop": 0})
    assert match("geom IS NULL", {}, None) and not match("geom IS NULL", {}, Point(0, 0))


# -- LIKE, CASEI, ACCENTI ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("B_r%", "Berlin", True),
        ("B_r%", "Br", False),
        ("100\\%", "100%", True),
        ("100\\%", "1000", False),
        ("a\\_b", "a_b", True),
        ("a\\_b", "axb", False),
        ("%.*%", "x.*y", True),
        ("it''s%", "it's here", True),
    ],
)
def test_like(pattern: str, value: str, expected: bool) -> None:
    assert match(f"name LIKE '{pattern}'", {"name": value}) is expected


def test_casei_accenti() -> None:
    assert match("CASEI(name) = casei('STRASSE')", {"name": "straße"})
    assert match("ACCENTI(name) = accenti('Chisinau')", {"name": "Chișinău"})
    assert not match("name = 'Chisinau'", {"name": "Chișinău"})


# -- arithmetic, temporal, spatial ---------------------------------------------------
def test_arithmetic_precedence() -> None:
    assert match("pop = 1 + 2 * 3 ^ 2", {"pop": 19})
    assert match("pop = -2 ^ 2", {"pop": -4})
    assert match("pop = 7 div 2 + 7 % 2", {"pop": 4})
    assert not match("pop / 0 = 1", {"pop": 1})


def test_typed_temporal_values() -> None:
    props = {"day": "2022-04-16", "start": "2022-04-16T10:13:19", "end": "2022-04-17T00:00:00Z"}
    assert match("day = DATE('2022-04-16')", props)
    assert match("start = TIMESTAMP('2022-04-16T12:13:19+02:00')", props)
    assert match("T_DURING(TIMESTAMP('2022-04-16T12:00:00Z'), INTERVAL(start, end))", props)
    assert match("T_AFTER(INTERVAL(start, end), INTERVAL('..', '2022-04-16'))", props)
    assert match("day = DATE('2022-04-16')", {"day": dt.date(2022, 4, 16)})


def test_antimeridian_bbox() -> None:
    text = "S_INTERSECTS(geom, BBOX(170, -10, -170, 10))"
    assert match(text, {}, Point(179, 0)) and match(text, {}, Point(-179, 0))
    assert not match(text, {}, Point(0, 0))


def test_spatial_argument_order() -> None:
    poly = box(0, 0, 10, 10)
    assert match("S_WITHIN(POINT(1 1), geom)", {}, poly)
    assert match("S_CONTAINS(geom, POINT(1 1))", {}, poly)
    assert not match("S_WITHIN(geom, POINT(1 1))", {}, poly)


def test_arrays() -> None:
    assert match("A_CONTAINS(tags, ('a', 'b'))", {"tags": ["a", "b", "c"]})
    assert not match("A_EQUALS(tags, ('a', 'b'))", {"tags": ["a", "b", "c"]})
    assert match("A_OVERLAPS(tags, ('z', 'c'))", {"tags": ["a", "b", "c"]})


# -- API helpers ------------------------------------------------------------------------
def test_json_round_trip_and_properties() -> None:
    text = (
        "S_INTERSECTS(geom, POINT(1 2)) AND name LIKE 'A%' AND T_AFTER(start, DATE('2020-01-01'))"
    )
    expr = parse_text(text)
    assert parse_json(to_json(expr)) == expr
    assert properties_used(expr) == {"geom", "name", "start"}
    assert spatial_bbox(expr) == (1.0, 2.0, 1.0, 2.0)
    assert spatial_bbox(parse_text("S_DISJOINT(geom, POINT(1 2))")) is None
    assert spatial_bbox(parse_text("S_INTERSECTS(geom, POINT(1 2)) OR pop = 1")) is None


coord = st.floats(-180, 180, allow_nan=False)
lat = st.floats(-90, 90, allow_nan=False)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[float, float, float, float]:
    x1, x2, y1, y2 = draw(coord), draw(coord), draw(lat), draw(lat)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


@st.composite
def spatial_filters(draw: st.DrawFn, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        op = draw(st.sampled_from(["S_INTERSECTS", "S_WITHIN", "S_CONTAINS", "S_TOUCHES",
                                    "S_DISJOINT", "S_OVERLAPS", "S_CROSSES", "S_EQUALS"]))
        b = draw(boxes())
        literal = f"BBOX({b[0]},{b[1]},{b[2]},{b[3]})"
        if draw(st.booleans()):
            literal = f"POINT({b[0]} {b[1]})"
        return f"{op}(geom, {literal})" if draw(st.booleans()) else f"{op}({literal}, geom)"
    left, right = draw(spatial_filters(depth - 1)), draw(spatial_filters(depth - 1))
    joiner = draw(st.sampled_from(["AND", "OR"]))
    prefix = "NOT " if draw(st.booleans()) else ""
    return f"{prefix}({left} {joiner} {right})"


@settings(max_examples=300, deadline=None)
@given(spatial_filters(), boxes(), st.booleans())
def test_spatial_bbox_never_excludes_a_match(text: str, b: Any, as_point: bool) -> None:
    expr = parse_text(text)
    geom = Point(b[0], b[1]) if as_point else box(*b)
    envelope = spatial_bbox(expr)
    if envelope is not None and compile_filter(expr, SCHEMA)({}, geom):
        assert geom.intersects(box(*envelope))
