"""The Mapbox Vector Tile protobuf (spec 2.1), written by hand for one layer.

Why not ``mapbox_vector_tile.encode``: it builds protobuf objects attribute by attribute
and re-checks every key and value; on a 450-point sightings tile it took 11 ms of the
embedded store's ~15 ms per cold tile.  The message is small enough to write directly:
varints, zigzag deltas and length-delimited fields, keys and values de-duplicated per
layer.  ``tests/test_tiles.py`` decodes our tiles with ``mapbox_vector_tile`` and with
GDAL's MVT driver and compares them with that library's own encoding.

Input geometries are already in tile space on the integer grid (``mvt.tile_geometries``).
Polygon rings are wound as the spec asks (exterior positive area in tile coordinates,
holes negative) and closed with ClosePath.

Written column-wise and vectorised (``encode_columns``): all geometries' commands come
from one coordinate read per geometry class (numpy deltas, windings, headers), keys and
values are numbered in one pass over the property cells, and every feature's fields,
lengths and commands are one integer stream turned into varints at once.  Per-vertex
and per-property Python was most of a cold on-demand tile's time on the GeoPackage
store; the bytes are the same as the row-by-row writer's (keys and values numbered in
first-appearance order), which ``tests/test_tiles_fast.py`` holds on the real layers.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

_MOVE_TO, _LINE_TO, _CLOSE_PATH = 1, 2, 7
_POINT, _LINESTRING, _POLYGON = 1, 2, 3
_INT64 = (-(2**63), 2**63 - 1)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_SMALL = [_varint(n) for n in range(1 << 14)]  # tags, commands and short deltas


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    n = len(payload)
    return _SMALL[number << 3 | 2] + (_SMALL[n] if n < 16384 else _varint(n)) + payload


def _value(v: Any) -> bytes:
    """A ``Value`` message: bool, sint64 (or uint64), double, else string."""
    if isinstance(v, bool):
        return _varint(7 << 3) + _varint(int(v))
    if isinstance(v, int):
        if _INT64[0] <= v <= _INT64[1]:
            return _varint(6 << 3) + _varint(_zigzag(v) & 0xFFFFFFFFFFFFFFFF)
        if 0 <= v < 2**64:
            return _varint(5 << 3) + _varint(v)
        v = str(v)
    if isinstance(v, float):
        return _varint(3 << 3 | 1) + struct.pack("<d", v)
    return _field(1, str(v).encode("utf-8"))


def _values(values: list[Any]) -> bytes:
    """The layer's value table (field 4 per value).  Short strings, most of a tile's
    values (ids, dates), are written in one step: for a string of n < 126 UTF-8 bytes
    both length prefixes are one byte."""
    out = []
    for v in values:
        if type(v) is str:
            b = v.encode("utf-8")
            n = len(b)
            if n < 126:
                out.append(b"\x22" + _SMALL[n + 2] + b"\x0a" + _SMALL[n] + b)
                continue
        out.append(_field(4, _value(v)))
    return b"".join(out)


_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes each non-negative integer takes as a varint (1 for 0..127, 2 up to 16383 ...)."""
    v = np.asarray(values, dtype=np.uint64)
    return np.searchsorted(_VARINT_LIMITS, v, side="right").astype(np.int64) + 1


def varints(values: np.ndarray) -> bytes:
    """Varints of many non-negative integers in one vectorised pass: a tile's features are
    one long stream of varints (tags, lengths, commands), written here at once instead of
    integer by integer in Python."""
    v = np.asarray(values, dtype=np.uint64)
    if not len(v):
        return b""
    n = varint_sizes(v)
    ends = np.cumsum(n)
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    one = n == 1  # most integers of a tile: written in one step
    out[(ends - 1)[one]] = v[one]
    big = np.flatnonzero(~one)
    rest, at, left = v[big], (ends - n)[big], n[big]
    while len(rest):
        last = left == 1
        out[at] = (rest & np.uint64(0x7F)) | np.where(last, np.uint64(0), np.uint64(0x80))
        keep = ~last
        rest, at, left = rest[keep] >> np.uint64(7), at[keep] + 1, left[keep] - 1
    return out.tobytes()


def _zigzag_array(d: np.ndarray) -> np.ndarray:
    d = d.astype(np.int64)
    return ((d << 1) ^ (d >> 63)).view(np.uint64)


