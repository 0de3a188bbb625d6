"""Geometries sent by clients: one parser, one error.

Every route that takes a geometry (Part 4 writes, the hazard card, alert areas, the guide's
site) checks it here, so a bad geometry always gets the same answer: **400** with code
``InvalidGeometry`` and a description naming the field, what was wrong and what is
accepted.  Checked, in order: a GeoJSON geometry object (``type`` + ``coordinates``), an
accepted type, coordinates GeoJSON can build, not empty, finite, longitude/latitude in
CRS84 degrees (after ``Content-Crs``, when given), and valid (the reason is named, e.g.
``Self-intersection[139.705 35.575]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import shapely
import shapely.validation
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geoservice import crs as crsmod
from geoservice.errors import InvalidParameter


class InvalidGeometry(InvalidParameter):
    """A client's geometry that cannot be used (400; the description says why)."""

    code = "InvalidGeometry"


def parse_geometry(
    obj: object,
    field: str = "geometry",
    types: Sequence[str] | None = None,
    content_crs: str | None = None,
) -> BaseGeometry:
    """A GeoJSON geometry (or a shapely one) -> a valid CRS84 shapely geometry.

    ``field`` names the input in messages; ``types`` limits the accepted geometry types;
    ``content_crs`` is the CRS the coordinates are in (a ``Content-Crs`` header)."""
    if isinstance(obj, BaseGeometry):
        return checked(obj, field, content_crs)
    if not isinstance(obj, Mapping) or "type" not in obj or "coordinates" not in obj:
        raise InvalidGeometry(
            f"{field}: expected a GeoJSON geometry object with 'type' and 'coordinates'"
        )
    if types is not None and obj["type"] not in types:
        raise InvalidGeometry(
            f"{field}: geometry type {obj['type']!r} is not accepted; use one of {list(types)}"
        )
    try:
        geom = shape(obj)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise InvalidGeometry(f"{field}: not a valid GeoJSON {obj['type']!r} ({exc})") from None
    return checked(geom, field, content_crs)


def checked(geom: BaseGeometry, field: str = "geometry", content_crs: str | None = None
            ) -> BaseGeometry:
    """``geom`` once it is known to be non-empty, finite, CRS84 and valid (else 400)."""
    if geom.is_empty:
        raise InvalidGeometry(f"{field}: empty geometries are not accepted")
    if content_crs:
        info = crsmod.crs_info(content_crs.strip().strip("<>"), "Content-Crs")
        if info.uri != crsmod.CRS84:
            geom = crsmod.to_crs84(geom, info)
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        raise InvalidGeometry(f"{field}: coordinates must be finite numbers")
    if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
        raise InvalidGeometry(
            f"{field}: coordinates must be longitude, latitude in CRS84 degrees"
            " (lon in [-180, 180], lat in [-90, 90])"
        )
    if not geom.is_valid:
        why = shapely.validation.explain_validity(geom)
        raise InvalidGeometry(f"{field}: invalid geometry ({why})")
    return geom
