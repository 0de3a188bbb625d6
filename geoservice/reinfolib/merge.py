"""One feature per identity: pieces of a feature cut at tile edges, put back together.

A polygon that crosses tile edges comes back once per tile, each copy clipped to its tile
(plus the tile's buffer).  Pieces with the same *identity* — the spec's ``identity``
properties, or all API properties — are unioned into one feature whose id is a hash of
that identity, so the id is the same whichever tiles were fetched, in whatever order,
and in either response format.  Points add their position, snapped to the vector-tile
grid of the layer's zoom, so that the exact GeoJSON coordinates and the quantised ``pbf``
ones give the same identity.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.features import Feature
from geoservice.loaders.common import promote
from geoservice.reinfolib.mapping import mapper

EXTENT = 4096  # vector-tile grid: the pbf answers' resolution


@dataclass(frozen=True, slots=True)
class Piece:
    """What one tile said about one feature: its API properties and its clipped geometry."""

    identity: str
    properties: dict[str, Any]
    geometry: BaseGeometry


def _grid(lon: float, lat: float, z: int) -> tuple[int, int]:
    """A position on the global vector-tile grid of zoom ``z``."""
    import math

    n = 2**z * EXTENT
    x = (lon + 180.0) / 360.0 * n
    rad = math.radians(lat)
    y = (1 - math.log(math.tan(rad) + 1 / math.cos(rad)) / math.pi) / 2 * n
    return round(x), round(y)


def identity(spec: LayerSpec, properties: dict[str, Any], geometry: BaseGeometry | None) -> str:
    """The identity key of an API feature in layer ``spec``."""
    # null values are left out: vector tiles cannot carry them, GeoJSON answers can
    fields = spec.source.identity or sorted(k for k, v in properties.items() if v is not None)
    key: list[Any] = [[f, properties.get(f)] for f in fields]
    if geometry is not None and geometry.geom_type == "Point" and not spec.source.identity:
        key.append(list(_grid(geometry.x, geometry.y, spec.source.zoom or 15)))
    text = json.dumps(key, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def pieces(spec: LayerSpec, features: Iterable[Feature]) -> list[Piece]:
    """One piece per identity of one tile's features (several parts in a tile: unioned)."""
    parts: dict[str, list[Feature]] = defaultdict(list)
    for f in features:
        if f.geometry is not None and not f.geometry.is_empty:
            parts[identity(spec, f.properties, f.geometry)].append(f)
    return [Piece(k, fs[0].properties, _union([f.geometry for f in fs if f.geometry]))
            for k, fs in sorted(parts.items())]


def _union(geoms: list[BaseGeometry]) -> BaseGeometry:
    if len(geoms) == 1 and geoms[0].is_valid:
        return geoms[0]
    polygons = [shapely.make_valid(g) for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")]
    if polygons:
        merged = shapely.union_all(polygons)
        parts = [p for p in getattr(merged, "geoms", [merged]) if isinstance(p, Polygon)]
        parts += [q for p in getattr(merged, "geoms", []) if isinstance(p, MultiPolygon)
                  for q in p.geoms]
        return parts[0] if len(parts) == 1 else MultiPolygon(parts)
    points = [p for g in geoms for p in getattr(g, "geoms", [g]) if isinstance(p, Point)]
    if points:  # one identity = one grid position (or one id): the copies are the same point
        return points[0]
    return shapely.union_all(geoms)


def feature_id(spec: LayerSpec, key: str) -> str:
    """The collection id of the feature with identity ``key``."""
    return f"{(spec.source.api or spec.id).lower()}-{key}"


def merge(spec: LayerSpec, found: Iterable[Piece]) -> list[Feature]:
    """Features of ``spec`` (mapped to its properties, one per identity) from pieces."""
    groups: dict[str, list[Piece]] = defaultdict(list)
    for p in found:
        groups[p.identity].append(p)
    mapping = mapper(spec)
    out = []
    for key, group in sorted(groups.items()):
        geom = promote(_union([p.geometry for p in group]), spec.geometry_type)
        props = mapping.map(group[0].properties, f"{spec.source.api} feature {key}")
        out.append(Feature(feature_id(spec, key), props, geom))
    return out
