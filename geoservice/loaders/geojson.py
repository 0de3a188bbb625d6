"""``geojson`` loader: any GeoJSON FeatureCollection, mapped through the layer spec.

The extracts are at most a few MB (1,688 debris-flow zones = 2.4 MB), so each file is
parsed with :func:`json.load` and features are converted and yielded one by one; the
shapely objects, not the JSON, dominate memory and are produced lazily.

Options (``spec.source.options``), besides those in :mod:`geoservice.loaders.common`:

``derive_municipality``
    ``{path, code_property="N03_007", target="municipality_code", max_distance=0.01}``:
    for sources without a municipality field (bear sightings) the code is found by
    point-in-polygon against the N03 administrative boundaries at ``path`` (relative to
    ``options["_root"]``, the mirror directory the builder passes in; see
    :func:`geoservice.loaders.common.resolve_aux`).  The N03 extract is simplified, so a
    point that falls just outside every polygon takes the nearest one within
    ``max_distance`` degrees (about 1 km); farther points get no code.

A ``crs`` member in the file must agree with ``spec.source.crs`` (CRS84 and EPSG:4326
count as the same: GeoJSON is lon/lat either way); a mismatch is an error, not a guess.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from geoservice.catalogue import LayerSpec
from geoservice.errors import SourceError
from geoservice.features import Feature
from geoservice.loaders import register
from geoservice.loaders.common import (
    PropertyMapper,
    feature_id,
    promote,
    resolve_aux,
    same_crs,
    to_crs84,
)


class MunicipalityIndex:
    """Point-in-polygon look-up of municipality codes over N03 boundaries (STRtree)."""

    def __init__(self, polygons: list[BaseGeometry], codes: list[str]) -> None:
        self._polygons = polygons
        self._codes = codes
        self._tree = STRtree(polygons)

    def lookup(self, geom: BaseGeometry, max_distance: float = 0.01) -> str | None:
        """Code of the polygon containing ``geom`` (its representative point).

        Falls back to the nearest polygon within ``max_distance`` degrees because the
        boundaries are simplified and points near a border or coast may fall outside.
        """
        point = geom if geom.geom_type == "Point" else geom.representative_point()
        hits = self._tree.query(point, predicate="intersects")
        if len(hits):
            return self._codes[int(min(hits))]
        if max_distance <= 0:
            return None
        nearest = self._tree.query_nearest(point, max_distance=max_distance)
        if len(nearest):
            return self._codes[int(nearest[0])]
        return None


@lru_cache(maxsize=8)
def municipality_index(path: Path, code_property: str = "N03_007") -> MunicipalityIndex:
    """Build (once per file) the municipality index from an N03 GeoJSON file."""
    collection = _read_collection(path)
    polygons: list[BaseGeometry] = []
    codes: list[str] = []
    for item in collection["features"]:
        code = (item.get("properties") or {}).get(code_property)
        if not code or not item.get("geometry"):
            continue  # 所属未定地 etc. have no code: nothing to attribute to
        polygons.append(shape(item["geometry"]))
        codes.append(str(code))
    if not polygons:
        raise SourceError(f"{path.name}: no polygons with {code_property!r}")
    return MunicipalityIndex(polygons, codes)


def _read_collection(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8-sig") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path.name}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path.name}: cannot read: {exc}") from None
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise SourceError(f"{path.name}: not a GeoJSON FeatureCollection")
    if not isinstance(data.get("features"), list):
        raise SourceError(f"{path.name}: FeatureCollection without a features array")
    return data


def _file_crs(data: Mapping[str, Any]) -> str | None:
    crs = data.get("crs")
    if isinstance(crs, dict):
        name = (crs.get("properties") or {}).get("name")
        return str(name) if name else None
    return None


@register("geojson")
def load_geojson(spec: LayerSpec, files: list[Path]) -> Iterator[Feature]:
    """Yield the features of GeoJSON FeatureCollections, typed per the spec."""
    options = spec.source.options
    mapper = PropertyMapper(spec)
    derive = options.get("derive_municipality")
    index: MunicipalityIndex | None = None
    if derive:
        admin_path = resolve_aux(spec, files, str(derive["path"]))
        index = municipality_index(admin_path, str(derive.get("code_property", "N03_007")))
    for path in files:
        data = _read_collection(path)
        declared = _file_crs(data)
        if declared and not same_crs(declared, spec.source.crs):
            raise SourceError(
                f"{path.name}: file CRS {declared} differs from the layer's {spec.source.crs}"
            )
        for i, item in enumerate(data["features"]):
            yield _feature(spec, mapper, path, i, item, index, derive)


def _feature(
    spec: LayerSpec,
    mapper: PropertyMapper,
    path: Path,
    index: int,
    item: Mapping[str, Any],
    municipalities: MunicipalityIndex | None,
    derive: Mapping[str, Any] | None,
) -> Feature:
    where = f"{path.name}: feature {index}"
    raw = dict(item.get("properties") or {})
    geometry = None
    if item.get("geometry"):
        try:
            geometry = to_crs84(shape(item["geometry"]), spec.source.crs)
            geometry = promote(geometry, spec.geometry_type)
        except Exception as exc:  # shapely raises several types for bad coordinates
            raise SourceError(f"{where}: invalid geometry: {exc}") from None
    if municipalities is not None and derive is not None and geometry is not None:
        target = str(derive.get("target", "municipality_code"))
        raw[target] = municipalities.lookup(geometry, float(derive.get("max_distance", 0.01)))
    return Feature(
        id=feature_id(spec, raw, path, index),
        properties=mapper.map(raw, where),
        geometry=geometry,
    )
