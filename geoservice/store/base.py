"""The store interface: one contract, two backends (GeoPackage embedded, PostGIS to scale).

Providers, the guide engine and the importers talk to this interface only.  Geometries
cross it in CRS84; properties cross it as JSON-ready values (dates as ISO strings).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from geoservice.catalogue import LayerSpec
from geoservice.features import Feature

BBox = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Query:
    """What a client asks of one collection; every part is optional.

    ``filter`` is a parsed CQL2 expression (``geoservice.cql2``); ``datetime`` is a closed
    or half-open interval ``(start, end)`` (an instant is ``(t, t)``) matched against the
    layer's temporal property; ``sortby`` is a list of ``(property, ascending)``.
    """

    bbox: BBox | None = None
    filter: Any | None = None
    datetime: tuple[datetime | None, datetime | None] | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    sortby: tuple[tuple[str, bool], ...] = ()
    limit: int = 10
    offset: int = 0


@dataclass(slots=True)
class Page:
    """One page of a query: the features and how many matched in all."""

    features: list[Feature]
    number_matched: int


@dataclass(slots=True)
class CollectionInfo:
    """What the store knows of a built collection (beyond its spec)."""

    id: str
    count: int
    extent: BBox | None
    built_at: str | None
    source: str | None
    synthetic: bool


def index_name(collection: str, prop: str) -> str:
    """The name both stores give the b-tree index of ``prop`` (PostgreSQL keeps 63 bytes)."""
    return f"idx_{collection}_{prop}"[:63]


def missing_indexes(
    built: dict[str, LayerSpec], declared: dict[str, LayerSpec], existing: set[str]
) -> dict[str, list[str]]:
    """Per built collection, the properties whose index is missing (not in ``existing``):
    those the spec it was built with indexes and those the current release's spec
    (``declared``, from ``layers/*.yml``) indexes, limited to the columns the table has
    (a property added to the spec since needs a rebuild to exist at all).

    >>> from geoservice.catalogue import LayerSpec
    >>> doc = {"id": "t", "title": "t", "licence": {"name": "x", "url": "https://x"},
    ...   "attribution": "x", "source": {"format": "geojson", "paths": ["x"]},
    ...   "coverage": {"description": "x"},
    ...   "properties": [{"name": "h", "type": "number"}, {"name": "k", "type": "string"}]}
    >>> old = {"t": LayerSpec.model_validate(doc)}
    >>> new = {"t": LayerSpec.model_validate({**doc, "indexes": ["h"]})}
    >>> missing_indexes(old, new, set()), missing_indexes(old, new, {"idx_t_h"})
    ({'t': ['h']}, {})
    """
    out = {}
    for cid, spec in built.items():
        wanted = set(spec.indexed_properties())
        if cid in declared:
            wanted |= set(declared[cid].indexed_properties())
        names = sorted(n for n in wanted if spec.property(n) is not None
                       and index_name(cid, n) not in existing)
        if names:
            out[cid] = names
    return out


class Store(ABC):
    """A feature store holding one table per layer."""

    @abstractmethod
    def collections(self) -> list[str]:
        """Ids of the collections that exist in the store."""

    @abstractmethod
    def spec(self, collection: str) -> LayerSpec:
        """The spec a collection was built with (``NotFound`` if absent)."""

    @abstractmethod
    def info(self, collection: str) -> CollectionInfo:
        """Count, extent and build provenance of a collection (``NotFound`` if absent)."""

    @abstractmethod
    def create_collection(
        self, spec: LayerSpec, *, source: str, synthetic: bool, replace: bool = False
    ) -> None:
        """Create the table for a layer (dropping an existing one when ``replace``)."""

    @abstractmethod
    def bulk_load(self, collection: str, features: Iterable[Feature]) -> int:
        """Insert many features in one transaction; return how many were written."""

    @abstractmethod
    def query(self, collection: str, query: Query) -> Page:
        """Features matching ``query``, in a stable order, with ``number_matched``."""

    @abstractmethod
    def get(self, collection: str, fid: str) -> Feature:
        """One feature by id (``NotFound`` if absent)."""

    @abstractmethod
    def iter_features(self, collection: str) -> Iterator[Feature]:
        """Every feature of a collection, in id order (for indexes built at start-up)."""

    @abstractmethod
    def create(self, collection: str, feature: Feature) -> Feature:
        """Insert one feature (``Conflict`` if its id exists); an empty id gets a new one."""

    @abstractmethod
    def replace(self, collection: str, fid: str, feature: Feature) -> Feature:
        """Replace a feature's properties and geometry (``NotFound`` if absent)."""

    @abstractmethod
    def update(
        self, collection: str, fid: str, properties: dict[str, Any], geometry: Any | None = None
    ) -> Feature:
        """Merge ``properties`` (a ``None`` value removes one) and optionally set geometry."""

    @abstractmethod
    def delete(self, collection: str, fid: str) -> None:
        """Delete a feature (``NotFound`` if absent)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def get_for_update(self, collection: str, fid: str) -> Feature:
        """The feature a write is about to change (PostGIS locks its row inside a unit;
        the embedded store has one writer at a time anyway)."""
        return self.get(collection, fid)

    #: whether ``unit()`` really makes one transaction of the writes inside it
    atomic = False

    def unit(self) -> AbstractContextManager[None]:
        """One transaction around a feature write and the state written with it (audit,
        event, outbox).  This default makes none: the embedded store and its SQLite side
        files are separate files, bridged by the audit journal's pending → committed
        protocol; PostGIS overrides it (``PostgisStore.unit``)."""
        return nullcontext()

    def ensure_indexes(self, declared: dict[str, LayerSpec]) -> list[str]:
        """Create the b-tree indexes a built collection lacks (``missing_indexes``: a store
        built by an older release, before its layer's ``indexes:`` were declared); return
        the names created.  Cheap when nothing is missing (one catalogue query), so it
        runs at every open (``open_store``); a store view (read policy) owns no tables."""
        return []

    def data_version(self, collection: str) -> str | None:
        """A token that changes whenever ``collection``'s data may have changed, as seen
        by this process (writes by other processes included); ``None`` when unknown.

        Caches of derived answers (vector tiles) are keyed by it, so a write invalidates
        them in every worker without a message bus.  The default knows nothing."""
        return None

    def tile_version(self, collection: str, z: int, x: int, y: int) -> str | None:
        """A token that changes whenever tile ``z/x/y`` of ``collection`` may have changed;
        the tile cache and the tile ETag are keyed by it.  This default is the whole
        collection's ``data_version`` (any write invalidates every tile); the GeoPackage
        store narrows it to the writes whose geometries touch the tile."""
        return self.data_version(collection)

    def tile(
        self, collection: str, z: int, x: int, y: int, properties: dict[str, Any] | None = None
    ) -> bytes:
        """One Mapbox Vector Tile (WebMercatorQuad ``z/x/y``) of a collection, made for its
        zoom (``geoservice.store.tiling``); ``b""`` if empty or outside the layer's zooms.

        This default (store views such as read policies, so tiles show exactly what the
        Features API shows) runs a bbox query of the buffered tile envelope; both stores
        override it with queries that aggregate sub-pixel polygons before fetching rows.
        ``properties`` restricts the tile to features with those property values (read
        policies use it, e.g. ``status: published``).
        """
        from geoservice import mvt
        from geoservice.store import tiling

        spec = self.spec(collection)
        if not tiling.in_range(spec, z):
            return b""
        bbox = mvt.lonlat_bounds(z, x, y, mvt.BUFFER)
        query = Query(bbox=bbox, limit=2**62, properties=dict(properties or {}))
        return tiling.render(spec, z, x, y, self.query(collection, query).features)
