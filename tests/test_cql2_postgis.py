"""The OGC CQL2 test suite (274 cases) through the API over a PostGIS store, as text and JSON.

Same cases and errata as ``test_cql2_http.py``; in addition every filter must have been
translated to SQL (the store's ``fallbacks`` counter stays at zero).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import cql2 as cql2_oracle
import pytest
from fastapi.testclient import TestClient

from geoservice.app import create_app
from geoservice.config import Settings
from tests.test_cql2_http import CASES, IDS, expected, matched

pytestmark = pytest.mark.postgis


@pytest.fixture(scope="module")
def pg_cql2(pg_cql2_settings: Settings) -> Iterator[tuple[TestClient, Any]]:
    from geoservice.store.postgis import PostgisStore

    assert pg_cql2_settings.store.database_url
    store = PostgisStore(pg_cql2_settings.store.database_url)
    with TestClient(create_app(pg_cql2_settings, store=store)) as c:
        yield c, store
    store.close()


def run(pg_cql2: tuple[TestClient, Any], collection: str, params: dict[str, str]) -> int:
    client, store = pg_cql2
    before = store.fallbacks
    n = matched(client, collection, params)
    assert store.fallbacks == before, "the filter was evaluated in Python, not pushed down"
    return n


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_case_as_cql2_text(pg_cql2: tuple[TestClient, Any], i: int) -> None:
    case = CASES[i]
    params = {"filter": case["filter"], "filter-lang": "cql2-text"}
    assert run(pg_cql2, case["collection"], params) == expected(i)


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_case_as_cql2_json(pg_cql2: tuple[TestClient, Any], i: int) -> None:
    case = CASES[i]
    as_json = json.dumps(cql2_oracle.parse_text(case["filter"]).to_json())
    params = {"filter": as_json, "filter-lang": "cql2-json"}
    assert run(pg_cql2, case["collection"], params) == expected(i)


def test_everything_was_pushed_down(pg_cql2: tuple[TestClient, Any]) -> None:
    _, store = pg_cql2
    assert store.fallbacks == 0
    assert store.pushed_down >= 2 * len(CASES)


#: Filters beyond the suite that probe where SQL and the evaluator could part ways:
#: NOT over unknown, division by zero, fractional powers, LIKE escapes, Unicode case and
#: accent folding, open intervals, nulls inside intervals, arrays, mixed date/timestamp.
EXTRA = [
    ("ne_110m_populated_places_simple", "NOT (pop_other / (pop_min - pop_min) > 1)"),
    ("ne_110m_populated_places_simple", "(pop_other / (pop_min - pop_min)) IS NULL"),
    ("ne_110m_populated_places_simple", "pop_other div 0 IS NULL AND pop_other % 0 IS NULL"),
    ("ne_110m_populated_places_simple", "pop_min % 7 = 3"),
    ("ne_110m_populated_places_simple", "(0 - pop_min) % 7 = -3"),
    ("ne_110m_populated_places_simple", "(0 - pop_min) div 7 < -1000"),
    ("ne_110m_populated_places_simple", "pop_min / 3 > 100000.5"),
    ("ne_110m_populated_places_simple", "(0 - pop_min) ^ 0.5 IS NULL"),
    ("ne_110m_populated_places_simple", "(pop_min - pop_min) ^ (0 - 1) IS NULL"),
    ("ne_110m_populated_places_simple", "pop_min ^ 2 > 1e12"),
    ("ne_110m_populated_places_simple", "NOT (name LIKE 'B%')"),
    ("ne_110m_populated_places_simple", "name LIKE '%\\%%' OR name LIKE '%\\_%'"),
    ("ne_110m_populated_places_simple", "name LIKE 'S_o%'"),
    ("ne_110m_populated_places_simple", "name LIKE nameascii"),
    ("ne_110m_populated_places_simple", "CASEI(name) LIKE CASEI('%ã%')"),
    ("ne_110m_populated_places_simple", "ACCENTI(CASEI(name)) = CASEI(ACCENTI(nameascii))"),
    ("ne_110m_populated_places_simple", "ACCENTI(name) <> name"),
    ("ne_110m_populated_places_simple", "CASEI(name) > 'm' AND name < 'Z'"),
    ("ne_110m_populated_places_simple", "NOT T_DURING(INTERVAL(start, end), INTERVAL('..','..'))"),
    ("ne_110m_populated_places_simple", "T_INTERSECTS(INTERVAL(start, '..'), DATE('2022-04-16'))"),
    ("ne_110m_populated_places_simple", "NOT T_CONTAINS(INTERVAL(\"date\", end), start)"),
    ("ne_110m_populated_places_simple", "T_EQUALS(INTERVAL('..', '..'), INTERVAL('..', '..'))"),
    ("ne_110m_populated_places_simple", "\"date\" >= TIMESTAMP('2022-04-16T00:00:00Z')"),
    ("ne_110m_populated_places_simple", "\"date\" < start"),
    (
        "ne_110m_populated_places_simple",
        "\"date\" BETWEEN DATE('2021-01-01') AND DATE('2022-12-31') AND pop_min > 0",
    ),
    ("ne_110m_populated_places_simple", "NOT (\"boolean\" = true) OR \"boolean\" IS NULL"),
    ("ne_110m_populated_places_simple", "\"boolean\" AND pop_min > 1000"),
    ("ne_110m_populated_places_simple", "name IN ('Bern', nameascii, 'Zürich')"),
    ("ne_110m_populated_places_simple", "NOT (pop_min IN (pop_max, 1))"),
    ("ne_110m_populated_places_simple", "A_CONTAINS((name, nameascii), ('Bern', 'Bern'))"),
    ("ne_110m_populated_places_simple", "A_OVERLAPS((name, pop_min), ('Bern', 1))"),
    ("ne_110m_populated_places_simple", "A_EQUALS((name, 1), (nameascii, 1))"),
    ("ne_110m_populated_places_simple", "A_CONTAINEDBY((name, name), ('Bern', 'Paris'))"),
    ("ne_110m_populated_places_simple", "NOT A_CONTAINS(('a', 'b'), ('a', 'c'))"),
    ("ne_110m_populated_places_simple", "1 = 1 AND NOT (2 > 3)"),
    ("ne_110m_populated_places_simple", "S_WITHIN(geom, BBOX(170, -50, -170, 80))"),
    ("ne_110m_admin_0_countries", "S_INTERSECTS(geom, BBOX(170, -50, -170, 80))"),
    ("ne_110m_admin_0_countries", "NOT S_TOUCHES(geom, BBOX(0, 0, 20, 20))"),
    ("ne_110m_admin_0_countries", "POP_EST % 2.5 > 1 AND POP_EST / 1e6 < 20.5"),
    ("ne_110m_admin_0_countries", "POP_EST div 1000000 = 10"),
    ("ne_110m_admin_0_countries", "S_DISJOINT(geom, POINT(0 0)) AND NAME_DE LIKE '%ä%'"),
    ("ne_110m_rivers_lake_centerlines", "S_CROSSES(geom, LINESTRING(-180 0, 180 0))"),
    ("ne_110m_rivers_lake_centerlines", "name_el IS NULL OR CASEI(name_el) LIKE '%ς%'"),
]


@pytest.mark.parametrize(("collection", "text"), EXTRA, ids=[t for _, t in EXTRA])
def test_sql_agrees_with_the_evaluator(
    pg_cql2: tuple[TestClient, Any], collection: str, text: str
) -> None:
    from geoservice.cql2 import parse_text
    from tests.test_cql2_conformance_memory import count

    want = count(parse_text(text), collection)
    assert run(pg_cql2, collection, {"filter": text, "filter-lang": "cql2-text"}) == want


@pytest.mark.parametrize(
    "text", ["CASEI(x)", "ACCENTI(x)", "CASEI(ACCENTI(x))", "ACCENTI(CASEI(x))"]
)
def test_string_folding_matches_python_for_every_code_point(
    pg_cql2_settings: Settings, text: str
) -> None:
    import sys
    import unicodedata

    import psycopg
    from psycopg import sql

    from geoservice.cql2 import parse_text
    from geoservice.cql2.compiler import compile_filter
    from geoservice.store.cql2_sql import Translator

    samples = [
        chr(c)
        for c in range(1, sys.maxunicode + 1)
        if unicodedata.category(chr(c)) not in ("Cn", "Cs")
    ] + ["ΟΔΟΣ", "Straße", "Ḉafé", "e\u0301\u0327", "İstanbul", "ıi", "ǅungla", "ﬃ"]
    from geoservice.cql2.values import accenti, casei

    compile_filter(parse_text(f"{text} = ''"), {"x": "string"})  # the evaluator accepts it

    fns = {
        "CASEI(x)": casei,
        "ACCENTI(x)": accenti,
        "CASEI(ACCENTI(x))": lambda s: casei(accenti(s)),
        "ACCENTI(CASEI(x))": lambda s: accenti(casei(s)),
    }
    tr = Translator({"x": "string"}, lambda n: sql.Identifier(n), sql.SQL("geom"))
    code = tr.expr(parse_text(text)).sql
    assert pg_cql2_settings.store.database_url
    with psycopg.connect(pg_cql2_settings.store.database_url) as con:
        stmt = sql.SQL("SELECT x, {} FROM unnest(%(samples)s::text[]) x").format(code)
        rows = con.execute(stmt, {**tr.params, "samples": samples}).fetchall()
    wrong = [(x, got) for x, got in rows if got != fns[text](x)]
    assert wrong == []


EXTRA_JSON = [
    {"op": "like", "args": [{"property": "name"}, "S\\"]},
    {"op": "not", "args": [{"op": "like", "args": [{"property": "name"}, "%\\"]}]},
    {"op": "like", "args": [{"property": "name"}, "\\B%"]},
    {"op": "like", "args": [{"op": "casei", "args": [{"property": "name"}]}, "s\\ão%"]},
]


@pytest.mark.parametrize("doc", EXTRA_JSON, ids=[json.dumps(d) for d in EXTRA_JSON])
def test_like_escapes_agree_with_the_evaluator(
    pg_cql2: tuple[TestClient, Any], doc: dict[str, Any]
) -> None:
    from geoservice.cql2 import parse_json
    from tests.test_cql2_conformance_memory import count

    collection = "ne_110m_populated_places_simple"
    want = count(parse_json(doc), collection)
    params = {"filter": json.dumps(doc), "filter-lang": "cql2-json"}
    assert run(pg_cql2, collection, params) == want
