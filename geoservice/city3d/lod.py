"""Level of detail for the buildings tileset: a quadtree whose upper tiles are merged blocks.

Why: a tileset whose inner tiles are empty (refine ``ADD``) makes a viewer load full-detail
leaves for everything in view; at city size (10^6 buildings) the first view alone would be
hundreds of megabytes.  Here every tile has content and refines ``REPLACE``:

* **Leaves** hold the buildings themselves (the meshes of :mod:`.tiles3d`, one metadata
  row per building), at most ``max_per_leaf`` each (~1.5 KB a building: ~0.9 MB a tile)
  over at most ``max_leaf_cells`` cells a side (a leaf's local frame stays local), unless
  one spill cell holds more.
* **Inner tiles** over more than ``max_per_leaf`` buildings hold the city *generalised*:
  the tile is divided into ``grid`` x ``grid`` units and the buildings whose centroid
  falls in a unit are merged into one block - a square of their total footprint area,
  centred on their area-weighted centroid, from their lowest base to their area-weighted
  mean roof (so built area and, roughly, volume are kept).  Blocks narrower than half the
  tile's geometric error (an eighth of a unit) are dropped (a pixel or two when the tile
  is shown).  A tile therefore holds at most ``grid``^2 blocks (~0.65 KB each: 12 x 12
  keeps a tile under ~95 KB, so the root and level 1 - what a viewer shows first - under
  ~470 KB) however many buildings are below. Block features carry ``measured_height``
  (area-weighted mean) and ``flood_depth_m`` (maximum), so the viewer's colourings work on
  them; the other columns are empty.  An inner tile over fewer buildings (split only to
  keep leaves small in area: sparse data) stays empty and refines ``ADD``: its whole
  subtree is no heavier than one leaf.
* ``geometricError`` of an inner tile is a quarter of its block unit (metres): about the
  typical horizontal displacement of a building's walls when merged into its block (the
  block stands on the buildings' centroid and covers their area; the worst case, half a
  unit, would make a viewer refine twice as early and load ~4x the bytes for the same
  view).  Leaves have 0.  The error halves with each level, decreasing toward the leaves.

The quadtree is regular over the spill cells (cell ``(cx, cy)`` of ``cell_deg`` degrees;
the root covers ``2^L`` cells a side), so a parent's block raster is its four children's
rasters downsampled 2:1 - built bottom-up without ever reading a building twice and
holding only one raster per open level: memory does not grow with the number of buildings.
Subtrees below ``PARALLEL_LEVEL`` are built in worker processes (``workers``), each from
its own spill files.  Below every ``subtree_levels`` levels the tree continues in an
external tileset (``tiles/<level>_<x>_<y>.json``), so ``tileset.json`` - which a viewer
must load before it shows anything - stays a few kilobytes at any size.

Tile transforms: each content tile is placed in an east-north-up frame at its centre;
the tile ``transform`` is relative to the parent's (3D Tiles accumulate them); regions are
absolute (3D Tiles do not transform regions).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoservice.city3d.resume import (
    die_with_parent,
    file_digest,
    load_record,
    recorded,
    save_record,
)
from geoservice.city3d.tiles3d import (
    GENERATOR,
    PROPERTIES,
    WGS84_A,
    _Cell,
    _diagonal_m,
    _region,
    _Spill,
    _union,
    box_corners,
    ecef_to_geodetic,
    enu_rotation,
    geodetic_to_ecef,
    write_glb,
)

#: Raster fields: sums (count, area, area*lon, area*lat, area*top, area*height), then
#: the minimum base and the maxima of top and flood depth.
_N, _AREA, _ALON, _ALAT, _ATOP, _AH, _BASE, _TOP, _FLOOD = range(9)
_SUMS = 6
#: Levels built in the main process; the subtrees below are built by the workers.
PARALLEL_LEVEL = 2
_COL = {name: i for i, (name, *_rest) in enumerate(PROPERTIES)}


@dataclass(frozen=True)
class LodOptions:
    """How the hierarchy is cut (see the module docstring)."""

    #: buildings in a leaf at most (unless one cell holds more)
    max_per_leaf: int = 600
    #: cells a side of a leaf at most (a leaf's local frame stays local)
    max_leaf_cells: int = 16
    #: blocks a side of an inner tile (so at most grid^2 blocks a tile)
    grid: int = 12
    #: levels per tileset file; deeper levels go into external tilesets
    subtree_levels: int = 3
    #: processes building subtrees
    workers: int = 1
    #: False: the flat layout (empty inner tiles, refine ADD) - for comparisons only
    merged: bool = True


@dataclass
class _Counts:
    tiles: int = 0
    leaves: int = 0
    blocks: int = 0

    def __add__(self, other: _Counts) -> _Counts:
        return _Counts(
            self.tiles + other.tiles, self.leaves + other.leaves, self.blocks + other.blocks
        )


#: (size, SHA-256) of each file of a subtree, by path relative to the tileset
_Files = dict[str, tuple[int, str]]


@dataclass
class _Built:
    """A built subtree: its tile (children nested), block raster, files and counts - what
    its unit record holds, so a resumed build takes it whole (:mod:`.resume`)."""

    tile: dict[str, Any]
    raster: np.ndarray
    files: _Files
    counts: _Counts


class _Grid:
    """The regular quadtree over the spill cells: node extents in degrees and metres."""

    def __init__(self, cells: Iterable[tuple[int, int]], cell_deg: float) -> None:
        keys = list(cells)
        self.cell_deg = cell_deg
        self.x0 = min(k[0] for k in keys)
        self.y0 = min(k[1] for k in keys)
        span = max(max(k[0] for k in keys) - self.x0, max(k[1] for k in keys) - self.y0) + 1
        self.levels = max(0, math.ceil(math.log2(span)))

    def side(self, level: int) -> int:
        """Cells per side of a node at ``level``."""
        return 1 << (self.levels - level)

    def extent(self, level: int, ix: int, iy: int) -> tuple[float, float, float, float]:
        """(west, south, east, north) degrees of a node."""
        s = self.side(level) * self.cell_deg
        w = (self.x0 + ix * self.side(level)) * self.cell_deg
        so = (self.y0 + iy * self.side(level)) * self.cell_deg
        return w, so, w + s, so + s

    def keys_in(
        self, keys: list[tuple[int, int]], level: int, ix: int, iy: int
    ) -> list[tuple[int, int]]:
        s = self.side(level)
        x0, y0 = self.x0 + ix * s, self.y0 + iy * s
        return [k for k in keys if x0 <= k[0] < x0 + s and y0 <= k[1] < y0 + s]


def _empty_raster(g: int) -> np.ndarray:
    r = np.zeros((9, g, g))
    r[_BASE] = np.inf
    r[_TOP] = -np.inf
    r[_FLOOD] = -np.inf
    return r


def _downsample(r: np.ndarray) -> np.ndarray:
    """2:1 in both directions (sums add, base takes the minimum, top and flood the max)."""
    h = r.shape[1] // 2
    s = r.reshape(9, h, 2, h, 2)
    out = np.empty((9, h, h))
    out[:_SUMS] = s[:_SUMS].sum(axis=(2, 4))
    out[_BASE] = s[_BASE].min(axis=(1, 3))
    out[_TOP:] = s[_TOP:].max(axis=(2, 4))
    return out


def _compose(children: list[tuple[int, int, np.ndarray]], g: int) -> np.ndarray:
    """A parent's raster from its children's: (quadrant x, quadrant y, raster)."""
    out = _empty_raster(g)
    h = g // 2
    for qx, qy, r in children:
        out[:, qy * h : (qy + 1) * h, qx * h : (qx + 1) * h] = _downsample(r)
    return out


def _unit_m(extent: tuple[float, float, float, float], g: int) -> float:
    """Block unit size (metres) of a node: the shorter side of its raster units."""
    w, s, e, n = extent
    lat = math.radians((s + n) / 2)
    dx = math.radians(e - w) * WGS84_A * math.cos(lat)
    dy = math.radians(n - s) * WGS84_A
    return min(dx, dy) / g


def node_error(extent: tuple[float, float, float, float], g: int) -> float:
    """geometricError of an inner tile: a quarter of its block unit (module docstring)."""
    return _unit_m(extent, g) / 4.0


# --------------------------------------------------------------------------- per building


def building_summary(
    enu: np.ndarray,
    nrm_up: np.ndarray,
    geo: np.ndarray,
    sizes: list[int],
    indices: np.ndarray,
    rows: list[tuple[Any, ...]],
) -> np.ndarray:
    """(k, 7) per building: lon, lat, footprint m², base, top, height, flood (nan: none).

    Footprint = horizontal area of the upward-facing triangles (roofs), which for LOD1 is
    the footprint and for LOD2 its roof cover."""
    k = len(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    fid = np.repeat(np.arange(k), sizes)
    tri = indices.reshape(-1, 3).astype(np.int64)
    a, b, c = enu[tri[:, 0]], enu[tri[:, 1]], enu[tri[:, 2]]
    cross_z = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    up = nrm_up[tri[:, 0]] > 0.5
    area = np.bincount(fid[tri[:, 0]], weights=np.abs(cross_z) * 0.5 * up, minlength=k)
    counts = np.asarray(sizes, dtype=np.float64)
    lon = np.bincount(fid, weights=geo[:, 0], minlength=k) / counts
    lat = np.bincount(fid, weights=geo[:, 1], minlength=k) / counts
    base = np.minimum.reduceat(geo[:, 2], starts)
    top = np.maximum.reduceat(geo[:, 2], starts)
    height = np.array(
        [np.nan if r[_COL["measured_height"]] is None else r[_COL["measured_height"]] for r in rows]
    )
    height = np.where(np.isnan(height), top - base, height)
    flood = np.array(
        [np.nan if r[_COL["flood_depth_m"]] is None else r[_COL["flood_depth_m"]] for r in rows]
    )
    return np.column_stack([lon, lat, area, base, top, height, flood])


def leaf_raster(
    summary: np.ndarray, extent: tuple[float, float, float, float], g: int
) -> np.ndarray:
    """A leaf's block raster from its buildings' summaries."""
    w, s, e, n = extent
    ix = np.clip(np.floor((summary[:, 0] - w) / (e - w) * g), 0, g - 1).astype(np.int64)
    iy = np.clip(np.floor((summary[:, 1] - s) / (n - s) * g), 0, g - 1).astype(np.int64)
    flat = iy * g + ix
    r = _empty_raster(g).reshape(9, -1)
    area = summary[:, 2]
    np.add.at(r[_N], flat, 1.0)
    np.add.at(r[_AREA], flat, area)
    np.add.at(r[_ALON], flat, area * summary[:, 0])
    np.add.at(r[_ALAT], flat, area * summary[:, 1])
    np.add.at(r[_ATOP], flat, area * summary[:, 4])
    np.add.at(r[_AH], flat, area * summary[:, 5])
    np.minimum.at(r[_BASE], flat, summary[:, 3])
    np.maximum.at(r[_TOP], flat, summary[:, 4])
    np.maximum.at(r[_FLOOD], flat, np.nan_to_num(summary[:, 6], nan=-np.inf))
    return r.reshape(9, g, g)


# --------------------------------------------------------------------------- blocks


def raster_blocks(
    r: np.ndarray, extent: tuple[float, float, float, float], min_side: float
) -> np.ndarray:
    """(k, 6) blocks of a raster: lon, lat, side m, base, top, height; flood in col 6."""
    g = r.shape[1]
    unit = _unit_m(extent, g)
    cells = r.reshape(9, -1)
    ok = (cells[_N] > 0) & (cells[_AREA] > 0)
    c = cells[:, ok]
    area = c[_AREA]
    side = np.minimum(np.sqrt(area), unit)
    keep = side >= min_side
    c, area, side = c[:, keep], area[keep], side[keep]
    top = np.maximum(c[_ATOP] / area, c[_BASE] + 0.5)
    flood = np.where(np.isfinite(c[_FLOOD]), c[_FLOOD], np.nan)
    return np.column_stack(
        [c[_ALON] / area, c[_ALAT] / area, side, c[_BASE], top, c[_AH] / area, flood]
    )


# Block geometry: a roof quad and four wall quads (no floor), 20 vertices, 10 triangles.
_CORNER = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) / 2
_WALL_NRM = np.array([[0, -1, 0], [1, 0, 0], [0, 1, 0], [-1, 0, 0]], dtype=np.float64)


def block_mesh(
    blocks: np.ndarray, origin_llh: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ENU positions, normals, feature ids and indices of the blocks, in the frame at
    ``origin_llh`` (axes of that frame: blocks are small enough for the tilt not to show)."""
    lon_c, lat_c, h_c = origin_llh
    rot = enu_rotation(lon_c, lat_c)
    origin = geodetic_to_ecef(lon_c, lat_c, h_c)
    k = len(blocks)
    centre = (geodetic_to_ecef(blocks[:, 0], blocks[:, 1], blocks[:, 3]) - origin) @ rot
    side, height = blocks[:, 2], blocks[:, 4] - blocks[:, 3]
    xy = centre[:, None, :2] + _CORNER[None, :, :] * side[:, None, None]  # (k, 4, 2)
    z0 = centre[:, 2][:, None]
    z1 = z0 + height[:, None]
    pos = np.empty((k, 20, 3))
    pos[:, 0:4, :2], pos[:, 0:4, 2] = xy, z1
    nrm = np.zeros((k, 20, 3))
    nrm[:, 0:4, 2] = 1.0
    for w in range(4):  # wall w runs from corner w to corner w+1
        a, b = w, (w + 1) % 4
        v = 4 + 4 * w
        pos[:, v + 0, :2], pos[:, v + 0, 2] = xy[:, a], z0[:, 0]
        pos[:, v + 1, :2], pos[:, v + 1, 2] = xy[:, b], z0[:, 0]
        pos[:, v + 2, :2], pos[:, v + 2, 2] = xy[:, b], z1[:, 0]
        pos[:, v + 3, :2], pos[:, v + 3, 2] = xy[:, a], z1[:, 0]
        nrm[:, v : v + 4] = _WALL_NRM[w]
    quad = np.array([0, 1, 2, 0, 2, 3])
    local = np.concatenate([quad + 4 * q for q in range(5)])  # 30 indices a block
    indices = (local[None, :] + 20 * np.arange(k)[:, None]).reshape(-1)
    fids = np.repeat(np.arange(k, dtype=np.float32), 20)
    return pos.reshape(-1, 3), nrm.reshape(-1, 3), fids, indices.astype(np.uint32)


