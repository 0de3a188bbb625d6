"""Vector tiles made for their zoom: generalisation and a byte budget, for both stores.

Why: a z11 tile of 190,000 buildings at full detail is ~2 MB of features a screen cannot
show (a building is a tenth of a pixel there), and cutting it at a feature count in id
order drew a strip of the city - a wrong map.  The rules, as tippecanoe's:

- **Zoom range** (``tiles.minzoom``/``maxzoom`` of the layer spec): outside it a tile is
  empty.  At ``maxzoom`` features keep full detail (snapped to the 4096 grid).
- **Below maxzoom**: geometries are simplified to the tile's resolution (1 tile unit,
  1/16 of a 256-px pixel), and polygons whose bounding box is smaller than a pixel in both
  directions are **coalesced**: per pixel cell, one square whose area is the covered
  area of the polygons in it (their bounding boxes, capped at the cell) with the property
  ``coalesced`` = how many features it stands for (tippecanoe's tiny-polygon
  reduction).  Sub-pixel lines are dropped.  Points are kept.
- **Byte budget** (``tiles.max_bytes``, default 500 KB), enforced in this order until the
  encoded tile fits: (1) **attribute thinning** - only ``id`` and
  ``tiles.low_zoom_properties`` are kept; (2) the coalescing cell doubles (2, 4, 8 ...
  pixels), polygons and lines smaller than the cell join the cells, simplification
  follows the cell, and points are **drop-densest** thinned to one per cell (the first
  in id order within the cell, with ``point_count`` = the points it stands for).  At a
  cell of the whole tile a tile holds a handful of features, so every tile ends up under
  the budget; nothing is cut at a feature count.

The GeoPackage store feeds :func:`render` the features that are not sub-pixel at the
first level and the sub-pixel ones already aggregated into :class:`Cells` from the R-tree,
so a z11 tile never decodes 190,000 geometries.  PostGIS makes every level in SQL
(``mvt_sql``); both read what a level does from :func:`level`, the one definition of the
strategy.  Coordinates: tile units, x right, y down (as MVT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.features import Feature

EXTENT = 4096
#: One pixel of a 256-px tile, in tile units.
PIXEL = EXTENT // 256
#: Level 0 as asked, 1 attributes thinned, 2.. the cell doubles up to the whole tile.
MAX_LEVEL = 2 + int(math.log2(EXTENT // PIXEL))
#: A coalesced square costs about this many bytes encoded (estimate to skip levels).
CELL_BYTES = 22
_MAX_LAT = 85.0511287798066


@dataclass(frozen=True)
class Scale:
    """Tile ``z/x/y``'s mapping from lon/lat to tile units (spherical Mercator)."""

    lon0: float  # west edge, degrees
    kx: float  # tile units per degree of longitude
    mtop: float  # north edge, Mercator y in radians
    km: float  # tile units per radian of Mercator y

    @classmethod
    def of(cls, z: int, x: int, y: int) -> Scale:
        n = 1 << z
        return cls(x / n * 360.0 - 180.0, EXTENT * n / 360.0,
                   math.pi * (1 - 2 * y / n), EXTENT * n / (2 * math.pi))


def _merc(lat: np.ndarray) -> np.ndarray:
    lat = np.clip(lat, -_MAX_LAT, _MAX_LAT)
    return np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))


def units(bounds: np.ndarray, s: Scale) -> tuple[np.ndarray, ...]:
    """``(cx, cy, w, h)`` in tile units of CRS84 boxes ``(N, 4)`` = minx, miny, maxx, maxy.

    The centre's y is that of the box's middle latitude; PostGIS computes the same in SQL
    (``mvt_sql._UNITS``)."""
    minx, miny, maxx, maxy = bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3]
    cx = ((minx + maxx) / 2 - s.lon0) * s.kx
    cy = (s.mtop - _merc((miny + maxy) / 2)) * s.km
    return cx, cy, (maxx - minx) * s.kx, (_merc(maxy) - _merc(miny)) * s.km


