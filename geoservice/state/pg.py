"""The scale-out ``StateDB``: one PostgreSQL schema per concern, on the store's pool.

Statements are written with ``?`` placeholders (shared with the SQLite side) and run with
``%s``.  Inside the store's ``unit()`` they run on the unit's connection, so a state write
commits or rolls back with the feature write (``atomic``); outside, each ``execute`` is one
autocommit statement and each ``write()`` its own transaction.
"""

from __future__ import annotations

import logging
import re
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql as pgsql

from geoservice.state import Result
from geoservice.store.postgis import PostgisStore

log = logging.getLogger("geoservice.state")
_MARK = re.compile(r"\?")
#: ``pg_advisory_xact_lock`` class of the DDL of every state schema (hosts starting together)
DDL_LOCK = 0x6E05


def to_pg(sql: str) -> str:
    """``?`` placeholders → ``%s`` (our statements hold no literal ``?`` or ``%``)."""
    return _MARK.sub("%s", sql)


class _PgTx:
    def __init__(self, con: psycopg.Connection[Any]) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        return _run(self.con, sql, params)


def _run(con: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> Result:
    cur = con.execute(to_pg(sql), tuple(params))  # type: ignore[arg-type]
    rows = cur.fetchall() if cur.description else []
    return Result([tuple(r) for r in rows], cur.rowcount)


class PgDB:
    """A concern's schema in the store's database.

    Statements name tables unqualified: every pool connection's ``search_path`` lists the
    state schemas (``geoservice.store.postgis.SEARCH_PATH``), whose table names are distinct."""

    dialect = "postgresql"
    atomic = True

    def __init__(self, store: PostgisStore, schema: str, ddl: str) -> None:
        self.store = store
        self.schema = schema
        with store.connection() as con, con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
            con.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                pgsql.Identifier(schema)))
            con.execute(pgsql.SQL("SET LOCAL search_path TO {}, public").format(
                pgsql.Identifier(schema)))
            con.execute(ddl)  # type: ignore[arg-type]

    @contextmanager
    def _con(self) -> Iterator[psycopg.Connection[Any]]:
        with self.store.connection() as con:
            yield con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """One statement (autocommit, or in the enclosing unit of work)."""
        with self._con() as con:
            return _run(con, sql, params)

    @contextmanager
    def write(self) -> Iterator[_PgTx]:
        """A transaction (a savepoint inside an enclosing unit of work)."""
        with self._con() as con, con.transaction():
            yield _PgTx(con)

    def lock(self, tx: Any, key: str) -> None:
        """A transaction-level advisory lock on ``key`` (released at commit/rollback)."""
        tx.execute("SELECT pg_advisory_xact_lock(?, ?)", (DDL_LOCK, _key32(key)))

    def notify(self, tx: Any, channel: str) -> None:
        """``NOTIFY channel``, sent by PostgreSQL to every listening host at commit."""
        tx.execute("SELECT pg_notify(?, '')", (channel,))

    def close(self) -> None:
        """Nothing to release: the pool belongs to the store."""


def _key32(key: str) -> int:
    """A stable signed 32-bit key for an advisory lock."""
    v = zlib.crc32(key.encode("utf-8"))
    return v - (1 << 32) if v >= 1 << 31 else v


class Listener:
    """A thread with its own connection that ``LISTEN``s on ``channel`` and calls
    ``wake()`` for every notification (and after each (re)connect, in case one was missed
    while the connection was down).  Readers still poll now and then, so a lost
    notification delays an event by at most a poll interval, never loses it."""

    def __init__(self, url: str, channel: str, wake: Callable[[], None]) -> None:
        self.url = url
        self.channel = channel
        self.wake = wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start listening in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name=f"listen-{self.channel}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (within a second)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as con:
                    con.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(self.channel)))
                    self.wake()
                    while not self._stop.is_set():
                        for _ in con.notifies(timeout=1.0):
                            self.wake()
            except psycopg.Error as exc:
                log.warning("LISTEN %s: %s; reconnecting", self.channel, exc)
                self._stop.wait(1.0)