def block_rows(blocks: np.ndarray) -> list[tuple[Any, ...]]:
    """Property-table rows of blocks: height and flood depth; the other columns empty."""
    rows = []
    for b in blocks:
        row: list[Any] = [None] * len(PROPERTIES)
        row[_COL["measured_height"]] = round(float(b[5]), 1)
        row[_COL["flood_depth_m"]] = None if math.isnan(b[6]) else round(float(b[6]), 2)
        rows.append(tuple(row))
    return rows


# --------------------------------------------------------------------------- content


def _y_up(v: np.ndarray) -> np.ndarray:
    return np.column_stack([v[:, 0], v[:, 2], -v[:, 1]])


def _content_tile(
    work: Path,
    name: str,
    enu: np.ndarray,
    nrm: np.ndarray,
    fids: np.ndarray,
    indices: np.ndarray,
    rows: list[tuple[Any, ...]],
    origin_llh: tuple[float, float, float],
    bounds: list[float],
    double_sided: bool,
) -> dict[str, Any]:
    """Write ``tiles/<name>.glb`` and return its tile (absolute ``_abs`` transform, region
    from the content itself, padded by 0.5 m, united with ``bounds``)."""
    lon_c, lat_c, h_c = origin_llh
    rel = f"tiles/{name}.glb"
    write_glb(work / rel, _y_up(enu), _y_up(nrm), fids, indices, rows, double_sided)
    rot = enu_rotation(lon_c, lat_c)
    origin = geodetic_to_ecef(lon_c, lat_c, h_c)
    geo = ecef_to_geodetic(origin + box_corners(enu.min(axis=0), enu.max(axis=0)) @ rot.T)
    gmin, gmax = geo.min(axis=0), geo.max(axis=0)
    u = _union([bounds, [gmin[0], gmin[1], gmax[0], gmax[1], gmin[2], gmax[2]]])
    pad_lat = math.degrees(0.5 / WGS84_A)
    pad_lon = pad_lat / max(math.cos(math.radians(lat_c)), 0.1)
    region = [u[0] - pad_lon, u[1] - pad_lat, u[2] + pad_lon, u[3] + pad_lat]
    region += [u[4] - 0.5, u[5] + 0.5]
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = origin
    return {"content": {"uri": rel}, "_bounds": region, "_abs": m}