@dataclass
class Cells:
    """Sub-pixel polygons aggregated per grid cell of side ``size`` (tile units): cell
    index, how many, summed bounding-box area, summed centres (sums merge exactly)."""

    size: int
    ix: np.ndarray
    iy: np.ndarray
    n: np.ndarray
    area: np.ndarray
    sx: np.ndarray
    sy: np.ndarray

    @classmethod
    def empty(cls, size: int = PIXEL) -> Cells:
        z = np.zeros(0)
        return cls(size, z.astype(np.int64), z.astype(np.int64), z.astype(np.int64), z, z, z)

    @classmethod
    def of(cls, size: int, cx: np.ndarray, cy: np.ndarray, area: np.ndarray) -> Cells:
        """Aggregate single features (centre, area) into cells of ``size``."""
        ix, iy = np.floor(cx / size).astype(np.int64), np.floor(cy / size).astype(np.int64)
        one = np.ones(len(cx), dtype=np.int64)
        return cls(size, ix, iy, one, np.asarray(area, float), np.asarray(cx, float),
                   np.asarray(cy, float)).merged(size)

    def __len__(self) -> int:
        return len(self.n)

    def plus(self, other: Cells) -> Cells:
        """Both sets of cells (same size), merged."""
        cat = [np.concatenate([a, b]) for a, b in (
            (self.ix, other.ix), (self.iy, other.iy), (self.n, other.n),
            (self.area, other.area), (self.sx, other.sx), (self.sy, other.sy))]
        return Cells(self.size, *cat).merged(self.size)

    def merged(self, size: int) -> Cells:
        """The same features on a grid of ``size`` (a multiple of this one's)."""
        if not len(self):
            return Cells.empty(size)
        f = size // self.size
        ix, iy = self.ix // f, self.iy // f
        keys, inv = np.unique(np.stack([ix, iy], axis=1), axis=0, return_inverse=True)
        inv = inv.ravel()

        def total(v: np.ndarray) -> np.ndarray:
            return np.bincount(inv, weights=v, minlength=len(keys))

        return Cells(size, keys[:, 0], keys[:, 1], total(self.n).astype(np.int64),
                     total(self.area), total(self.sx), total(self.sy))

    def squares(self) -> list[tuple[BaseGeometry, dict[str, Any]]]:
        """One square per cell at the mean centre of its features, as large as the area
        they cover (at least one tile unit, at most the cell)."""
        if not len(self):
            return []
        cx, cy = self.sx / self.n, self.sy / self.n
        side = np.clip(np.sqrt(self.area), 1.0, self.size)
        x0, y0 = np.round(cx - side / 2), np.round(cy - side / 2)
        x1 = np.maximum(x0 + 1, np.round(cx + side / 2))
        y1 = np.maximum(y0 + 1, np.round(cy + side / 2))
        lo, hi = -64, EXTENT + 64
        inside = (x1 > lo) & (x0 < hi) & (y1 > lo) & (y0 < hi)
        boxes = shapely.box(x0[inside], y0[inside], x1[inside], y1[inside])
        return [(b, {"coalesced": int(k)}) for b, k in zip(boxes, self.n[inside], strict=True)]


def level_cell(level: int) -> int:
    """The coalescing cell (tile units) of a budget level."""
    return PIXEL << max(0, level - 1)


@dataclass(frozen=True)
class Level:
    """What budget level ``n`` of a tile does - the ONE definition of the strategy, read by
    :func:`render` and by PostGIS's statements (``mvt_sql``) alike."""

    n: int
    cell: int  # coalescing cell, tile units
    coalesce: bool  # polygons smaller than the cell join it, lines smaller are dropped
    tolerance: float  # simplification, tile units (0 = none)
    thin_attributes: bool  # only ``id`` and ``low_zoom_properties``
    point_cell: int  # drop-densest: one point per cell of this size (0 = every point)

    @property
    def last(self) -> bool:
        """The last level: its tile is served whatever its size."""
        return self.n >= MAX_LEVEL


def level(spec: LayerSpec, z: int, n: int) -> Level:
    """Budget level ``n`` of a zoom-``z`` tile of ``spec`` (0 = as asked; see the module
    docstring).  At ``maxzoom`` levels 0-1 keep full detail (nothing coalesced or
    simplified); from level 2 on every zoom coarsens alike."""
    full = z >= spec.tiles.maxzoom
    cell = level_cell(n)
    return Level(n, cell, coalesce=not full or n > 1,
                 tolerance=0.0 if full and n <= 1 else cell / PIXEL,
                 thin_attributes=n > 0 or z < spec.tiles.detail_zoom,
                 point_cell=cell if n > 1 else 0)


@dataclass
class Rows:
    """The features of a tile as columns: ids, CRS84 geometries and property columns
    (one value per feature, ``None`` = none; values as tiles hold them, :func:`values`).
    Why columns: a store hands its rows over without building a dict per feature, and
    the encoder numbers keys and values column-wise (``mvtpb.encode_columns``)."""

    ids: list[str]
    geometries: np.ndarray
    columns: dict[str, list[Any]]

    @classmethod
    def of(cls, features: list[Feature]) -> Rows:
        """Rows of :class:`Feature` objects (the general path: any store, any view)."""
        from geoservice import mvtpb

        geoms = np.fromiter((f.geometry for f in features), dtype=object, count=len(features))
        columns = mvtpb.columns_of([f.properties for f in features])
        return cls([f.id for f in features], geoms, {k: values(v) for k, v in columns.items()})

    def __len__(self) -> int:
        return len(self.ids)


