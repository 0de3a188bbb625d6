"""GeoPackage geometry blobs (GPKG header + ISO WKB), written and read without SpatiaLite.

See OGC GeoPackage 1.3 §2.1.3: magic ``GP``, version 0, flags (little-endian, envelope
indicator, empty flag), int32 srs_id, optional envelope, then standard WKB.
"""

from __future__ import annotations

import struct

import shapely
from shapely.geometry.base import BaseGeometry

_HEADER = struct.Struct("<2sBBi")
_ENV_XY = struct.Struct("<4d")


def encode(geom: BaseGeometry | None, srs_id: int = 4326) -> bytes | None:
    """Encode a shapely geometry as a GeoPackage geometry blob (xy envelope unless a point)."""
    if geom is None:
        return None
    if geom.has_z:
        geom = shapely.force_2d(geom)
    if geom.is_empty:
        flags = 0b00010001  # little endian, no envelope, empty
        return _HEADER.pack(b"GP", 0, flags, srs_id) + shapely.to_wkb(geom, flavor="iso")
    wkb = shapely.to_wkb(geom, flavor="iso", byte_order=1)
    if geom.geom_type == "Point":
        return _HEADER.pack(b"GP", 0, 0b00000001, srs_id) + wkb
    minx, miny, maxx, maxy = geom.bounds
    head = _HEADER.pack(b"GP", 0, 0b00000011, srs_id)
    return head + _ENV_XY.pack(minx, maxx, miny, maxy) + wkb


_ENV_SIZES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def wkb_offset(blob: bytes) -> int:
    """Offset of the WKB inside a GeoPackage blob (header plus envelope)."""
    if blob[:2] != b"GP":
        raise ValueError("not a GeoPackage geometry blob")
    flags = blob[3]
    return 8 + _ENV_SIZES[(flags >> 1) & 0b111]


def decode(blob: bytes | None) -> BaseGeometry | None:
    """Decode a GeoPackage geometry blob into a shapely geometry."""
    if blob is None:
        return None
    return shapely.from_wkb(bytes(blob[wkb_offset(blob) :]))


def decode_many(blobs: list[bytes | None]) -> list[BaseGeometry | None]:
    """``decode`` of many blobs with one vectorised WKB parse (a page of features)."""
    wkbs = [None if b is None else bytes(b[wkb_offset(b) :]) for b in blobs]
    return list(shapely.from_wkb(wkbs))


def envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """``(minx, maxx, miny, maxy)`` of a blob (used by the R-tree triggers), or None if empty."""
    if blob is None or (blob[3] >> 4) & 1:
        return None
    flags = blob[3]
    if (flags >> 1) & 0b111:
        return _ENV_XY.unpack_from(blob, 8)
    g = decode(blob)
    if g is None or g.is_empty:
        return None
    minx, miny, maxx, maxy = g.bounds
    return (minx, maxx, miny, maxy)
