"""Site facts from a site geometry: one pass over per-layer STRtree indexes built once.

A ``LayerIndex`` holds a layer's features in an STRtree and the layer's coverage (the area
where the layer is complete, from its spec).  For a site, coverage is ``full`` (the site
lies inside it), ``partial`` or ``none``; features are only looked up where covered.
Areas are computed in EPSG:6677 (JGD2011 plane-rectangular IX) with one cached transformer.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

import shapely
import shapely.validation
from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.crs import to_6677
from geoservice.errors import NotFound, Unprocessable
from geoservice.features import Feature
from geoservice.geometry import checked, parse_geometry
from geoservice.guide.engine import Coverage, FeatureHit, LayerFacts, SiteFacts
from geoservice.guide.models import SiteInput

ADMIN_LAYER = "admin-boundaries"
PARCEL_LAYER = "parcels"
#: Default parcel layers (the guide's ``guide.yml`` / ``guide:`` in config.yml override it).
PARCEL_LAYERS: tuple[str, ...] = (PARCEL_LAYER,)


class OutsideServiceArea(Unprocessable):
    """The site does not touch any municipality of the service area (admin boundaries)."""

    code = "outside-service-area"


class ParcelNotFound(NotFound):
    """No parcel with that 地番 in that municipality; ``matches`` lists close 地番."""

    code = "parcel-not-found"

    def __init__(self, description: str, matches: list[str]) -> None:
        super().__init__(description)
        self.matches = matches


class FeatureSource(Protocol):
    """The one store method the guide needs (any ``geoservice.store.base.Store`` has it)."""

    def iter_features(self, collection: str) -> Iterator[Feature]:
        """Every feature of a collection (``NotFound`` if the collection is absent)."""
        ...


def read_layer(store: FeatureSource, layer_id: str) -> list[Feature] | None:
    """All features of a layer, or ``None`` when the store does not hold it."""
    try:
        return list(store.iter_features(layer_id))
    except NotFound:
        return None


def area_m2(geom: BaseGeometry) -> float:
    """Area of a CRS84 geometry in square metres, computed in EPSG:6677.

    Examples
    --------
    >>> round(area_m2(box(139.30, 35.65, 139.301, 35.651)))
    10046
    """
    return float(to_6677(geom).area)


class LayerIndex:
    """One layer's features in an STRtree, plus its coverage geometry.

    ``coverage`` ``None`` means the layer is complete everywhere.

    Examples
    --------
    >>> idx = LayerIndex("zones", [Feature("z1", {"name": "A"}, box(0, 0, 1, 1))], box(0, 0, 2, 2))
    >>> idx.facts(box(0.5, 0.5, 0.6, 0.6)).coverage, idx.facts(box(1.5, 1.5, 3, 3)).features
    ('full', ())
    """

    def __init__(
        self, layer_id: str, features: Iterable[Feature], coverage: BaseGeometry | None
    ) -> None:
        kept = [f for f in features if f.geometry is not None and not f.geometry.is_empty]
        self.layer_id = layer_id
        self.geometries: list[BaseGeometry] = [f.geometry for f in kept]  # type: ignore[misc]
        self.hits = [FeatureHit(f.id, dict(f.properties)) for f in kept]
        self.tree = shapely.STRtree(self.geometries)
        self.coverage = coverage
        if coverage is not None:
            shapely.prepare(coverage)

    def coverage_of(self, site: BaseGeometry) -> Coverage:
        """How much of ``site`` the layer covers."""
        if self.coverage is None or self.coverage.covers(site):
            return "full"
        return "partial" if self.coverage.intersects(site) else "none"

    def query(self, site: BaseGeometry) -> list[int]:
        """Indexes of the features intersecting ``site``, in load order."""
        return sorted(int(i) for i in self.tree.query(site, predicate="intersects"))

    def facts(self, site: BaseGeometry) -> LayerFacts:
        """Coverage and intersecting features for ``site``."""
        coverage = self.coverage_of(site)
        if coverage == "none":
            return LayerFacts("none")
        return LayerFacts(coverage, tuple(self.hits[i] for i in self.query(site)))

    @classmethod
    def from_store(
        cls,
        store: FeatureSource,
        layer_id: str,
        spec: LayerSpec | None,
        admin: LayerIndex | None = None,
    ) -> LayerIndex:
        """Read a layer once from the store; an absent collection covers nothing."""
        features = read_layer(store, layer_id)
        if features is None:
            return cls(layer_id, [], shapely.Polygon())
        return cls(layer_id, features, coverage_geometry(spec, features, admin))


def coverage_geometry(
    spec: LayerSpec | None, features: list[Feature], admin: LayerIndex | None
) -> BaseGeometry | None:
    """The area where a layer is complete: bbox ∩ municipalities ∩ data extent, as declared.

    A layer without a spec is trusted only within its own data.
    """
    data = [f.geometry for f in features if f.geometry is not None]
    if spec is None:
        return shapely.union_all(data)
    cov = spec.coverage
    parts: list[BaseGeometry] = []
    if cov.bbox is not None:
        parts.append(box(*cov.bbox))
    if cov.municipalities:
        parts.append(_municipalities(admin, cov.municipalities))
    if cov.extent_of_data:
        parts.append(shapely.union_all(data))
    if not parts:
        return None
    region = parts[0]
    for part in parts[1:]:
        region = region.intersection(part)
    return region


def _municipalities(admin: LayerIndex | None, codes: list[str]) -> BaseGeometry:
    if admin is None:
        return shapely.Polygon()
    wanted = set(codes)
    geoms = [g for g, h in zip(admin.geometries, admin.hits, strict=True)
             if str(h.properties.get("municipality_code")) in wanted]
    return shapely.union_all(geoms)


class SpatialIndex:
    """All layer indexes the guide needs, the admin boundaries and the parcel lookup."""

    def __init__(
        self,
        layers: Mapping[str, LayerIndex],
        admin: LayerIndex | None = None,
        parcels: Mapping[tuple[str, str], BaseGeometry] | None = None,
        parcel_features: Mapping[tuple[str, str], Feature] | None = None,
    ) -> None:
        self.layers = dict(layers)
        self.admin = admin
        self.parcels = dict(parcels or {})
        #: (municipality code, 地番) → the parcel feature (with its layer in ``layer``).
        self.parcel_features = dict(parcel_features or {})
        self._chiban_by_code: dict[str, list[str]] = {}
        for code, chiban in self.parcels:
            self._chiban_by_code.setdefault(code, []).append(chiban)

    @classmethod
    def build(
        cls,
        store: FeatureSource,
        specs: Mapping[str, LayerSpec],
        layer_ids: Iterable[str],
        parcel_layers: Iterable[str] = PARCEL_LAYERS,
    ) -> SpatialIndex:
        """Build every index once, reading each layer from the store a single time.

        ``parcel_layers`` are searched for 地番, in order (the first layer holding a
        (municipality code, 地番) key wins).
        """
        admin = LayerIndex.from_store(store, ADMIN_LAYER, specs.get(ADMIN_LAYER))
        layers = {lid: LayerIndex.from_store(store, lid, specs.get(lid), admin)
                  for lid in dict.fromkeys(layer_ids)}
        feats: dict[tuple[str, str], Feature] = {}
        for lid in dict.fromkeys(parcel_layers):
            for f in read_layer(store, lid) or []:
                if f.geometry is not None and not f.geometry.is_empty:
                    feats.setdefault(_parcel_key(f.properties), Feature(
                        f.id, {**f.properties, "layer": lid}, f.geometry))
        parcels = {k: f.geometry for k, f in feats.items() if f.geometry is not None}
        return cls(layers, admin, parcels, feats)

    def close_chiban(self, code: str, chiban: str, n: int = 5) -> list[str]:
        """地番 of municipality ``code`` close to ``chiban`` (prefix matches first)."""
        values = self._chiban_by_code.get(code, [])
        prefix = sorted((v for v in values if v.startswith(chiban)), key=_chiban_sort)
        main = re.split(r"[-番の]", chiban, maxsplit=1)[0]  # 本番: "101" of "101-9"
        same = sorted((v for v in values if v.split("-", 1)[0] == main), key=_chiban_sort)
        scored = ((difflib.SequenceMatcher(None, chiban, v).ratio(), v) for v in values)
        close = [v for r, v in sorted(scored, key=lambda rv: (-rv[0], _chiban_sort(rv[1])))
                 if r >= 0.5]
        return list(dict.fromkeys(prefix[:n] + same[:n] + close[:n]))[:n]

    def search_parcels(self, code: str | None, q: str, limit: int = 20) -> list[Feature]:
        """Parcels whose 地番 starts with ``q`` (then close matches), in one or every city."""
        codes = [code] if code is not None else sorted(self._chiban_by_code)
        found: list[Feature] = []
        for c in codes:
            for chiban in self.close_chiban(c, q, limit) if q else sorted(
                self._chiban_by_code.get(c, []), key=_chiban_sort
            )[:limit]:
                found.append(self.parcel_features[(c, chiban)])
        return found[:limit]

    def site_geometry(self, site: SiteInput) -> tuple[BaseGeometry, str | None]:
        """The CRS84 geometry of a requested site and, for a parcel, its municipality code.

        Raises ``ParcelNotFound`` (404, with close 地番), ``InvalidGeometry`` (400, why) or
        ``OutsideServiceArea`` (422) for a site that touches no municipality.
        """
        if site.parcel is not None:
            key = (site.parcel.municipality_code, site.parcel.chiban)
            geom = self.parcels.get(key)
            if geom is None:
                matches = self.close_chiban(*key)
                hint = f"; close matches: {', '.join(matches)}" if matches else ""
                raise ParcelNotFound(
                    f"parcel {key[1]!r} not found in municipality {key[0]}{hint}", matches
                )
            return geom, key[0]
        if site.point is not None:
            return self._in_service_area(checked(Point(*site.point), "site.point")), None
        return self._in_service_area(parse_geometry(site.geometry, "site.geometry")), None

    def _in_service_area(self, geom: BaseGeometry) -> BaseGeometry:
        if self.admin is not None and self.admin.geometries and not self.admin.query(geom):
            raise OutsideServiceArea(
                "the site is outside the service area (the municipalities of Tokyo in the "
                "admin-boundaries layer)"
            )
        return geom

    def facts(self, geom: BaseGeometry, municipality_code: str | None = None) -> SiteFacts:
        """One pass over the indexes: coverage and features of every layer, area, municipality."""
        area = None if geom.geom_type == "Point" else area_m2(geom)
        code, name = self._municipality(geom)
        layers = {lid: idx.facts(geom) for lid, idx in self.layers.items()}
        return SiteFacts(area, municipality_code or code, name, layers)

    def _municipality(self, geom: BaseGeometry) -> tuple[str | None, str | None]:
        if self.admin is None:
            return None, None
        found = self.admin.query(geom)
        if not found:
            return None, None
        if len(found) > 1 and geom.geom_type != "Point":
            geoms = self.admin.geometries
            found.sort(key=lambda i: -geoms[i].intersection(geom).area)
        props: Mapping[str, Any] = self.admin.hits[found[0]].properties
        code = props.get("municipality_code")
        return (None if code is None else str(code)), props.get("name")


def _parcel_key(props: Mapping[str, Any]) -> tuple[str, str]:
    return str(props.get("municipality_code")), str(props.get("chiban"))


def _chiban_sort(chiban: str) -> tuple[Any, ...]:
    """Natural order of 地番 ("2" before "10", "10-2" before "10-10")."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                 for p in re.split(r"[-番の]", chiban))