def _written(work: Path, tile: dict[str, Any]) -> _Files:
    """The size and digest of a tile's content file (none for an empty tile)."""
    content = tile.get("content")
    return {content["uri"]: file_digest(work / content["uri"])} if content else {}


def write_leaf(
    records: list[Any],
    bounds: list[float],
    work: Path,
    name: str,
    g: int,
    extent: tuple[float, float, float, float],
) -> tuple[dict[str, Any], np.ndarray]:
    """A leaf tile of full buildings (spill ``records``) and its block raster."""
    rows = [r[0] for r in records]
    pos_ecef = np.concatenate([r[1] for r in records])
    lon_c, lat_c = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
    h_c = float(bounds[4])
    rot = enu_rotation(lon_c, lat_c)
    enu = (pos_ecef - geodetic_to_ecef(lon_c, lat_c, h_c)) @ rot
    nrm = np.concatenate([r[2] for r in records]).astype(np.float64) @ rot
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    sizes = [len(r[1]) for r in records]
    fids = np.repeat(np.arange(len(records), dtype=np.float32), sizes)
    offsets = np.cumsum([0] + sizes[:-1])
    indices = np.concatenate([r[3] + off for r, off in zip(records, offsets, strict=True)])
    tile = _content_tile(
        work,
        name,
        enu,
        nrm,
        fids,
        indices,
        rows,
        (lon_c, lat_c, h_c),
        bounds,
        any(r[4] for r in records),
    )
    tile["geometricError"] = 0.0
    summary = building_summary(enu, nrm[:, 2], ecef_to_geodetic(pos_ecef), sizes, indices, rows)
    return tile, leaf_raster(summary, extent, g)


