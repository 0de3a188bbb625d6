"""CQL2 filters pushed down into SQLite on the GeoPackage store give the evaluator's answer.

Three layers of evidence:

* the OGC CQL2 suite (274 cases, as text and as JSON) through ``GpkgStore.query``, with the
  store's ``fallbacks`` counter proving which cases ran as SQL;
* a table of tricky filters over a layer of awkward values (NULLs, booleans, dates,
  timestamps with and without milliseconds, Unicode, NUL, LIKE metacharacters, geometries),
  whose SQL answer must equal the Python evaluator's on the same stored rows;
* property-based tests that compare one translated condition with the evaluator on
  generated values, stored as the store stores them.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cql2 as cql2_oracle
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geoservice.catalogue import LayerSpec
from geoservice.cql2 import Expr, compile_filter, parse_json, parse_text
from geoservice.features import Feature
from geoservice.store import cql2_sqlite, values
from geoservice.store.base import Query
from geoservice.store.filtering import queryable_schema
from geoservice.store.gpkg import GpkgStore
from tests.test_cql2_http import CASES, IDS, expected
from tests.test_store import SPEC

# -- the OGC suite through the store -------------------------------------------------------


@pytest.fixture(scope="module")
def suite_store(cql2_store: tuple[Path, Path]) -> Iterator[GpkgStore]:
    store = GpkgStore(cql2_store[0] / "store.gpkg")
    yield store
    store.close()


def run(store: GpkgStore, collection: str, expr: Expr) -> tuple[int, bool]:
    """Matched count and whether the filter ran entirely as SQL."""
    before = store.fallbacks, store.pushed_down
    page = store.query(collection, Query(filter=expr, limit=1000))
    assert page.number_matched == len(page.features)
    pushed = store.pushed_down == before[1] + 1
    assert pushed != (store.fallbacks == before[0] + 1)
    return page.number_matched, pushed


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_case_as_cql2_text(suite_store: GpkgStore, i: int) -> None:
    case = CASES[i]
    got, pushed = run(suite_store, case["collection"], parse_text(case["filter"]))
    assert got == expected(i)
    assert pushed, "the filter was evaluated in Python, not pushed down"


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_case_as_cql2_json(suite_store: GpkgStore, i: int) -> None:
    case = CASES[i]
    doc = json.dumps(cql2_oracle.parse_text(case["filter"]).to_json())
    got, pushed = run(suite_store, case["collection"], parse_json(doc))
    assert got == expected(i)
    assert pushed, "the filter was evaluated in Python, not pushed down"


# -- a layer of awkward values ---------------------------------------------------------------

ZOO = LayerSpec.model_validate(
    {
        **SPEC.model_dump(exclude={"temporal_property"}),  # licence, source... of test_store
        "id": "zoo",
        "title": "Zoo",
        "geometry_type": "Geometry",
        "geometry_name": "geom",
        "properties": [
            {"name": "s", "type": "string"},
            {"name": "s2", "type": "string"},
            {"name": "n", "type": "integer"},
            {"name": "x", "type": "number"},
            {"name": "b", "type": "boolean"},
            {"name": "d", "type": "date"},
            {"name": "ts", "type": "datetime"},
            {"name": "ts2", "type": "datetime"},
        ],
        # filters over indexed columns (NULLs, collations, mixed types) must answer exactly
        # as over plain ones: every comparison below runs with these indexes in place
        "indexes": ["s", "n", "x", "ts"],
    }
)
STRINGS = [
    None,
    "",
    "abc",
    "ABC",
    "Abc",
    "Straße",
    "STRASSE",
    "İstanbul",
    "ıi",
    "ǅungla",
    "ﬃ",
    "Café",
    "Cafe\u0301",
    "CAFÉ",
    "ΟΔΟΣ",
    "οδος",
    "a\x00b",
    "a\x00",
    "100%",
    "a_b",
    "a*b",
    "a?b",
    "[x]",
    "back\\slash",
    "\U0001f600 emoji",
    "z",
    "\uffff",
    "\U00010000",
    "a\nb",
]
TIMES = [
    None,
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00.500Z",
    "2024-01-01T00:00:01Z",
    "2023-12-31T23:59:59.999Z",
    "2024-01-01T09:00:00+09:00",
    "0999-06-01T12:00:00Z",
    "2024-02-29T12:00:00Z",
]
DATES = [None, "2024-01-01", "2023-12-31", "2024-02-29", "0999-06-01", "2024-01-02"]
GEOMS = [
    None,
    shapely.Point(0, 0),
    shapely.Point(10, 10),
    shapely.box(0, 0, 5, 5),
    shapely.LineString([(-1, -1), (3, 3)]),
    shapely.Point(5, 5),
    shapely.box(20, 20, 30, 30),
]


def zoo_rows() -> list[Feature]:
    rows = []
    for i, s in enumerate(STRINGS):
        props: dict[str, Any] = {
            "s": s,
            "s2": STRINGS[(i * 7) % len(STRINGS)],
            "n": [None, 0, 1, -7, 2**62, 3, 10, -(2**62)][i % 8],
            "x": [None, 0.5, -0.0, 1e300, 3.0, -2.25, 10.0][i % 7],
            "b": [None, True, False][i % 3],
            "d": DATES[i % len(DATES)],
            "ts": TIMES[i % len(TIMES)],
            "ts2": TIMES[(i * 3 + 1) % len(TIMES)],
        }
        rows.append(Feature(f"r{i:02d}", props, GEOMS[i % len(GEOMS)]))
    return rows


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpkgStore]:
    store = GpkgStore(tmp_path_factory.mktemp("zoo") / "zoo.gpkg", create=True)
    store.create_collection(ZOO, source="test", synthetic=True)
    store.bulk_load("zoo", zoo_rows())
    yield store
    store.close()


def evaluator_ids(store: GpkgStore, expr: Expr) -> set[str]:
    """The ids the Python evaluator accepts, over the rows exactly as stored."""
    pred = compile_filter(expr, queryable_schema(ZOO))
    return {f.id for f in store.iter_features("zoo") if pred(f.properties, f.geometry)}


#: every one of these must run as SQL and agree with the evaluator
PUSHED = [
    "s = 'abc'",
    "s <> 'abc'",
    "s < 'b'",
    "s >= 'Z'",
    "s > s2",
    "s = s2",
    "NOT (s = 'abc')",
    "s IS NULL",
    "NOT s IS NULL",
    "s IN ('abc', 'ABC', s2)",
    "NOT (s IN ('abc', 'z'))",
    "s < '\U00010000'",
    "s > '\uffff'",
    "s = 'a\x00b'",
    "s < 'a\x00c'",
    "s LIKE 'a%'",
    "s LIKE 'A%'",
    "s LIKE 'a_b'",
    "s LIKE '%\\%'",
    "s LIKE 'a\\_b'",
    "s LIKE 'a*b'",
    "s LIKE 'a?b'",
    "s LIKE '[x]'",
    "s LIKE '%\\\\%'",
    "s LIKE 'a%b'",
    "s LIKE '%'",
    "s LIKE '_'",
    "s LIKE 'back\\slash'",
    "NOT (s LIKE '%a%')",
    "s LIKE s2",
    "s LIKE 'a\nb'",
    "s LIKE '_\nb'",
    "s LIKE '\U0001f600%'",
    "CASEI(s) = CASEI('straße')",
    "CASEI(s) = 'strasse'",
    "CASEI(s) LIKE 'i%'",
    "ACCENTI(s) = 'Cafe'",
    "ACCENTI(CASEI(s)) = ACCENTI(CASEI('CAFÉ'))",
    "CASEI(s) = CASEI(s2)",
    "CASEI(s) IS NULL",
    "ACCENTI(s) > 'C'",
    "n = 0",
    "n > 0",
    "n < x",
    "n = x",
    "x > 0.25",
    "x = 0",
    "x BETWEEN -3 AND 3",
    "n BETWEEN 0 AND 10",
    "NOT (n BETWEEN 0 AND 10)",
    "n IN (1, 3, 2.0)",
    "n IS NULL",
    f"n = {2**62}",
    "x > 1e299",
    "n + 1 > 2",
    "x * x > 1e30",
    "n div 2 = 1",
    "n % 3 = -1",
    "x / 0 IS NULL",
    "x ^ 2 = 9",
    "n ^ 0.5 > 1",
    "x * 2 = -4.5",
    "(n - n) = 0",
    "n / 2 = 1.5",
    "b = true",
    "b = false",
    "b",
    "NOT b",
    "b IS NULL",
    "b AND n > 0",
    "b OR n > 0",
    "NOT (b OR n > 0)",
    "b <> true",
    "d = DATE('2024-01-01')",
    "d < DATE('2024-01-01')",
    "d >= DATE('1000-01-01')",
    "d = TIMESTAMP('2024-01-01T00:00:00Z')",
    "d < ts",
    "d = ts",
    "d IS NULL",
    "d BETWEEN DATE('2023-12-31') AND DATE('2024-01-01')",
    "ts = TIMESTAMP('2024-01-01T00:00:00Z')",
    "ts > TIMESTAMP('2024-01-01T00:00:00Z')",
    "ts < TIMESTAMP('2024-01-01T00:00:00.600Z')",
    "ts = TIMESTAMP('2024-01-01T00:00:00+00:00')",
    "ts > ts2",
    "ts = ts2",
    "ts <= DATE('2024-01-01')",
    "ts IS NULL",
    "ts < TIMESTAMP('1500-01-01T00:00:00Z')",
    "T_AFTER(ts, TIMESTAMP('2024-01-01T00:00:00Z'))",
    "T_BEFORE(d, DATE('2024-01-01'))",
    "T_DURING(ts, INTERVAL('2023-12-31', '2024-01-01T00:00:00.700Z'))",
    "T_INTERSECTS(INTERVAL(d, ts), INTERVAL('2024-01-01', '..'))",
    "NOT T_INTERSECTS(INTERVAL(d, '..'), DATE('2024-01-01'))",
    "T_EQUALS(INTERVAL('..', '..'), INTERVAL('..', '..'))",
    "T_METBY(ts, INTERVAL(d, ts))",
    "T_CONTAINS(INTERVAL(ts2, ts), DATE('2024-01-01'))",
    "INTERVAL(d, ts) IS NULL",
    "S_INTERSECTS(geom, BBOX(-1, -1, 1, 1))",
    "S_WITHIN(geom, POLYGON((-1 -1, 6 -1, 6 6, -1 6, -1 -1)))",
    "S_CONTAINS(geom, POINT(1 1))",
    "S_DISJOINT(geom, POINT(0 0))",
    "NOT S_TOUCHES(geom, POINT(5 5))",
    "S_CROSSES(geom, LINESTRING(-5 1, 5 1))",
    "S_EQUALS(geom, POINT(10 10))",
    "S_OVERLAPS(geom, BBOX(4, 4, 8, 8))",
    "S_INTERSECTS(POINT(1 1), geom)",
    "S_WITHIN(POINT(1 1), geom)",
    "geom IS NULL",
    "S_INTERSECTS(geom, BBOX(170, -10, -170, 10))",
    "A_CONTAINS((s, s2), ('abc', 'z'))",
    "A_OVERLAPS((s, n), ('ABC', 1))",
    "A_EQUALS((n, 1), (1, n))",
    "A_CONTAINEDBY((s, s), ('abc', 'z'))",
    "NOT A_OVERLAPS((b, d), (true, DATE('2024-01-01')))",
    "1 = 1",
    "1 = 2 OR s = 'z'",
    "NOT (1 > 2) AND b",
]


@pytest.mark.parametrize("text", PUSHED, ids=PUSHED)
def test_sql_agrees_with_the_evaluator(zoo: GpkgStore, text: str) -> None:
    expr = parse_text(text)
    before = zoo.pushed_down
    page = zoo.query("zoo", Query(filter=expr, limit=1000))
    assert zoo.pushed_down == before + 1, "not pushed down"
    assert {f.id for f in page.features} == evaluator_ids(zoo, expr)
    assert page.number_matched == len(page.features)


def test_pages_and_counts_agree(zoo: GpkgStore) -> None:
    expr = parse_text("s IS NOT NULL OR n > 0")
    want = sorted(evaluator_ids(zoo, expr))
    page = zoo.query("zoo", Query(filter=expr, limit=5, offset=3))
    assert page.number_matched == len(want)
    assert [f.id for f in page.features] == want[3:8]


@pytest.mark.parametrize(
    "text",
    [
        # an integer result beyond 64 bits cannot live in SQLite: the query re-runs in Python
        "n * n * n > 0",
        # S_EQUALS(geom, geom) has no translation; its sibling conjunct is an SQL prefilter
        "s LIKE 'a%' AND S_EQUALS(geom, geom)",
    ],
)
def test_python_fallback_still_filters_exactly(zoo: GpkgStore, text: str) -> None:
    expr = parse_text(text)
    before = zoo.fallbacks
    page = zoo.query("zoo", Query(filter=expr, limit=1000))
    assert zoo.fallbacks == before + 1
    assert {f.id for f in page.features} == evaluator_ids(zoo, expr)


def test_bbox_on_a_non_point_layer_is_sql(zoo: GpkgStore) -> None:
    box = (-0.5, -0.5, 0.5, 0.5)
    ids = {f.id for f in zoo.query("zoo", Query(bbox=box, limit=1000)).features}
    b = shapely.box(*box)
    want = {f.id for f in zoo.iter_features("zoo") if f.geometry and b.intersects(f.geometry)}
    assert ids == want
    expr = parse_text("n IS NOT NULL")
    before = zoo.pushed_down
    both = zoo.query("zoo", Query(bbox=box, filter=expr, limit=1000))
    assert zoo.pushed_down == before + 1
    assert {f.id for f in both.features} == want & evaluator_ids(zoo, expr)


# -- property-based: one condition on generated values ---------------------------------------

ONE = LayerSpec.model_validate({**ZOO.model_dump(), "id": "one"})
_DDL = (
    "CREATE TABLE one (s TEXT, s2 TEXT, n INTEGER, x DOUBLE, b BOOLEAN, d DATE,"
    " ts DATETIME, ts2 DATETIME)"
)


def sql_answer(expr: Expr, props: dict[str, Any]) -> bool | None:
    """The translated condition on one row stored as the store stores it (None: it raised)."""
    con = sqlite3.connect(":memory:")
    cql2_sqlite.register_functions(con)
    con.execute(_DDL)
    stored = values.to_storage(ONE, props)
    names = [p.name for p in ONE.properties]
    con.execute(
        f"INSERT INTO one VALUES ({', '.join('?' * len(names))})", [stored.get(k) for k in names]
    )
    f = cql2_sqlite.translate(expr, queryable_schema(ONE), lambda name: f't."{name}"')
    try:
        row = con.execute(f"SELECT count(*) FROM one t WHERE {f.where}", f.params).fetchone()
    except sqlite3.OperationalError as exc:
        assert cql2_sqlite.FUNCTION_ERROR in str(exc)
        return None
    finally:
        con.close()
    return bool(row[0])


def python_answer(expr: Expr, props: dict[str, Any]) -> bool:
    stored = values.to_storage(ONE, props)
    row = values.from_storage(ONE, [stored.get(p.name) for p in ONE.properties])
    return compile_filter(expr, queryable_schema(ONE))(row, None)


def agree(expr: Expr, props: dict[str, Any]) -> None:
    got = sql_answer(expr, props)
    if got is not None:  # None: the store would have re-run the query in Python
        assert got == python_answer(expr, props)


TEXT = st.text(alphabet="aAbBßsSıiİ%_\\*?[]^\x00é\u0301Σσς\U0001f600\n", max_size=6)
LIKE_TEXT = st.text(alphabet="aAb%_\\*?[]^\x00é\n", max_size=6)


@settings(max_examples=300, deadline=None)
@given(value=LIKE_TEXT, pattern=LIKE_TEXT)
def test_like_agrees(value: str, pattern: str) -> None:
    doc = {"op": "like", "args": [{"property": "s"}, pattern]}
    agree(parse_json(doc), {"s": value})
    agree(
        parse_json({"op": "like", "args": [{"property": "s"}, {"property": "s2"}]}),
        {"s": value, "s2": pattern},
    )


@settings(max_examples=300, deadline=None)
@given(
    a=TEXT,
    b=TEXT,
    op=st.sampled_from(["=", "<>", "<", "<=", ">", ">="]),
    fold=st.sampled_from([(), ("casei",), ("accenti",), ("casei", "accenti")]),
)
def test_text_comparison_agrees(a: str, b: str, op: str, fold: tuple[str, ...]) -> None:
    def folded(arg: Any) -> Any:
        for func in fold:
            arg = {"op": func, "args": [arg]}
        return arg

    s, s2 = folded({"property": "s"}), folded({"property": "s2"})
    agree(parse_json({"op": op, "args": [s, folded(b)]}), {"s": a})
    agree(parse_json({"op": op, "args": [s, s2]}), {"s": a, "s2": b})


INSTANTS = st.datetimes(
    min_value=dt.datetime(1, 1, 1),
    max_value=dt.datetime(9999, 12, 30),
    timezones=st.just(dt.UTC),
)


@settings(max_examples=300, deadline=None)
@given(
    a=INSTANTS,
    b=INSTANTS,
    c=INSTANTS,
    op=st.sampled_from(["=", "<>", "<", "<=", ">", ">="]),
    rel=st.sampled_from(["T_AFTER", "T_BEFORE", "T_DURING", "T_INTERSECTS", "T_EQUALS"]),
)
def test_temporal_agrees(a: dt.datetime, b: dt.datetime, c: dt.datetime, op: str, rel: str) -> None:
    props = {"ts": a, "ts2": b, "d": c.date()}
    literal = f"TIMESTAMP('{b.year:04d}{b.strftime('-%m-%dT%H:%M:%S.%fZ')}')"
    agree(parse_text(f"ts {op} {literal}"), props)
    agree(parse_text(f"ts {op} ts2"), props)
    agree(parse_text(f"d {op} ts"), props)
    agree(parse_text(f"d {op} DATE('{b.date().isoformat()}')"), props)
    agree(parse_text(f"{rel}(INTERVAL(d, ts2), ts)"), props)


NUMBERS = st.one_of(
    st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, width=64)
)


@settings(max_examples=300, deadline=None)
@given(
    n=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    x=st.one_of(st.none(), st.floats(allow_nan=False)),
    op=st.sampled_from(["+", "-", "*", "/", "%", "div", "^"]),
    cmp=st.sampled_from(["=", "<", ">"]),
    k=st.integers(-5, 5),
)
def test_numbers_agree(n: int | None, x: float | None, op: str, cmp: str, k: int) -> None:
    props = {"n": n, "x": x}
    agree(parse_text(f"n {cmp} x"), props)
    agree(parse_text(f"(n {op} {k}) {cmp} x"), props)
    agree(parse_text(f"(x {op} n) {cmp} {k}"), props)
    agree(parse_text(f"n BETWEEN {k} AND x"), props)


@settings(max_examples=200, deadline=None)
@given(
    b=st.one_of(st.none(), st.booleans()),
    s=st.one_of(st.none(), TEXT),
    n=st.one_of(st.none(), st.integers(-3, 3)),
)
def test_logic_agrees(b: bool | None, s: str | None, n: int | None) -> None:
    props = {"b": b, "s": s, "n": n}
    for text in [
        "b AND n > 0",
        "b OR s = 'a'",
        "NOT (b OR n IN (1, 2))",
        "NOT b AND NOT s IS NULL",
        "b = (n > 0)",
        "NOT (s LIKE 'a%' OR b)",
        "n IN (1, n) OR NOT b",
    ]:
        agree(parse_text(text), props)
