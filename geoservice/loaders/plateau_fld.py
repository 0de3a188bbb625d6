"""``plateau-fld`` loader: PLATEAU flood-inundation polygons (浸水想定区域, ``fld``).

PLATEAU writes each inundation area as a ``wtr:WaterBody`` whose ``lod1MultiSurface``
is a triangulated surface (one ``gml:Polygon`` per triangle) and whose
``uro:floodingRiskAttribute/uro:WaterBodyRiverFloodingRiskAttribute`` carries:

* ``uro:rank``: the depth class of the national scheme (code list
  ``WaterBodyRiverFloodingRiskAttribute_rank.xml``), decoded here with the table of the
  PLATEAU product specification when the list is absent from the mirror
  (:data:`RANK_LABELS`, with numeric bounds in :data:`RANK_BOUNDS_M`);
* ``uro:rankOrg``: the municipality's own depth classes; their labels differ between
  data sets, so without ``WaterBodyRiverFloodingRiskAttribute_rankOrg.xml`` the raw code
  is kept and listed in ``undecoded`` (never dropped);
* ``uro:description`` (the river / scenario code), ``uro:adminType`` (国 / 都道府県 river),
  ``uro:scale`` (``L1`` planned scale 計画規模, ``L2`` maximum assumed 想定最大規模).

The streaming reader, attribute flattening, code-list decoding and the lat/lon swap are
those of :mod:`geoservice.loaders.plateau_urf`; this module only adds the flood codes and
dissolves the triangles of one WaterBody into one (multi)polygon.

Raw record keys available to ``properties[].source``: ``gml_id``, ``name`` /
``name_code``, ``class_code``, ``function_code``, ``description_code``, ``rank_code``,
``rank``, ``rank_org_code``, ``rank_org``, ``admin_type_code``, ``admin_type``,
``scale``, ``scale_label``, ``depth_min_m``, ``depth_max_m``, ``undecoded``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.features import Feature
from geoservice.loaders import register
from geoservice.loaders.common import PropertyMapper, promote
from geoservice.loaders.gml import local_name
from geoservice.loaders.plateau import FileContext, city_objects, record, simple

#: ``uro:rank`` (WaterBodyRiverFloodingRiskAttribute_rank.xml, PLATEAU 標準製品仕様書).
RANK_LABELS: dict[str, str] = {
    "1": "0.5m未満",
    "2": "0.5m以上3m未満",
    "3": "3m以上5m未満",
    "4": "5m以上10m未満",
    "5": "10m以上20m未満",
    "6": "20m以上",
}
#: Depth bounds in metres of each ``uro:rank`` class (upper ``None`` = open).
RANK_BOUNDS_M: dict[str, tuple[float, float | None]] = {
    "1": (0.0, 0.5),
    "2": (0.5, 3.0),
    "3": (3.0, 5.0),
    "4": (5.0, 10.0),
    "5": (10.0, 20.0),
    "6": (20.0, None),
}
#: ``uro:scale``: the scenario of the inundation map.
SCALE_LABELS: dict[str, str] = {"L1": "計画規模 (planned scale)", "L2": "想定最大規模 (maximum)"}
#: ``uro:adminType`` (WaterBodyRiverFloodingRiskAttribute_adminType.xml).
ADMIN_TYPE_LABELS: dict[str, str] = {
    "1": "国 (national river)",
    "2": "都道府県 (prefectural river)",
}

FLD_TYPES = frozenset({"WaterBody"})


@register("plateau-fld")
def load_plateau_fld(spec: LayerSpec, files: list[Path]) -> Iterator[Feature]:
    """Yield one feature per flood-inundation WaterBody (triangles dissolved)."""
    mapper = PropertyMapper(spec)
    for ctx, obj in city_objects(spec, files):
        if local_name(obj.tag) not in FLD_TYPES:
            continue
        raw, geometry = record(obj, ctx)
        _risk_attributes(obj, raw, ctx)
        decode_flood(raw)
        fid, at = ctx.identify(spec, raw, obj)
        geom = _dissolve(geometry, spec.geometry_type)
        yield Feature(id=fid, properties=mapper.map(raw, at), geometry=geom)


def _risk_attributes(obj: Any, raw: dict[str, Any], ctx: FileContext) -> None:
    """Flatten ``uro:floodingRiskAttribute`` leaves (``record`` takes ``*Attribute``
    elements for generic attributes, which these are not)."""
    undecoded = [u for u in str(raw.get("undecoded") or "").split(",") if u]
    holder = next(obj.iter("{*}floodingRiskAttribute"), None)  # one scenario per WaterBody
    for leaf in holder.iter() if holder is not None else ():
        if isinstance(leaf.tag, str) and len(leaf) == 0:
            simple(leaf, local_name(leaf.tag), raw, undecoded, ctx)
    raw["undecoded"] = ",".join(undecoded) or None


def decode_flood(raw: dict[str, Any]) -> dict[str, Any]:
    """Add the flood keys (rank, rankOrg, scale, adminType, depth bounds) to a raw record.

    ``plateau.record`` stores a coded element as ``<name>_code`` + ``<name>`` (label,
    or the raw code when its list is absent, then named in ``undecoded``).  Labels from a
    present code list win; the built-in tables fill in only for absent lists.
    """
    undecoded = {u for u in str(raw.get("undecoded") or "").split(",") if u}
    rank = _code(raw, "rank")
    if rank is not None:
        raw["rank_code"] = rank
        if "rank" in undecoded or raw.get("rank") == rank:
            raw["rank"] = RANK_LABELS.get(rank, rank)
            if rank in RANK_LABELS:
                undecoded.discard("rank")
        lo, hi = RANK_BOUNDS_M.get(rank, (None, None))
        raw["depth_min_m"], raw["depth_max_m"] = lo, hi
    org = _code(raw, "rankOrg")
    if org is not None:
        raw["rank_org_code"] = org
        raw["rank_org"] = raw.get("rankOrg", org)
    admin = _code(raw, "adminType")
    if admin is not None:
        raw["admin_type_code"] = admin
        label = raw.get("adminType")
        if "adminType" in undecoded or label == admin:
            raw["admin_type"] = ADMIN_TYPE_LABELS.get(admin, admin)
            if admin in ADMIN_TYPE_LABELS:
                undecoded.discard("adminType")
        else:
            raw["admin_type"] = label
    scale = _code(raw, "scale")
    if scale is not None:
        raw["scale"] = scale
        raw["scale_label"] = SCALE_LABELS.get(scale, scale)
        undecoded.discard("scale")
    description = _code(raw, "description")
    if description is not None:
        raw["description_code"] = description
    raw["undecoded"] = ",".join(sorted(undecoded)) or None
    return raw


def _code(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(f"{name}_code", raw.get(name))
    return None if value is None else str(value).strip()


def _dissolve(geometry: BaseGeometry | None, geometry_type: str) -> BaseGeometry | None:
    """Union the triangles of a WaterBody (slivers of touching triangles vanish)."""
    if geometry is None or geometry.is_empty:
        return geometry
    # Neighbouring triangles share vertices that differ in the 14th decimal: snap to
    # 1e-9 degree (0.1 mm) so that they dissolve into one polygon.
    snapped = shapely.set_precision(shapely.make_valid(geometry), 1e-9)
    merged = shapely.union_all(snapped)
    if merged.geom_type == "GeometryCollection":
        polys = [g for g in shapely.get_parts(merged) if g.geom_type in ("Polygon", "MultiPolygon")]
        merged = shapely.union_all(polys)
    return promote(merged, geometry_type)