# --------------------------------------------------------------------------- the tree


class _Builder:
    """Builds (part of) the quadtree depth first; one instance per process.  Each node is
    a unit: written, then recorded in ``units`` (:mod:`.resume`); a node already recorded
    by an interrupted run is taken from its record, subtree and all."""

    def __init__(
        self,
        grid: _Grid,
        cells: dict[tuple[int, int], _Cell],
        spill: _Spill,
        work: Path,
        units: Path,
        opts: LodOptions,
    ) -> None:
        self.grid, self.cells, self.spill, self.work, self.opts = grid, cells, spill, work, opts
        self.units = units
        #: leaves written by this process (the rest were reused)
        self.leaves_built = 0

    def node(
        self,
        level: int,
        ix: int,
        iy: int,
        keys: list[tuple[int, int]],
        below: dict[tuple[int, int, int], _Built] | None = None,
    ) -> _Built:
        """Node (level, ix, iy) holding ``keys``; ``below``: subtrees already built (by the
        workers), keyed (level, x, y)."""
        if below is not None and (level, ix, iy) in below:
            return below[(level, ix, iy)]
        name = f"{level}_{ix}_{iy}"
        leaf = _is_leaf(self.grid, self.cells, self.opts, level, keys)
        record = load_record(self.units, self.work, name, leaf)
        if record is not None:
            return _Built(record["tile"], record["raster"], record["files"], record["counts"])
        if leaf:
            built = self._leaf(name, level, ix, iy, keys)
        else:
            built = self._inner(name, level, ix, iy, keys, below)
        save_record(self.units, name, leaf, vars(built))
        if leaf:
            self.spill.discard(keys)  # recorded: its spill files are never read again
        return built

    def _leaf(
        self, name: str, level: int, ix: int, iy: int, keys: list[tuple[int, int]]
    ) -> _Built:
        records: list[Any] = []
        for k in keys:
            records.extend(self.spill.read(k))
        extent = self.grid.extent(level, ix, iy)
        bounds = _union(self.cells[k].bounds for k in keys)
        tile, raster = write_leaf(records, bounds, self.work, name, self.opts.grid, extent)
        tile["_name"] = name
        self.leaves_built += 1
        return _Built(tile, raster, _written(self.work, tile), _Counts(1, 1, 0))

    def _inner(
        self,
        name: str,
        level: int,
        ix: int,
        iy: int,
        keys: list[tuple[int, int]],
        below: dict[tuple[int, int, int], _Built] | None,
    ) -> _Built:
        g = self.opts.grid
        extent = self.grid.extent(level, ix, iy)
        children: list[dict[str, Any]] = []
        rasters: list[tuple[int, int, np.ndarray]] = []
        files: _Files = {}
        counts = _Counts()
        for qy in (0, 1):
            for qx in (0, 1):
                cx, cy = 2 * ix + qx, 2 * iy + qy
                sub = self.grid.keys_in(keys, level + 1, cx, cy)
                if sub:
                    child = self.node(level + 1, cx, cy, sub, below)
                    children.append(child.tile)
                    rasters.append((qx, qy, child.raster))
                    files.update(child.files)
                    counts += child.counts
        raster = _compose(rasters, g)
        bounds = _union(c["_bounds"] for c in children)
        # merged blocks only where the full detail below would not fit in one tile; a node
        # split only for its area (sparse data) stays empty over its leaves, refine ADD
        heavy = sum(self.cells[k].count for k in keys) > self.opts.max_per_leaf
        merged = self.opts.merged and heavy
        if not merged and len(children) == 1:
            # no empty single-child chains (errors stay sane)
            return _Built(children[0], raster, files, counts)
        if merged:
            error = node_error(extent, g)
            blocks = raster_blocks(raster, extent, min_side=error / 2.0)
        else:  # empty, over full-detail leaves (the flat layout of merged=False)
            error = _diagonal_m(bounds) / 20.0
            error = max(error, 2.0 * max(c["geometricError"] for c in children))
            blocks = np.empty((0, 7))
        lon_c, lat_c = (extent[0] + extent[2]) / 2, (extent[1] + extent[3]) / 2
        origin = (lon_c, lat_c, float(bounds[4]))
        if len(blocks):
            pos, nrm, fids, idx = block_mesh(blocks, origin)
            tile = _content_tile(
                self.work, name, pos, nrm, fids, idx, block_rows(blocks), origin, bounds, False
            )
            files.update(_written(self.work, tile))
        else:
            tile = {"_bounds": bounds}
        tile["_name"] = name
        tile["geometricError"] = max(error, *(c["geometricError"] for c in children))
        tile["refine"] = "REPLACE" if merged else "ADD"
        tile["children"] = children
        tile["boundingVolume"] = {"region": _region(tile["_bounds"])}
        return _Built(tile, raster, files, counts + _Counts(1, 0, len(blocks)))