@dataclass
class _Groups:
    """Runs of vertices each written as one command sequence: a MultiPoint's points (one
    MoveTo), a line, a polygon ring (MoveTo, LineTo, ClosePath).  ``vertex`` indexes the
    class's coordinate array in writing order."""

    feature: np.ndarray  # feature index of each group
    kind: np.ndarray  # _POINT, _LINESTRING or _POLYGON (ring)
    size: np.ndarray  # vertices per group
    vertex: np.ndarray  # coordinate indices, groups one after the other
    xy: np.ndarray  # (N, 2) int64 coordinates


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + size)`` for every pair, without a loop."""
    total = int(sizes.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(sizes) - sizes
    return np.repeat(starts - offsets, sizes) + np.arange(total)


def _point_groups(geoms: np.ndarray, idx: np.ndarray) -> _Groups:
    """One group per (Multi)Point feature: all its points after one MoveTo."""
    xy, owner = shapely.get_coordinates(geoms[idx], return_index=True)
    size = np.bincount(owner, minlength=len(idx)).astype(np.int64)
    return _Groups(idx, np.full(len(idx), _POINT), size, np.arange(len(xy)), xy.astype(np.int64))


def _part_coords(geoms: np.ndarray, idx: np.ndarray,
                 rings: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(coordinates, group of each, feature of each group, exterior flag of each group):
    a group is a line part, or a polygon ring (exterior first, then its holes)."""
    parts, part_owner = shapely.get_parts(geoms[idx], return_index=True)
    if rings:
        groups, group_part = shapely.get_rings(parts, return_index=True)
        exterior = np.r_[True, group_part[1:] != group_part[:-1]] if len(groups) else \
            np.zeros(0, dtype=bool)
        group_owner = part_owner[group_part]
    else:
        groups, group_owner = parts, part_owner
        exterior = np.ones(len(parts), dtype=bool)
    xy, group_of = shapely.get_coordinates(groups, return_index=True)
    return xy.astype(np.int64), group_of, idx[group_owner], exterior


def _line_groups(geoms: np.ndarray, idx: np.ndarray, rings: bool) -> _Groups:
    """Lines (parts of two points or more) or polygon rings: a ring drops its closing
    point, needs three points, and is wound as the spec asks (exterior positive area in
    tile coordinates with y down, holes negative: the surveyor's formula)."""
    xy, group_of, feature, exterior = _part_coords(geoms, idx, rings)
    size = np.bincount(group_of, minlength=len(feature)).astype(np.int64)
    start = np.cumsum(size) - size
    if rings:
        last = start + size - 1
        closed = (size > 1) & np.all(xy[np.minimum(start, len(xy) - 1)]
                                     == xy[np.maximum(last, 0)], axis=1)
        size = size - closed
    keep = size >= (3 if rings else 2)
    start, size, feature, exterior = start[keep], size[keep], feature[keep], exterior[keep]
    vertex = _ranges(start, size)
    if rings and len(vertex):
        nxt = np.roll(vertex, -1)
        ends = np.cumsum(size) - 1
        nxt[ends] = vertex[ends - size + 1]  # each ring wraps to its own first point
        cross = xy[vertex, 0] * xy[nxt, 1] - xy[nxt, 0] * xy[vertex, 1]
        area = np.bincount(np.repeat(np.arange(len(size)), size), weights=cross,
                           minlength=len(size))
        flip = np.repeat((area < 0) == exterior, size)
        first = np.repeat(start, size)
        vertex = np.where(flip, 2 * first + np.repeat(size, size) - 1 - vertex, vertex)
    kind = np.full(len(size), _POLYGON if rings else _LINESTRING)
    return _Groups(feature, kind, size, vertex, xy)


