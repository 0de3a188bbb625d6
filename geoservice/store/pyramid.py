"""Vector tiles made at build time, stored in the store itself, so a cold tile is a read.

Why: a cold tile of a city is made in Python (``tiling``) from thousands of rows; for
layers that only ``geoservice build`` changes (``tiles.prebuild: true`` in the layer
spec, never an editable layer) that work is done once, after the build, for every
non-empty tile from z0 to the layer's ``maxzoom``, and a request reads the stored bytes.

- **Tables** (in the GeoPackage, or in the PostGIS store's schema): ``geoservice_tiles
  (collection, z, x, y, data)`` holds the tiles (an empty tile is a zero-length blob, so
  its children are never visited); ``geoservice_tile_builds
  (collection, version, maxzoom, done_zoom)`` says which data version the pyramid is of
  and up to which zoom it is complete.  A tile is served from the table only when the
  version equals the collection's current ``data_version`` and ``z <= done_zoom``
  (a tile of a complete level without a row lies under an empty parent: it is empty);
  anything else is made on demand, as before.
- **Order**: level by level; a level's candidates are the children of the previous
  level's non-empty tiles, so the work follows the data, not the world.
- **Parallel**: ``workers`` processes (default 2, the machine's cores) each open the store
  and render tiles; the parent writes them in batches.  Memory per worker is
  one tile's rows (low zooms read R-tree boxes only).  On PostGIS each worker's queries
  run without parallel workers (the pool's ``max_parallel_workers_per_gather=0``): the
  cores are already busy with one process each.
- **Resumable**: rows already written for the current version are kept; an interrupted
  run (or ``geoservice prebuild-tiles``) continues with the missing tiles of the
  first incomplete level.  A new data version starts over.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DDL = """
CREATE TABLE IF NOT EXISTS geoservice_tiles (
  collection TEXT NOT NULL, z INTEGER NOT NULL, x INTEGER NOT NULL, y INTEGER NOT NULL,
  data BLOB NOT NULL, PRIMARY KEY (collection, z, x, y));
CREATE TABLE IF NOT EXISTS geoservice_tile_builds (
  collection TEXT NOT NULL PRIMARY KEY, version TEXT NOT NULL, maxzoom INTEGER NOT NULL,
  done_zoom INTEGER NOT NULL);
