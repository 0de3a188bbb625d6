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
  at REAL NOT NULL,
  expires_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_rate_hits ON rate_hits (key, at);
"""
#: The longest rate-limit window in use (a day per e-mail address): rows logged before
#: hits carried their expiry are kept that long, so an upgrade loosens no limit.
LONGEST_WINDOW_S = 86400
#: After the column exists (both dialects): its index (the periodic sweep's range) and
#: the expiry of rows logged before it (idempotent: a new row's expiry is never 0).
_EXPIRY = f"""
CREATE INDEX IF NOT EXISTS idx_rate_hits_expiry ON rate_hits (expires_at);
UPDATE rate_hits SET expires_at = at + {LONGEST_WINDOW_S} WHERE expires_at = 0;
"""
_PG_MIGRATE = (
    "ALTER TABLE rate_hits ADD COLUMN IF NOT EXISTS expires_at REAL NOT NULL DEFAULT 0;"
)
DDL = {"sqlite": SCHEMA, "postgresql": pg_ddl(SCHEMA + _PG_MIGRATE + _EXPIRY)}


def migrate_sqlite(db: StateDB) -> None:
    """Bring an ``auth.sqlite`` made before rate hits carried ``expires_at`` up to date
    (SQLite has no ``ADD COLUMN IF NOT EXISTS``: checked inside the write lock, so two
    processes opening an old file at once add it once)."""
    with db.write() as con:
        cols = {r[1] for r in con.execute("PRAGMA table_info(rate_hits)").fetchall()}
        if "expires_at" not in cols:
            con.execute("ALTER TABLE rate_hits ADD COLUMN expires_at REAL NOT NULL DEFAULT 0")
        for statement in filter(str.strip, _EXPIRY.split(";")):
            con.execute(statement)


class AuthDB(SqliteDB):
    """The embedded auth database: one SQLite file, one connection per thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)
        migrate_sqlite(self)


def open_auth_db(settings: Settings, store: Store | None) -> StateDB:
    """The auth database of a deployment: ``auth.sqlite``, or schema ``geoservice_auth``
    in the PostGIS store's database."""
    db = open_db(settings, store, "auth", DDL, auth_db_path(settings.work_dir))
    if db.dialect == "sqlite":
        migrate_sqlite(db)
    return db


def auth_db_path(work_dir: Path) -> Path:
    """Where the auth database lives (``<work_dir>/auth.sqlite``)."""
    return work_dir / "auth.sqlite"
