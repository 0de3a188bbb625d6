"""The scale-out backend: PostgreSQL + PostGIS through psycopg 3 and one pool per process.

Layout: a schema (``geoservice`` by default) holding a metadata table (layer specs, build
provenance, extent - like the GeoPackage ``geoservice_layers``) and one table per layer
(``fid bigserial``, ``id text unique``, ``geom geometry(Geometry, 4326)``, typed columns,
GiST on ``geom``, btree on the temporal and enum columns).  A build loads a fresh schema
and swaps it in with two renames in one transaction (see :func:`swap_schema`).

Values leave the store exactly as the GeoPackage backend gives them (dates
``YYYY-MM-DD``, UTC timestamps via ``values.format_datetime``, booleans as bool, nulls
omitted), and CQL2 filters are translated to SQL by ``cql2_sql`` with the evaluator's
semantics; a filter that cannot be translated is evaluated in Python (``fallbacks``
counts those queries, so tests can assert full pushdown).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np
import psycopg
import shapely
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.errors import Conflict, InvalidParameter, NotFound
from geoservice.features import Feature
from geoservice.store import base, extent, values
from geoservice.store.base import BBox, CollectionInfo, Page, Query, Store
from geoservice.store.counts import CountCache, query_key
from geoservice.store.cql2_sql import Untranslatable, translate
from geoservice.store.filtering import _parse_scalar, queryable_schema
from geoservice.store.value_index import Loaded, Ranged, ValueIndex, ranged

DEFAULT_SCHEMA = "geoservice"
META = "geoservice_layers"
ITER_BATCH = 2000  # rows per fetch and vectorised decode in ``iter_features``
_SQL_TYPES = {
    "string": "text",
    "integer": "bigint",
    "number": "double precision",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamptz",
}
#: A replica that cannot give a connection within this many seconds is treated as down...
REPLICA_WAIT = 2.0
#: ...and public reads go to the primary for this long before the replica is tried again.
REPLICA_BACKOFF = 10.0
log = logging.getLogger("geoservice.store")
T = TypeVar("T")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# -- one pool per process and database URL -------------------------------------------------
_POOLS: dict[str, tuple[ConnectionPool, int]] = {}
_POOLS_LOCK = threading.Lock()


def _acquire_pool(url: str, *, wait: bool = True) -> ConnectionPool:
    """The process-wide pool for ``url`` (built on first use, reference counted).

    Why shared: every store and provider in a process talks to the same database; one
    pool bounds the connections a server process holds however many stores it opens.
    """
    with _POOLS_LOCK:
        entry = _POOLS.get(url)
        if entry is None:
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=10,
                # autocommit: a read is one statement and one round trip (no BEGIN, no
                # ROLLBACK when the connection goes back); writes open con.transaction().
                # jit=off: JIT compilation cost most of a low-zoom tile query's time and
                # buys nothing on these short queries; force_custom_plan: psycopg prepares
                # a statement after 5 executions, and PostgreSQL's generic plan for it
                # then ignores the bbox/filter values (and the better index they allow).
                # max_parallel_workers_per_gather=0: a service runs many requests at once,
                # and parallel workers of one only take CPUs from the others; the count
                # of a filtered page (an InitPlan) took 2-3x longer with a Gather than
                # without (EXPLAIN ANALYZE at 300,000 rows, bench/README.md).  Builds and
                # maintenance share this pool and are not slowed by it: the setting only
                # governs Gather nodes of read queries.  COPY, the extent and row-count
                # UPDATEs never get a parallel plan (PostgreSQL plans no data-modifying
                # statement in parallel); VACUUM's index passes and b-tree CREATE INDEX
                # use max_parallel_maintenance_workers, left at the server's setting; GiST
                # builds and ANALYZE are serial anyway.  The tile pyramid's queries do
                # run serial, by design: ``pyramid.prebuild`` already runs one worker
                # process per core, and Gather workers would only oversubscribe them.
                kwargs={"options": "-c TimeZone=UTC -c client_encoding=UTF8 -c jit=off"
                                   " -c plan_cache_mode=force_custom_plan"
                                   " -c max_parallel_workers_per_gather=0"
                                   f" -c search_path={_search_path()}",
                        "autocommit": True},
                name="geoservice",
                open=False,
            )
            pool.open(wait=wait, timeout=30)  # a replica's pool does not wait: see _read
            entry = (pool, 0)
        _POOLS[url] = (entry[0], entry[1] + 1)
        return entry[0]


def schema_of(concern: str) -> str:
    """The PostgreSQL schema of a state concern (``geoservice.state``)."""
    return f"geoservice_{concern}"


#: The state concerns with a schema of their own (``geoservice.state``).
STATE_CONCERNS = ("auth", "alerts", "jobs", "harvest", "photos")
#: The ``search_path`` of every PostgreSQL connection: the state schemas (their table
#: names are distinct, so statements name tables unqualified), then PostGIS in ``public``.
#: Here, not in ``geoservice.state``: the store is the lower floor and opens the pools.
SEARCH_PATH = ",".join([schema_of(c) for c in STATE_CONCERNS] + ["public"])


def _search_path() -> str:
    """The state schemas first (``geoservice.state``), then ``public`` (PostGIS)."""
    return SEARCH_PATH


#: The connection of the unit of work open in this context, per database URL (see ``unit``).
_UNIT: ContextVar[tuple[str, psycopg.Connection[Any]] | None] = ContextVar(
    "geoservice_pg_unit", default=None
)


def _release_pool(url: str) -> None:
    """Drop one reference to the pool for ``url``; close it when nobody uses it."""
    with _POOLS_LOCK:
        entry = _POOLS.get(url)
        if entry is None:
            return
        pool, refs = entry
        if refs <= 1:
            del _POOLS[url]
            pool.close()
        else:
            _POOLS[url] = (pool, refs - 1)


def _check_schema(name: str) -> str:
    """Schema names are chosen by us; refuse anything that is not a plain identifier."""
    if not _SCHEMA_RE.match(name):
        raise ValueError(f"invalid schema name {name!r}")
    return name


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_db(spec: LayerSpec, props: dict[str, Any]) -> dict[str, Any]:
    """JSON properties -> typed database values (checked like the GeoPackage backend)."""
    stored = values.to_storage(spec, props)
    out: dict[str, Any] = {}
    for p in spec.properties:
        v = stored.get(p.name)
        if v is None:
            continue
        if p.type == "boolean":
            v = bool(v)
        elif p.type == "date":
            v = dt.date.fromisoformat(v)
        elif p.type == "datetime":
            v = values.parse_datetime(v)
        out[p.name] = v
    return out


def _as_text(p: Any, col: sql.Composable) -> sql.Composable:
    """A column as the Features API writes it: dates ``YYYY-MM-DD``, timestamps
    ``YYYY-MM-DDTHH:MM:SS[.mmm]Z`` in UTC (milliseconds only when the value has a
    fraction, truncated, as ``values.format_datetime``); other types unchanged.

    Formatted by PostgreSQL: turning timestamptz into Python datetimes and back to text
    was a quarter of the CPU of a 1,000-feature page."""
    if p.type == "date":
        return sql.SQL("to_char({}, 'YYYY-MM-DD')").format(col)
    if p.type == "datetime":
        return sql.SQL(
            "to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
            " || CASE WHEN date_trunc('second', {c}) = {c}"
            " THEN '' ELSE to_char({c} AT TIME ZONE 'UTC', '.MS') END || 'Z'"
        ).format(c=col)
    return col


def _wkb(geom: BaseGeometry | None) -> bytes | None:
    """2D ISO WKB (the GeoPackage backend drops Z too)."""
    if geom is None:
        return None
    return bytes(shapely.to_wkb(shapely.force_2d(geom), flavor="iso"))


def _ewkb_hex(geom: BaseGeometry | None) -> str | None:
    """Hex EWKB with SRID 4326, the text form ``COPY`` accepts for a geometry column."""
    if geom is None:
        return None
    g = shapely.set_srid(shapely.force_2d(geom), 4326)
    return str(shapely.to_wkb(g, hex=True, include_srid=True))


class PostgisStore(Store):
    """The PostGIS store. Open once per process; safe to share between threads."""

    def __init__(self, database_url: str, *, schema: str = DEFAULT_SCHEMA, create: bool = False):
        self.url = database_url
        self.schema = _check_schema(schema)
        self.fallbacks = 0  # queries whose CQL2 filter was evaluated in Python
        self.pushed_down = 0  # queries whose CQL2 filter ran as SQL
        self._specs: dict[str, LayerSpec] = {}
        self._select_cache: dict[tuple[str, tuple[str, ...]], sql.SQL] = {}
        self._tile_sql_cache: dict[tuple[Any, ...], sql.SQL] = {}
        #: (collection, z, restricted properties) -> the budget level of its last tile
        self._tile_levels: dict[tuple[Any, ...], int] = {}
        #: filtered counts per data version (``counts``); shared with replica views (a
        #: replica's metadata row has the primary's ``xmin``: equal versions, equal counts)
        self._counts = CountCache()
        #: sorted values of static layers' indexed numeric columns (``value_index``), shared
        #: with replica views the same way
        self._index = ValueIndex()
        self.pool = _acquire_pool(database_url)
        self.read_pool = self.pool  # a replica's pool in a ``with_replica`` view
        self.read_url: str | None = None
        self._replica_retry_at = 0.0
        self._closed = False
        try:
            with self.pool.connection() as con:
                self._casei_collation = self._icu_collation(con)
                if create:
                    self._create_schema(con)
                elif not self._meta_exists(con):
                    raise FileNotFoundError(
                        f"PostGIS store schema {schema!r} does not exist: run `geoservice build`"
                    )
                self._migrate(con)
            self._load_specs()
        except BaseException:
            self.close()
            raise

    def with_replica(self, read_url: str) -> PostgisStore:
        """A view of this store whose reads (query, get, tile, info, data_version) go to
        the read replica at ``read_url``; writes still go to the primary.

        Replica lag is visible to its readers, by design: a feature written a moment ago
        may not be listed yet.  Writers read through the primary store (preconditions and
        read-your-writes), and the tile cache is keyed by the replica's own data version,
        so a cached tile always matches the replica's rows."""
        view = copy.copy(self)
        view.read_url = read_url
        view.read_pool = _acquire_pool(read_url, wait=False)
        view._replica_retry_at = 0.0
        view._select_cache = self._select_cache
        view._tile_sql_cache = self._tile_sql_cache
        view._closed = False
        return view

    def _read(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run a public read on the replica when there is one and it answers, else on the
        primary: a replica that is down, still starting or cancelling queries (recovery
        conflicts) costs at most ``REPLICA_WAIT`` once per ``REPLICA_BACKOFF``, never an
        error to the client."""
        if self.read_url is not None and time.monotonic() >= self._replica_retry_at:
            try:
                with self.read_pool.connection(timeout=REPLICA_WAIT) as con:
                    return work(con)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                self._replica_retry_at = time.monotonic() + REPLICA_BACKOFF
                log.warning("read replica unavailable (%s); reading the primary for %.0f s",
                            str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__,
                            REPLICA_BACKOFF)
        return self._primary(work)

    def _primary(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run a read on the primary (a write's read-back: read your write)."""
        with self.connection() as con:
            return work(con)

    # -- units of work -------------------------------------------------------------------
    atomic = True

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection of the enclosing ``unit()``, else one from the pool.

        Every write of this store and of the state databases (``geoservice.state.pg``)
        takes its connection here, so inside a unit they share one transaction."""
        unit = _UNIT.get()
        if unit is not None and unit[0] == self.url:
            yield unit[1]
            return
        with self.pool.connection() as con:
            yield con

    @contextmanager
    def unit(self) -> Iterator[None]:
        """One transaction for everything written inside (nested units join the outer).

        Why: a feature write, its audit entry, its event and its outbox rows must commit
        together or not at all - no feature without its audit entry or its alert."""
        unit = _UNIT.get()
        if unit is not None and unit[0] == self.url:
            yield
            return
        with self.pool.connection() as con, con.transaction():
            token = _UNIT.set((self.url, con))
            try:
                yield
            finally:
                _UNIT.reset(token)

    # -- plumbing ------------------------------------------------------------------------
    def _t(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)

    def _icu_collation(self, con: psycopg.Connection[Any]) -> str | None:
        """ICU's root collation, so CASEI does not depend on the database's LC_CTYPE."""
        row = con.execute("SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'").fetchone()
        return "und-x-icu" if row else None

    def _meta_exists(self, con: psycopg.Connection[Any]) -> bool:
        row = con.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f'"{self.schema}"."{META}"',)
        ).fetchone()
        return bool(row and row[0])

    def _create_schema(self, con: psycopg.Connection[Any]) -> None:
        with con.transaction():
            has_postgis = con.execute(
                "SELECT 1 FROM pg_extension WHERE extname = 'postgis'"
            ).fetchone()
            if not has_postgis:
                con.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            con.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            con.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (collection text PRIMARY KEY,"
                    " spec jsonb NOT NULL, built_at text, source text,"
                    " synthetic boolean NOT NULL DEFAULT false,"
                    " min_x double precision, min_y double precision,"
                    " max_x double precision, max_y double precision,"
                    " row_count bigint NOT NULL DEFAULT 0)"
                ).format(self._t(META))
            )
            self._create_tile_tables(con)

    def _create_tile_tables(self, con: psycopg.Connection[Any]) -> None:
        """The tables of prebuilt tile pyramids (``store.pyramid``)."""
        con.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (collection text NOT NULL, z int NOT NULL,"
            " x int NOT NULL, y int NOT NULL, data bytea NOT NULL,"
            " PRIMARY KEY (collection, z, x, y))").format(self._t("geoservice_tiles")))
        con.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (collection text PRIMARY KEY, version text NOT NULL,"
            " maxzoom int NOT NULL, done_zoom int NOT NULL)"
        ).format(self._t("geoservice_tile_builds")))

    def _migrate(self, con: psycopg.Connection[Any]) -> None:
        """Give a store built before ``row_count`` existed its counts (once, counted), and
        one built before prebuilt tiles their (empty) tables."""
        if not con.execute("SELECT to_regclass(%s) IS NOT NULL",
                           (f'"{self.schema}".geoservice_tile_builds',)).fetchone()[0]:  # type: ignore[index]
            with con.transaction():
                self._create_tile_tables(con)
        has = con.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s"
            " AND table_name = %s AND column_name = 'row_count'", (self.schema, META)
        ).fetchone()
        if has:
            return
        with con.transaction():
            con.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS row_count bigint"
                                " NOT NULL DEFAULT 0").format(self._t(META)))
            for (name,) in con.execute(
                sql.SQL("SELECT collection FROM {}").format(self._t(META))
            ).fetchall():
                con.execute(
                    sql.SQL("UPDATE {} SET row_count = (SELECT count(*) FROM {})"
                            " WHERE collection = %s").format(self._t(META), self._t(name)),
                    (name,),
                )

    def _load_specs(self) -> None:
        with self.pool.connection() as con:
            rows = con.execute(
                sql.SQL("SELECT collection, spec::text FROM {}").format(self._t(META))
            ).fetchall()
        self._specs = {c: LayerSpec.model_validate_json(s) for c, s in rows}

    def spec(self, collection: str) -> LayerSpec:
        """The spec a collection was built with (``NotFound`` if absent)."""
        spec = self._specs.get(collection)
        if spec is None:
            self._load_specs()  # another process may have built it since we started
            spec = self._specs.get(collection)
        if spec is None:
            raise NotFound(f"collection {collection!r} does not exist")
        return spec

    def collections(self) -> list[str]:
        self._load_specs()
        return sorted(self._specs)

    def info(self, collection: str) -> CollectionInfo:
        """One metadata row: the count is ``row_count``, kept by every write in its own
        transaction (``_after_write``), so it is exact and costs no scan."""
        self.spec(collection)
        stmt = sql.SQL(
            "SELECT min_x, min_y, max_x, max_y, built_at, source, synthetic, row_count"
            " FROM {} WHERE collection = %s"
        ).format(self._t(META))
        row = self._read(lambda con: con.execute(stmt, (collection,)).fetchone())
        if row is None:
            raise NotFound(f"collection {collection!r} does not exist")
        bbox = None if row[0] is None else (row[0], row[1], row[2], row[3])
        return CollectionInfo(collection, int(row[7]), bbox, row[4], row[5], bool(row[6]))

    # -- schema ----------------------------------------------------------------------------
    def create_collection(
        self, spec: LayerSpec, *, source: str, synthetic: bool, replace: bool = False
    ) -> None:
        t = self._t(spec.id)
        cols = [
            sql.SQL("{} {}").format(sql.Identifier(p.name), sql.SQL(_SQL_TYPES[p.type]))
            for p in spec.properties
        ]
        ddl = sql.SQL(
            # id in the "C" collation: pages sort by code point (as the GeoPackage store),
            # and only an index in the column's own collation can serve that ORDER BY
            "CREATE TABLE {} (fid bigserial PRIMARY KEY, id text COLLATE \"C\" NOT NULL UNIQUE,"
            " geom geometry(Geometry, 4326){})"
        ).format(t, sql.SQL("").join(sql.SQL(", {}").format(c) for c in cols))
        with self.pool.connection() as con, con.transaction():
            if replace:
                self._drop(con, spec.id)
            con.execute(ddl)
            con.execute(
                sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
                    sql.Identifier(f"{spec.id}_geom_gist"[:63]), t
                )
            )
            self._index_columns(con, spec, spec.indexed_properties())
            con.execute(
                sql.SQL(
                    "INSERT INTO {} (collection, spec, built_at, source, synthetic)"
                    " VALUES (%s, %s::jsonb, %s, %s, %s)"
                ).format(self._t(META)),
                (spec.id, spec.model_dump_json(), _now(), source, synthetic),
            )
        self._specs[spec.id] = spec

    def _index_columns(
        self, con: psycopg.Connection[Any], spec: LayerSpec, names: list[str]
    ) -> None:
        """B-tree indexes on the properties ``names`` of a collection's table."""
        for name in names:
            con.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(base.index_name(spec.id, name)), self._t(spec.id),
                sql.Identifier(name)))

    def ensure_indexes(self, declared: dict[str, LayerSpec]) -> list[str]:
        """Create the declared indexes the schema lacks (see ``Store.ensure_indexes``).

        Looked up first in ``pg_indexes`` (one query): ``CREATE INDEX IF NOT EXISTS`` on
        an index that exists would still take the table's SHARE lock, making every host's
        start-up wait for, and block, writes.  A missing index is built once, holding that
        lock for its build (writes to that table wait; reads go on).  Server workers and
        hosts start together: one that finds another's index committed while it was making
        the same one (PostgreSQL's duplicate-name error, ``IF NOT EXISTS`` notwithstanding)
        has what it wanted and starts - each index in its own transaction for that."""
        made = []
        with self.pool.connection() as con:
            existing = {r[0] for r in con.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (self.schema,))}
            for c, names in base.missing_indexes(self._specs, declared, existing).items():
                for name in names:
                    try:
                        with con.transaction():
                            self._index_columns(con, self._specs[c], [name])
                    except psycopg.errors.UniqueViolation:
                        continue  # another process made it meanwhile
                    made.append(base.index_name(c, name))
        return made

    def _drop(self, con: psycopg.Connection[Any], collection: str) -> None:
        con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._t(collection)))
        con.execute(
            sql.SQL("DELETE FROM {} WHERE collection = %s").format(self._t(META)), (collection,)
        )
        self._specs.pop(collection, None)

    def _after_write(
        self,
        con: psycopg.Connection[Any],
        collection: str,
        delta: int = 0,
        added: BBox | None = None,
        removed: BBox | None = None,
    ) -> None:
        """Keep the collection's ``row_count`` and extent in the write's own transaction.

        The metadata row is locked first (writers of one collection take turns here) and
        rewritten, which also gives it the new ``xmin`` that is the data version.  The
        extent grows by ``added``; only a ``removed`` geometry on its edge costs a scan
        (``store.extent``)."""
        row = con.execute(
            sql.SQL("SELECT min_x, min_y, max_x, max_y FROM {} WHERE collection = %s"
                    " FOR UPDATE").format(self._t(META)), (collection,)
        ).fetchone()
        current = None if row is None or row[0] is None else (row[0], row[1], row[2], row[3])
        nxt = extent.next_extent(current, added, removed)
        box: tuple[float | None, ...] = (None,) * 4 if nxt is True or nxt is None else nxt
        con.execute(
            sql.SQL("UPDATE {} SET row_count = row_count + %s, min_x = %s, min_y = %s,"
                    " max_x = %s, max_y = %s WHERE collection = %s").format(self._t(META)),
            (delta, *box, collection),
        )
        if nxt is True:
            self._recompute_extent(con, collection)

    def _recompute_extent(self, con: psycopg.Connection[Any], collection: str) -> None:
        con.execute(
            sql.SQL(
                "UPDATE {meta} m SET min_x = e.a, min_y = e.b, max_x = e.c, max_y = e.d FROM"
                " (SELECT min(ST_XMin(geom)) a, min(ST_YMin(geom)) b, max(ST_XMax(geom)) c,"
                " max(ST_YMax(geom)) d FROM {t} WHERE geom IS NOT NULL AND NOT ST_IsEmpty(geom))"
                " e WHERE m.collection = %s"
            ).format(meta=self._t(META), t=self._t(collection)),
            (collection,),
        )

    def data_version(self, collection: str) -> str | None:
        """The transaction id (``xmin``) of the collection's metadata row: every write
        rewrites that row in its own transaction (``_after_write``) and a rebuild
        creates a new one, so the value changes with every committed change."""
        stmt = sql.SQL("SELECT xmin::text FROM {} WHERE collection = %s").format(self._t(META))
        row = self._read(lambda con: con.execute(stmt, (collection,)).fetchone())
        return None if row is None else f"{self.schema}:{row[0]}"

    # -- writes ----------------------------------------------------------------------------
    def _names(self, spec: LayerSpec) -> list[str]:
        return [p.name for p in spec.properties]

    def bulk_load(self, collection: str, features: Iterable[Feature]) -> int:
        spec = self.spec(collection)
        names = self._names(spec)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in ["id", "geom", *names])
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(self._t(collection), cols)
        n = 0
        with self.pool.connection() as con:
            try:
                with con.transaction(), con.cursor() as cur:
                    with cur.copy(copy_sql) as copy:
                        for f in features:
                            props = _to_db(spec, f.properties)
                            copy.write_row(
                                (f.id, _ewkb_hex(f.geometry), *[props.get(c) for c in names])
                            )
                            n += 1
                    self._after_write(con, collection, n)
                    self._recompute_extent(con, collection)
            except psycopg.errors.UniqueViolation as exc:
                detail = exc.diag.message_detail or str(exc)
                raise Conflict(f"{collection}: duplicate feature id ({detail})") from None
            # Planner statistics now, not when autovacuum gets round to it: a freshly
            # built table without them gets poor plans for bbox and filter queries.
            # VACUUM too: it sets the visibility map, without which a filter's count on
            # an indexed property (``LayerSpec.indexes``) must still visit every matching
            # row in the heap instead of being an index-only scan.
            con.execute(sql.SQL("VACUUM (ANALYZE) {}").format(self._t(collection)))
        return n

    def _insert(self, con: psycopg.Connection[Any], spec: LayerSpec, f: Feature) -> None:
        names = self._names(spec)
        props = _to_db(spec, f.properties)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in ["id", "geom", *names])
        marks = sql.SQL(", ").join([sql.SQL("%s")] * len(names))
        stmt = sql.SQL("INSERT INTO {} ({}) VALUES (%s, ST_GeomFromWKB(%s, 4326){})").format(
            self._t(spec.id), cols, sql.SQL(", ") + marks if names else sql.SQL("")
        )
        con.execute(stmt, (f.id, _wkb(f.geometry), *[props.get(c) for c in names]))

    def _set(
        self, con: psycopg.Connection[Any], spec: LayerSpec, fid: str, f: Feature
    ) -> tuple[bool, BBox | None]:
        """Overwrite one row; (found, bounds of the geometry it had)."""
        names = self._names(spec)
        props = _to_db(spec, f.properties)
        sets = sql.SQL(", ").join(
            [
                sql.SQL("geom = ST_GeomFromWKB(%s, 4326)"),
                *[sql.SQL("{} = %s").format(sql.Identifier(c)) for c in names],
            ]
        )
        row = con.execute(
            sql.SQL("UPDATE {t} t SET {sets} FROM (SELECT fid, geom FROM {t} WHERE id = %s"
                    " FOR UPDATE) o WHERE t.fid = o.fid RETURNING {old}").format(
                t=self._t(spec.id), sets=sets, old=_BOUNDS_OF_OLD),
            (_wkb(f.geometry), *[props.get(c) for c in names], fid),
        ).fetchone()
        return (False, None) if row is None else (True, _box(row))

    def create(self, collection: str, feature: Feature) -> Feature:
        spec = self.spec(collection)
        if not feature.id:
            feature = Feature(uuid.uuid4().hex, feature.properties, feature.geometry)
        with self.connection() as con:
            try:
                with con.transaction():
                    self._insert(con, spec, feature)
                    self._after_write(con, collection, 1, extent.bounds(feature.geometry))
            except psycopg.errors.UniqueViolation:
                raise Conflict(f"{collection}: a feature with id {feature.id!r} exists") from None
        return self._get(collection, feature.id, primary=True)  # read your write

    def replace(self, collection: str, fid: str, feature: Feature) -> Feature:
        spec = self.spec(collection)
        with self.connection() as con, con.transaction():
            found, old = self._set(con, spec, fid, feature)
            if not found:
                raise NotFound(f"{collection}: no feature with id {fid!r}")
            self._after_write(con, collection, 0, extent.bounds(feature.geometry), old)
        return self._get(collection, fid, primary=True)

    def update(self, collection: str, fid: str, properties: dict[str, Any],
               geometry: BaseGeometry | None = None) -> Feature:
        spec = self.spec(collection)
        with self.connection() as con, con.transaction():
            row = con.execute(
                sql.SQL("{} WHERE t.id = %s FOR UPDATE").format(self._select(spec)), (fid,)
            ).fetchone()
            if row is None:
                raise NotFound(f"{collection}: no feature with id {fid!r}")
            merged = values.merge_patch(fid, self._feature(spec, row), properties, geometry)
            _, old = self._set(con, spec, fid, merged)
            self._after_write(con, collection, 0, extent.bounds(merged.geometry), old)
        return self._get(collection, fid, primary=True)

    def delete(self, collection: str, fid: str) -> None:
        self.spec(collection)
        with self.connection() as con, con.transaction():
            row = con.execute(
                sql.SQL("DELETE FROM {} o WHERE id = %s RETURNING {}").format(
                    self._t(collection), _BOUNDS_OF_OLD), (fid,)
            ).fetchone()
            if row is None:
                raise NotFound(f"{collection}: no feature with id {fid!r}")
            self._after_write(con, collection, -1, None, _box(row))

    # -- reads -----------------------------------------------------------------------------
    def _select(self, spec: LayerSpec) -> sql.SQL:
        """``SELECT id, WKB, properties... FROM <table> t``, rendered once per layer.

        Properties come as their JSON values (``_as_text``).  Composing identifiers on
        every request was a tenth of a feature-by-id request's CPU; the rendered text is
        cached under the spec's column names."""
        key = (spec.id, tuple(self._names(spec)))
        cached = self._select_cache.get(key)
        if cached is None:
            cols = [_as_text(p, sql.SQL("t.{}").format(sql.Identifier(p.name)))
                    for p in spec.properties]
            composed = sql.SQL("SELECT t.id, ST_AsBinary(t.geom){} FROM {} t").format(
                sql.SQL("").join(sql.SQL(", {}").format(c) for c in cols), self._t(spec.id)
            )
            cached = self._select_cache[key] = sql.SQL(composed.as_string(None))
        return cached

    def _feature(self, spec: LayerSpec, row: tuple[Any, ...]) -> Feature:
        geom = None if row[1] is None else shapely.from_wkb(bytes(row[1]))
        return Feature(row[0], values.from_storage(spec, row[2:]), geom)

    def _features(self, spec: LayerSpec, rows: list[Any]) -> list[Feature]:
        """Many rows at once: one vectorised WKB parse instead of one call per row."""
        geoms = shapely.from_wkb([None if r[1] is None else bytes(r[1]) for r in rows])
        props = values.from_storage_rows(spec, (r[2:] for r in rows))
        return [Feature(r[0], p, g) for r, p, g in zip(rows, props, geoms, strict=True)]

    def get(self, collection: str, fid: str) -> Feature:
        return self._get(collection, fid)

    def get_for_update(self, collection: str, fid: str) -> Feature:
        """Inside a ``unit()``: the current feature with its row locked until the unit
        ends, so a check against it (``If-Match``, scope) still holds when the write
        commits - a write of the same feature on another host waits for this one."""
        return self._get(collection, fid, primary=True, lock=True)

    def _get(
        self, collection: str, fid: str, *, primary: bool = False, lock: bool = False
    ) -> Feature:
        """One feature from the primary (a write's read-back) or from wherever public
        reads go (``_read``)."""
        spec = self.spec(collection)
        tail = " WHERE t.id = %s FOR UPDATE" if lock else " WHERE t.id = %s"
        stmt = self._select(spec) + sql.SQL(tail)
        run = self._primary if primary else self._read
        row = run(lambda con: con.execute(stmt, (fid,)).fetchone())
        if row is None:
            raise NotFound(f"{collection}: no feature with id {fid!r}")
        return self._feature(spec, row)

    def iter_features(self, collection: str) -> Iterator[Feature]:
        spec = self.spec(collection)
        with self.pool.connection() as con, con.transaction():
            cur = con.cursor(name=f"iter_{uuid.uuid4().hex}")
            cur.itersize = ITER_BATCH
            cur.execute(sql.SQL('{} ORDER BY t.id COLLATE "C"').format(self._select(spec)))
            while rows := cur.fetchmany(cur.itersize):
                yield from self._features(spec, rows)
            cur.close()

    def _conditions(
        self, spec: LayerSpec, query: Query
    ) -> tuple[list[sql.Composable], dict[str, Any]]:
        """Property equality, datetime and bbox as SQL (named parameters ``q*``)."""
        where: list[sql.Composable] = []
        params: dict[str, Any] = {}

        def bind(value: Any) -> sql.Placeholder:
            name = f"q{len(params)}"
            params[name] = value
            return sql.Placeholder(name)

        for name, raw in query.properties.items():
            p = spec.property(name)
            if p is None:
                raise InvalidParameter(f"unknown query parameter {name!r}")
            value = _to_db(spec, {name: _parse_scalar(p.type, raw)}).get(name)
            col = sql.SQL("t.{}").format(sql.Identifier(name))
            if value is None:
                where.append(sql.SQL("FALSE"))
            else:
                where.append(sql.SQL("{} = {}").format(col, bind(value)))
        if query.datetime is not None:
            where += self._datetime(spec, query.datetime, bind)
        if query.bbox is not None:
            b = query.bbox
            env = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 4326)").format(
                bind(float(b[0])), bind(float(b[1])), bind(float(b[2])), bind(float(b[3]))
            )
            where.append(sql.SQL("ST_Intersects(t.geom, {})").format(env))
        return where, params

    def _datetime(
        self, spec: LayerSpec, interval: tuple[dt.datetime | None, dt.datetime | None], bind: Any
    ) -> list[sql.Composable]:
        prop = spec.property(spec.temporal_property) if spec.temporal_property else None
        if prop is None:
            raise InvalidParameter(
                f"collection {spec.id!r} has no temporal property: datetime is not supported"
            )
        col = sql.SQL("t.{}").format(sql.Identifier(prop.name))
        start, end = interval

        def value(d: dt.datetime) -> Any:
            return d.date() if prop.type == "date" else values.parse_datetime(d)

        out: list[sql.Composable] = []
        if start is not None:
            out.append(sql.SQL("{} >= {}").format(col, bind(value(start))))
        if end is not None:
            out.append(sql.SQL("{} <= {}").format(col, bind(value(end))))
        if not out:
            out.append(sql.SQL("{} IS NOT NULL").format(col))
        return out

    def _order(self, spec: LayerSpec, query: Query) -> sql.Composable:
        """ORDER BY as the GeoPackage backend sorts: nulls lowest, text by code point."""
        parts: list[sql.Composable] = []
        for name, asc in query.sortby:
            p = spec.property(name)
            if name != "id" and p is None:
                raise InvalidParameter(
                    f"sortby: unknown property {name!r}; sortable: "
                    f"{', '.join(['id', *[q.name for q in spec.properties]])}"
                )
            col = sql.SQL("t.{}").format(sql.Identifier(name))
            if name == "id" or (p is not None and p.type == "string"):
                col = sql.SQL('{} COLLATE "C"').format(col)
            direction = "ASC NULLS FIRST" if asc else "DESC NULLS LAST"
            parts.append(sql.SQL("{} " + direction).format(col))
        parts.append(sql.SQL('t.id COLLATE "C" ASC'))
        return sql.SQL(" ORDER BY ") + sql.SQL(", ").join(parts)

    def query(self, collection: str, query: Query) -> Page:
        spec = self.spec(collection)
        where, params = self._conditions(spec, query)
        predicate = None
        if query.filter is not None:
            from geoservice import cql2

            schema = queryable_schema(spec)
            predicate = cql2.compile_filter(query.filter, schema)  # checks it, 400 if bad
            try:
                translated = translate(
                    query.filter,
                    schema,
                    lambda name: sql.SQL("t.{}").format(sql.Identifier(name)),
                    sql.SQL("t.geom"),
                    self._casei_collation,
                )
            except Untranslatable:
                self.fallbacks += 1
            else:
                self.pushed_down += 1
                predicate = None
                where.append(translated.where)
                params.update(translated.params)
        clause = (sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)) if where else sql.SQL("")
        order = self._order(spec, query)
        key = query_key(collection, query)
        if predicate is not None:
            stmt = self._select(spec) + clause + order

            def fallback(con: psycopg.Connection[Any]) -> Page:
                with con.transaction():
                    con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    version = self._version_on(con, collection)
                    known = self._counts.get(key, version)
                    page = self._filtered(con, spec, stmt, params, predicate, query, known)
                    self._counts.put(key, version, page.number_matched)
                    return page

            return self._read(fallback)
        return self._read(
            lambda con: self._page(con, spec, (clause, order, params), query, key, bool(where))
        )

    def _prebuilt(self, con: psycopg.Connection[Any], collection: str, z: int, x: int,
                  y: int) -> bytes | None:
        """The pyramid's tile (``b""`` when empty) if it is of the current data version and
        its level is complete, else ``None`` - one statement (``pyramid.lookup``)."""
        row = con.execute(sql.SQL(
            "SELECT m.xmin::text, b.version, b.done_zoom, t.data FROM {m} m"
            " JOIN {b} b ON b.collection = m.collection LEFT JOIN {t} t ON"
            " t.collection = m.collection AND t.z = %s AND t.x = %s AND t.y = %s"
            " WHERE m.collection = %s").format(
                m=self._t(META), b=self._t("geoservice_tile_builds"),
                t=self._t("geoservice_tiles")), (z, x, y, collection)).fetchone()
        if row is None or row[1] != f"{self.schema}:{row[0]}" or z > row[2]:
            return None
        return bytes(row[3]) if row[3] is not None else b""

    def _version_on(self, con: psycopg.Connection[Any], collection: str) -> str | None:
        stmt = sql.SQL("SELECT xmin::text FROM {} WHERE collection = %s").format(self._t(META))
        row = con.execute(stmt, (collection,)).fetchone()
        return None if row is None else f"{self.schema}:{row[0]}"

    def _page(
        self,
        con: psycopg.Connection[Any],
        spec: LayerSpec,
        parts: tuple[sql.Composable, sql.Composable, dict[str, Any]],
        query: Query,
        key: str,
        filtered: bool,
        recount: bool = False,
    ) -> Page:
        """Count, data version and page in ONE statement (one round trip, one snapshot).

        The count is the metadata row's ``row_count`` without a filter; with one, it is
        the count of the value index (``value_index``, static layers) or of the cache when
        either holds one (``NULL`` is selected instead of counting, and the version read
        beside the page says whether it still holds - if not, the page is read again with
        a count).  The LEFT JOIN keeps the count and version when the page is empty."""
        clause, order, params = parts
        r = None if recount or not filtered else ranged(spec, query)
        indexed = None if r is None else self._indexed(con, spec, r)
        cached = None if recount or not filtered or indexed else self._counts.candidate(key)
        if not filtered:
            count: sql.Composable = sql.SQL("m.row_count")
        elif indexed is not None or cached is not None:
            count = sql.SQL("NULL::bigint")
        else:
            count = sql.SQL("(SELECT count(*) FROM {} t{})").format(self._t(spec.id), clause)
        head = sql.SQL(
            "SELECT {} AS n, m.xmin::text AS v FROM {} m WHERE m.collection = %(meta_c)s"
        ).format(count, self._t(META))
        args = {**params, "meta_c": spec.id}
        if query.limit > 0:
            stmt = sql.SQL("SELECT h.n, h.v, p.* FROM ({}) h LEFT JOIN LATERAL ({}) p ON true"
                           ).format(head, self._select(spec) + clause + order
                                    + sql.SQL(" LIMIT %(limit)s OFFSET %(offset)s"))
            args.update(limit=query.limit, offset=query.offset)
        else:
            stmt = sql.SQL("SELECT h.n, h.v FROM ({}) h").format(head)
        rows = con.execute(stmt, args).fetchall()
        if not rows:
            return Page([], 0)
        version = f"{self.schema}:{rows[0][1]}"
        if r is not None and indexed is None:
            self._index.seen(r, version)  # an array or mark of another version: drop it
        if rows[0][0] is not None:
            matched = int(rows[0][0])
            if filtered:
                self._counts.put(key, version, matched)
        else:  # still the count of this snapshot?
            known = (self._index.confirm(r, indexed, version) if r is not None and indexed
                     else self._counts.get(key, version))
            if known is None:  # the data changed since: count in this page's snapshot
                return self._page(con, spec, parts, query, key, filtered, recount=True)
            matched = known
        features = [] if query.limit <= 0 else [r[2:] for r in rows if r[2] is not None]
        return Page(self._features(spec, features), matched)

    def _indexed(self, con: psycopg.Connection[Any], spec: LayerSpec,
                 r: Ranged) -> tuple[str, int] | None:
        """The value index's ``(version, count)`` for ``r``, loading the column first when
        it is not in memory (not inside a unit of work: its snapshot is the writer's)."""
        if con.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            self._index.ensure(r, lambda: self._load_column(con, spec, r.prop))
        return self._index.candidate(r)

    def _load_column(self, con: psycopg.Connection[Any], spec: LayerSpec, prop: str) -> Loaded:
        """The data version and the non-NULL values of ``prop``, in one snapshot, or no
        values when the table has more rows than the index may hold.

        The values come as ONE bytea of big-endian 8-byte values (``float8send`` /
        ``int8send`` aggregated) that numpy reads and sorts: at 2,000,000 rows ~1 s, where
        a binary COPY took 7.5 s (psycopg yields it row by row) and an ORDER BY in SQL
        doubled the query (measured on the shared machine, bench/README.md)."""
        p = spec.property(prop)
        integer = p is not None and p.type == "integer"
        with con.transaction():
            con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = con.execute(sql.SQL("SELECT xmin::text, row_count FROM {} WHERE collection"
                                      " = %s").format(self._t(META)), (spec.id,)).fetchone()
            if row is None:
                return None, None
            version = f"{self.schema}:{row[0]}"
            if row[1] > self._index.max_rows():
                return version, None
            stmt = sql.SQL("SELECT string_agg({f}({c}), ''::bytea) FROM {t} WHERE {c} IS NOT"
                           " NULL").format(f=sql.SQL("int8send" if integer else "float8send"),
                                           c=sql.Identifier(prop), t=self._t(spec.id))
            (data,) = con.execute(stmt, binary=True).fetchone() or (None,)
        values = np.frombuffer(data or b"", ">i8" if integer else ">f8")
        return version, values.astype(np.int64 if integer else np.float64)  # sorted later

    def _filtered(
        self,
        con: psycopg.Connection[Any],
        spec: LayerSpec,
        stmt: sql.Composed,
        params: dict[str, Any],
        predicate: Any,
        query: Query,
        known: int | None = None,
    ) -> Page:
        """Evaluate the exact predicate row by row (fallback), counting all matches - or,
        when the count is ``known`` for this snapshot's data version, stopping once the
        page is full."""
        page: list[Feature] = []
        matched = 0
        end = query.offset + query.limit
        with con.cursor(name=f"q_{uuid.uuid4().hex}") as cur:
            cur.itersize = 2000
            cur.execute(stmt, params)
            for row in cur:
                f = self._feature(spec, row)
                if not predicate(f.properties, f.geometry):
                    continue
                if query.offset <= matched < end:
                    page.append(f)
                matched += 1
                if known is not None and matched >= end:
                    break
        return Page(page, matched if known is None else known)

    def tile(self, collection: str, z: int, x: int, y: int,
             properties: dict[str, Any] | None = None, *, prebuilt: bool = True) -> bytes:
        """A tile made at build time (``store.pyramid``, layers with ``tiles.prebuild``),
        else made for its zoom in SQL (``mvt_sql``): ONE statement makes budget level 0
        (``ST_AsMVT``, sub-pixel polygons coalesced by ``GROUP BY``); a tile over the
        layer's byte budget is made by one more statement trying the next levels in
        order (attribute thinning, coarser cells, drop-densest), as ``tiling.render``
        does.  No row is decoded in Python; both stores draw the same features."""
        from geoservice.store import mvt_sql, tiling

        spec = self.spec(collection)
        if not tiling.in_range(spec, z):
            return b""
        if prebuilt and spec.tiles.prebuild and not properties:
            made = self._read(lambda con: self._prebuilt(con, collection, z, x, y))
            if made is not None:
                return made
        args: dict[str, Any] = {
            **mvt_sql.tile_args(z, x, y), "layer": collection, "budget": spec.tiles.max_bytes,
            **{f"eq{i}": v for i, v in enumerate(_tile_values(spec, properties or {}))},
        }
        restricted = tuple(properties or ())
        where = (sql.SQL("t.geom && ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326)")
                 + _tile_equalities(spec, properties or {}))
        # Level 0 alone is cheap to plan (most tiles fit); all levels in one statement cost
        # ~8 ms more planning, paid only where the last tile of this zoom needed them.
        key = (collection, z, restricted)
        if self._tile_levels.get(key, 0) == 0:
            alone = self._made(spec, z, where, restricted, args, range(1))
            if alone is not None and len(alone[1]) <= spec.tiles.max_bytes:
                self._tile_levels[key] = alone[0]
                return alone[1]
            todo = range(1, tiling.MAX_LEVEL + 1)  # over the budget, or its cells are
        else:
            todo = range(tiling.MAX_LEVEL + 1)
        level, data = self._made(spec, z, where, restricted, args, todo) or (todo[0], b"")
        self._tile_levels[key] = level
        return data

    def _made(self, spec: LayerSpec, z: int, where: sql.Composable, restricted: tuple[str, ...],
              args: dict[str, Any], levels: range) -> tuple[int, bytes] | None:
        """(level, tile) of ``mvt_sql.statement`` over ``levels``; ``None`` when no level
        was made (level 0 asked alone with its cells over the budget)."""
        from geoservice.store import mvt_sql

        stmt = self._tile_statement(spec, z, where, restricted, levels)
        row = self._read(lambda con: con.execute(stmt, args).fetchone())
        return mvt_sql.split(bytes(row[0])) if row and row[0] is not None else None

    def _tile_statement(self, spec: LayerSpec, z: int, where: sql.Composable,
                        restricted: tuple[str, ...], levels: range) -> sql.SQL:
        """``mvt_sql.statement`` of ``levels`` rendered once per layer, columns,
        restriction, zoom class (full detail, thinned attributes) and levels: composing
        it was a tenth of a cold tile's CPU in the one-worker server."""
        from geoservice.store import mvt_sql

        ts = spec.tiles
        key = (spec.id, spec.geometry_type, tuple((p.name, p.type) for p in spec.properties),
               restricted, z >= ts.maxzoom, z < ts.detail_zoom, tuple(ts.low_zoom_properties),
               levels)
        cached = self._tile_sql_cache.get(key)
        if cached is None:
            columns = [(p.name, _as_text(p, sql.SQL("t.{}").format(sql.Identifier(p.name))))
                       for p in spec.properties]
            stmt = mvt_sql.statement(spec, self._t(spec.id), columns, where, z, levels)
            cached = self._tile_sql_cache[key] = sql.SQL(stmt.as_string(None))
        return cached

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.read_url is not None:  # a replica view: its own pool only
                _release_pool(self.read_url)
                return
            _release_pool(self.url)


