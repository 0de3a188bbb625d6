"""Durable SQLite connections shared by the small service databases.

WAL lets readers run beside a writer; ``synchronous=FULL`` makes an acknowledged write
survive a crash; ``immediate()`` takes the write lock up front (``BEGIN IMMEDIATE``) so
two server processes see one consistent state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect_durable(path: Path) -> sqlite3.Connection:
    """An autocommit connection in WAL mode with ``synchronous=FULL`` and a 30 s busy wait."""
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA busy_timeout=30000")
    return con


@contextmanager
def immediate(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction (``BEGIN IMMEDIATE``): committed on success, else rolled back."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