"""
BATCH = 64  # tiles written per transaction (at most)
#: ... and at most this many bytes of tiles (then the batch is written): the parent holds one
#: batch, and 64 tiles near the 500 KB budget (the dense zooms of a big city) were ~30 MB
#: more, plus their copies on the way to the database - the main process's peak RSS grew
#: with the city (issue 17: 142 MB at 1,000 buildings, 189 MB at 2,000,000)
BATCH_BYTES = 2 << 20


@dataclass
class PyramidReport:
    """What one prebuild run did."""

    collection: str
    tiles: int = 0  # non-empty tiles written by this run
    empty: int = 0
    skipped: int = 0  # already there from an interrupted run
    bytes: int = 0
    seconds: float = 0.0
    maxzoom: int = 0


def lookup(con: sqlite3.Connection, collection: str, version: str | None,
           z: int, x: int, y: int) -> bytes | None:
    """The prebuilt tile (``b""`` when empty), or ``None`` when it must be made."""
    row = con.execute(
        "SELECT b.version, b.done_zoom, t.data FROM geoservice_tile_builds b"
        " LEFT JOIN geoservice_tiles t ON t.collection = b.collection AND t.z = ?"
        " AND t.x = ? AND t.y = ? WHERE b.collection = ?", (z, x, y, collection)
    ).fetchone()
    if row is None or version is None or row[0] != version or z > row[1]:
        return None
    return bytes(row[2]) if row[2] is not None else b""


# -- where the tiles are kept ---------------------------------------------------------------
class _Tiles:
    """The pyramid tables of one store (GeoPackage file or PostGIS schema)."""

    def __init__(self, target: Path | tuple[str, str]) -> None:
        self.target = target
        if isinstance(target, Path):
            self.con: Any = sqlite3.connect(target, timeout=30, isolation_level=None)
            self.mark, self.upsert = "?", "INSERT OR REPLACE INTO {t} VALUES (?, ?, ?, ?, ?)"
            self.con.executescript(DDL)
            self.tiles, self.builds = "geoservice_tiles", "geoservice_tile_builds"
        else:
            import psycopg

            url, schema = target
            self.con = psycopg.connect(url, autocommit=True)
            self.tiles, self.builds = f'"{schema}".geoservice_tiles', \
                f'"{schema}".geoservice_tile_builds'
            self.mark = "%s"
            self.upsert = ("INSERT INTO {t} VALUES (%s, %s, %s, %s, %s) ON CONFLICT"
                           " (collection, z, x, y) DO UPDATE SET data = excluded.data")

    def _q(self, text: str) -> str:
        return text.replace("?", self.mark).format(t=self.tiles, b=self.builds)

    def _tx(self) -> Any:
        return contextlib.nullcontext() if isinstance(self.target, Path) else \
            self.con.transaction()

    def start(self, collection: str, version: str, maxzoom: int) -> int:
        """The first zoom to (re)build: after the last complete level of this version."""
        row = self.con.execute(self._q("SELECT version, done_zoom, maxzoom FROM {b}"
                                       " WHERE collection = ?"), (collection,)).fetchone()
        if row is not None and row[0] == version and row[2] == maxzoom:
            return int(row[1]) + 1
        self._begin()
        with self._tx():
            self.con.execute(self._q("DELETE FROM {t} WHERE collection = ?"), (collection,))
            self.con.execute(self._q("DELETE FROM {b} WHERE collection = ?"), (collection,))
            self.con.execute(self._q("INSERT INTO {b} VALUES (?, ?, ?, -1)"),
                             (collection, version, maxzoom))
        self._commit()
        return 0

    def level(self, collection: str, z: int) -> dict[tuple[int, int], bool]:
        """Tiles of level ``z`` already written: ``{(x, y): non-empty}``."""
        rows = self.con.execute(self._q("SELECT x, y, length(data) > 0 FROM {t}"
                                        " WHERE collection = ? AND z = ?"),
                                (collection, z)).fetchall()
        return {(x, y): bool(full) for x, y, full in rows}

    def put(self, collection: str, batch: list[tuple[int, int, int, bytes]]) -> None:
        self._begin()
        with self._tx():
            cur = self.con.cursor()
            cur.executemany(self._q(self.upsert), [(collection, *t) for t in batch])
        self._commit()

    def done(self, collection: str, z: int) -> None:
        self.con.execute(self._q("UPDATE {b} SET done_zoom = ? WHERE collection = ?"),
                         (z, collection))

    def _begin(self) -> None:
        if isinstance(self.target, Path):
            self.con.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        if isinstance(self.target, Path):
            self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()


# -- workers ----------------------------------------------------------------------------
_STORE: Any = None


def _open(target: Path | tuple[str, str]) -> None:
    global _STORE
    _STORE = _store(target)


def _store(target: Path | tuple[str, str]) -> Any:
    if isinstance(target, Path):
        from geoservice.store.gpkg import GpkgStore

        return GpkgStore(target)
    from geoservice.store.postgis import PostgisStore

    return PostgisStore(target[0], schema=target[1])


def _render(job: tuple[str, int, int, int]) -> tuple[int, int, int, bytes]:
    collection, z, x, y = job
    return z, x, y, _STORE.tile(collection, z, x, y, prebuilt=False)


# -- the build ------------------------------------------------------------------------------
def _children(parents: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return sorted({(2 * x + dx, 2 * y + dy) for x, y in parents for dx in (0, 1) for dy in (0, 1)})


def prebuild(target: Path | tuple[str, str], collection: str, *, workers: int = 2,
             progress: Callable[[int, int, int], None] | None = None) -> PyramidReport:
    """Make (or finish) the tile pyramid of ``collection`` in the GeoPackage at ``target``
    or the PostGIS ``(database URL, schema)``."""
    t0 = time.perf_counter()
    store = _store(target)
    try:
        spec = store.spec(collection)
        version = store.data_version(collection)
    finally:
        store.close()
    if spec.editable:
        raise ValueError(f"{collection} is editable: its tiles are made on demand")
    assert version is not None
    report = PyramidReport(collection, maxzoom=spec.tiles.maxzoom)
    tiles = _Tiles(target)
    try:
        start = tiles.start(collection, version, spec.tiles.maxzoom)
        parents = [k for k, full in tiles.level(collection, start - 1).items() if full]
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(max(1, workers), initializer=_open, initargs=(target,)) as pool:
            for z in range(start, spec.tiles.maxzoom + 1):
                parents = _build_level(pool, tiles, collection, z, parents, report)
                if progress is not None:
                    progress(z, report.tiles + report.empty, len(parents))
    finally:
        tiles.close()
    report.seconds = time.perf_counter() - t0
    return report


def _build_level(pool: Any, tiles: _Tiles, collection: str, z: int,
                 parents: list[tuple[int, int]], report: PyramidReport) -> list[tuple[int, int]]:
    """Make the missing tiles of level ``z`` under ``parents``; its non-empty tiles."""
    todo = [(0, 0)] if z == 0 else _children(parents)
    done = tiles.level(collection, z)
    report.skipped += sum(1 for k in todo if k in done)
    jobs = [(collection, z, x, y) for x, y in todo if (x, y) not in done]
    full = [k for k, f in done.items() if f]
    for batch in _batches(pool.imap_unordered(_render, jobs, chunksize=4)):
        tiles.put(collection, batch)
        for _z, tx, ty, data in batch:
            if data:
                full.append((tx, ty))
                report.tiles += 1
                report.bytes += len(data)
            else:
                report.empty += 1
    tiles.done(collection, z)
    return full


def _batches(items: Iterator[tuple[int, int, int, bytes]]) -> Iterator[
        list[tuple[int, int, int, bytes]]]:
    """The made tiles in write batches of at most ``BATCH`` tiles and, beyond its first tile,
    ``BATCH_BYTES`` bytes: what the parent holds at once does not grow with tile sizes."""
    batch: list[tuple[int, int, int, bytes]] = []
    size = 0
    for item in items:
        if batch and size + len(item[3]) > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += len(item[3])
        if len(batch) >= BATCH:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