#: The bounds of the row's previous geometry (alias ``o``) in a write's RETURNING clause.
_BOUNDS_OF_OLD = sql.SQL("ST_XMin(o.geom), ST_YMin(o.geom), ST_XMax(o.geom), ST_YMax(o.geom)")


def _box(row: tuple[Any, ...]) -> BBox | None:
    """Four bounds from a RETURNING row (``None`` for a missing or empty geometry)."""
    return None if row[0] is None else (row[0], row[1], row[2], row[3])


def _tile_equalities(spec: LayerSpec, properties: dict[str, Any]) -> sql.Composable:
    """`` AND t.col = %(eqN)s`` for each tile restriction (names checked against the spec)."""
    parts = [
        sql.SQL(" AND t.{} = %({})s").format(sql.Identifier(name), sql.SQL(f"eq{i}"))
        for i, name in enumerate(properties)
    ]
    return sql.Composed(parts)


def _tile_values(spec: LayerSpec, properties: dict[str, Any]) -> list[Any]:
    """Typed values of the tile restrictions (text, numbers and booleans only)."""
    out = []
    for name, value in properties.items():
        p = spec.property(name)
        if p is None or p.type not in ("string", "integer", "number", "boolean"):
            raise InvalidParameter(f"tile restriction on {name!r} is not supported")
        out.append(bool(value) if p.type == "boolean" else value)
    return out


