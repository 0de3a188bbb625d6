"""An alerts database of the previous release (events without ``event_type``) upgrades
when opened, on both state backends: its events replay as sightings, and a withdrawal and
a correction - which read and write the new column - work on it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from geoservice.sightings.alerts import DDL, SIGHTING, WITHDRAWN, Outbox
from geoservice.state import pg_ddl, schema_of
from geoservice.state.pg import PgDB
from geoservice.store.postgis import PostgisStore

#: the events table as the previous release made it
OLD_EVENTS = """CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL,
    feature_id TEXT NOT NULL,
    feature TEXT NOT NULL,
    created_at REAL NOT NULL
)"""
OLD_ROW = ("INSERT INTO events (event_id, collection, feature_id, feature, created_at)"
           " VALUES ('e-old', 'wildlife-sightings', 'ws-1', '{\"id\": \"ws-1\"}', 1.0)")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_events_table_of_the_previous_release_upgrades(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = None
    if backend == "sqlite":
        path = tmp_path / "alerts.sqlite"
        with sqlite3.connect(path) as con:
            con.execute(OLD_EVENTS)
            con.execute(OLD_ROW)
        outbox = Outbox(path)
    else:
        make_db: Callable[[str], str] = request.getfixturevalue("pg_database")
        url = make_db("alerts_upgrade")
        with psycopg.connect(url) as con:
            con.execute(f"CREATE SCHEMA {schema_of('alerts')}")
            con.execute(f"SET search_path TO {schema_of('alerts')}")
            con.execute(pg_ddl(OLD_EVENTS))
            con.execute(OLD_ROW)
        store = PostgisStore(url, create=True)
        outbox = Outbox(PgDB(store, schema_of("alerts"), DDL["postgresql"]))
    try:
        [old] = outbox.events_after(0)
        assert (old.event_id, old.event_type) == ("e-old", SIGHTING)
        outbox.withdraw("wildlife-sightings", "ws-1")
        doc = json.dumps({"id": "ws-1", "properties": {}})
        outbox.append_event("wildlife-sightings", "ws-1", doc, [], correction_matches=set())
        types = [e.event_type for e in outbox.events_after(0)]
        assert types == [SIGHTING, WITHDRAWN, SIGHTING]
        assert outbox.alerted("wildlife-sightings", "ws-1") == set()
    finally:
        outbox.close()
        if store is not None:
            store.close()