def _geometry_commands(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(GeomType per feature (0 = nothing to write), command integers of all features
    in order, how many per feature)`` of tile-space geometries on the integer grid,
    computed for all features at once (a zones tile is hundreds of rings, a sightings
    tile hundreds of points: per-vertex Python was most of a cold tile's time)."""
    tid = shapely.get_type_id(geoms)
    if len(geoms) and (tid == 0).all() and not shapely.is_empty(geoms).any():
        return _single_points(geoms)
    classes = [
        _point_groups(geoms, np.flatnonzero((tid == 0) | (tid == 4))),
        _line_groups(geoms, np.flatnonzero((tid == 1) | (tid == 2) | (tid == 5)), False),
        _line_groups(geoms, np.flatnonzero((tid == 3) | (tid == 6)), True),
    ]
    feature = np.concatenate([c.feature for c in classes])
    order = np.argsort(feature, kind="stable")  # a feature's groups stay in their order
    kind = np.concatenate([c.kind for c in classes])[order]
    size = np.concatenate([c.size for c in classes])[order]
    feature = feature[order]
    xy = np.concatenate([c.xy[c.vertex] for c in classes])
    vstart = np.cumsum([0, *[len(c.vertex) for c in classes]])[:-1]
    gstart = np.concatenate([s + np.cumsum(c.size) - c.size for s, c in zip(vstart, classes,
                                                                           strict=True)])
    xy = xy[_ranges(gstart[order], size)]
    return _assemble(len(geoms), tid, feature, kind, size, xy)


def _single_points(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_geometry_commands` of single points only (a sightings tile): each is
    ``MoveTo(1), zigzag x, zigzag y`` from 0,0 - no groups to order."""
    xy = shapely.get_coordinates(geoms).astype(np.int64)
    n = len(geoms)
    out = np.empty((n, 3), dtype=np.uint64)
    out[:, 0] = _MOVE_TO | 1 << 3
    out[:, 1:] = _zigzag_array(xy)
    return np.full(n, _POINT, dtype=np.int64), out.ravel(), np.full(n, 3, dtype=np.int64)


def _assemble(n: int, tid: np.ndarray, feature: np.ndarray, kind: np.ndarray,
              size: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The command integers of the groups: zigzag deltas from the previous point of the
    same feature (each feature starts at 0,0), MoveTo/LineTo/ClosePath headers."""
    vfeature = np.repeat(feature, size)
    prev = np.vstack([np.zeros((1, 2), np.int64), xy[:-1]])
    starts_feature = np.r_[True, vfeature[1:] != vfeature[:-1]] if len(xy) else \
        np.zeros(0, dtype=bool)
    prev[starts_feature] = 0
    delta = _zigzag_array(xy - prev)
    point = kind == _POINT
    out_size = np.where(point, 1 + 2 * size, 2 * size + 2 + (kind == _POLYGON))
    gstart = np.cumsum(out_size) - out_size
    out = np.zeros(int(out_size.sum()), dtype=np.uint64)
    out[gstart[point]] = (_MOVE_TO | size[point] << 3).astype(np.uint64)
    path = ~point
    out[gstart[path]] = _MOVE_TO | 1 << 3
    out[gstart[path] + 3] = (_LINE_TO | (size[path] - 1) << 3).astype(np.uint64)
    ring = kind == _POLYGON
    out[gstart[ring] + out_size[ring] - 1] = _CLOSE_PATH | 1 << 3
    k = np.arange(len(xy)) - np.repeat(np.cumsum(size) - size, size)
    pos = np.repeat(gstart, size) + 1 + 2 * k + ((k > 0) & np.repeat(path, size))
    out[pos], out[pos + 1] = delta[:, 0], delta[:, 1]
    counts = np.bincount(feature, weights=out_size, minlength=n).astype(np.int64)
    gtype = np.zeros(n, dtype=np.int64)
    has = np.bincount(feature, minlength=n) > 0
    for ids, g in (((0, 4), _POINT), ((1, 2, 5), _LINESTRING), ((3, 6), _POLYGON)):
        gtype[np.isin(tid, ids) & has] = g
    return gtype, out, counts


def columns_of(props: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Per-feature property dicts as columns (key -> one value per feature, ``None`` where
    the feature has none).  Features list their keys in one order (a layer's schema
    order): the columns keep it, so each feature's tags come in its own order."""
    orders = dict.fromkeys(tuple(p) for p in props)
    keys = next(iter(orders)) if len(orders) == 1 else _merged_order(list(orders))
    return {k: [p.get(k) for p in props] for k in keys}


def _merged_order(orders: list[tuple[str, ...]]) -> list[str]:
    """One key order keeping every given order where they agree (a topological sort,
    ties and conflicts broken by first appearance)."""
    seen = list(dict.fromkeys(k for order in orders for k in order))
    after: dict[str, set[str]] = {k: set() for k in seen}
    for order in orders:
        for i, k in enumerate(order[1:]):
            after[k].add(order[i])
    out: list[str] = []
    while len(out) < len(seen):
        ready = [k for k in seen if k not in out and after[k] <= set(out)]
        out.append(ready[0] if ready else next(k for k in seen if k not in out))
    return out


def _tags(columns: dict[str, list[Any]], kept: np.ndarray
          ) -> tuple[list[str], list[Any], np.ndarray, np.ndarray]:
    """``(keys, values, tag integers of all kept features in order, how many per feature)``.

    Keys and values are numbered in the order they first appear reading feature by
    feature, property by property (what a row-by-row writer gives, so tiles stay byte
    for byte what they were), in one pass over the cells; a value's identity is
    ``(type, value)`` (``1``, ``1.0`` and ``True`` differ), a string's the string itself
    (cheaper, and no tuple equals a string)."""
    names, m = list(columns), len(columns)
    cols = list(columns.values())
    if m and len(kept) != len(cols[0]):
        picked = kept.tolist()
        cols = [[col[i] for i in picked] for col in cols]
    seen: dict[Any, int] = {}
    add = seen.setdefault
    flat = [-1 if v is None else add(v if type(v) is str else (type(v), v), len(seen))
            for row in zip(*cols, strict=True) for v in row]
    codes = np.array(flat, dtype=np.int64).reshape(len(kept), m)
    present = codes >= 0
    has = present.any(axis=0)
    first = np.where(has, present.argmax(axis=0) * m + np.arange(m), len(kept) * m)
    used = np.argsort(first, kind="stable")[: int(has.sum())]
    key_number = np.zeros(m, dtype=np.int64)
    key_number[used] = np.arange(len(used))
    pairs = np.stack([np.broadcast_to(key_number, codes.shape), codes], axis=2)
    values = [k if type(k) is str else k[1] for k in seen]
    return [names[j] for j in used], values, pairs[present].ravel(), 2 * present.sum(axis=1)


def encode_columns(name: str, geoms: np.ndarray, columns: dict[str, list[Any]],
                   extent: int) -> bytes:
    """A ``Tile`` with one layer ``name``: tile-space geometries on the integer grid and
    their properties as columns (``None`` = the feature has no such property); features
    with nothing to draw are left out.  ``b""`` when no feature is left."""
    gtype, commands, ncommands = _geometry_commands(geoms)
    kept = np.flatnonzero(gtype > 0)
    if not len(kept):
        return b""
    keys, values, tags, ntags = _tags(columns, kept)
    cstart = np.cumsum(ncommands) - ncommands
    commands = commands[_ranges(cstart[kept], ncommands[kept])]
    ncommands = ncommands[kept]
    body = _features_stream(gtype[kept], tags.astype(np.uint64), ntags, commands, ncommands)
    layer = (
        _varint(15 << 3) + _varint(2)
        + _field(1, name.encode("utf-8"))
        + varints(body)
        + b"".join(_field(3, k.encode("utf-8")) for k in keys)
        + _values(values)
        + _varint(5 << 3) + _varint(extent)
    )
    return _field(3, layer)


def _segment_sums(sizes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sum of ``sizes`` over consecutive segments of ``counts`` items."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return np.bincount(owner, weights=sizes, minlength=len(counts)).astype(np.int64)


def _features_stream(gtype: np.ndarray, tags: np.ndarray, ntags: np.ndarray,
                     commands: np.ndarray, ncommands: np.ndarray) -> np.ndarray:
    """Every ``Feature`` message, field tags and lengths included, as one integer stream
    whose varints are the layer's feature bytes: per feature ``[2|LEN, feature length,
    2|LEN (tags), tags length, tags..., 3|VARINT, type, 4|LEN, geometry length, commands...]``
    (every field tag and type is below 128: one byte)."""
    taglen = _segment_sums(varint_sizes(tags), ntags)
    geomlen = _segment_sums(varint_sizes(commands), ncommands)
    featlen = (1 + varint_sizes(taglen) + taglen + 2 + 1 + varint_sizes(geomlen) + geomlen)
    size = 8 + ntags + ncommands
    start = np.cumsum(size) - size
    out = np.zeros(int(size.sum()), dtype=np.uint64)
    head = np.stack([np.full(len(size), 2 << 3 | 2), featlen, np.full(len(size), 2 << 3 | 2),
                     taglen], axis=1).astype(np.uint64)
    out[(start[:, None] + np.arange(4)).ravel()] = head.ravel()
    out[_ranges(start + 4, ntags)] = tags
    mid = start + 4 + ntags
    geom = np.stack([np.full(len(size), 3 << 3), gtype, np.full(len(size), 4 << 3 | 2),
                     geomlen], axis=1).astype(np.uint64)
    out[(mid[:, None] + np.arange(4)).ravel()] = geom.ravel()
    out[_ranges(mid + 4, ncommands)] = commands
    return out


def encode_layer(name: str, features: Sequence[tuple[BaseGeometry, dict[str, Any]]],
                 extent: int) -> bytes:
    """A ``Tile`` with one layer ``name`` of ``(tile-space geometry, properties)``."""
    geoms = np.fromiter((g for g, _ in features), dtype=object, count=len(features))
    return encode_columns(name, geoms, columns_of([p for _, p in features]), extent)
