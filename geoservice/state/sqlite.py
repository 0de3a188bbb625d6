"""The embedded ``StateDB``: a durable SQLite side file (one host, several processes)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from geoservice.sqlite import PerThread, connect_durable, immediate
from geoservice.state import Result


class _SqliteTx:
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        return _run(self.con, sql, params)


def _run(con: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Result:
    cur = con.execute(sql, tuple(params))
    rows = cur.fetchall() if cur.description else []
    return Result([tuple(r) for r in rows], cur.rowcount)


class SqliteDB:
    """A SQLite file in WAL mode; one connection per thread; ``BEGIN IMMEDIATE`` writes.

    ``close`` waits for statements and transactions in progress on other threads: a
    dispatcher's cancelled ``asyncio.to_thread`` call keeps running its statement after
    the task is gone, and closing a connection under a running statement crashes the
    process (a segfault in the sqlite3 module, seen at app shutdown in the alert tests).
    """

    dialect = "sqlite"
    atomic = False

    def __init__(self, path: Path, ddl: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._busy = 0
        self._cons = PerThread(self._connect)
        self._cons.get().executescript(ddl)

    def _connect(self) -> sqlite3.Connection:
        con = connect_durable(self.path)
        with self._lock:
            self._opened.append(con)
        return con

    @contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, counted as in use until the block ends."""
        with self._idle:
            self._busy += 1
            con = self._cons.get()
        try:
            yield con
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """One autocommit statement on this thread's connection."""
        with self._using() as con:
            return _run(con, sql, params)

    @contextmanager
    def write(self) -> Iterator[_SqliteTx]:
        """A ``BEGIN IMMEDIATE`` transaction: writers on this file run one at a time."""
        with self._using() as used, immediate(used) as con:
            yield _SqliteTx(con)

    def lock(self, tx: Any, key: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the file's write lock."""

    def notify(self, tx: Any, channel: str) -> None:
        """Nothing to do: one host's readers poll the file (and are woken in-process)."""

    def close(self, wait_s: float = 30.0) -> None:
        """Close every connection this handle opened (a later use opens a new one), once
        no statement or transaction is running on any of them (at most ``wait_s``)."""
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout=wait_s)
            with self._lock:
                for con in self._opened:
                    with contextlib.suppress(sqlite3.Error):
                        con.close()
                self._opened.clear()
            self._cons = PerThread(self._connect)
