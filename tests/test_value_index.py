"""Exact counts of static layers from sorted values in memory (``store.value_index``), on
both stores (PostGIS real): every count equals SQL's ``count(*)`` (the same store with the
index off), the index really answers (its hit counter), a new data version is never served
an old array, and other filters and editable layers count in SQL as before."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import shapely

from geoservice.catalogue import LayerSpec
from geoservice.features import Feature
from geoservice.ogc.params import parse_filter
from geoservice.store import postgis
from geoservice.store.base import Query, Store
from geoservice.store.gpkg import GpkgStore
from tests.test_store import SPEC

STATIC = LayerSpec.model_validate({
    **SPEC.model_dump(),
    "id": "heights",
    "temporal_property": None,
    "geometry_type": "Point",
    "properties": [
        {"name": "h", "type": "number"},
        {"name": "k", "type": "integer"},
        {"name": "free", "type": "number"},
        {"name": "s"},
    ],
    "indexes": ["h", "k", "s"],
})
EDITABLE = LayerSpec.model_validate({**STATIC.model_dump(), "editable": True})
#: heights with NULLs, repeats, negatives, a signed zero, 2**53 and values between literals
H = [None, -3.5, -1.0, -0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 2.25, 2.5, 2.5, 2.5, 3.0, 10.0,
     None, 1e6, 9007199254740992.0, -7.25, 4.75]
K = [None, -5, -1, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 5, None, 10, -2, 7, 2**53, 6]
LITERALS = ["-5", "-3.5", "-1", "-0.0", "0", "0.5", "1", "1.0", "2", "2.0", "2.5", "2.6", "3",
            "1000000", "9007199254740992", "1e20", "-1e20"]
OPS = ["=", "<>", "<", "<=", ">", ">="]


def features(n: int = 3) -> list[Feature]:
    """``n`` copies of the value rows (so equal values repeat across rows too)."""
    return [Feature(f"p{c}_{i:02d}", {k: v for k, v in (("h", H[i]), ("k", K[i]),
                                                         ("free", H[i]), ("s", f"s{i}"))
                                      if v is not None},
                    shapely.Point(139 + i * 0.01, 35 + c * 0.01))
            for c in range(n) for i in range(len(H))]


@pytest.fixture(scope="module")
def pg_url(pg_database: Callable[[str], str]) -> str:
    return pg_database("valueindex")


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens stores on one fresh database: each call is another server process's view."""
    opened: list[Store] = []
    if request.param == "gpkg":
        path = tmp_path / "v.gpkg"

        def open_store() -> Store:
            s = GpkgStore(path, create=True)
            opened.append(s)
            return s
    else:
        url = request.getfixturevalue("pg_url")
        schema = f"t_{uuid.uuid4().hex[:12]}"

        def open_store() -> Store:
            s = postgis.PostgisStore(url, schema=schema, create=True)
            opened.append(s)
            return s
    yield open_store
    for s in opened:
        s.close()
    if request.param == "postgis":
        postgis.drop_schema(url, schema)


def build(s: Store, spec: LayerSpec = STATIC, rows: list[Feature] | None = None) -> None:
    s.create_collection(spec, source="test", synthetic=True, replace=True)
    s.bulk_load(spec.id, features() if rows is None else rows)


def q(text: str, **extra: Any) -> Query:
    return Query(filter=parse_filter(text, "cql2-text", None), limit=3, **extra)


def plain(open_store: Callable[[], Store]) -> Store:
    """A store whose value index may hold nothing: every count is SQL's ``count(*)``."""
    s = open_store()
    s._index.max_bytes = 0  # type: ignore[attr-defined]
    return s


def matched(s: Store, text: str, collection: str = "heights", **extra: Any) -> int:
    return s.query(collection, q(text, **extra)).number_matched


def grid() -> list[str]:
    """Every operator with every literal on either side, BETWEEN, and ANDs with ``<>``."""
    out = []
    for prop in ("h", "k"):
        for lit in LITERALS:
            for op in OPS:
                out += [f"{prop} {op} {lit}", f"{lit} {op} {prop}"]
        out += [f"{prop} BETWEEN -1 AND 2.5", f"{prop} BETWEEN 2.5 AND -1",
                f"{prop} BETWEEN 0 AND 2", f"{prop} > -1 AND {prop} <> 1 AND {prop} <> 1.0",
                f"{prop} >= 0.5 AND {prop} <= 3 AND {prop} <> 2.5 AND {prop} <> 7",
                f"{prop} <> 0 AND {prop} <> 1", f"{prop} = 1 AND {prop} = 2",
                f"{prop} > 2 AND {prop} < 2", f"{prop} >= 2 AND {prop} <= 2"]
    return out


def test_counts_equal_sql_for_every_operator_and_literal(
    opener: Callable[[], Store],
) -> None:
    s = opener()
    build(s)
    sql_store = plain(opener)
    index = s._index  # type: ignore[attr-defined]
    cases = grid()
    got = {t: matched(s, t) for t in cases}
    want = {t: matched(sql_store, t) for t in cases}
    assert got == want
    assert sql_store._index.hits == 0  # type: ignore[attr-defined]
    assert index.hits == len(cases), "a count of this shape was not answered by the index"
    assert index.loads == 2, "one load per property (h, k), then memory"
    # spot checks against the values themselves (NULLs never match, 2.5 repeats at the edge)
    assert got["h > 2.5"] == 3 * sum(v is not None and v > 2.5 for v in H)
    assert got["h <> 1"] == 3 * sum(v is not None and v != 1 for v in H)
    assert got["k < 2.5"] == 3 * sum(v is not None and v < 2.5 for v in K)
    assert got["k = 2.0"] == 3 * K.count(2) and got["k = 2.5"] == 0
    # pages are still the SQL's
    page = s.query("heights", q("h >= 2.5"))
    assert [f.id for f in page.features] == [
        f.id for f in sql_store.query("heights", q("h >= 2.5")).features]


