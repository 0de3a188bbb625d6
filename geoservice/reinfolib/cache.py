"""The API cache in the store: a tile ledger beside the layer's ordinary collection.

Two tables live in the store itself (the GeoPackage file, or the PostGIS schema), so a
backup, a replica or another host sees the same cache:

``reinfolib_tiles``   one row per fetched tile: layer, z/x/y, ``fetched_at``, the request URL
                      (no key: it is a header).  A row older than the TTL is refetched.
``reinfolib_pieces``  what each tile said: one row per (tile, identity) with the API
                      properties (JSON) and the clipped geometry (WKB).
``reinfolib_dirty``   identities whose merged feature must be (re)written.
``reinfolib_sent``    when each API request of the last minute was sent, by any process or
                      host: the per-minute request budget is the service's, not a process's
                      (MLIT warns users who access excessively).

The layer's collection holds one merged feature per identity (``merge.py``) and is what
OGC clients, tiles, CQL2 and site queries read.  Writing a tile and marking its old and new
identities dirty is one transaction; merging the dirty identities into the collection is
idempotent (ids are hashes of identities), so a process killed at any point resumes by
merging what is still dirty: no duplicates, nothing lost.

A merge (read dirty → read pieces → write features → clean) holds the layer's lock, and so
does writing a tile: otherwise two answers at neighbouring sites could interleave - one
merging a feature from the pieces it read before the other's tile arrived, writing it
after the other's whole merge and cleaning the mark - and leave part of a polygon in the
collection, where a site in the missing part reads "nothing here".  The lock is a file
lock per layer beside a GeoPackage (threads and processes of one host), a PostgreSQL
advisory lock on PostGIS (every host).
"""

from __future__ import annotations

import fcntl
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import shapely

from geoservice.catalogue import LayerSpec
from geoservice.errors import Conflict, NotFound
from geoservice.reinfolib.merge import Piece, feature_id, merge
from geoservice.reinfolib.tiles import Tile
from geoservice.sqlite import PerThread, connect_durable, immediate
from geoservice.store.base import Store

log = logging.getLogger("geoservice.reinfolib")
CHUNK = 400  # identities per IN (...) list


@dataclass(frozen=True, slots=True)
class TileRecord:
    """A cached tile: when it was fetched and from which URL."""

    tile: Tile
    fetched_at: str
    url: str

    def fresh(self, ttl_days: float, now: datetime | None = None) -> bool:
        """Younger than the TTL."""
        fetched = datetime.fromisoformat(self.fetched_at)
        return (now or datetime.now(UTC)) - fetched < timedelta(days=ttl_days)


_DDL = (
    "CREATE TABLE IF NOT EXISTS {p}reinfolib_tiles (layer TEXT NOT NULL, z INTEGER NOT NULL,"
    " x INTEGER NOT NULL, y INTEGER NOT NULL, fetched_at TEXT NOT NULL, url TEXT NOT NULL,"
    " PRIMARY KEY (layer, z, x, y))",
    "CREATE TABLE IF NOT EXISTS {p}reinfolib_pieces (layer TEXT NOT NULL, z INTEGER NOT NULL,"
    " x INTEGER NOT NULL, y INTEGER NOT NULL, identity TEXT NOT NULL, properties TEXT NOT NULL,"
    " geom {blob} NOT NULL, PRIMARY KEY (layer, z, x, y, identity))",
    "CREATE INDEX IF NOT EXISTS reinfolib_pieces_identity ON {p}reinfolib_pieces"
    " (layer, identity)",
    "CREATE TABLE IF NOT EXISTS {p}reinfolib_dirty (layer TEXT NOT NULL,"
    " identity TEXT NOT NULL, PRIMARY KEY (layer, identity))",
    "CREATE TABLE IF NOT EXISTS {p}reinfolib_sent (at DOUBLE PRECISION NOT NULL)",
)
#: One minute, the budget's sliding window (seconds).
WINDOW_S = 60.0


