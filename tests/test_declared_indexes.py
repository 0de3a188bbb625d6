"""Declared ``indexes:`` reach a store built before they were declared, on both stores.

A store built by an older release keeps serving after an upgrade without a rebuild; the
newer release's ``layers/*.yml`` may declare indexes its build never made.  Opening the
store creates the missing ones (and nothing when none is missing).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import yaml

from geoservice.config import Settings
from geoservice.store import open_store
from geoservice.store.base import index_name
from tests.conftest import ROOT, build_layers, pg_settings_for, settings_for

LAYER = "wildlife-sightings"
DECLARED = ["count", "source"]  # neither enum nor temporal: indexed only when declared


def _layers(tmp: Path) -> Path:
    """A layers directory holding the sightings spec as an older release had it."""
    layers = tmp / "layers"
    layers.mkdir()
    shutil.copy(ROOT / "layers" / f"{LAYER}.yml", layers)
    spec = yaml.safe_load((layers / f"{LAYER}.yml").read_text("utf-8"))
    assert not spec.get("indexes"), "the fixture starts from a spec without indexes:"
    return layers


def _declare(layers: Path) -> None:
    """The newer release: the same spec with ``indexes:``."""
    path = layers / f"{LAYER}.yml"
    spec = yaml.safe_load(path.read_text("utf-8"))
    path.write_text(yaml.safe_dump({**spec, "indexes": DECLARED}, allow_unicode=True), "utf-8")


def _indexes(settings: Settings) -> set[str]:
    """The index names the store's tables have, read from the database itself."""
    if settings.store.backend == "postgis":
        with psycopg.connect(settings.store.database_url or "") as con:
            return {r[0] for r in con.execute("SELECT indexname FROM pg_indexes")}
    import sqlite3

    with sqlite3.connect(settings.store.path) as con:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}


@pytest.fixture(params=["gpkg", "postgis"])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings over a store built from the spec without ``indexes:``."""
    layers = _layers(tmp_path)
    if request.param == "gpkg":
        settings = settings_for(tmp_path, layers)
    else:
        make_db: Callable[[str], str] = request.getfixturevalue("pg_database")
        settings = pg_settings_for(tmp_path, layers, make_db("declared_indexes"))
    return build_layers(settings, [LAYER])


def test_opening_a_store_creates_the_indexes_its_specs_now_declare(
    old_store: Settings,
) -> None:
    wanted = {index_name(LAYER, p) for p in DECLARED}
    assert not wanted & _indexes(old_store), "built without the declared indexes"
    _declare(old_store.layers_dir)
    store = open_store(old_store)
    try:
        assert wanted <= _indexes(old_store)
        from geoservice.catalogue import load_catalogue

        # present now: a second open creates nothing
        assert store.ensure_indexes(load_catalogue(old_store.layers_dir)) == []
    finally:
        store.close()


def test_processes_opening_together_do_not_fail_on_an_index_the_other_is_making(
    tmp_path: Path, pg_database: Callable[[str], str]
) -> None:
    """Two server workers (or hosts) start at once after an upgrade: both find an index
    missing and create it.  The one that loses the race must not fail its start-up with
    PostgreSQL's duplicate-name error: the index it wanted exists."""
    import threading

    settings = build_layers(pg_settings_for(tmp_path, _layers(tmp_path),
                                            pg_database("declared_race")), [LAYER])
    _declare(settings.layers_dir)
    url = settings.store.database_url or ""
    name = index_name(LAYER, DECLARED[0])
    other = psycopg.connect(url)  # the other worker, inside its CREATE INDEX, not committed
    other.execute(f'CREATE INDEX "{name}" ON geoservice."{LAYER}" ("{DECLARED[0]}")')
    failed: list[BaseException] = []

    def start() -> None:
        try:
            open_store(settings).close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failed.append(exc)

    worker = threading.Thread(target=start)
    worker.start()
    with psycopg.connect(url, autocommit=True) as watch:
        for _ in range(200):  # until this worker waits on the other's uncommitted index
            if watch.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:
                break
            worker.join(0.05)
    other.commit()
    other.close()
    worker.join(30)
    assert not failed, f"start-up failed: {failed[0]!r}"
    assert {index_name(LAYER, p) for p in DECLARED} <= _indexes(settings)
