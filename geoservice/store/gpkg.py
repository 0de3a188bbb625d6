"""The embedded backend: one GeoPackage file, written and read with Python's sqlite3.

Why our own: pygeoapi's GeoPackage provider is read-only and ignores CQL2, datetime and
sortby, and the pyenv Python here cannot load SpatiaLite.  The R-tree extension's triggers
call ``ST_*`` functions, which we register as Python functions on every connection; GDAL and
QGIS bring their own, so the file stays a valid GeoPackage for them.

Reads use one connection per thread (WAL lets readers run beside a writer); writes take a
process lock plus ``BEGIN IMMEDIATE`` and commit with ``synchronous=FULL`` so an
acknowledged write survives a crash.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.errors import Conflict, InvalidParameter, NotFound
from geoservice.features import Feature
from geoservice.sqlite import PerThread, connect_durable, immediate
from geoservice.store import cql2_sqlite, extent, gpkg_geom, pyramid, tiling, values
from geoservice.store.base import (
    BBox,
    CollectionInfo,
    Page,
    Query,
    Store,
    index_name,
    missing_indexes,
)
from geoservice.store.counts import CountCache, query_key
from geoservice.store.filtering import Plan, compile_query
from geoservice.store.value_index import Loaded, ValueIndex, ranged

META = "geoservice_layers"
ITER_BATCH = 1000  # rows per vectorised decode in ``iter_features``
_SQL_TYPES = {
    "string": "TEXT",
    "integer": "INTEGER",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "DATETIME",
}
_WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],AUTHORITY["EPSG","4326"]]'
)


def qi(name: str) -> str:
    """Quote an SQL identifier (names come from validated specs, quoting is still applied)."""
    return '"' + name.replace('"', '""') + '"'


def _register_functions(con: sqlite3.Connection) -> None:
    """The ST_* functions the GeoPackage R-tree triggers need (no SpatiaLite here), and the
    ``cql2_*`` functions of filters translated by ``cql2_sqlite``."""
    cql2_sqlite.register_functions(con)

    def env(blob: bytes | None, i: int) -> float | None:
        e = gpkg_geom.envelope(blob)
        return None if e is None else e[i]

    con.create_function(
        "ST_IsEmpty", 1, lambda b: int(gpkg_geom.envelope(b) is None), deterministic=True
    )
    con.create_function("ST_MinX", 1, lambda b: env(b, 0), deterministic=True)
    con.create_function("ST_MaxX", 1, lambda b: env(b, 1), deterministic=True)
    con.create_function("ST_MinY", 1, lambda b: env(b, 2), deterministic=True)
    con.create_function("ST_MaxY", 1, lambda b: env(b, 3), deterministic=True)


def _init_header(path: Path) -> None:
    """Write the GeoPackage header fields before WAL is on, so readers see them at once."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
    con.execute("PRAGMA user_version = 10300")
    con.commit()
    con.close()


def _connect(path: Path) -> sqlite3.Connection:
    con = connect_durable(path)
    _register_functions(con)
    return con


_BASE_DDL = f"""
CREATE TABLE IF NOT EXISTS geoservice_changes (
  collection TEXT NOT NULL, version INTEGER NOT NULL,
  minx DOUBLE NOT NULL, miny DOUBLE NOT NULL, maxx DOUBLE NOT NULL, maxy DOUBLE NOT NULL);
CREATE INDEX IF NOT EXISTS idx_geoservice_changes ON geoservice_changes (collection, version);
CREATE TABLE IF NOT EXISTS geoservice_data_version (
  collection TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL,
  row_count INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES
  ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined',
   'undefined cartesian coordinate reference system'),
  ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined',
   'undefined geographic coordinate reference system'),
  ('WGS 84 geodetic', 4326, 'EPSG', 4326, '{_WGS84_WKT}',
   'longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid');
CREATE TABLE IF NOT EXISTS gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '',
  last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
CREATE TABLE IF NOT EXISTS gpkg_extensions (
  table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL,
  scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
CREATE TABLE IF NOT EXISTS {META} (
  collection TEXT PRIMARY KEY, spec TEXT NOT NULL, built_at TEXT, source TEXT,
  synthetic BOOLEAN NOT NULL DEFAULT 0);
INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description)
  VALUES ('{META}', 'attributes', '{META}', 'Tokyo GeoTwin layer specs and build provenance');
"""

