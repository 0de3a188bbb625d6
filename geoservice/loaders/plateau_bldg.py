"""``plateau-bldg`` loader: PLATEAU CityGML buildings -> 2D footprint features (CRS84).

Geometry: the LOD0 footprint (``lod0FootPrint``, else ``lod0RoofEdge``); without LOD0 the
bottom face of the LOD1 solid; without either the 2D convex hull of the LOD2 surfaces.
Properties are produced under these names (map them in the layer spec): ``building_id``,
``gml_id``, ``measured_height``, ``storeys``, ``usage``, ``usage_code``, ``class``,
``class_code``, ``flood_depth_m``, ``flood_rank``, ``flood_duration_h``, ``flood_scale``,
``flood_source``, ``district_zone``, ``district_zone_code``, ``lod``, ``source_file``, plus
every flattened generic / ``uro`` attribute under its own name.

A file that fails (malformed, truncated) is logged and skipped and the other files are
still read; when *every* file fails the load fails.  Options: ``codelists`` (code-list
directory relative to the mirror root).  Feature ids are the ``gml:id`` (unique across
PLATEAU files; the 建物ID can repeat when a building straddles two mesh files).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPoint, MultiPolygon, Polygon

from geoservice.catalogue import LayerSpec
from geoservice.errors import SourceError
from geoservice.features import Feature
from geoservice.loaders import register
from geoservice.loaders.citygml import Building, ReadErrors, read_many
from geoservice.loaders.common import PropertyMapper
from geoservice.loaders.gml import spec_codelists


def building_record(b: Building) -> dict[str, Any]:
    """The flat raw record of a building (property-name -> value)."""
    flood = b.flood_summary()
    raw: dict[str, Any] = dict(b.attributes)
    raw.update(
        {
            "building_id": b.building_id,
            "gml_id": b.gml_id,
            "measured_height": b.measured_height,
            "storeys": b.storeys,
            "usage": b.usage,
            "usage_code": b.usage_code,
            "class": b.class_,
            "class_code": b.class_code,
            "flood_depth_m": flood.get("depth"),
            "flood_rank": flood.get("rank"),
            "flood_duration_h": flood.get("duration"),
            "flood_scale": flood.get("scale"),
            "flood_source": flood.get("source"),
            "district_zone": b.district_zone,
            "district_zone_code": b.district_zone_code,
            "lod": b.lod,
            "source_file": b.source_file,
        }
    )
    return raw


def _polygon(rings: list[np.ndarray]) -> Polygon | None:
    if len(rings[0]) < 3:
        return None
    poly = Polygon(rings[0][:, :2], [r[:, :2] for r in rings[1:] if len(r) >= 3])
    return shapely.geometry.polygon.orient(poly, 1.0)


def footprint(b: Building) -> MultiPolygon | None:
    """The building's 2D footprint in (lon, lat): LOD0, else LOD1 bottom, else LOD2 hull."""
    polys: list[Polygon] = []
    if b.lod0:
        polys = [p for p in (_polygon(r) for r in b.lod0) if p is not None]
    elif b.lod1:
        bottom = min(b.lod1, key=lambda rings: float(rings[0][:, 2].mean()))
        poly = _polygon(bottom)
        polys = [poly] if poly is not None else []
    elif b.lod2:
        pts = np.concatenate([rings[0][:, :2] for _, rings in b.lod2])
        hull = MultiPoint(pts).convex_hull
        polys = [hull] if isinstance(hull, Polygon) else []
    return MultiPolygon(polys) if polys else None


@register("plateau-bldg")
def load_plateau_bldg(spec: LayerSpec, files: list[Path]) -> Iterator[Feature]:
    """Yield one footprint feature per PLATEAU building."""
    codelists = spec_codelists(spec, files)
    mapper = PropertyMapper(spec)
    errors = ReadErrors()
    n = 0
    for b in read_many(files, codelists, errors):
        n += 1
        raw = building_record(b)
        where = f"{b.source_file}: line {b.line} ({b.gml_id})"
        yield Feature(id=b.gml_id, properties=mapper.map(raw, where), geometry=footprint(b))
    if errors and len(errors.errors) == len(files) and n == 0:
        raise SourceError(f"{spec.id}: every source file failed: {'; '.join(errors.messages())}")