_W: _Builder | None = None


def _init_worker(
    grid: _Grid,
    cells: dict[tuple[int, int], _Cell],
    spill_dir: Path,
    work: Path,
    units: Path,
    opts: LodOptions,
    parent: int,
) -> None:
    global _W
    die_with_parent(parent)
    _W = _Builder(grid, cells, _Spill(spill_dir, 0), work, units, opts)


def _subtree(task: tuple[int, int, int, list[tuple[int, int]]]) -> tuple[Any, ...]:
    assert _W is not None
    level, ix, iy, keys = task
    before = _W.leaves_built
    built = _W.node(level, ix, iy, keys)
    return (level, ix, iy), built, _W.leaves_built - before


def build_tree(
    cells: dict[tuple[int, int], _Cell],
    cell_deg: float,
    spill: _Spill,
    work: Path,
    units: Path,
    opts: LodOptions,
) -> tuple[dict[str, Any], _Counts, int]:
    """The whole hierarchy (tiles written under ``work/tiles``, a record of each completed
    node in ``units``): the root tile, the counts, the leaves written by this run."""
    grid = _Grid(cells, cell_deg)
    builder = _Builder(grid, cells, spill, work, units, opts)
    keys = list(cells)
    below: dict[tuple[int, int, int], _Built] = {}
    level = _parallel_level(grid, cells, opts)
    if opts.workers > 1 and level > 0:
        tasks = []
        n = 1 << level
        for iy in range(n):
            for ix in range(n):
                sub = grid.keys_in(keys, level, ix, iy)
                if sub and not recorded(units, f"{level}_{ix}_{iy}"):
                    tasks.append((level, ix, iy, sub))
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if tasks:
            with ProcessPoolExecutor(
                opts.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(grid, cells, spill.directory, work, units, opts, os.getpid()),
            ) as pool:
                for key, built, leaves_built in pool.map(_subtree, tasks):
                    below[key] = built
                    builder.leaves_built += leaves_built
    root = builder.node(0, 0, 0, keys, below)
    _finish(root.tile, np.eye(4))
    _split(root.tile, 0, opts.subtree_levels, work)
    return root.tile, root.counts, builder.leaves_built


