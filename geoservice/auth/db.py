"""The auth database: hashed tokens, the audit journal and the rate-limit log.

Embedded: a small SQLite file beside the store, independent of store rebuilds (WAL,
``synchronous=FULL``, ``BEGIN IMMEDIATE`` writes: one host, several processes).  On
PostGIS: the schema ``geoservice_auth`` of the store's database (``geoservice.state``),
shared by every host.
"""

from __future__ import annotations

from pathlib import Path

from geoservice.config import Settings
from geoservice.state import StateDB, open_db, pg_ddl
from geoservice.state.sqlite import SqliteDB
from geoservice.store import Store

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


DDL = {"sqlite": SCHEMA, "postgresql": pg_ddl(SCHEMA)}


class AuthDB(SqliteDB):
    """The embedded auth database: one SQLite file, one connection per thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)


def open_auth_db(settings: Settings, store: Store | None) -> StateDB:
    """The auth database of a deployment: ``auth.sqlite``, or schema ``geoservice_auth``
    in the PostGIS store's database."""
    return open_db(settings, store, "auth", DDL, auth_db_path(settings.work_dir))


def auth_db_path(work_dir: Path) -> Path:
    """Where the auth database lives (``<work_dir>/auth.sqlite``)."""
    return work_dir / "auth.sqlite"