def values(column: list[Any]) -> list[Any]:
    """A property column as MVT values: scalars as they are, others as JSON text
    (``mvt.tile_value``); a column of scalars only is returned as it is."""
    from geoservice.mvt import tile_value

    if set(map(type, column)) <= _TILE_SCALARS:
        return column
    return [None if v is None else tile_value(v) for v in column]


_TILE_SCALARS = frozenset({bool, int, float, str, type(None)})


def render(spec: LayerSpec, z: int, x: int, y: int, features: list[Feature] | Rows,
           cells: Cells | None = None, *, layer: str | None = None, start: int = 0) -> bytes:
    """One MVT of ``features`` (CRS84; those already coalesced are in ``cells``, on the
    level-0 grid) made for zoom ``z`` and kept under the layer's byte budget, trying the
    budget levels from ``start``.  A feature's place and size in the cells are those of
    its CRS84 box (:func:`units`), as the GeoPackage R-tree and PostGIS compute them."""
    from geoservice import mvt, mvtpb

    ts = spec.tiles
    if not ts.minzoom <= z <= ts.maxzoom:
        return b""
    rows = features if isinstance(features, Rows) else Rows.of(features)
    name = layer or spec.id
    tiled = mvt.to_tile_space(rows.geometries, z, x, y)
    missing = shapely.is_missing(tiled)
    boxes = np.asarray(shapely.bounds(rows.geometries), float).reshape(-1, 4)
    cx, cy, w, h = (np.nan_to_num(v) for v in units(boxes, Scale.of(z, x, y)))
    kind = shapely.get_type_id(tiled)
    point = np.isin(kind, (0, 4)) | missing
    polygon = np.isin(kind, (3, 6))
    base = cells if cells is not None else Cells.empty()
    data = b""
    for n in range(start, MAX_LEVEL + 1):
        lv = level(spec, z, n)
        small = ~point & (np.maximum(w, h) < lv.cell) & lv.coalesce
        lvl_cells = base.merged(lv.cell).plus(Cells.of(
            lv.cell, cx[small & polygon], cy[small & polygon], (w * h)[small & polygon]))
        if len(lvl_cells) * CELL_BYTES > ts.max_bytes and not lv.last:
            continue
        keep, counts = _thin_points(point, cx, cy, lv.point_cell)
        keep &= ~small
        chosen = tiled.copy()
        chosen[~keep] = None
        geoms = mvt.finish(chosen, lv.tolerance)
        squares = lvl_cells.squares()
        data = mvtpb.encode_columns(
            name, np.concatenate([geoms, np.fromiter((g for g, _ in squares), dtype=object,
                                                     count=len(squares))]),
            _tile_columns(rows, ts.low_zoom_properties if lv.thin_attributes else None,
                          counts, [p["coalesced"] for _, p in squares]), EXTENT)
        if len(data) <= ts.max_bytes:
            return data
    return data


def _tile_columns(rows: Rows, only: list[str] | None, counts: dict[int, int],
                  coalesced: list[int]) -> dict[str, list[Any]]:
    """The tile's property columns: the rows' (all, or ``only`` those), ``id``,
    ``point_count`` of thinned points, then the coalesced squares' ``coalesced``."""
    n, pad = len(rows), [None] * len(coalesced)
    out = {k: v + pad if isinstance(v, list) else [*v, *pad] for k, v in rows.columns.items()
           if only is None or k in only}
    out["id"] = rows.ids + pad
    if counts:
        out["point_count"] = [counts.get(i) for i in range(n)] + pad
    if coalesced:
        out["coalesced"] = [None] * n + coalesced
    return out


def _thin_points(point: np.ndarray, cx: np.ndarray, cy: np.ndarray,
                 size: int) -> tuple[np.ndarray, dict[int, int]]:
    """Drop-densest: every feature, but of the points only the first per cell of ``size``
    (0 = all points); ``{index: points it stands for}`` for the kept ones that stand for
    more than themselves."""
    keep = np.ones(len(point), dtype=bool)
    if size <= 0 or not point.any():
        return keep, {}
    idx = np.flatnonzero(point)
    keys = np.stack([np.floor(cx[idx] / size), np.floor(cy[idx] / size)], axis=1)
    _, first, count = np.unique(keys, axis=0, return_index=True, return_counts=True)
    keep[idx] = False
    keep[idx[first]] = True
    return keep, {int(idx[f]): int(c) for f, c in zip(first, count, strict=True) if c > 1}


def in_range(spec: LayerSpec, z: int) -> bool:
    """Whether the layer has tiles at zoom ``z`` (outside its range a tile is empty)."""
    return spec.tiles.minzoom <= z <= spec.tiles.maxzoom


def presorts(spec: LayerSpec, z: int) -> bool:
    """Whether a store should aggregate sub-pixel polygons into level-0 :class:`Cells`
    before fetching rows (polygon layers below their full-detail zoom)."""
    return spec.geometry_type in ("Polygon", "MultiPolygon") and z < spec.tiles.maxzoom
