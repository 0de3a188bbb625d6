"""Coordinate reference systems offered by the API (OGC API Features Part 2).

Inside the service everything is CRS84 (lon, lat).  At the edge, ``crs`` and ``bbox-crs``
name one of the supported CRSs by URI; coordinates are then in that CRS's *authority*
axis order (EPSG:4326 and 6668 are lat, lon; EPSG:6677 is X northing, Y easting).
Transformers are built once (``always_xy=True``) and axes swapped explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from geoservice.errors import InvalidParameter

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84H = "http://www.opengis.net/def/crs/OGC/0/CRS84h"


@dataclass(frozen=True)
class CrsInfo:
    """A supported CRS: its URI, the pyproj code, and whether axis 1 is northing/latitude."""

    uri: str
    code: str
    swap: bool


SUPPORTED: dict[str, CrsInfo] = {
    c.uri: c
    for c in (
        CrsInfo(CRS84, "OGC:CRS84", False),
        CrsInfo("http://www.opengis.net/def/crs/EPSG/0/4326", "EPSG:4326", True),
        CrsInfo("http://www.opengis.net/def/crs/EPSG/0/6668", "EPSG:6668", True),
        CrsInfo("http://www.opengis.net/def/crs/EPSG/0/6677", "EPSG:6677", True),
        CrsInfo("http://www.opengis.net/def/crs/EPSG/0/3857", "EPSG:3857", False),
    )
}


def crs_info(uri: str, param: str = "crs") -> CrsInfo:
    """Look up a supported CRS by URI (also ``[EPSG:n]``-style safe CURIEs); 400 otherwise."""
    key = uri.strip()
    if key.startswith("[") and key.endswith("]"):
        key = key[1:-1]
    if key.upper().startswith("EPSG:"):
        key = f"http://www.opengis.net/def/crs/EPSG/0/{key[5:]}"
    if key.upper() == "OGC:CRS84":
        key = CRS84
    key = key.replace("https://", "http://")
    if key not in SUPPORTED:
        raise InvalidParameter(
            f"{param}={uri!r} is not a supported CRS; accepted: {', '.join(SUPPORTED)}"
        )
    return SUPPORTED[key]


@lru_cache(maxsize=32)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _coords_fn(src: CrsInfo, dst: CrsInfo) -> Callable[[object], object]:
    tr = _transformer(src.code, dst.code)

    def fn(coords):  # type: ignore[no-untyped-def]
        x, y = (coords[:, 1], coords[:, 0]) if src.swap else (coords[:, 0], coords[:, 1])
        if src.code != dst.code:
            x, y = tr.transform(x, y)
        out = coords.copy()
        out[:, 0], out[:, 1] = (y, x) if dst.swap else (x, y)
        return out

    return fn


def transform(geom: BaseGeometry, src: CrsInfo, dst: CrsInfo) -> BaseGeometry:
    """Transform a geometry between two supported CRSs, honouring axis order."""
    if src == dst:
        return geom
    return shapely.transform(geom, _coords_fn(src, dst))


def from_crs84(geom: BaseGeometry, dst: CrsInfo) -> BaseGeometry:
    """CRS84 → ``dst`` (for responses)."""
    return transform(geom, SUPPORTED[CRS84], dst)


def to_crs84(geom: BaseGeometry, src: CrsInfo) -> BaseGeometry:
    """``src`` → CRS84 (for request geometries and bboxes)."""
    return transform(geom, src, SUPPORTED[CRS84])


#: JGD2011 / Japan Plane Rectangular CS IX (Tokyo): the metric CRS of areas, distances
#: and generalisation grids (x easting, y northing: ``always_xy``).
METRIC = "EPSG:6677"


def to_6677(geom: BaseGeometry) -> BaseGeometry:
    """A CRS84 geometry projected to EPSG:6677 (metres), for areas and distances."""
    tr = _transformer("OGC:CRS84", METRIC)

    def project(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, project)


def lonlat_to_6677(lon: float, lat: float) -> tuple[float, float]:
    """One CRS84 position in EPSG:6677 metres (easting, northing)."""
    x, y = _transformer("OGC:CRS84", METRIC).transform(lon, lat)
    return float(x), float(y)


def lonlat_from_6677(x: float, y: float) -> tuple[float, float]:
    """One EPSG:6677 position (easting, northing) in CRS84 degrees."""
    lon, lat = _transformer(METRIC, "OGC:CRS84").transform(x, y)
    return float(lon), float(lat)


def bbox_to_crs84(bbox: tuple[float, float, float, float], src: CrsInfo) -> tuple[float, ...]:
    """A bbox in ``src`` axis order → the CRS84 bbox that covers it (edges densified)."""
    if src.uri == CRS84:
        return bbox
    a0, a1, b0, b1 = bbox
    box = shapely.segmentize(shapely.box(a0, a1, b0, b1), max(b0 - a0, b1 - a1) / 16 or 1)
    return tuple(to_crs84(box, src).bounds)