class Ledger:
    """The three cache tables of one store, on either backend (same SQL, ``?`` placeholders
    rewritten for psycopg)."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Any]], prefix: str,
                 placeholder: str, blob: str, serialise: str | None = None,
                 lock: Callable[[str], AbstractContextManager[Any]] | None = None,
                 lock_in_tx: Callable[[Any, str], None] | None = None) -> None:
        self._tx = transaction
        self._lock = lock  # a layer's lock, held by a merge and by a tile write
        #: takes the same lock inside a tile write's own transaction (PostgreSQL: no second
        #: connection per tile); without it a tile write holds ``lock``
        self._lock_in_tx = lock_in_tx
        self._p = prefix
        self._ph = placeholder
        self._serialise = serialise  # SQL that makes concurrent budget checks take turns
        with self._tx() as con:
            for ddl in _DDL:
                con.execute(ddl.format(p=self._p, blob=blob))

    @classmethod
    def of(cls, store: Store) -> Ledger:
        """The ledger inside ``store`` (a GeoPackage or PostGIS store, or a view of one)."""
        path: Path | None = getattr(store, "path", None)
        if path is not None:
            return _sqlite_ledger(path)
        pool, schema = getattr(store, "pool", None), getattr(store, "schema", None)
        if pool is None or schema is None:
            raise TypeError(f"{type(store).__name__} cannot hold the reinfolib cache")

        @contextmanager
        def tx() -> Iterator[Any]:
            with pool.connection() as con, con.transaction():
                yield con

        def lock(layer: str) -> AbstractContextManager[None]:
            return _advisory_lock(pool.conninfo, f"reinfolib-merge:{schema}.{layer}")

        def lock_in_tx(con: Any, layer: str) -> None:  # the same key: the two conflict
            con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                        (f"reinfolib-merge:{schema}.{layer}",))

        # hosts check-and-count the budget one at a time (SQLite: BEGIN IMMEDIATE does it)
        return cls(tx, f'"{schema}".', "%s", "bytea",
                   serialise="SELECT pg_advisory_xact_lock(hashtext('reinfolib-budget'))",
                   lock=lock, lock_in_tx=lock_in_tx)

    @contextmanager
    def layer_lock(self, layer: str) -> Iterator[None]:
        """Hold ``layer``'s lock (see the module's docstring); re-entrant it is not."""
        if self._lock is None:
            yield
            return
        with self._lock(layer):
            yield

    def close(self) -> None:
        """Release this thread's connection (PostGIS: the pool's are the store's)."""

    def _sql(self, text: str) -> str:
        return text.replace("{p}", self._p).replace("?", self._ph)

    def records(self, layer: str, tiles: Iterable[Tile]) -> dict[Tile, TileRecord]:
        """The cached records of ``tiles`` (absent tiles are missing from the answer)."""
        wanted = set(tiles)
        if not wanted:
            return {}
        zs = sorted({t.z for t in wanted})
        xs = [t.x for t in wanted]
        sql = self._sql("SELECT z, x, y, fetched_at, url FROM {p}reinfolib_tiles WHERE layer = ?"
                        f" AND z IN ({', '.join('?' * len(zs))}) AND x BETWEEN ? AND ?")
        with self._tx() as con:
            rows = con.execute(sql, (layer, *zs, min(xs), max(xs))).fetchall()
        found = (TileRecord(Tile(z, x, y), f, u) for z, x, y, f, u in rows)
        return {r.tile: r for r in found if r.tile in wanted}

    def put(self, spec: LayerSpec, tile: Tile, fetched_at: str, url: str,
            found: list[Piece]) -> None:
        """Replace what ``tile`` said (one transaction); old and new identities get dirty."""
        key = (spec.id, tile.z, tile.x, tile.y)
        where = " WHERE layer = ? AND z = ? AND x = ? AND y = ?"
        held = self.layer_lock(spec.id) if self._lock_in_tx is None else nullcontext()
        with held, self._tx() as con:
            if self._lock_in_tx is not None:
                self._lock_in_tx(con, spec.id)
            old = con.execute(self._sql("SELECT identity FROM {p}reinfolib_pieces" + where),
                              key).fetchall()
            con.execute(self._sql("DELETE FROM {p}reinfolib_pieces" + where), key)
            con.cursor().executemany(
                self._sql("INSERT INTO {p}reinfolib_pieces VALUES (?, ?, ?, ?, ?, ?, ?)"),
                [(*key, p.identity, json.dumps(p.properties, ensure_ascii=False),
                  shapely.to_wkb(p.geometry)) for p in found])
            con.cursor().executemany(
                self._sql("INSERT INTO {p}reinfolib_dirty VALUES (?, ?) ON CONFLICT DO NOTHING"),
                sorted({(spec.id, i) for (i,) in old} | {(spec.id, p.identity) for p in found}))
            con.execute(self._sql(
                "INSERT INTO {p}reinfolib_tiles VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT"
                " (layer, z, x, y) DO UPDATE SET fetched_at = excluded.fetched_at,"
                " url = excluded.url"), (*key, fetched_at, url))

    def take_request_slot(self, per_minute: int, now: float | None = None) -> float:
        """Count one API request against the service-wide budget and return 0, or return
        how many seconds until a slot frees up (nothing counted).

        Why in the store: every worker and, on PostGIS, every host shares the one key, so a
        budget per process would let N processes spend N times it.  Wall-clock time, since
        hosts share it (their clocks are assumed NTP-synchronised)."""
        t = time.time() if now is None else now
        with self._tx() as con:
            if self._serialise:
                con.execute(self._serialise)
            con.execute(self._sql("DELETE FROM {p}reinfolib_sent WHERE at <= ?"),
                        (t - WINDOW_S,))
            sent = [a for (a,) in con.execute(
                self._sql("SELECT at FROM {p}reinfolib_sent ORDER BY at")).fetchall()]
            if len(sent) >= per_minute:
                return max(0.001, float(sent[len(sent) - per_minute]) + WINDOW_S - t)
            con.execute(self._sql("INSERT INTO {p}reinfolib_sent VALUES (?)"), (t,))
            return 0.0

    def dirty(self, layer: str) -> list[str]:
        """Identities whose merged feature is not written yet."""
        sql = self._sql("SELECT identity FROM {p}reinfolib_dirty WHERE layer = ? ORDER BY 1")
        with self._tx() as con:
            return [i for (i,) in con.execute(sql, (layer,)).fetchall()]

    def pieces(self, layer: str, identities: list[str]) -> list[Piece]:
        """Every cached piece of those identities, from any tile."""
        out: list[Piece] = []
        for i in range(0, len(identities), CHUNK):
            chunk = identities[i:i + CHUNK]
            sql = self._sql("SELECT identity, properties, geom FROM {p}reinfolib_pieces"
                            f" WHERE layer = ? AND identity IN ({', '.join('?' * len(chunk))})"
                            " ORDER BY z, x, y, identity")
            with self._tx() as con:
                rows = con.execute(sql, (layer, *chunk)).fetchall()
            out += [Piece(k, json.loads(p), shapely.from_wkb(bytes(g))) for k, p, g in rows]
        return out

    def clean(self, layer: str, identities: list[str]) -> None:
        """Those identities are merged into the collection."""
        with self._tx() as con:
            con.cursor().executemany(
                self._sql("DELETE FROM {p}reinfolib_dirty WHERE layer = ? AND identity = ?"),
                [(layer, i) for i in identities])

    def summary(self, layer: str) -> tuple[int, str | None, str | None]:
        """Tiles cached, oldest and newest fetch."""
        sql = self._sql("SELECT COUNT(*), MIN(fetched_at), MAX(fetched_at)"
                        " FROM {p}reinfolib_tiles WHERE layer = ?")
        with self._tx() as con:
            n, first, last = con.execute(sql, (layer,)).fetchone()
        return int(n), first, last

    def dump(self, layer: str) -> tuple[list[tuple[Any, ...]], ...]:
        """Every row of ``layer`` in the three tables (to carry a cache into a new store)."""
        with self._tx() as con:
            return tuple(
                [tuple(r) for r in con.execute(
                    self._sql(f"SELECT * FROM {{p}}{t} WHERE layer = ?"), (layer,)).fetchall()]
                for t in ("reinfolib_tiles", "reinfolib_pieces", "reinfolib_dirty"))

    def load(self, rows: tuple[list[tuple[Any, ...]], ...]) -> None:
        """Insert rows from ``dump`` (into an empty ledger)."""
        with self._tx() as con:
            for table, table_rows in zip(
                    ("reinfolib_tiles", "reinfolib_pieces", "reinfolib_dirty"), rows, strict=True):
                if table_rows:
                    marks = ", ".join("?" * len(table_rows[0]))
                    con.cursor().executemany(
                        self._sql(f"INSERT INTO {{p}}{table} VALUES ({marks})"),
                        [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                         for r in table_rows])


