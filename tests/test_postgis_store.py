"""The PostGIS store: the behaviours of ``test_store.py`` (CRUD, conflicts, atomic bulk load,
paging/sorting, bbox vs brute force), plus value formats identical to the GeoPackage store
and the atomic schema swap used by ``geoservice build``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoservice.catalogue import LayerSpec
from geoservice.errors import Conflict, InvalidParameter, NotFound
from geoservice.features import Feature
from geoservice.store import postgis  # a product module: an import error fails, never skips
from geoservice.store.base import Query
from geoservice.store.gpkg import GpkgStore
from tests.test_store import (
    INDEXED,
    SPEC,
    check_bbox_query_equals_brute_force,
    check_conflict_and_bad_values,
    check_counts_kept_by_writes,
    check_crud_round_trip,
    check_data_version_follows_writes,
    check_extent_kept_by_writes,
    check_failed_bulk_load_writes_nothing,
    check_index_follows_updates,
    check_iter_features_in_batches,
    check_paging_sorting_and_number_matched,
    load_squares,
    load_things,
    square,
)

pytestmark = pytest.mark.postgis

TYPED = LayerSpec.model_validate(
    {
        **SPEC.model_dump(),
        "id": "typed",
        "geometry_type": "Geometry",
        "properties": [
            {"name": "name"},
            {"name": "n", "type": "integer"},
            {"name": "x", "type": "number"},
            {"name": "ok", "type": "boolean"},
            {"name": "day", "type": "date"},
            {"name": "at", "type": "datetime"},
            {"name": "kind", "enum": ["a", "b"]},
        ],
    }
)


@pytest.fixture(scope="module")
def pg_url(pg_database: Callable[[str], str]) -> str:
    return pg_database("store")


def _fresh(url: str) -> postgis.PostgisStore:
    return postgis.PostgisStore(url, schema=f"t_{uuid.uuid4().hex[:12]}", create=True)


@pytest.fixture
def store(pg_url: str) -> Iterator[postgis.PostgisStore]:
    s = _fresh(pg_url)
    load_things(s)
    yield s
    s.close()
    postgis.drop_schema(pg_url, s.schema)


def test_crud_round_trip(store: postgis.PostgisStore) -> None:
    created = check_crud_round_trip(store)
    with pytest.raises(NotFound):
        store.update("things", created.id, {"name": "x"})
    with pytest.raises(NotFound):
        store.replace("things", created.id, Feature(created.id, {}, None))


def test_duplicate_id_is_a_conflict_and_bad_values_are_refused(
    store: postgis.PostgisStore,
) -> None:
    check_conflict_and_bad_values(store)
    with pytest.raises(Conflict):
        store.bulk_load("things", [Feature("new", {}, None), Feature("f02", {}, None)])
    with pytest.raises(NotFound):
        store.get("things", "new")


def test_declared_indexes_exist_and_counts_are_index_only(
    store: postgis.PostgisStore,
) -> None:
    with store.pool.connection() as con:
        names = {r[0] for r in con.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'things'",
            (store.schema,))}
        assert names >= INDEXED
        # 20 rows would be a seq scan: ask for the index, then check the bulk load left a
        # visibility map (VACUUM) so the count never visits the table
        with con.transaction():
            con.execute("SET LOCAL enable_seqscan = off")
            con.execute("SET LOCAL enable_bitmapscan = off")
            plan = "\n".join(r[0] for r in con.execute(
                f'EXPLAIN (ANALYZE) SELECT count(*) FROM "{store.schema}".things WHERE n > 12'))
    assert "Index Only Scan using idx_things_n" in plan, plan
    assert "Heap Fetches: 0" in plan, plan


def test_iter_features_in_batches(
    store: postgis.PostgisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgis, "ITER_BATCH", 7)
    check_iter_features_in_batches(store)


def test_failed_bulk_load_writes_nothing(store: postgis.PostgisStore) -> None:
    check_failed_bulk_load_writes_nothing(store)


def test_index_follows_updates_and_extent_is_kept(store: postgis.PostgisStore) -> None:
    check_index_follows_updates(store)
    info = store.info("things")
    assert info.count == 20 and info.extent == pytest.approx((139.01, 35.0, 141.01, 36.01))
    assert info.synthetic and info.source == "test"


def test_counts_kept_by_writes(store: postgis.PostgisStore) -> None:
    check_counts_kept_by_writes(store)
    check_extent_kept_by_writes(store)


def test_unfiltered_page_is_served_by_the_id_index(store: postgis.PostgisStore) -> None:
    """The items page sorts by ``id COLLATE "C"``: the id column's own collation, so the
    unique index serves it (no scan and sort of the table), and the pool's sessions run
    without JIT, with custom plans and without parallel workers."""
    spec = store.spec("things")
    stmt = store._select(spec) + store._order(spec, Query()) + postgis.sql.SQL(" LIMIT 10")
    with store.pool.connection() as con:
        con.execute("SET enable_seqscan = off")  # 20 rows: make the planner show its options
        plan = "\n".join(r[0] for r in con.execute(postgis.sql.SQL("EXPLAIN ") + stmt))
        con.execute("RESET enable_seqscan")
        settings = con.execute("SELECT current_setting('jit'),"
                               " current_setting('plan_cache_mode'),"
                               " current_setting('max_parallel_workers_per_gather')").fetchone()
    assert "Index Scan" in plan and "Sort" not in plan, plan
    assert settings == ("off", "force_custom_plan", "0")


def test_paging_sorting_and_number_matched(store: postgis.PostgisStore) -> None:
    check_paging_sorting_and_number_matched(store)
    past = store.query("things", Query(limit=5, offset=50))
    assert past.features == [] and past.number_matched == 20
    assert store.query("things", Query(limit=0)).number_matched == 20


def test_datetime_properties_and_sortby_errors(store: postgis.PostgisStore) -> None:
    from datetime import UTC, datetime

    q = Query(datetime=(datetime(2024, 1, 5, tzinfo=UTC), datetime(2024, 1, 7, tzinfo=UTC)))
    assert [f.id for f in store.query("things", q).features] == ["f04", "f05", "f06"]
    assert store.query("things", Query(properties={"n": "3"})).features[0].id == "f03"
    assert store.query("things", Query(properties={"ok": "true"})).number_matched == 10
    with pytest.raises(InvalidParameter):
        store.query("things", Query(properties={"nosuch": "1"}))
    with pytest.raises(InvalidParameter, match="sortby"):
        store.query("things", Query(sortby=(("nosuch", True),)))


def test_values_are_identical_to_the_geopackage_store(pg_url: str, tmp_path: Path) -> None:
    feats = [
        Feature(
            "a",
            {
                "name": "Zürich",
                "n": 2**40,
                "x": 1.5,
                "ok": True,
                "day": "2024-02-29",
                "at": "2024-03-01T09:00:00+09:00",
                "kind": "a",
            },
            shapely.Point(139.7, 35.6, 12.0),
        ),
        Feature("b", {"at": "2024-03-02T00:00:00.250Z", "ok": False}, None),
        Feature("c", {"name": None, "x": 3}, shapely.LineString([(0, 0), (1, 1)])),
    ]
    pg = _fresh(pg_url)
    gp = GpkgStore(tmp_path / "s.gpkg", create=True)
    try:
        for s in (pg, gp):
            s.create_collection(TYPED, source="t", synthetic=False)
            s.bulk_load("typed", feats)
        for order in ((), (("name", True),), (("at", False),), (("ok", True), ("x", False))):
            a = pg.query("typed", Query(limit=10, sortby=order)).features
            b = gp.query("typed", Query(limit=10, sortby=order)).features
            assert [(f.id, f.properties) for f in a] == [(f.id, f.properties) for f in b], order
            for fa, fb in zip(a, b, strict=True):
                assert (fa.geometry is None) == (fb.geometry is None)
                assert fa.geometry is None or fa.geometry.equals(fb.geometry)
        assert pg.get("typed", "a").properties["at"] == "2024-03-01T00:00:00Z"
        assert pg.get("typed", "b").properties == {"at": "2024-03-02T00:00:00.250Z", "ok": False}
        assert [f.id for f in pg.iter_features("typed")] == ["a", "b", "c"]
    finally:
        pg.close()
        gp.close()
        postgis.drop_schema(pg_url, pg.schema)


def test_data_version_follows_writes_of_every_worker(
    store: postgis.PostgisStore, pg_url: str
) -> None:
    other = postgis.PostgisStore(pg_url, schema=store.schema)  # a second store, same tables
    try:
        check_data_version_follows_writes(store, other)
    finally:
        other.close()


@pytest.fixture(scope="module")
def squares(pg_url: str) -> Iterator[tuple[postgis.PostgisStore, dict[str, shapely.Polygon]]]:
    s = _fresh(pg_url)
    geoms = load_squares(s)
    yield s, geoms
    s.close()
    postgis.drop_schema(pg_url, s.schema)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.floats(138.9, 139.3), st.floats(34.95, 35.01), st.floats(0, 0.3), st.floats(0, 0.02))
def test_bbox_query_equals_brute_force(
    squares: tuple[postgis.PostgisStore, dict[str, shapely.Polygon]],
    x: float,
    y: float,
    w: float,
    h: float,
) -> None:
    s, geoms = squares
    check_bbox_query_equals_brute_force(s, geoms, x, y, w, h)


def test_schema_swap_is_atomic(pg_url: str) -> None:
    live = f"live_{uuid.uuid4().hex[:8]}"
    first = postgis.PostgisStore(pg_url, schema=live, create=True)
    first.create_collection(SPEC, source="v1", synthetic=True)
    first.bulk_load("things", [Feature("old", {}, square(0))])
    staging = postgis.staging_schema(live)
    new = postgis.PostgisStore(pg_url, schema=staging, create=True)
    new.create_collection(SPEC, source="v2", synthetic=True)
    new.bulk_load("things", [Feature("new", {}, square(0))])
    new.close()
    assert [f.id for f in first.iter_features("things")] == ["old"]
    postgis.swap_schema(pg_url, staging, live)
    assert [f.id for f in first.iter_features("things")] == ["new"]
    assert first.info("things").source == "v2"
    first.close()
    postgis.drop_schema(pg_url, live)
    with pytest.raises(FileNotFoundError):
        postgis.PostgisStore(pg_url, schema=live)


def test_failed_build_leaves_the_previous_tables(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geoservice import build as buildmod
    from tests.conftest import CQL2, pg_settings_for, write_cql2_specs

    layers = tmp_path / "layers"
    write_cql2_specs(layers)
    settings = pg_settings_for(tmp_path, layers, pg_url)
    buildmod.build(settings, mirror=CQL2, layers=["ne_110m_rivers_lake_centerlines"])
    before = postgis.PostgisStore(pg_url)
    assert before.collections() == ["ne_110m_rivers_lake_centerlines"]
    count = before.info("ne_110m_rivers_lake_centerlines").count

    def broken(*_a: object, **_k: object) -> Iterator[Feature]:
        yield Feature("x", {}, None)
        raise RuntimeError("source broke")

    monkeypatch.setattr(buildmod, "source_features", broken)
    with pytest.raises(RuntimeError):
        buildmod.build(settings, mirror=CQL2)
    assert before.collections() == ["ne_110m_rivers_lake_centerlines"]
    assert before.info("ne_110m_rivers_lake_centerlines").count == count
    import psycopg

    with psycopg.connect(pg_url) as con:
        left = con.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'geoservice\\_build\\_%'"
        ).fetchall()
    assert left == []
    before.close()


def test_untranslatable_filter_falls_back_to_python(
    store: postgis.PostgisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geoservice.cql2 import parse_text

    q = Query(
        filter=parse_text("n > 4 AND ok = true"), limit=3, offset=1, sortby=(("n", False),)
    )
    pushed = store.query("things", q)
    assert store.fallbacks == 0 and store.pushed_down == 1

    def refuse(*_a: object, **_k: object) -> None:
        raise postgis.Untranslatable("test")

    monkeypatch.setattr(postgis, "translate", refuse)
    fell = store.query("things", q)
    assert store.fallbacks == 1
    assert [f.id for f in fell.features] == [f.id for f in pushed.features] == ["f16", "f14", "f12"]
    assert fell.number_matched == pushed.number_matched == 7


def test_builds_and_maintenance_keep_parallel_maintenance_workers(
    store: postgis.PostgisStore, pg_url: str
) -> None:
    """The pool turns parallel *query* workers off for serving; builds and maintenance run
    on the same pool, so it must leave the maintenance setting (VACUUM's index passes,
    b-tree CREATE INDEX, as in ``ensure_indexes``) at the server's own value."""
    import psycopg

    with psycopg.connect(pg_url) as plain:
        server = plain.execute("SELECT current_setting('max_parallel_maintenance_workers')"
                               ).fetchone()
    with store.pool.connection() as con:
        pooled = con.execute("SELECT current_setting('max_parallel_maintenance_workers'),"
                             " current_setting('max_parallel_workers_per_gather')").fetchone()
    assert server is not None and pooled == (server[0], "0")
