"""Where the service keeps the state that is not features: one seam, two implementations.

Tokens, the audit journal, rate-limit counters, guide jobs, alert subscriptions with their
outbox and event log, harvest marks and sighting photos each live in a ``StateDB``:

- the embedded default (GeoPackage store): one SQLite side file per concern under
  ``work_dir`` (``auth.sqlite``, ``alerts.sqlite``, ...), as the service always had -
  one host, several processes;
- ``store.backend: postgis``: one PostgreSQL schema per concern (``geoservice_auth``,
  ``geoservice_alerts``, ...) in the store's database, on the store's connection pool,
  so every app host sees the same state and a host keeps nothing another could need.

Each concern writes its SQL once, with ``?`` placeholders and portable statements; it
gives the two DDL variants and asks ``db.dialect`` where the engines differ (row locks
with ``SKIP LOCKED``, advisory locks).  On PostgreSQL a state write made inside the
store's ``unit()`` joins the feature write's transaction (``db.atomic``), which is how a
feature, its audit entry, its event and its outbox rows commit together.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg

from geoservice.config import Settings
from geoservice.store import Store
from geoservice.store.postgis import SEARCH_PATH as SEARCH_PATH  # re-exported
from geoservice.store.postgis import schema_of as schema_of

#: What a state database raises when it cannot be reached or refuses a statement.
DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)


@dataclass
class Result:
    """The rows of one statement, fetched (so no cursor outlives its connection)."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rowcount: int = 0

    def fetchone(self) -> tuple[Any, ...] | None:
        """The first row, or ``None``."""
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every row."""
        return self.rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)


class Tx(Protocol):
    """A transaction in progress."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """Run one statement (``?`` placeholders)."""
        ...


class StateDB(Protocol):
    """One concern's database: SQLite side file or PostgreSQL schema."""

    #: ``"sqlite"`` or ``"postgresql"``
    dialect: str
    #: writes join the store's unit of work (one transaction with the feature write)
    atomic: bool

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """One statement on its own (autocommit), or inside the enclosing unit of work."""
        ...

    def write(self) -> AbstractContextManager[Tx]:
        """A write transaction, committed on success, rolled back on an exception."""
        ...

    def lock(self, tx: Tx, key: str) -> None:
        """Serialise transactions on ``key`` until ``tx`` ends (SQLite: already serial)."""
        ...

    def notify(self, tx: Tx, channel: str) -> None:
        """Wake the listeners of ``channel`` on every host when ``tx`` commits
        (PostgreSQL ``NOTIFY``; SQLite: nothing, its readers poll)."""
        ...

    def close(self) -> None:
        """Release what this handle holds."""
        ...


#: The concerns and the SQLite side file each uses on the embedded store.
FILES = {
    "auth": "auth.sqlite",
    "alerts": "alerts.sqlite",
    "jobs": "guide-jobs.sqlite",
    "harvest": "harvest.sqlite",
}


def worker_id() -> str:
    """``host/pid/random``: names the owner of a lease (a delivery, a job), so an operator
    - or a test that kills a host - can tell which process holds it."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def pg_ddl(sqlite_ddl: str) -> str:
    """The PostgreSQL form of a concern's SQLite DDL: the two types that differ.

    Concerns write their tables once, in the common subset (``TEXT``, ``INTEGER``,
    ``ON CONFLICT DO NOTHING``), plus ``INTEGER PRIMARY KEY AUTOINCREMENT`` (an ever-growing
    key, ``bigserial``) and ``REAL`` (epoch seconds, ``double precision``)."""
    ddl = sqlite_ddl.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", ddl)


def open_db(
    settings: Settings,
    store: Store | None,
    concern: str,
    ddl: dict[str, str],
    path: Path | None = None,
) -> StateDB:
    """The database of ``concern``: its schema in the PostGIS store's database, else the
    SQLite file ``path`` (default ``<work_dir>/<FILES[concern]>``); created if missing."""
    if settings.store.backend == "postgis" and store is not None:
        from geoservice.state.pg import PgDB
        from geoservice.store.postgis import PostgisStore

        assert isinstance(store, PostgisStore), "a PostGIS backend opens a PostgisStore"
        return PgDB(store, schema_of(concern), ddl["postgresql"])
    from geoservice.state.sqlite import SqliteDB

    return SqliteDB(path or (settings.work_dir / FILES[concern]), ddl["sqlite"])