# -- build support ---------------------------------------------------------------------------
def staging_schema(schema: str = DEFAULT_SCHEMA) -> str:
    """A fresh schema name to build into beside ``schema``."""
    return _check_schema(f"{schema}_build_{uuid.uuid4().hex[:12]}")


def drop_schema(database_url: str, schema: str) -> None:
    """Drop a (staging) schema and everything in it."""
    with psycopg.connect(database_url) as con:
        con.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(_check_schema(schema))
            )
        )


def swap_schema(database_url: str, staging: str, target: str = DEFAULT_SCHEMA) -> None:
    """Put a finished build in place of ``target`` in one transaction.

    Why renames: readers either see the old tables or the new ones, never a mix; a
    failure before commit leaves the previous schema untouched.
    """
    staging, target = _check_schema(staging), _check_schema(target)
    old = _check_schema(f"{target}_old")[:63]
    with psycopg.connect(database_url) as con, con.transaction():
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(old)))
        exists = con.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (target,)
        ).fetchone()
        if exists:
            con.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                    sql.Identifier(target), sql.Identifier(old)
                )
            )
        con.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                sql.Identifier(staging), sql.Identifier(target)
            )
        )
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(old)))


def schema_built_at(database_url: str, schema: str = DEFAULT_SCHEMA) -> list[str]:
    """``built_at`` of every collection in ``schema`` (empty if the schema is missing)."""
    with psycopg.connect(database_url) as con:
        ok = con.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f'"{_check_schema(schema)}"."{META}"',)
        ).fetchone()
        if not ok or not ok[0]:
            return []
        rows = con.execute(
            sql.SQL("SELECT built_at FROM {}").format(sql.Identifier(schema, META))
        ).fetchall()
    return [r[0] for r in rows if r[0]]


__all__ = ["PostgisStore", "drop_schema", "schema_built_at", "staging_schema", "swap_schema"]