def _is_leaf(
    grid: _Grid,
    cells: dict[tuple[int, int], _Cell],
    opts: LodOptions,
    level: int,
    keys: list[tuple[int, int]],
) -> bool:
    """A node is a leaf when it holds few buildings over a small area, or is one cell."""
    side = grid.side(level)
    if side == 1:
        return True
    return side <= opts.max_leaf_cells and sum(cells[k].count for k in keys) <= opts.max_per_leaf


def _parallel_level(grid: _Grid, cells: dict[tuple[int, int], _Cell], opts: LodOptions) -> int:
    """The deepest level <= ``PARALLEL_LEVEL`` above which no node is a leaf (the workers'
    subtrees must hang below inner nodes, or a leaf above would find its cells taken)."""
    keys = list(cells)
    for level in range(min(PARALLEL_LEVEL, grid.levels)):
        n = 1 << level
        for iy in range(n):
            for ix in range(n):
                sub = grid.keys_in(keys, level, ix, iy)
                if sub and _is_leaf(grid, cells, opts, level, sub):
                    return level
    return min(PARALLEL_LEVEL, grid.levels)


def _finish(tile: dict[str, Any], parent_abs: np.ndarray) -> None:
    """Absolute frames -> relative ``transform``s; leaves get their region; private keys go."""
    tile.setdefault("boundingVolume", {"region": _region(tile["_bounds"])})
    tile.pop("_bounds", None)
    m = tile.pop("_abs", None)
    here = parent_abs
    if m is not None:
        rel = np.linalg.solve(parent_abs, m)
        tile["transform"] = [float(v) for v in rel.T.reshape(-1)]
        here = m
    for child in tile.get("children", []):
        _finish(child, here)
    # key order for readers: volume, error, refine, transform, content, children
    order = ["boundingVolume", "geometricError", "refine", "transform", "content", "children"]
    order.append("_name")  # until _split
    items = {k: tile[k] for k in order if k in tile}
    tile.clear()
    tile.update(items)


