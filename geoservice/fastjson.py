"""GeoJSON out, fast: geometries as numpy coordinate arrays, documents through orjson.

Why: on an items page of polygons, ``shapely.geometry.mapping`` (a tuple per vertex) and
the standard library's encoder were two thirds of a request's CPU.  Here a geometry
becomes nested lists of ``(n, 2)`` numpy arrays that orjson writes in C.  The numbers
are written exactly as Python's ``repr`` writes them (shortest round-trip form), so the
documents are equal, value for value, to what ``json.dumps(mapping(g))`` gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry
from starlette.responses import JSONResponse

OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def _coords(g: BaseGeometry) -> np.ndarray:
    return shapely.get_coordinates(g, include_z=g.has_z)


def _polygon(g: Any) -> list[np.ndarray]:
    if g.is_empty:
        return []
    return [_coords(g.exterior), *[_coords(r) for r in g.interiors]]


def geometry_json(g: BaseGeometry) -> dict[str, Any]:
    """A geometry as a GeoJSON geometry object whose coordinate lists are numpy arrays."""
    kind = g.geom_type
    if kind == "Point":
        c = _coords(g)
        return {"type": kind, "coordinates": c[0] if len(c) else []}
    if kind in ("LineString", "LinearRing"):
        return {"type": "LineString", "coordinates": _coords(g)}
    if kind == "Polygon":
        return {"type": kind, "coordinates": _polygon(g)}
    if kind == "MultiPoint":
        return {"type": kind, "coordinates": _coords(g)}
    if kind == "MultiLineString":
        return {"type": kind, "coordinates": [_coords(p) for p in g.geoms]}  # type: ignore[attr-defined]
    if kind == "MultiPolygon":
        return {"type": kind, "coordinates": [_polygon(p) for p in g.geoms]}  # type: ignore[attr-defined]
    if kind == "GeometryCollection":
        return {"type": kind, "geometries": [geometry_json(p) for p in g.geoms]}  # type: ignore[attr-defined]
    raise TypeError(f"cannot write a {kind} as GeoJSON")


def geometries_json(geoms: list[BaseGeometry | None]) -> list[dict[str, Any] | None]:
    """``geometry_json`` of many geometries; a page of 2D points (sightings, shelters)
    takes one vectorised coordinate read instead of one shapely call per point."""
    present = [g for g in geoms if g is not None]
    arr = np.array(present, dtype=object)
    if len(present) and bool(np.all(shapely.get_type_id(arr) == 0)) and not bool(
        np.any(shapely.has_z(arr))
    ) and not bool(np.any(shapely.is_empty(arr))):
        coords = iter(shapely.get_coordinates(arr).tolist())  # floats: cheaper than views
        return [None if g is None else {"type": "Point", "coordinates": next(coords)}
                for g in geoms]
    return [None if g is None else geometry_json(g) for g in geoms]


def dumps(doc: Any, *, sort_keys: bool = False) -> bytes:
    """``doc`` as compact UTF-8 JSON (numpy arrays allowed)."""
    option = OPTIONS | orjson.OPT_SORT_KEYS if sort_keys else OPTIONS
    return orjson.dumps(doc, option=option)


class FastJSONResponse(JSONResponse):
    """A ``JSONResponse`` rendered by orjson (accepts :func:`geometry_json` output)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=OPTIONS)
