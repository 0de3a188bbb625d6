"""Vector tiles made at build time, stored in the GeoPackage, so a cold tile is a read.

Why: on the embedded store a low-zoom tile of a city is made in Python (``tiling``); for
layers that only ``geoservice build`` changes (``tiles.prebuild: true`` in the layer
spec, never an editable layer) that work is done once, after the build, for every
non-empty tile from z0 to the layer's ``maxzoom``, and a request reads the stored bytes.

- **Table** ``geoservice_tiles (collection, z, x, y, data)`` holds the tiles (an empty
  tile is a zero-length blob, so its children are never visited); ``geoservice_tile_builds
  (collection, version, maxzoom, done_zoom)`` says which data version the pyramid is of
  and up to which zoom it is complete.  A tile is served from the table only when the
  version equals the collection's current ``data_version`` and ``z <= done_zoom``
  (a tile of a complete level without a row lies under an empty parent: it is empty);
  anything else is made on demand, as before.
- **Order**: level by level; a level's candidates are the children of the previous
  level's non-empty tiles, so the work follows the data, not the world.
- **Parallel**: ``workers`` processes (default 2, the machine's cores) each open the file
  read-only and render tiles; the parent writes them in batches.  Memory per worker is
  one tile's rows (low zooms read R-tree boxes only).
- **Resumable**: rows already written for the current version are kept; an interrupted
  run (or ``geoservice tiles prebuild`` again) continues with the missing tiles of the
  first incomplete level.  A new data version starts over.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

DDL = """
CREATE TABLE IF NOT EXISTS geoservice_tiles (
  collection TEXT NOT NULL, z INTEGER NOT NULL, x INTEGER NOT NULL, y INTEGER NOT NULL,
  data BLOB NOT NULL, PRIMARY KEY (collection, z, x, y));
CREATE TABLE IF NOT EXISTS geoservice_tile_builds (
  collection TEXT NOT NULL PRIMARY KEY, version TEXT NOT NULL, maxzoom INTEGER NOT NULL,
  done_zoom INTEGER NOT NULL);
"""
BATCH = 64  # tiles written per transaction


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


# -- workers ----------------------------------------------------------------------------
_STORE: object | None = None


def _open(path: str) -> None:
    from geoservice.store.gpkg import GpkgStore

    global _STORE
    _STORE = GpkgStore(Path(path))


def _render(job: tuple[str, int, int, int]) -> tuple[int, int, int, bytes]:
    from geoservice.store.gpkg import GpkgStore

    collection, z, x, y = job
    assert isinstance(_STORE, GpkgStore)
    return z, x, y, _STORE.tile(collection, z, x, y, prebuilt=False)


# -- the build ------------------------------------------------------------------------------
def _children(parents: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return sorted({(2 * x + dx, 2 * y + dy) for x, y in parents for dx in (0, 1) for dy in (0, 1)})


def _level(con: sqlite3.Connection, collection: str, z: int) -> dict[tuple[int, int], bool]:
    """Tiles of level ``z`` already written: ``{(x, y): non-empty}``."""
    rows = con.execute("SELECT x, y, length(data) > 0 FROM geoservice_tiles"
                       " WHERE collection = ? AND z = ?", (collection, z)).fetchall()
    return {(x, y): bool(full) for x, y, full in rows}


def _start(con: sqlite3.Connection, collection: str, version: str, maxzoom: int) -> int:
    """The first zoom to (re)build: after the last complete level of this version."""
    row = con.execute("SELECT version, done_zoom, maxzoom FROM geoservice_tile_builds"
                      " WHERE collection = ?", (collection,)).fetchone()
    if row is not None and row[0] == version and row[2] == maxzoom:
        return int(row[1]) + 1
    with con:
        con.execute("DELETE FROM geoservice_tiles WHERE collection = ?", (collection,))
        con.execute("INSERT OR REPLACE INTO geoservice_tile_builds VALUES (?, ?, ?, -1)",
                    (collection, version, maxzoom))
    return 0


def prebuild(path: Path, collection: str, *, workers: int = 2,
             progress: Callable[[int, int, int], None] | None = None) -> PyramidReport:
    """Make (or finish) the tile pyramid of ``collection`` in the GeoPackage at ``path``."""
    from geoservice.store.gpkg import GpkgStore

    t0 = time.perf_counter()
    store = GpkgStore(path)
    try:
        spec = store.spec(collection)
        version = store.data_version(collection)
    finally:
        store.close()
    if spec.editable:
        raise ValueError(f"{collection} is editable: its tiles are made on demand")
    assert version is not None
    report = PyramidReport(collection, maxzoom=spec.tiles.maxzoom)
    con = sqlite3.connect(path, timeout=30)
    try:
        con.executescript(DDL)
        start = _start(con, collection, version, spec.tiles.maxzoom)
        parents = [(0, 0)] if start == 0 else [
            k for k, full in _level(con, collection, start - 1).items() if full]
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(max(1, workers), initializer=_open, initargs=(str(path),)) as pool:
            for z in range(start, spec.tiles.maxzoom + 1):
                if z == 0:
                    parents = [(0, 0)]
                    todo_xy = parents
                else:
                    todo_xy = _children(parents)
                done = _level(con, collection, z)
                report.skipped += sum(1 for k in todo_xy if k in done)
                jobs = [(collection, z, x, y) for x, y in todo_xy if (x, y) not in done]
                full = [k for k, f in done.items() if f]
                for batch in _batches(pool.imap_unordered(_render, jobs, chunksize=4)):
                    with con:
                        con.executemany("INSERT OR REPLACE INTO geoservice_tiles"
                                        " VALUES (?, ?, ?, ?, ?)",
                                        [(collection, *t) for t in batch])
                    for _z, tx, ty, data in batch:
                        if data:
                            full.append((tx, ty))
                            report.tiles += 1
                            report.bytes += len(data)
                        else:
                            report.empty += 1
                with con:
                    con.execute("UPDATE geoservice_tile_builds SET done_zoom = ?"
                                " WHERE collection = ?", (z, collection))
                if progress is not None:
                    progress(z, len(jobs), len(full))
                parents = full
    finally:
        con.close()
    report.seconds = time.perf_counter() - t0
    return report


def _batches(items: Iterator[tuple[int, int, int, bytes]]) -> Iterator[
        list[tuple[int, int, int, bytes]]]:
    batch: list[tuple[int, int, int, bytes]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