def _split(tile: dict[str, Any], level: int, every: int, work: Path) -> None:
    """Move the subtrees below every ``every`` levels into external tilesets."""
    name = tile.pop("_name", None)
    for child in tile.get("children", []):
        _split(child, level + 1, every, work)
    if level == 0 or level % every or not tile.get("children"):
        return
    rel = f"tiles/{name}.json"
    inner = dict(tile)
    transform = inner.pop("transform", None)
    doc = {
        "asset": {"version": "1.1", "generator": GENERATOR},
        "geometricError": inner["geometricError"],
        "root": inner,
    }
    if transform is not None:
        # the external tileset's root carries the frame; its content uris are relative
        # to the external file, which sits beside the glb files in tiles/
        inner["transform"] = transform
    _relocate(inner)
    (work / rel).write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    volume, error = tile["boundingVolume"], tile["geometricError"]
    tile.clear()
    tile.update({"boundingVolume": volume, "geometricError": error, "content": {"uri": rel}})


def _relocate(tile: dict[str, Any]) -> None:
    """Content uris relative to ``tiles/`` (where external tilesets are written)."""
    content = tile.get("content")
    if content and content["uri"].startswith("tiles/"):
        content["uri"] = content["uri"][len("tiles/") :]
    for child in tile.get("children", []):
        _relocate(child)
