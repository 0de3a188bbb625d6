"""Web Mercator (XYZ) tile math and Mapbox Vector Tile decoding to CRS84.

The API's tiles are the GSI / OSM XYZ scheme (``z/x/y``, y down from the north).  A site or
a municipality is covered by the tiles its bounding box spans that actually intersect it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geoservice.features import Feature
from geoservice.reinfolib.errors import ReinfolibError

MAX_LAT = 85.0511287798066


@dataclass(frozen=True, slots=True, order=True)
class Tile:
    """One XYZ tile."""

    z: int
    x: int
    y: int

    def bounds(self) -> tuple[float, float, float, float]:
        """``(west, south, east, north)`` in degrees."""
        return (_lon(self.x, self.z), _lat(self.y + 1, self.z),
                _lon(self.x + 1, self.z), _lat(self.y, self.z))

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


def _lon(x: float, z: int) -> float:
    return x / 2**z * 360.0 - 180.0


def _lat(y: float, z: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / 2**z))))


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The ``(x, y)`` of the tile holding a point at zoom ``z``.

    >>> tile_of(139.7671, 35.6812, 15)
    (29105, 12903)
    """
    n = 2**z
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    x = int((lon + 180.0) / 360.0 * n)
    rad = math.radians(lat)
    y = int((1 - math.log(math.tan(rad) + 1 / math.cos(rad)) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


#: Past this many tiles in the bounding box, ``covering`` descends from zoom 0 instead.
GRID_MAX = 4096


class TooManyTiles(ValueError):
    """An area covers more tiles than the caller allows."""


def covering(area: BaseGeometry, z: int, limit: int | None = None) -> list[Tile]:
    """The tiles at zoom ``z`` that intersect ``area`` (a CRS84 geometry), sorted.

    Why two ways: the grid of the bounding box is the quick answer for a site, but a thin
    or scattered area (小笠原村's islands, a long sliver) has a bounding box of millions of
    tiles of which few touch it; past ``GRID_MAX`` the tiles are found by descending from
    zoom 0 through the children that intersect, so the work follows the answer.  More
    than ``limit`` tiles raise ``TooManyTiles`` (a site query cannot fetch them anyway).
    """
    west, south, east, north = area.bounds
    x0, y0 = tile_of(west, north, z)
    x1, y1 = tile_of(east, south, z)
    if (x1 - x0 + 1) * (y1 - y0 + 1) > GRID_MAX:
        return _descend(area, z, limit)
    tiles = [Tile(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    if len(tiles) > 1 and area.geom_type != "Point":
        tiles = _intersecting(area, tiles)
    if limit is not None and len(tiles) > limit:
        raise TooManyTiles(f"{len(tiles)} tiles at zoom {z}, more than {limit}")
    return tiles


def _intersecting(area: BaseGeometry, tiles: list[Tile]) -> list[Tile]:
    boxes = shapely.box(*np.array([t.bounds() for t in tiles]).T)
    shapely.prepare(area)
    return [t for t, hit in zip(tiles, shapely.intersects(area, boxes), strict=True) if hit]


def _descend(area: BaseGeometry, z: int, limit: int | None) -> list[Tile]:
    level = [Tile(0, 0, 0)]
    for _ in range(z):
        children = [Tile(t.z + 1, 2 * t.x + dx, 2 * t.y + dy)
                    for t in level for dx in (0, 1) for dy in (0, 1)]
        level = _intersecting(area, children)
        if limit is not None and len(level) > limit:
            raise TooManyTiles(f"more than {limit} tiles at zoom {level[0].z}")
    return sorted(level)


def iter_geojson(body: Any, api: str) -> Iterator[Feature]:
    """Features of a GeoJSON FeatureCollection answer (``bad-body`` if it is not one)."""
    if not isinstance(body, dict) or not isinstance(body.get("features"), list):
        raise ReinfolibError("bad-body", f"{api}: the answer is not a GeoJSON FeatureCollection",
                             api=api)
    for i, f in enumerate(body["features"]):
        try:
            geom = shape(f["geometry"]) if f.get("geometry") else None
            props = dict(f.get("properties") or {})
        except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException):
            raise ReinfolibError("bad-body", f"{api}: feature {i} of the answer is not valid "
                                 "GeoJSON", api=api) from None
        yield Feature(str(f.get("id") or ""), props, geom)


def decode_mvt(data: bytes, tile: Tile, api: str) -> list[Feature]:
    """Features of a Mapbox Vector Tile, every layer, with coordinates in CRS84."""
    import mapbox_vector_tile

    try:
        layers = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    except Exception:  # the decoder raises protobuf / struct / index errors alike
        raise ReinfolibError("bad-pbf", f"{api}: the vector tile {tile} does not decode",
                             api=api) from None
    out: list[Feature] = []
    try:
        for layer in layers.values():
            extent = float(layer.get("extent", 4096))
            for f in layer["features"]:
                geom = _to_lonlat(shape(f["geometry"]), tile, extent)
                out.append(Feature(str(f.get("id") or ""), dict(f.get("properties") or {}), geom))
    except (KeyError, TypeError, ValueError, shapely.errors.GEOSException):
        raise ReinfolibError("bad-pbf", f"{api}: the vector tile {tile} has malformed features",
                             api=api) from None
    return out


def _to_lonlat(geom: BaseGeometry, tile: Tile, extent: float) -> BaseGeometry:
    """Tile pixel coordinates (y down) → longitude / latitude."""
    n = 2**tile.z

    def convert(xy: np.ndarray) -> np.ndarray:
        gx = (tile.x + xy[:, 0] / extent) / n
        gy = (tile.y + xy[:, 1] / extent) / n
        lon = gx * 360.0 - 180.0
        lat = np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * gy))))
        return np.column_stack([lon, lat])

    return shapely.transform(geom, convert)