_GEOM_TYPES = {
    "Point",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
}


def _rtree_ddl(t: str) -> list[str]:
    """R-tree table and triggers of the GeoPackage ``gpkg_rtree_index`` extension."""
    r = f"rtree_{t}_geom"
    q, qr = qi(t), qi(r)
    ins = (
        f"INSERT OR REPLACE INTO {qr} VALUES (NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom), "
        "ST_MinY(NEW.geom), ST_MaxY(NEW.geom))"
    )
    has = "(NEW.geom NOT NULL AND NOT ST_IsEmpty(NEW.geom))"
    hasnt = "(NEW.geom ISNULL OR ST_IsEmpty(NEW.geom))"
    return [
        f"CREATE VIRTUAL TABLE {qr} USING rtree(id, minx, maxx, miny, maxy)",
        f"CREATE TRIGGER {qi(r + '_insert')} AFTER INSERT ON {q} WHEN {has} BEGIN {ins}; END",
        f"CREATE TRIGGER {qi(r + '_update1')} AFTER UPDATE OF geom ON {q} "
        f"WHEN OLD.fid = NEW.fid AND {has} BEGIN {ins}; END",
        f"CREATE TRIGGER {qi(r + '_update2')} AFTER UPDATE OF geom ON {q} "
        f"WHEN OLD.fid = NEW.fid AND {hasnt} BEGIN DELETE FROM {qr} WHERE id = OLD.fid; END",
        f"CREATE TRIGGER {qi(r + '_update3')} AFTER UPDATE ON {q} "
        f"WHEN OLD.fid != NEW.fid AND {has} BEGIN DELETE FROM {qr} WHERE id = OLD.fid; {ins}; END",
        f"CREATE TRIGGER {qi(r + '_update4')} AFTER UPDATE ON {q} "
        f"WHEN OLD.fid != NEW.fid AND {hasnt} "
        f"BEGIN DELETE FROM {qr} WHERE id IN (OLD.fid, NEW.fid); END",
        f"CREATE TRIGGER {qi(r + '_delete')} AFTER DELETE ON {q} WHEN old.geom NOT NULL "
        f"BEGIN DELETE FROM {qr} WHERE id = OLD.fid; END",
        "INSERT INTO gpkg_extensions VALUES (?, 'geom', 'gpkg_rtree_index', "
        "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')".replace(
            "?", f"'{t}'"
        ),
    ]