def test_a_new_data_version_is_never_served_an_old_array(
    opener: Callable[[], Store],
) -> None:
    """Another process rebuilds the layer, then writes to it: this process's array is of
    the old version and must not answer; it is replaced and answers again."""
    s, other = opener(), opener()
    build(s)
    index = s._index  # type: ignore[attr-defined]
    before = matched(s, "h > 1")
    assert index.hits == 1 and before == 3 * sum(v is not None and v > 1 for v in H)
    build(other, rows=features(5))  # a rebuild with more rows
    assert matched(s, "h > 1") == 5 * sum(v is not None and v > 1 for v in H)
    matched(s, "h > 1.5")
    assert index.loads == 2, "the new version was not loaded"
    other.create("heights", Feature("new", {"h": 100.0}, shapely.Point(139, 35)))
    assert matched(s, "h > 1") == 5 * sum(v is not None and v > 1 for v in H) + 1
    hits = index.hits
    assert matched(s, "h >= 100 AND h < 1000") == 1 and matched(s, "h BETWEEN 99.5 AND 100") == 1
    assert index.hits >= hits + 1 and index.loads == 3
    assert matched(s, "h > 1") == matched(plain(opener), "h > 1")


def test_other_filters_count_in_sql(opener: Callable[[], Store]) -> None:
    s = opener()
    build(s)
    sql_store = plain(opener)
    index = s._index  # type: ignore[attr-defined]
    others = [("h > 1 OR h < 0", {}), ("NOT h > 1", {}), ("h > k", {}), ("free > 1", {}),
              ("s > 's3'", {}), ("h > 1 AND k > 1", {}), ("h > 1 + 0", {}), ("h IS NULL", {}),
              ("h > 1", {"bbox": (138.0, 34.0, 139.055, 36.0)}), ("h > 1", {"properties":
                                                                          {"s": "s3"}})]
    for text, extra in others:
        assert matched(s, text, **extra) == matched(sql_store, text, **extra), text
    assert index.hits == 0 and index.loads == 0


def test_an_editable_layer_never_uses_the_index(opener: Callable[[], Store]) -> None:
    s = opener()
    build(s, EDITABLE)
    sql_store = plain(opener)
    for text in ("h > 1", "k BETWEEN 0 AND 3", "h <> 2.5"):
        assert matched(s, text) == matched(sql_store, text)
    index = s._index  # type: ignore[attr-defined]
    assert index.hits == 0 and index.loads == 0


def test_text_in_a_number_column_is_never_counted_from_the_index(tmp_path: Path) -> None:
    """SQLite keeps text in a REAL column and orders it above every number: the column
    is loaded once, found not to be numbers only and counted in SQL."""
    s = GpkgStore(tmp_path / "t.gpkg", create=True)
    build(s)
    con = s._con()  # as another tool would: the store's data version does not move
    con.execute("UPDATE heights SET h = 'tall' WHERE id = 'p0_05'")
    if con.in_transaction:
        con.commit()
    assert con.execute("SELECT typeof(h) FROM heights WHERE id = 'p0_05'").fetchone() == (
        "text",)
    sql_store = GpkgStore(s.path)
    sql_store._index.max_bytes = 0
    for text in ("h > 1", "h < 1", "h <> 0.5", "h >= -100"):
        assert matched(s, text) == matched(sql_store, text), text
    # the row that held 0.5 now holds 'tall', which SQLite orders above every number
    assert matched(s, "h > 1") == 3 * sum(v is not None and v > 1 for v in H) + 1
    assert s._index.hits == 0 and s._index.loads == 1


def test_memory_is_bounded_least_recently_used_out(opener: Callable[[], Store]) -> None:
    """Room for one column of the 60 rows: the other one pushes it out, and a count of
    the first loads it again - each count still exact."""
    s = opener()
    build(s)
    index = s._index  # type: ignore[attr-defined]
    index.max_bytes = 60 * 8
    sql_store = plain(opener)
    for text in ("h > 1", "k > 1", "h > 2", "h >= 2", "k < 0"):
        assert matched(s, text) == matched(sql_store, text), text
    assert index.loads == 4 and index.hits == 5
    assert [key for key in index._arrays] == [("heights", "k")]


def test_a_large_integer_beside_a_real_in_an_integer_column_is_never_rounded(
    tmp_path: Path,
) -> None:
    """SQLite keeps a REAL in an INTEGER column (another tool wrote 2.5) beside integers:
    the column becomes a float array, where 2**53 + 1 would round to 2**53 and be counted
    equal to it - SQLite compares the integers exactly, so such a column counts in SQL."""
    s = GpkgStore(tmp_path / "t.gpkg", create=True)
    build(s)
    con = s._con()  # as another tool would: the store's data version does not move
    con.execute("UPDATE heights SET k = 2.5 WHERE id = 'p0_03'")
    con.execute("UPDATE heights SET k = ? WHERE id = 'p0_05'", (2**53 + 1,))
    if con.in_transaction:
        con.commit()
    sql_store = GpkgStore(s.path)
    sql_store._index.max_bytes = 0
    for text in ("k = 9007199254740992", "k > 9007199254740992", "k >= 9007199254740992",
                 "k <> 9007199254740992", "k > 2"):
        assert matched(s, text) == matched(sql_store, text), text