def _sqlite_ledger(path: Path) -> Ledger:
    """A ledger on a GeoPackage file (its own durable connection per thread).

    Not memoised by path: a build writes a file that is then renamed into place, and a
    cached connection would follow the old file."""
    cons = PerThread(lambda: connect_durable(path))

    @contextmanager
    def tx() -> Iterator[sqlite3.Connection]:
        with immediate(cons.get()) as con:
            yield con

    def lock(layer: str) -> AbstractContextManager[None]:
        return _file_lock(path.parent / f".{path.name}.locks" / f"{layer}.lock")

    ledger = Ledger(tx, "", "?", "BLOB", lock=lock)
    ledger.close = cons.close  # type: ignore[method-assign]
    return ledger


def write_merged(store: Store, spec: LayerSpec, ledger: Ledger) -> int:
    """Merge every dirty identity of ``spec`` into its collection; return how many.

    Idempotent: run it again after a crash and it finishes the job.  Holds the layer's
    lock throughout (when something is dirty), so merges and tile writes take turns."""
    if not ledger.dirty(spec.id):
        return 0
    with ledger.layer_lock(spec.id):
        return _merge_dirty(store, spec, ledger)


def _merge_dirty(store: Store, spec: LayerSpec, ledger: Ledger) -> int:
    dirty = ledger.dirty(spec.id)
    for i in range(0, len(dirty), CHUNK):
        chunk = dirty[i:i + CHUNK]
        merged = {f.id: f for f in merge(spec, ledger.pieces(spec.id, chunk))}
        for key in chunk:
            fid = feature_id(spec, key)
            feature = merged.get(fid)
            if feature is None:
                _delete(store, spec.id, fid)
            else:
                _upsert(store, spec.id, feature)
        ledger.clean(spec.id, chunk)
    return len(dirty)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (per open file: threads exclude each other too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def _advisory_lock(conninfo: str, name: str) -> Iterator[None]:
    """A PostgreSQL session advisory lock on ``name``, on a connection of its own (not the
    pool's: a merge holding it also writes through the pool), released when it closes."""
    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
        yield


def _upsert(store: Store, collection: str, feature: Any) -> None:
    try:
        store.replace(collection, feature.id, feature)
    except NotFound:
        try:
            store.create(collection, feature)
        except Conflict:  # another writer created it meanwhile
            store.replace(collection, feature.id, feature)


def _delete(store: Store, collection: str, fid: str) -> None:
    try:
        store.delete(collection, fid)
    except NotFound:
        pass


def source_label(spec: LayerSpec) -> str:
    """The collection's ``source`` (its build provenance)."""
    return f"不動産情報ライブラリ API {spec.source.api} (zoom {spec.source.zoom})"


def carry_over(settings: Any, spec: LayerSpec, new: Store) -> int:
    """Create ``spec``'s collection in the store being built, with the cache and the merged
    features the live store holds (none on a first build); return the feature count."""
    from geoservice.store import open_store

    new.create_collection(spec, source=source_label(spec), synthetic=False)
    try:
        live = open_store(settings)
    except (FileNotFoundError, ValueError):
        return 0
    try:
        if spec.id not in live.collections():
            return 0
        source, target = Ledger.of(live), Ledger.of(new)
        target.load(source.dump(spec.id))
        source.close()
        target.close()
        return new.bulk_load(spec.id, live.iter_features(spec.id))
    finally:
        live.close()
