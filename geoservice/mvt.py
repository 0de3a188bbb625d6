"""Mapbox Vector Tiles in the WebMercatorQuad tile matrix set: tile maths and a Python encoder.

Shared by both backends: ``geoservice.store.tiling`` makes every tile for its zoom
(generalisation, byte budget) from the rows a store reads and encodes it with these
functions and ``mvtpb``.

Geometries are projected to EPSG:3857 (spherical formulas), moved to tile space (extent
4096, y down), clipped to the tile plus a 64-unit buffer, snapped to the integer grid and
made valid; anything that collapses is dropped.  Each feature keeps its properties plus
``id`` (the feature id; MVT feature ids must be integers, ours are strings).  Dates and
timestamps are the same ISO strings the Features API returns; other non-scalar values
are JSON text.  An empty tile is ``b""`` (served as 204 No Content).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geoservice.errors import InvalidParameter, NotFound
from geoservice.features import Feature

TMS = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 22
MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"

_R = 6378137.0
_ORIGIN = math.pi * _R
_MAX_LAT = 85.0511287798066


def check_tile(z: str | int, y: str | int, x: str | int) -> tuple[int, int, int]:
    """Parse tile indices: non-integers are a 400, indices outside the matrix a 404."""
    try:
        zi, yi, xi = int(z), int(y), int(x)
    except (TypeError, ValueError):
        raise InvalidParameter(
            f"tile indices must be integers: tileMatrix={z!r}, tileRow={y!r}, tileCol={x!r}"
        ) from None
    if not 0 <= zi <= MAX_ZOOM:
        raise NotFound(f"tile matrix {zi} does not exist in {TMS} (0..{MAX_ZOOM} served)")
    n = 1 << zi
    if not (0 <= yi < n and 0 <= xi < n):
        raise NotFound(f"tile {zi}/{yi}/{xi} is outside tile matrix {zi} (0..{n - 1})")
    return zi, yi, xi


def mercator_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """EPSG:3857 bounds of a tile (as ``ST_TileEnvelope``)."""
    size = 2 * _ORIGIN / (1 << z)
    minx = -_ORIGIN + x * size
    maxy = _ORIGIN - y * size
    return minx, maxy - size, minx + size, maxy


def _lon(mx: float) -> float:
    return max(-180.0, min(180.0, math.degrees(mx / _R)))


def _lat(my: float) -> float:
    my = max(-_ORIGIN, min(_ORIGIN, my))
    return math.degrees(2 * math.atan(math.exp(my / _R)) - math.pi / 2)


def lonlat_bounds(z: int, x: int, y: int, buffer: int = 0) -> tuple[float, float, float, float]:
    """CRS84 bounds of a tile, grown by ``buffer`` tile units on each side."""
    minx, miny, maxx, maxy = mercator_bounds(z, x, y)
    pad = (maxx - minx) * buffer / EXTENT
    return _lon(minx - pad), _lat(miny - pad), _lon(maxx + pad), _lat(maxy + pad)


def _projector(z: int, x: int, y: int) -> Callable[[np.ndarray], np.ndarray]:
    """lon/lat coordinates ``(N, 2)`` -> tile units of z/x/y (EPSG:3857, y down)."""
    minx, _, maxx, maxy = mercator_bounds(z, x, y)
    scale = EXTENT / (maxx - minx)

    def project(coords: np.ndarray) -> np.ndarray:
        lon = coords[:, 0]
        lat = np.clip(coords[:, 1], -_MAX_LAT, _MAX_LAT)
        mx = np.radians(lon) * _R
        my = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * _R
        return np.column_stack(((mx - minx) * scale, (maxy - my) * scale))

    return project


def _all_points(geoms: np.ndarray) -> bool:
    """Whether every geometry is a non-empty single point (a sightings tile): those take
    the vectorised point path (coordinates in, coordinates out, no per-geometry GEOS)."""
    return bool(len(geoms)) and bool(np.all(shapely.get_type_id(geoms) == 0)) and \
        not shapely.is_empty(geoms).any()


def to_tile_space(geoms: Sequence[BaseGeometry | None] | np.ndarray,
                  z: int, x: int, y: int) -> np.ndarray:
    """CRS84 geometries in tile space (unclipped, not snapped); ``None`` where missing."""
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = list(geoms)
    arr[shapely.is_empty(arr)] = None
    project = _projector(z, x, y)
    if _all_points(arr):  # the same projection of the same coordinates, without transform
        return shapely.points(project(shapely.get_coordinates(arr)))
    present = ~shapely.is_missing(arr)
    if present.any():
        arr[present] = shapely.transform(shapely.force_2d(arr[present]), project)
    return arr


def geos_round(v: np.ndarray) -> np.ndarray:
    """GEOS's rounding to the integer grid (``set_precision(g, 1.0)`` of a point): half
    away from zero for positives, towards zero for negatives (``util::round``)."""
    n = np.trunc(v)
    f = np.abs(v - n)  # exact: no rounding in v - trunc(v)
    return np.where(v >= 0, n + (f >= 0.5), n - (f > 0.5))


def _finish_points(tiled: np.ndarray) -> np.ndarray:
    """:func:`finish` of single points, vectorised: kept strictly inside the buffered tile
    (as ``clip_by_rect``), snapped as GEOS snaps."""
    xy = shapely.get_coordinates(tiled)
    lo, hi = -BUFFER, EXTENT + BUFFER
    inside = np.all((xy > lo) & (xy < hi), axis=1)
    out = np.full(len(tiled), None, dtype=object)
    out[inside] = shapely.points(geos_round(xy[inside]))
    return out


def finish(tiled: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """Tile-space geometries simplified by ``tolerance`` (tile units, 0 = none), clipped to
    the buffered tile and snapped to the integer grid; ``None`` where nothing is left."""
    if _all_points(tiled):
        return _finish_points(tiled)  # simplifying a point changes nothing
    return _finish_shapes(tiled, tolerance)


def _finish_shapes(tiled: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """:func:`finish` for any geometries (GEOS simplify, clip and snap)."""
    out = np.full(len(tiled), None, dtype=object)
    present = ~shapely.is_missing(tiled)
    if not present.any():
        return out
    idx = np.flatnonzero(present)
    parts = tiled[idx]
    if tolerance > 0:
        parts = shapely.simplify(parts, tolerance, preserve_topology=True)
    lo, hi = -BUFFER, EXTENT + BUFFER
    clipped = shapely.clip_by_rect(parts, lo, lo, hi, hi)  # points outside become empty
    snapped = shapely.set_precision(clipped, 1.0)  # snap to the grid, keeping polygons valid
    left = ~shapely.is_missing(snapped) & ~shapely.is_empty(snapped)
    out[idx[left]] = snapped[left]
    for i in idx[left][shapely.get_type_id(snapped[left]) == 7]:
        # clipping may mix dimensions: keep the top one
        parts_ = list(out[i].geoms)
        top = max(shapely.get_dimensions(p) for p in parts_)
        keep = [p for p in parts_ if shapely.get_dimensions(p) == top]
        out[i] = shapely.union_all(keep) if len(keep) > 1 else keep[0]
    return out


def tile_geometries(
    geoms: list[BaseGeometry | None], z: int, x: int, y: int
) -> list[BaseGeometry | None]:
    """CRS84 geometries in tile space: clipped to the buffered tile, on the integer grid."""
    return list(finish(to_tile_space(geoms, z, x, y)))


def tile_geometry(geom: BaseGeometry | None, z: int, x: int, y: int) -> BaseGeometry | None:
    """One CRS84 geometry in tile space (see :func:`tile_geometries`)."""
    return tile_geometries([geom], z, x, y)[0]


_SCALARS = frozenset({bool, int, float, str})


def tile_value(v: Any) -> Any:
    """A property value as an MVT value: scalars as they are, anything else JSON text."""
    if type(v) in _SCALARS:
        return v
    if isinstance(v, bool | int | float | str):  # subclasses (e.g. enums)
        return v
    return json.dumps(v, ensure_ascii=False, default=str)


def encode(layer: str, features: Iterable[Feature], z: int, x: int, y: int) -> bytes:
    """One MVT layer named ``layer`` holding ``features`` (CRS84) clipped to tile z/x/y."""
    from geoservice import mvtpb

    feats = list(features)
    out = []
    for f, g in zip(feats, tile_geometries([f.geometry for f in feats], z, x, y), strict=True):
        if g is None:
            continue
        props = {k: v if type(v) in _SCALARS else tile_value(v)
                 for k, v in f.properties.items() if v is not None}
        props["id"] = f.id
        out.append((g, props))
    return mvtpb.encode_layer(layer, out, EXTENT)

