"""Who sees which sightings, and where: the read policy of ``wildlife-sightings``.

- Public requests see ``published`` records only; a municipality token also sees its own
  municipality's ``pending`` / ``rejected`` records; an admin token sees everything.
- Sensitive records (a species listed in ``sensitive.yml`` or ``sensitive: true``) are shown
  to the public at the centre of their EPSG:6677 grid cell (1 km by default), with
  ``location_generalised_m`` saying so; the municipality's tokens and admins see the exact
  point.

Spatial constraints (bbox, spatial CQL2) of such callers are evaluated on the generalised
positions, so that repeated small queries cannot locate a sensitive record.

The policy is a ``Store`` view handed to the OGC read routes (``rt.services
["ogc.read_policy"]``), so paging, counts and filters stay consistent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import shapely
import yaml
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from geoservice.auth.tokens import Principal
from geoservice.catalogue import LayerSpec
from geoservice.config import SightingsSettings
from geoservice.cql2 import Literal, Op, Property, compile_filter, properties_used
from geoservice.crs import lonlat_from_6677, lonlat_to_6677
from geoservice.errors import NotFound
from geoservice.features import Feature
from geoservice.store import CollectionInfo, Page, Query, Store
from geoservice.store.base import BBox
from geoservice.store.filtering import queryable_schema

COLLECTION = "wildlife-sightings"
PUBLISHED = "published"
SENSITIVE_FILE = Path(__file__).with_name("sensitive.yml")


@dataclasses.dataclass(frozen=True)
class SensitiveConfig:
    """Grid cell size (m) per sensitive species, and for records flagged sensitive."""

    species: dict[str, int]
    record_cell: int = 1000

    @classmethod
    def load(cls, over: SightingsSettings | None = None) -> SensitiveConfig:
        """``sensitive.yml``, overridden by the ``sightings`` section of ``config.yml``."""
        raw = yaml.safe_load(SENSITIVE_FILE.read_text("utf-8")) or {}
        species = {str(k): int(v) for k, v in (raw.get("species") or {}).items()}
        cell = int(raw.get("record_cell", 1000))
        if over is not None:
            species.update(over.sensitive_species)
            cell = over.sensitive_cell or cell
        return cls(species, cell)

    def cell(self, props: dict[str, Any]) -> int | None:
        """The generalisation cell of a record, or ``None`` when it is not sensitive."""
        sizes = []
        if props.get("sensitive"):
            sizes.append(self.record_cell)
        size = self.species.get(str(props.get("species")))
        if size:
            sizes.append(size)
        return max(sizes) if sizes else None

    def largest_cell(self) -> int:
        """The largest generalisation cell (m): how far a shown point may be from the truth."""
        return max([self.record_cell, *self.species.values()])

    def public(self, f: Feature) -> Feature:
        """``f`` as the public sees it: a sensitive record at the centre of its grid cell,
        with ``location_generalised_m`` saying so; anything else unchanged."""
        cell = self.cell(f.properties)
        if cell is None or f.geometry is None or f.geometry.is_empty:
            return f
        props = {**f.properties, "location_generalised_m": cell}
        return Feature(f.id, props, generalise(f.geometry, cell))


def generalise(geom: BaseGeometry, cell: int) -> Point:
    """The centre of the EPSG:6677 grid cell of ``cell`` metres holding the point."""
    pt = geom if isinstance(geom, Point) else geom.representative_point()
    x, y = lonlat_to_6677(pt.x, pt.y)
    cx = (math.floor(x / cell) + 0.5) * cell
    cy = (math.floor(y / cell) + 0.5) * cell
    lon, lat = lonlat_from_6677(cx, cy)
    return Point(round(lon, 7), round(lat, 7))


class SightingsView(Store):
    """The store as one caller may read ``wildlife-sightings`` (other collections pass)."""

    def __init__(self, base: Store, who: Principal | None, sensitive: SensitiveConfig) -> None:
        self.base = base
        self.who = who
        self.sensitive = sensitive

    # -- policy ----------------------------------------------------------------------

    def _authorised(self, props: dict[str, Any]) -> bool:
        return self.who is not None and self.who.may_access(props.get("municipality_code"))

    def _visible(self, f: Feature) -> bool:
        return f.properties.get("status") == PUBLISHED or self._authorised(f.properties)

    def _shown(self, f: Feature) -> Feature:
        return f if self._authorised(f.properties) else self.sensitive.public(f)

    def _widened(self, bbox: BBox | None) -> BBox | None:
        """``bbox`` grown by the largest cell (taken at 80 km a degree: more than a cell in
        longitude and latitude at Tokyo), so it holds every record that may be shown inside."""
        if bbox is None:
            return None
        pad = self.sensitive.largest_cell() / 80_000
        return (bbox[0] - pad, bbox[1] - pad, bbox[2] + pad, bbox[3] + pad)

    def _restrict(self, query: Query) -> Query | None:
        if self.who is not None and self.who.admin:
            return query
        if self.who is None:
            asked = query.properties.get("status")
            if asked is not None and str(asked) != PUBLISHED:
                return None
            return dataclasses.replace(query, properties={**query.properties, "status": PUBLISHED})
        mine: Any = Op(
            "or",
            (
                Op("=", (Property("status"), Literal(PUBLISHED))),
                Op("=", (Property("municipality_code"), Literal(self.who.municipality or ""))),
            ),
        )
        combined = mine if query.filter is None else Op("and", (query.filter, mine))
        return dataclasses.replace(query, filter=combined)

    # -- reads -------------------------------------------------------------------------

    def query(self, collection: str, query: Query) -> Page:
        if collection != COLLECTION:
            return self.base.query(collection, query)
        q = self._restrict(query)
        if q is None:
            return Page([], 0)
        if self._spatial(collection, q):
            return self._query_shown(collection, q)
        page = self.base.query(collection, q)
        return Page([self._shown(f) for f in page.features], page.number_matched)

    def _spatial(self, collection: str, q: Query) -> bool:
        """A bbox or a spatial filter, asked by someone who may see generalised points,
        where a generalised (sensitive) record could be among the candidates."""
        if self.who is not None and self.who.admin:
            return False
        spatial = q.bbox is not None or (
            q.filter is not None
            and self.base.spec(collection).geometry_name in properties_used(q.filter)
        )
        return spatial and self._sensitive_nearby(collection, q)

    def _sensitive_nearby(self, collection: str, q: Query) -> bool:
        """Whether any sensitive record lies near the query's bbox: when none does, the
        exact positions shown equal the stored ones and the store can answer directly.

        One count-only probe (``limit=0``): ``sensitive = true OR species = ...`` for each
        sensitive species, within the query's bbox widened by the largest cell.  Both
        backends run it as SQL (CQL2 pushdown), one round trip per read.
        """
        wide = self._widened(q.bbox)
        probe: Any = Op("=", (Property("sensitive"), Literal(True)))
        for name in sorted(self.sensitive.species):
            probe = Op("or", (probe, Op("=", (Property("species"), Literal(name)))))
        q = dataclasses.replace(q, bbox=wide, filter=probe, limit=0, offset=0)
        return self.base.query(collection, q).number_matched > 0

    def _query_shown(self, collection: str, q: Query) -> Page:
        """Evaluate spatial constraints on the positions this caller is shown, so that
        bisecting with bboxes or filters cannot reveal a generalised record's exact point."""
        spec = self.base.spec(collection)
        wide = self._widened(q.bbox)
        candidates = self.base.query(
            collection,
            dataclasses.replace(q, bbox=wide, filter=None, limit=2**62, offset=0),
        )
        box = None if q.bbox is None else shapely.box(*q.bbox)
        pred = None if q.filter is None else compile_filter(q.filter, queryable_schema(spec))
        kept = []
        for f in candidates.features:
            shown = self._shown(f)
            if box is not None and (shown.geometry is None or not box.intersects(shown.geometry)):
                continue
            if pred is not None and not pred(shown.properties, shown.geometry):
                continue
            kept.append(shown)
        return Page(kept[q.offset : q.offset + q.limit], len(kept))

    def tile(
        self, collection: str, z: int, x: int, y: int, properties: dict[str, Any] | None = None
    ) -> bytes:
        """The backend's own tile (its SQL pre-aggregation) when the policy reduces to property
        equality and no generalised record is near; otherwise the policy-aware default path."""
        from geoservice import mvt

        if collection != COLLECTION:
            return self.base.tile(collection, z, x, y, properties)
        bbox = mvt.lonlat_bounds(z, x, y, mvt.BUFFER)
        q = self._restrict(Query(bbox=bbox, limit=1, properties=dict(properties or {})))
        if q is None:
            return b""
        if q.filter is not None or self._spatial(collection, q):
            return Store.tile(self, collection, z, x, y, properties)
        return self.base.tile(collection, z, x, y, q.properties)

    def get(self, collection: str, fid: str) -> Feature:
        f = self.base.get(collection, fid)
        if collection != COLLECTION:
            return f
        if not self._visible(f):
            raise NotFound(f"{collection}: no feature with id {fid!r}")
        return self._shown(f)

    def iter_features(self, collection: str) -> Iterator[Feature]:
        for f in self.base.iter_features(collection):
            if collection != COLLECTION:
                yield f
            elif self._visible(f):
                yield self._shown(f)

    # -- everything else passes through -----------------------------------------------

    def collections(self) -> list[str]:
        return self.base.collections()

    def spec(self, collection: str) -> LayerSpec:
        return self.base.spec(collection)

    def tile_version(self, collection: str, z: int, x: int, y: int) -> str | None:
        """Other collections: the store's per-tile version.  Sightings: the whole
        collection's (a generalised record may move into a tile from outside it)."""
        if collection != COLLECTION:
            return self.base.tile_version(collection, z, x, y)
        return self.data_version(collection)

    def data_version(self, collection: str) -> str | None:
        """The store's version plus the generalisation rules: a cached or revalidated
        public tile (ETag) must change when a species becomes sensitive, not only when
        rows change - else a CDN would keep serving exact positions with a 304."""
        version = self.base.data_version(collection)
        if version is None or collection != COLLECTION:
            return version
        rules = sorted(self.sensitive.species.items()), self.sensitive.record_cell
        return f"{version}|{hashlib.sha256(repr(rules).encode()).hexdigest()[:12]}"

    def info(self, collection: str) -> CollectionInfo:
        return self.base.info(collection)

    def create_collection(
        self, spec: LayerSpec, *, source: str, synthetic: bool, replace: bool = False
    ) -> None:
        raise NotImplementedError("read-only view")

    def bulk_load(self, collection: str, features: Iterable[Feature]) -> int:
        raise NotImplementedError("read-only view")

    def create(self, collection: str, feature: Feature) -> Feature:
        raise NotImplementedError("read-only view")

    def replace(self, collection: str, fid: str, feature: Feature) -> Feature:
        raise NotImplementedError("read-only view")

    def update(
        self, collection: str, fid: str, properties: dict[str, Any], geometry: Any | None = None
    ) -> Feature:
        raise NotImplementedError("read-only view")

    def delete(self, collection: str, fid: str) -> None:
        raise NotImplementedError("read-only view")

    def close(self) -> None:
        """The view owns nothing."""