class GpkgStore(Store):
    """The GeoPackage store. Open once per process; safe to share between threads."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        if not create and not path.exists():
            raise FileNotFoundError(f"store {path} does not exist: run `geoservice build` first")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _init_header(path)
        self.path = path
        self._cons = PerThread(lambda: _connect(self.path))
        self._write_lock = threading.Lock()
        self._specs: dict[str, LayerSpec] = {}
        #: filtered counts per data version (``counts``)
        self._counts = CountCache()
        #: sorted values of static layers' indexed numeric columns (``value_index``)
        self._index = ValueIndex()
        self.pushed_down = 0  # queries whose CQL2 filter ran entirely as SQL
        self.fallbacks = 0  # queries whose CQL2 filter was evaluated in Python
        self._con().executescript(_BASE_DDL + pyramid.DDL)
        self._migrate()
        self._load_specs()

    def _migrate(self) -> None:
        """Give a file written before ``row_count`` existed its counts (once, counted)."""
        con = self._con()
        cols = {r[1] for r in con.execute("PRAGMA table_info(geoservice_data_version)")}
        if "row_count" in cols:
            return
        with self._write_lock, immediate(con):
            con.execute("ALTER TABLE geoservice_data_version"
                        " ADD COLUMN row_count INTEGER NOT NULL DEFAULT 0")
            for (name,) in con.execute(f"SELECT collection FROM {META}").fetchall():
                con.execute("INSERT OR IGNORE INTO geoservice_data_version VALUES (?, 0, 0)",
                            (name,))
                con.execute("UPDATE geoservice_data_version SET row_count ="
                            f" (SELECT COUNT(*) FROM {qi(name)}) WHERE collection = ?", (name,))

    def _con(self) -> sqlite3.Connection:
        return self._cons.get()

    def _load_specs(self) -> None:
        rows = self._con().execute(f"SELECT collection, spec FROM {META}").fetchall()
        self._specs = {c: LayerSpec.model_validate_json(s) for c, s in rows}

    def spec(self, collection: str) -> LayerSpec:
        """The spec a collection was built with (``NotFound`` if absent)."""
        try:
            return self._specs[collection]
        except KeyError:
            raise NotFound(f"collection {collection!r} does not exist") from None

    def collections(self) -> list[str]:
        return sorted(self._specs)

    def info(self, collection: str) -> CollectionInfo:
        """One statement: the count is ``row_count``, kept by every write inside its own
        transaction (``_after_write``), so it is exact and costs no scan."""
        self.spec(collection)
        row = self._con().execute(
            "SELECT c.min_x, c.min_y, c.max_x, c.max_y, m.built_at, m.source, m.synthetic,"
            " v.row_count"
            f" FROM {META} m LEFT JOIN gpkg_contents c ON c.table_name = m.collection"
            " LEFT JOIN geoservice_data_version v ON v.collection = m.collection"
            " WHERE m.collection = ?",
            (collection,),
        ).fetchone()
        bbox = None if row[0] is None else tuple(row[:4])
        return CollectionInfo(collection, int(row[7] or 0), bbox, row[4], row[5], bool(row[6]))

    # -- schema -------------------------------------------------------------------------

    def create_collection(
        self, spec: LayerSpec, *, source: str, synthetic: bool, replace: bool = False
    ) -> None:
        t = spec.id
        cols = ", ".join(f"{qi(p.name)} {_SQL_TYPES[p.type]}" for p in spec.properties)
        gtype = spec.geometry_type.upper() if spec.geometry_type in _GEOM_TYPES else "GEOMETRY"
        with self._write_lock, immediate(self._con()) as con:
            if replace:
                self._drop(con, t)
            con.execute(
                f"CREATE TABLE {qi(t)} (fid INTEGER PRIMARY KEY AUTOINCREMENT, "
                f"id TEXT NOT NULL UNIQUE, geom {gtype}{', ' + cols if cols else ''})"
            )
            con.execute(
                "INSERT INTO gpkg_contents"
                " (table_name, data_type, identifier, description, srs_id)"
                " VALUES (?, 'features', ?, ?, 4326)",
                (t, t, spec.title),
            )
            con.execute(
                "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, 4326, 0, 0)",
                (t, gtype),
            )
            for stmt in _rtree_ddl(t):
                con.execute(stmt)
            self._index_columns(con, spec)
            con.execute(
                f"INSERT INTO {META} VALUES (?, ?, ?, ?, ?)",
                (t, spec.model_dump_json(), _now(), source, int(synthetic)),
            )
        self._specs[t] = spec

    def _index_columns(
        self, con: sqlite3.Connection, spec: LayerSpec, names: list[str] | None = None
    ) -> None:
        """Index the properties filters use (``LayerSpec.indexed_properties``, or ``names``)."""
        for name in spec.indexed_properties() if names is None else names:
            con.execute(f"CREATE INDEX IF NOT EXISTS {qi(index_name(spec.id, name))}"
                        f" ON {qi(spec.id)} ({qi(name)})")

    def ensure_indexes(self, declared: dict[str, LayerSpec]) -> list[str]:
        """Create the declared indexes the file lacks (see ``Store.ensure_indexes``)."""
        con = self._con()
        existing = {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()}
        todo = missing_indexes(self._specs, declared, existing)
        if not todo:
            return []
        with self._write_lock, immediate(con):
            for c, names in todo.items():
                self._index_columns(con, self._specs[c], names)
        return [index_name(c, n) for c, names in todo.items() for n in names]

    def _drop(self, con: sqlite3.Connection, t: str) -> None:
        con.execute(f"DROP TABLE IF EXISTS {qi(t)}")
        con.execute(f"DROP TABLE IF EXISTS {qi(f'rtree_{t}_geom')}")
        for table in ("gpkg_geometry_columns", "gpkg_extensions", "gpkg_contents"):
            con.execute(f"DELETE FROM {table} WHERE table_name = ?", (t,))
        con.execute(f"DELETE FROM {META} WHERE collection = ?", (t,))
        self._specs.pop(t, None)

    # -- writes -------------------------------------------------------------------------

    def _row(self, spec: LayerSpec, f: Feature) -> tuple[Any, ...]:
        props = values.to_storage(spec, f.properties)
        return (f.id, gpkg_geom.encode(f.geometry), *[props.get(p.name) for p in spec.properties])

    def _insert_sql(self, spec: LayerSpec, verb: str = "INSERT") -> str:
        names = ["id", "geom", *[p.name for p in spec.properties]]
        cols = ", ".join(qi(n) for n in names)
        return f"{verb} INTO {qi(spec.id)} ({cols}) VALUES ({', '.join('?' * len(names))})"

    def bulk_load(self, collection: str, features: Iterable[Feature]) -> int:
        spec = self.spec(collection)
        sql = self._insert_sql(spec)
        n = 0
        with self._write_lock, immediate(self._con()) as con:
            for f in features:
                try:
                    con.execute(sql, self._row(spec, f))
                except sqlite3.IntegrityError:
                    raise Conflict(f"{collection}: duplicate feature id {f.id!r}") from None
                n += 1
            self._after_write(con, collection, n, recompute=True)
        return n

    def _after_write(
        self,
        con: sqlite3.Connection,
        t: str,
        delta: int = 0,
        added: BBox | None = None,
        removed: BBox | None = None,
        *,
        recompute: bool = False,
    ) -> None:
        """Every write passes here, inside its transaction: bump the write counter (see
        ``data_version``), keep ``row_count`` and the extent.  The extent grows by
        ``added``; only a ``removed`` geometry on its edge (or a bulk load) costs a scan
        of the R-tree (``store.extent``)."""
        con.execute(
            "INSERT INTO geoservice_data_version VALUES (?, 1, ?) ON CONFLICT(collection)"
            " DO UPDATE SET version = version + 1, row_count = row_count + excluded.row_count",
            (t, delta),
        )
        self._log_change(con, t, [(-180.0, -90.0, 180.0, 90.0)] if recompute
                         else [b for b in (added, removed) if b is not None])
        row = con.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents"
                          " WHERE table_name = ?", (t,)).fetchone()
        current = None if row is None or row[0] is None else (row[0], row[1], row[2], row[3])
        nxt = True if recompute else extent.next_extent(current, added, removed)
        now = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"
        if nxt is True:
            con.execute(
                f"UPDATE gpkg_contents SET (min_x, max_x, min_y, max_y) = (SELECT min(minx),"
                f" max(maxx), min(miny), max(maxy) FROM {qi(f'rtree_{t}_geom')}),"
                f" last_change = {now} WHERE table_name = ?", (t,),
            )
            return
        box = (None,) * 4 if nxt is None else nxt
        con.execute(f"UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ?,"
                    f" last_change = {now} WHERE table_name = ?", (*box, t))

    #: Writes whose boxes the change log keeps per collection, and how often (in writes)
    #: it is pruned down to them (see ``_log_change``).
    changes_kept = 10_000
    prune_every = 1_000

    def _log_change(self, con: sqlite3.Connection, t: str, boxes: list[BBox]) -> None:
        """Where this write changed the collection (old and new bounds), under its write
        counter: ``tile_version`` of a tile is the last counter whose boxes touch it.

        Pruned here so the log does not grow with every write an editable layer ever took:
        every ``prune_every`` writes, the boxes of writes older than the last
        ``changes_kept`` are replaced by ONE whole-world box at the newest pruned counter
        P.  Why a box and not just a delete: a tile whose last write was pruned must not
        get back the token it had before that write (its cache entry and ETag would be
        served again, stale); with the box its token becomes P - newer than any pruned
        write, so at worst a one-time cache miss for tiles untouched since P.  The log's
        only reader is ``tile_version`` (the harvest and the feeds keep their own marks)."""
        (version,) = con.execute("SELECT version FROM geoservice_data_version"
                                 " WHERE collection = ?", (t,)).fetchone()
        con.executemany("INSERT INTO geoservice_changes VALUES (?, ?, ?, ?, ?, ?)",
                        [(t, version, *b) for b in boxes])
        floor = version - self.changes_kept
        if version % self.prune_every == 0 and floor > 0:
            con.execute("DELETE FROM geoservice_changes WHERE collection = ? AND version <= ?",
                        (t, floor))
            con.execute("INSERT INTO geoservice_changes VALUES (?, ?, -180, -90, 180, 90)",
                        (t, floor))

    def tile_version(self, collection: str, z: int, x: int, y: int) -> str | None:
        """The build of the collection and the last write whose old or new geometry
        touches the buffered tile: a write elsewhere leaves this tile's cache entry and
        ETag valid (tiles depend only on the rows of their buffered envelope)."""
        from geoservice import mvt

        w, s, e, n = mvt.lonlat_bounds(z, x, y, mvt.BUFFER)
        row = self._con().execute(
            f"SELECT m.built_at, m.rowid, (SELECT max(c.version) FROM geoservice_changes c"
            " WHERE c.collection = m.collection AND c.maxx >= ? AND c.minx <= ?"
            f" AND c.maxy >= ? AND c.miny <= ?) FROM {META} m WHERE m.collection = ?",
            (w, e, s, n, collection),
        ).fetchone()
        return None if row is None else f"{row[0]}:{row[1]}:{row[2] or 0}"

    def _old_bounds(self, con: sqlite3.Connection, t: str, fid: str) -> BBox | None:
        """The R-tree box of feature ``fid`` (rounded outwards), before a write changes it."""
        row = con.execute(
            f"SELECT r.minx, r.miny, r.maxx, r.maxy FROM {qi(t)} t JOIN"
            f" {qi(f'rtree_{t}_geom')} r ON r.id = t.fid WHERE t.id = ?", (fid,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def data_version(self, collection: str) -> str | None:
        """The collection's build time and write counter: ``_after_write`` bumps the
        counter inside every write transaction, so every connection and worker process
        reads the same value after a commit (writes by other tools are not seen)."""
        return self._state(self._con(), collection)[0]

    def _state(self, con: sqlite3.Connection, collection: str) -> tuple[str | None, int]:
        """(data version, row count) of a collection, read in one statement."""
        row = con.execute(
            "SELECT c.last_change, v.version, v.row_count FROM gpkg_contents c LEFT JOIN"
            " geoservice_data_version v ON v.collection = c.table_name WHERE c.table_name = ?",
            (collection,),
        ).fetchone()
        return (None, 0) if row is None else (_version(row[0], row[1]), int(row[2] or 0))

    def _write(
        self,
        collection: str,
        sql: str,
        params: tuple[Any, ...],
        delta: int = 0,
        added: BBox | None = None,
        fid: str | None = None,
    ) -> int:
        """One statement and its bookkeeping in one transaction; ``fid`` names the row a
        replace or delete overwrites (its old bounds may shrink the extent)."""
        with self._write_lock:
            try:
                with immediate(self._con()) as con:
                    removed = None if fid is None else self._old_bounds(con, collection, fid)
                    cur = con.execute(sql, params)
                    if cur.rowcount:
                        self._after_write(con, collection, delta * cur.rowcount, added, removed)
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"{collection}: {exc}") from None
        return cur.rowcount

    def create(self, collection: str, feature: Feature) -> Feature:
        spec = self.spec(collection)
        if not feature.id:
            feature = Feature(uuid.uuid4().hex, feature.properties, feature.geometry)
        try:
            self._write(collection, self._insert_sql(spec), self._row(spec, feature), 1,
                        extent.bounds(feature.geometry))
        except Conflict:
            raise Conflict(f"{collection}: a feature with id {feature.id!r} exists") from None
        return self.get(collection, feature.id)

    def replace(self, collection: str, fid: str, feature: Feature) -> Feature:
        spec = self.spec(collection)
        names = ["geom", *[p.name for p in spec.properties]]
        sets = ", ".join(f"{qi(n)} = ?" for n in names)
        row = self._row(spec, Feature(fid, feature.properties, feature.geometry))[1:]
        if not self._write(
            collection, f"UPDATE {qi(collection)} SET {sets} WHERE id = ?", (*row, fid),
            0, extent.bounds(feature.geometry), fid,
        ):
            raise NotFound(f"{collection}: no feature with id {fid!r}")
        return self.get(collection, fid)

    def update(self, collection: str, fid: str, properties: dict[str, Any],
               geometry: BaseGeometry | None = None) -> Feature:
        current = self.get(collection, fid)
        return self.replace(collection, fid, values.merge_patch(fid, current, properties, geometry))

    def delete(self, collection: str, fid: str) -> None:
        self.spec(collection)
        if not self._write(
            collection, f"DELETE FROM {qi(collection)} WHERE id = ?", (fid,), -1, None, fid
        ):
            raise NotFound(f"{collection}: no feature with id {fid!r}")

    # -- reads --------------------------------------------------------------------------

    def _select(self, spec: LayerSpec) -> str:
        cols = ", ".join(["t.id", "t.geom", *[f"t.{qi(p.name)}" for p in spec.properties]])
        return f"SELECT {cols} FROM {qi(spec.id)} t"

    def _feature(self, spec: LayerSpec, row: tuple[Any, ...]) -> Feature:
        props = values.from_storage(spec, row[2:])
        return Feature(row[0], props, gpkg_geom.decode(row[1]))

    def _features(self, spec: LayerSpec, rows: list[Any]) -> list[Feature]:
        """Many rows at once: one WKB parse and the spec read once for the page."""
        geoms = gpkg_geom.decode_many([r[1] for r in rows])
        props = values.from_storage_rows(spec, (r[2:] for r in rows))
        return [Feature(r[0], p, g) for r, p, g in zip(rows, props, geoms, strict=True)]

    def get(self, collection: str, fid: str) -> Feature:
        spec = self.spec(collection)
        row = self._con().execute(self._select(spec) + " WHERE t.id = ?", (fid,)).fetchone()
        if row is None:
            raise NotFound(f"{collection}: no feature with id {fid!r}")
        return self._feature(spec, row)

    def iter_features(self, collection: str) -> Iterator[Feature]:
        spec = self.spec(collection)
        cur = self._con().execute(self._select(spec) + " ORDER BY t.id")
        while rows := cur.fetchmany(ITER_BATCH):
            yield from self._features(spec, rows)

    def query(self, collection: str, query: Query) -> Page:
        """Run the query in SQL where ``compile_query`` could translate it, else in Python.

        A registered function that meets a value SQLite cannot hold exactly (an integer
        beyond 64 bits, NaN) raises; the query is then re-planned without push-down, so
        the answer is always the evaluator's.
        """
        spec = self.spec(collection)
        plan = compile_query(spec, query, pushdown=True)
        try:
            page = self._run(spec, plan, query)
        except sqlite3.OperationalError as exc:
            if cql2_sqlite.FUNCTION_ERROR not in str(exc):
                raise
            plan = compile_query(spec, query, pushdown=False)
            page = self._run(spec, plan, query)
        if plan.pushed is True:
            self.pushed_down += 1
        elif plan.pushed is False:
            self.fallbacks += 1
        return page

    def _run(self, spec: LayerSpec, plan: Plan, query: Query) -> Page:
        """Execute a plan: pure SQL (count and page) without a predicate, else row by row."""
        if plan.empty:
            return Page([], 0)
        collection = spec.id
        where, params = list(plan.sql_where), list(plan.sql_params)
        joins = ""
        if plan.bbox is not None:
            joins = f" JOIN {qi(f'rtree_{collection}_geom')} r ON r.id = t.fid"
            where.append("r.maxx >= ? AND r.minx <= ? AND r.maxy >= ? AND r.miny <= ?")
            b = plan.bbox
            params += [b[0], b[2], b[1], b[3]]
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        order = self._order(spec, query)
        key = query_key(collection, query)
        con = self._con()
        with _snapshot(con):  # version, count and page agree
            version, total = self._state(con, collection)
            if plan.predicate is not None:
                known = self._counts.get(key, version)
                page = self._filtered(spec, f"{self._select(spec)}{joins}{clause}{order}",
                                      params, plan, query, known)
                self._counts.put(key, version, page.number_matched)
                return page
            matched = total if not where else self._indexed(con, spec, query, version, total)
            if matched is None:
                matched = self._counts.get(key, version)
            if matched is None:
                (matched,) = con.execute(
                    f"SELECT COUNT(*) FROM {qi(collection)} t{joins}{clause}", params
                ).fetchone()
                self._counts.put(key, version, matched)
            rows = con.execute(
                f"{self._select(spec)}{joins}{clause}{order} LIMIT ? OFFSET ?",
                [*params, query.limit, query.offset],
            ).fetchall() if query.limit > 0 else []
            return Page(self._features(spec, rows), matched)

    def _indexed(self, con: sqlite3.Connection, spec: LayerSpec, query: Query,
                 version: str | None, total: int) -> int | None:
        """The value index's count (``value_index``) at ``version``, the version this
        snapshot reads; the column is loaded in this same snapshot when not in memory."""
        r = ranged(spec, query)
        if r is None:
            return None

        def load() -> Loaded:
            if total > self._index.max_rows():
                return version, None
            col = qi(r.prop)
            rows = con.execute(f"SELECT {col} FROM {qi(spec.id)} WHERE {col} IS NOT NULL"
                               f" ORDER BY {col}").fetchall()
            return version, [v for (v,) in rows]

        return self._index.count_at(r, version, load)

    def _filtered(
        self,
        spec: LayerSpec,
        sql: str,
        params: list[Any],
        plan: Plan,
        query: Query,
        known: int | None = None,
    ) -> Page:
        """Evaluate the exact predicate row by row, counting all matches, keeping one page
        (or, when the count is ``known`` at this snapshot's version, stopping at its end).

        Geometry blobs are decoded only when the predicate needs them or the row is on the
        page: parsing WKB dominates the cost of attribute filters on polygon layers.
        """
        predicate = plan.predicate
        assert predicate is not None
        page: list[Feature] = []
        matched = 0
        end = query.offset + query.limit
        cur = self._con().execute(sql, params)
        for row in cur:
            props = values.from_storage(spec, row[2:])
            geom = gpkg_geom.decode(row[1]) if plan.needs_geometry else None
            if not predicate(props, geom):
                continue
            if query.offset <= matched < end:
                if geom is None:
                    geom = gpkg_geom.decode(row[1])
                page.append(Feature(row[0], props, geom))
            matched += 1
            if known is not None and matched >= end:
                break
        cur.close()
        return Page(page, matched if known is None else known)

    def _order(self, spec: LayerSpec, query: Query) -> str:
        parts = []
        for name, asc in query.sortby:
            if name != "id" and spec.property(name) is None:
                raise InvalidParameter(
                    f"sortby: unknown property {name!r}; sortable: "
                    f"{', '.join(['id', *[p.name for p in spec.properties]])}"
                )
            parts.append(f"t.{qi(name)} {'ASC' if asc else 'DESC'}")
        parts.append("t.id ASC")
        return " ORDER BY " + ", ".join(parts)

    def tile(self, collection: str, z: int, x: int, y: int,
             properties: dict[str, Any] | None = None, *, prebuilt: bool = True) -> bytes:
        """A tile made at build time (``pyramid``, layers with ``tiles.prebuild``), else
        made for its zoom now (``tiling``): the R-tree gives every candidate's box,
        sub-pixel polygons are aggregated from those boxes alone, and only the other rows
        are read and handed over as columns - a z11 tile of a city reads no building
        geometry, a sightings tile builds no dict per feature."""
        spec = self.spec(collection)
        equal = self._tile_equality(spec, properties)
        if equal is None or not tiling.in_range(spec, z):
            return super().tile(collection, z, x, y, properties)
        con = self._con()
        with _snapshot(con):
            if prebuilt and spec.tiles.prebuild and not properties:
                made = pyramid.lookup(con, collection, self._state(con, collection)[0], z, x, y)
                if made is not None:
                    return made
            rows, cells = self._tile_candidates(con, spec, (z, x, y), equal)
        return tiling.render(spec, z, x, y, self._tile_rows(spec, rows), cells)

    def _tile_candidates(self, con: sqlite3.Connection, spec: LayerSpec,
                         zxy: tuple[int, int, int], equal: tuple[str, list[Any]]
                         ) -> tuple[list[Any], tiling.Cells | None]:
        """The rows a tile reads (R-tree candidates of the buffered tile, ``equal``'s
        conditions, in id order) and, below a polygon layer's full-detail zoom, its
        sub-pixel polygons aggregated from their R-tree boxes alone (not read)."""
        from geoservice import mvt

        w, s, e, n = mvt.lonlat_bounds(*zxy, mvt.BUFFER)
        rtree = qi(f"rtree_{spec.id}_geom")
        if not tiling.presorts(spec, zxy[0]):  # every candidate is read: one query
            # IN (R-tree): searched first; as a JOIN, SQLite scanned the R-tree per row
            return con.execute(
                f"{self._select(spec)} WHERE t.fid IN (SELECT id FROM {rtree} WHERE maxx >= ?"
                f" AND minx <= ? AND maxy >= ? AND miny <= ?){equal[0]} ORDER BY t.id",
                (w, e, s, n, *equal[1])).fetchall(), None
        cells, drawn = tiling.Cells.empty(), [np.zeros(0, np.int64)]
        cur = con.execute(f"SELECT id, minx, miny, maxx, maxy FROM {rtree}"
                          " WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?",
                          (w, e, s, n))
        while chunk := cur.fetchmany(BOX_CHUNK):
            part, big = _box_cells(np.array(chunk, dtype=float), zxy)
            cells = cells.plus(part)
            drawn.append(big)
        fids = json.dumps(np.concatenate(drawn).tolist())
        return con.execute(
            f"{self._select(spec)} WHERE t.fid IN (SELECT value FROM json_each(?))"
            f"{equal[0]} ORDER BY t.id", (fids, *equal[1])).fetchall(), cells

    def _tile_equality(self, spec: LayerSpec,
                       properties: dict[str, Any] | None) -> tuple[str, list[Any]] | None:
        """The SQL of a tile's property equalities (read policies ask for
        ``status = published``), or ``None`` where the general path must make the tile:
        only point layers take it (for polygons that path tests the exact bbox and does
        not pre-aggregate sub-pixel ones, so its tiles differ)."""
        if not properties:
            return "", []
        if spec.geometry_type not in ("Point", "MultiPoint"):
            return None
        plan = compile_query(spec, Query(properties=dict(properties)), pushdown=True)
        if plan.predicate is not None or plan.empty or plan.bbox is not None:
            return None
        return "".join(f" AND {w}" for w in plan.sql_where), list(plan.sql_params)

    @staticmethod
    def _tile_rows(spec: LayerSpec, rows: list[Any]) -> tiling.Rows:
        """``SELECT id, geom, properties...`` rows as ``tiling.Rows``: one transpose, one
        vectorised WKB parse, booleans as booleans (as ``values.from_storage``)."""
        cols = list(zip(*rows, strict=True)) or [()] * (2 + len(spec.properties))
        geoms = np.array(gpkg_geom.decode_many(list(cols[1])), dtype=object).reshape(-1)
        columns = {}
        for p, col in zip(spec.properties, cols[2:], strict=True):
            values_ = list(col)
            if p.type == "boolean":
                values_ = [None if v is None else bool(v) for v in values_]
            columns[p.name] = tiling.values(values_)
        return tiling.Rows(list(cols[0]), geoms, columns)

    def checkpoint(self) -> None:
        """Fold the WAL into the main file (after a build, before the file is moved)."""
        self._con().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._cons.close()


@contextmanager
def _snapshot(con: sqlite3.Connection) -> Iterator[None]:
    """A read transaction (WAL snapshot) unless the connection is already in one."""
    if con.in_transaction:
        yield
        return
    con.execute("BEGIN")
    try:
        yield
    finally:
        con.execute("COMMIT")


def _version(last_change: str, counter: int | None) -> str:
    """``data_version``'s token from the collection's ``last_change`` and write counter."""
    return f"{last_change}:{counter or 0}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: R-tree boxes a low-zoom tile reads at a time: a z0-z10 tile of a city covers every
#: building, and fetching them all at once held ~250 bytes of Python tuples a building in
#: the pyramid's workers (627 MB at 2,000,000 buildings); by chunks a tile holds its cells.
BOX_CHUNK = 50_000


def _box_cells(boxes: np.ndarray, zxy: tuple[int, int, int]) -> tuple[tiling.Cells,
                                                                        np.ndarray]:
    """One chunk of ``(id, minx, miny, maxx, maxy)`` R-tree boxes: its sub-pixel features
    aggregated into level-0 cells, and the ids of the others (drawn, so read)."""
    cx, cy, bw, bh = tiling.units(boxes[:, 1:], tiling.Scale.of(*zxy))
    tiny = np.maximum(bw, bh) < tiling.PIXEL
    return (tiling.Cells.of(tiling.PIXEL, cx[tiny], cy[tiny], (bw * bh)[tiny]),
            boxes[~tiny, 0].astype(np.int64))


def bbox_of(features: list[Feature]) -> BBox | None:
    """The CRS84 bbox of some features (None when none has a geometry)."""
    bounds = [
        f.geometry.bounds for f in features if f.geometry is not None and not f.geometry.is_empty
    ]
    if not bounds:
        return None
    return (
        min(b[0] for b in bounds),
        min(b[1] for b in bounds),
        max(b[2] for b in bounds),
        max(b[3] for b in bounds),
    )
