"""The auth database: a small SQLite file beside the store, independent of store rebuilds.

It holds hashed tokens, the audit journal and the rate-limit log.  WAL lets readers run
beside a writer; ``synchronous=FULL`` makes an acknowledged write survive a crash; every
write runs in ``BEGIN IMMEDIATE`` so two server processes see one consistent state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from geoservice.sqlite import PerThread, connect_durable, immediate

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  municipality TEXT,
  admin INTEGER NOT NULL DEFAULT 0,
  salt TEXT NOT NULL,
  hash TEXT NOT NULL,
  created_at TEXT NOT NULL,
  revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'committed', 'aborted', 'recovered',
                                       'unknown')),
  actor TEXT NOT NULL,
  municipality TEXT,
  admin INTEGER NOT NULL DEFAULT 0,
  action TEXT NOT NULL,
  collection TEXT NOT NULL,
  feature TEXT,
  before TEXT,
  after TEXT,
  note TEXT
);
CREATE INDEX IF NOT EXISTS idx_audit_feature ON audit (collection, feature);
CREATE INDEX IF NOT EXISTS idx_audit_state ON audit (state);
CREATE TABLE IF NOT EXISTS rate_hits (
  key TEXT NOT NULL,
  at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_rate_hits ON rate_hits (key, at);
"""


class AuthDB:
    """One SQLite file; one connection per thread; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._cons = PerThread(lambda: connect_durable(self.path))
        con = self.con()
        con.executescript(SCHEMA)

    def con(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use ``write()`` for transactions)."""
        return self._cons.get()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed on success."""
        with immediate(self.con()) as con:
            yield con

    def close(self) -> None:
        """Close this thread's connection."""
        self._cons.close()


def auth_db_path(work_dir: Path) -> Path:
    """Where the auth database lives (``<work_dir>/auth.sqlite``)."""
    return work_dir / "auth.sqlite"
