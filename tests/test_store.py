"""The GeoPackage store: reads, writes, atomicity, durability, and validity for GDAL."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyogrio
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geoservice.catalogue import LayerSpec
from geoservice.errors import Conflict, InvalidParameter, NotFound
from geoservice.features import Feature
from geoservice.ogc.params import parse_filter
from geoservice.store.base import Query, Store
from geoservice.store.gpkg import GpkgStore

SPEC = LayerSpec.model_validate(
    {
        "id": "things",
        "title": "Things",
        "licence": {"name": "CC BY 4.0", "url": "https://x"},
        "attribution": "test",
        "source": {"format": "geojson", "paths": ["x.geojson"]},
        "coverage": {"description": "test"},
        "geometry_type": "Polygon",
        "properties": [
            {"name": "name"},
            {"name": "n", "type": "integer"},
            {"name": "ok", "type": "boolean"},
            {"name": "at", "type": "datetime"},
        ],
        "temporal_property": "at",
        "indexes": ["n", "name"],
    }
)
#: the b-tree indexes both stores must have made for SPEC (temporal + declared ``indexes``)
INDEXED = {"idx_things_at", "idx_things_n", "idx_things_name"}


def square(i: int) -> shapely.Polygon:
    return shapely.box(139 + i * 0.01, 35, 139.005 + i * 0.01, 35.005)


# -- shared with test_postgis_store.py: the same behaviour asked of every Store -------------


def load_things(s: Store) -> None:
    """The ``things`` collection with 20 squares f00..f19 (source "test", synthetic)."""
    s.create_collection(SPEC, source="test", synthetic=True)
    s.bulk_load(
        "things",
        [
            Feature(
                f"f{i:02d}",
                {"name": f"n{i}", "n": i, "ok": i % 2 == 0, "at": f"2024-01-{i + 1:02d}T00:00:00Z"},
                square(i),
            )
            for i in range(20)
        ],
    )


def check_crud_round_trip(store: Store) -> Feature:
    """Create, update, replace and delete one feature; returns the deleted feature."""
    created = store.create(
        "things", Feature("", {"name": "new", "n": 99}, shapely.Point(139.5, 35.5))
    )
    assert created.id and store.get("things", created.id).properties == {"name": "new", "n": 99}
    store.update("things", created.id, {"name": "renamed", "n": None})
    assert store.get("things", created.id).properties == {"name": "renamed"}
    store.replace("things", created.id, Feature(created.id, {"n": 1}, shapely.Point(139.6, 35.6)))
    assert store.get("things", created.id).geometry.equals(shapely.Point(139.6, 35.6))
    store.delete("things", created.id)
    with pytest.raises(NotFound):
        store.get("things", created.id)
    with pytest.raises(NotFound):
        store.delete("things", created.id)
    return created


def check_data_version_follows_writes(store: Store, other: Store) -> None:
    """``data_version`` is stable without writes and changes after every committed write,
    including one made through ``other`` (a second store on the same data: another
    worker process) - the tile cache and the count ``info`` caches per version rely on it."""
    v0 = store.data_version("things")
    assert v0 is not None and store.data_version("things") == v0
    n0 = store.info("things").count
    other.create("things", Feature("w1", {"name": "from another worker"}, shapely.Point(139, 35)))
    v1 = store.data_version("things")
    assert v1 != v0, "a write by another store instance was not noticed"
    assert store.data_version("things") == v1
    assert store.info("things").count == n0 + 1, "a cached count outlived a write"
    store.update("things", "w1", {"name": "renamed"})
    v2 = store.data_version("things")
    assert v2 not in (v0, v1)
    store.delete("things", "w1")
    assert store.data_version("things") not in (v0, v1, v2)
    assert store.info("things").count == n0


def check_counts_kept_by_writes(store: Any) -> None:
    """``numberMatched`` stays exact through writes, and a repeat page of a filtered query
    takes its count from the cache (``store._counts``) while the data version holds."""
    n0 = store.info("things").count
    q = Query(bbox=(138.99, 34.99, 139.045, 35.01), limit=2)
    first = store.query("things", q)
    hits = store._counts.hits
    again = store.query("things", dataclasses.replace(q, offset=2))
    assert again.number_matched == first.number_matched
    assert store._counts.hits == hits + 1, "a repeat page counted again"
    store.create("things", Feature("inside", {"name": "x"}, square(2)))
    assert store.info("things").count == n0 + 1
    assert store.query("things", q).number_matched == first.number_matched + 1
    assert store.query("things", Query(limit=1)).number_matched == n0 + 1
    store.delete("things", "inside")
    assert store.info("things").count == n0
    assert store.query("things", dataclasses.replace(q, offset=2)).number_matched == (
        first.number_matched)


def check_extent_kept_by_writes(store: Store) -> None:
    """The extent grows with a far feature and shrinks back when it is deleted."""
    before = store.info("things").extent
    assert before is not None
    store.create("things", Feature("far", {}, shapely.box(141, 36, 141.01, 36.01)))
    assert store.info("things").extent == pytest.approx((*before[:2], 141.01, 36.01))
    store.replace("things", "far", Feature("far", {}, shapely.Point(139.001, 35.001)))
    assert store.info("things").extent == pytest.approx(before)
    store.delete("things", "far")
    assert store.info("things").extent == pytest.approx(before)


def check_iter_features_in_batches(store: Store) -> None:
    """Every feature, in id order, equal to ``get`` of it, across batch boundaries (the
    caller sets the store module's ``ITER_BATCH`` to a small number)."""
    got = list(store.iter_features("things"))
    assert [f.id for f in got] == [f"f{i:02d}" for i in range(20)]
    for f in got:
        g = store.get("things", f.id)
        assert (f.properties, f.geometry.wkb) == (g.properties, g.geometry.wkb)


def check_conflict_and_bad_values(store: Store) -> None:
    with pytest.raises(Conflict):
        store.create("things", Feature("f01", {}, square(1)))
    with pytest.raises(InvalidParameter, match="integer"):
        store.create("things", Feature("x", {"n": "many"}, square(1)))
    with pytest.raises(InvalidParameter, match="unknown property"):
        store.create("things", Feature("x", {"colour": "red"}, square(1)))


def check_failed_bulk_load_writes_nothing(store: Store) -> None:
    def feats() -> Iterator[Feature]:
        yield Feature("ok-1", {}, square(1))
        raise RuntimeError("source broke half-way")

    with pytest.raises(RuntimeError):
        store.bulk_load("things", feats())
    assert store.info("things").count == 20
    with pytest.raises(NotFound):
        store.get("things", "ok-1")


def check_index_follows_updates(store: Store) -> None:
    far = shapely.box(141, 36, 141.01, 36.01)
    store.replace("things", "f00", Feature("f00", {}, far))
    hits = store.query("things", Query(bbox=(140.9, 35.9, 141.1, 36.1)))
    assert [f.id for f in hits.features] == ["f00"]
    assert store.query("things", Query(bbox=(139.0, 35.0, 139.004, 35.004))).number_matched == 0


def check_paging_sorting_and_number_matched(store: Store) -> None:
    pages = [
        store.query("things", Query(limit=7, offset=o, sortby=(("ok", True),))) for o in (0, 7, 14)
    ]
    ids = [f.id for p in pages for f in p.features]
    assert all(p.number_matched == 20 for p in pages)
    assert sorted(ids) == [f"f{i:02d}" for i in range(20)] and len(set(ids)) == 20
    assert [f.properties["ok"] for f in pages[0].features][:7] == [False] * 7


def load_squares(s: Store) -> dict[str, shapely.Polygon]:
    """The ``things`` collection with 30 bare squares f0..f29; returns their geometries."""
    s.create_collection(SPEC, source="t", synthetic=True)
    geoms = {f"f{i}": square(i) for i in range(30)}
    s.bulk_load("things", [Feature(k, {}, g) for k, g in geoms.items()])
    return geoms


def check_bbox_query_equals_brute_force(
    s: Store, geoms: dict[str, shapely.Polygon], x: float, y: float, w: float, h: float
) -> None:
    box = (x, y, x + w, y + h)
    got = {f.id for f in s.query("things", Query(bbox=box, limit=100)).features}
    assert got == {k for k, g in geoms.items() if shapely.box(*box).intersects(g)}


# -- the GeoPackage store ------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> GpkgStore:
    s = GpkgStore(tmp_path / "s.gpkg", create=True)
    load_things(s)
    return s


def test_counts_cost_no_scan(store: GpkgStore) -> None:
    counts: list[str] = []
    store._con().set_trace_callback(lambda stmt: counts.append(stmt) if "COUNT(" in stmt else None)
    try:
        assert [store.info("things").count for _ in range(3)] == [20, 20, 20]
        assert store.query("things", Query(limit=5, offset=5)).number_matched == 20
        store.delete("things", "f00")
        assert store.info("things").count == 19
        assert counts == [], "the unfiltered count is kept by writes, never counted"
    finally:
        store._con().set_trace_callback(None)
    check_counts_kept_by_writes(store)


def test_declared_indexes_exist_and_serve_filtered_counts(store: GpkgStore) -> None:
    con = store._con()
    names = {r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'things'")}
    assert names >= INDEXED
    # the SQL count itself (the value index, test_value_index.py, would answer this shape)
    store._index.max_bytes = 0
    counts: list[str] = []
    con.set_trace_callback(lambda stmt: counts.append(stmt) if "COUNT(" in stmt else None)
    try:
        page = store.query("things", Query(filter=parse_filter("n > 12", "cql2-text", None)))
    finally:
        con.set_trace_callback(None)
    assert page.number_matched == 7
    assert len(counts) == 1, counts
    # the very statement the store counted with: answered from the index alone
    plan = " ".join(str(r[3]) for r in con.execute(f"EXPLAIN QUERY PLAN {counts[0]}"))
    assert "COVERING INDEX idx_things_n" in plan, plan


def test_iter_features_in_batches(store: GpkgStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("geoservice.store.gpkg.ITER_BATCH", 7)
    check_iter_features_in_batches(store)


def test_crud_round_trip(store: GpkgStore) -> None:
    check_crud_round_trip(store)


def test_data_version_follows_writes_of_every_worker(store: GpkgStore) -> None:
    other = GpkgStore(store.path)
    try:
        check_data_version_follows_writes(store, other)
    finally:
        other.close()


def test_duplicate_id_is_a_conflict_and_bad_values_are_refused(store: GpkgStore) -> None:
    check_conflict_and_bad_values(store)


def test_failed_bulk_load_writes_nothing(store: GpkgStore) -> None:
    check_failed_bulk_load_writes_nothing(store)


def test_rtree_follows_updates(store: GpkgStore) -> None:
    check_index_follows_updates(store)


def test_extent_kept_by_writes(store: GpkgStore) -> None:
    check_extent_kept_by_writes(store)


def test_paging_sorting_and_number_matched(store: GpkgStore) -> None:
    check_paging_sorting_and_number_matched(store)


@settings(max_examples=40, deadline=None)
@given(st.floats(138.9, 139.3), st.floats(34.95, 35.01), st.floats(0, 0.3), st.floats(0, 0.02))
def test_bbox_query_equals_brute_force(x: float, y: float, w: float, h: float) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        s = GpkgStore(Path(d) / "s.gpkg", create=True)
        geoms = load_squares(s)
        check_bbox_query_equals_brute_force(s, geoms, x, y, w, h)
        s.close()


def test_file_is_a_geopackage_gdal_reads(store: GpkgStore) -> None:
    store.checkpoint()
    layers = dict(pyogrio.list_layers(store.path))
    assert layers["things"] == "Polygon"
    df = pyogrio.read_dataframe(store.path, layer="things", bbox=(139.0, 34.9, 139.052, 35.1))
    assert sorted(df["id"]) == [f"f{i:02d}" for i in range(6)]
    assert df.crs.to_epsg() == 4326
    info = pyogrio.read_info(store.path, layer="things")
    assert info["features"] == 20
    with open(store.path, "rb") as fh:
        header = fh.read(100)
    assert header[68:72] == b"GPKG"  # application_id


_WRITER = """
import sys, shapely
from pathlib import Path
from geoservice.store.gpkg import GpkgStore
from geoservice.features import Feature
s = GpkgStore(Path(sys.argv[1]))
s.create("things", Feature("durable", {"name": "acknowledged"}, shapely.Point(139.1, 35.1)))
print("ACK", flush=True)
import time; time.sleep(60)
"""


def test_acknowledged_write_survives_a_killed_process(store: GpkgStore) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(store.path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ACK"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    fresh = GpkgStore(store.path)
    assert fresh.get("things", "durable").properties["name"] == "acknowledged"


def test_stored_timestamps_are_iso_with_four_digit_years() -> None:
    from datetime import UTC, datetime

    from geoservice.store.values import format_datetime

    assert format_datetime(datetime(999, 6, 1, 12, tzinfo=UTC)) == "0999-06-01T12:00:00Z"
    assert format_datetime(datetime(2025, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)) == (
        "2025-01-02T03:04:05.006Z")
