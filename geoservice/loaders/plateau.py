"""PLATEAU CityGML helpers shared by the zone loaders (``plateau_urf``: urf, lsld) and the
flood loader (``plateau_fld``): the streaming walk over city objects, the raw record of one
object (simple and coded elements, generic attributes, i-UR 1.4 -> 2.0 kinds), its surface
geometry in CRS84 and its feature id.  Public on purpose: each loader builds on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.errors import SourceError
from geoservice.loaders.codelists import CodeLists
from geoservice.loaders.common import (
    feature_id,
    is_lat_lon,
    to_crs84,
)
from geoservice.loaders.gml import (
    gml_id,
    local_name,
    release,
    source_errors,
    spec_codelists,
    where,
)

#: i-UR 1.4 ``urf:class`` code (Common_districtsAndZonesType) -> i-UR 2.0 class name.
CLASS_TO_TYPE: dict[str, str] = {
    **{str(code): "UseDistrict" for code in range(0, 14)},
    "14": "SpecialUseDistrict",
    "15": "SpecialUseRestrictionDistrict",
    "16": "ExceptionalFloorAreaRate",
    "17": "HighRiseResidentialAttractionDistrict",
    "18": "HeightControlDistrict",
    "19": "HighLevelUseDistrict",
    "20": "SpecifiedBlock",
    "21": "SpecialUrbanRenaissanceDistrict",
    "23": "SpecifiedUseAttractionDistrict",
    "24": "FirePreventionDistrict",
    "25": "FirePreventionDistrict",
    "26": "SpecifiedDisasterPreventionBlockImprovementZone",
    "27": "LandscapeZone",
    "28": "ScenicDistrict",
    "29": "ParkingPlaceDevelopmentZone",
    "30": "PortZone",
    "38": "ProductiveGreenZone",
    "39": "ConservationZoneForClustersOfTraditionalStructures",
}

_SURFACES = frozenset({"Polygon", "MultiSurface", "CompositeSurface", "Surface", "MultiPolygon"})


@dataclass
class FileContext:
    """What is known about the file being read: its path, default CRS and dimension."""

    path: Path
    default_srs: str
    default_dim: int | None = None
    codelists: CodeLists = field(default_factory=lambda: CodeLists(None))
    #: city objects of this file made into features so far (numbers ids without one)
    count: int = 0

    def identify(self, spec: LayerSpec, raw: dict[str, Any], obj: etree._Element
                 ) -> tuple[str, str]:
        """The next feature's id (``id_property``, else ``gml:id``, else file stem + its
        number in the file) and its "file: line N (gml:id)" location for error messages."""
        index, self.count = self.count, self.count + 1
        path = self.path
        fid = (
            feature_id(spec, raw, path, index)
            if spec.id_property
            else str(raw.get("gml_id") or f"{path.stem}-{index}")
        )
        return fid, f"{where(path, obj)} ({raw.get('gml_id')})"


def city_objects(spec: LayerSpec, files: list[Path]) -> Iterator[tuple[FileContext, Any]]:
    """Every city object of every file with its file's context (code lists read once)."""
    codelists = spec_codelists(spec, files)
    for path in files:
        ctx = FileContext(path=path, default_srs=spec.source.crs, codelists=codelists)
        for obj in iter_city_objects(ctx):
            yield ctx, obj


def iter_city_objects(ctx: FileContext) -> Iterator[etree._Element]:
    """Stream the city objects of a CityGML file, clearing each once consumed."""
    path = ctx.path
    with source_errors(path):
        events = etree.iterparse(str(path), events=("start", "end"), huge_tree=True)
        for event, elem in events:
            name = local_name(elem.tag)
            if event == "start":
                if name == "Envelope" and elem.get("srsName"):
                    ctx.default_srs = elem.get("srsName") or ctx.default_srs
                    dim = elem.get("srsDimension")
                    ctx.default_dim = int(dim) if dim else None
                continue
            if name != "cityObjectMember" and name != "featureMember":
                continue
            for child in elem:
                if isinstance(child.tag, str):
                    yield child
                    break
            release(elem)


# --------------------------------------------------------------------------- attributes


def record(obj: etree._Element, ctx: FileContext) -> tuple[dict[str, Any], BaseGeometry | None]:
    """Flatten one city object into (raw attributes, CRS84 geometry)."""
    raw: dict[str, Any] = {"gml_id": gml_id(obj)}
    undecoded: list[str] = []
    geometry_props: list[etree._Element] = []
    for child in obj:
        name = local_name(child.tag)
        if not name or name == "boundedBy":
            continue
        if _is_geometry_property(child):
            geometry_props.append(child)
        elif name == "genericAttributeSet" or name.endswith("Attribute"):
            _generic(child, raw)
        elif len(child) == 0:
            simple(child, name, raw, undecoded, ctx)
        else:
            for leaf in child.iter():
                if isinstance(leaf.tag, str) and len(leaf) == 0 and local_name(leaf.tag) not in raw:
                    simple(leaf, local_name(leaf.tag), raw, undecoded, ctx)
    _normalise_iur14(obj, raw)
    raw["undecoded"] = ",".join(undecoded) or None
    return raw, _geometry(geometry_props, ctx)


def simple(
    elem: etree._Element, name: str, raw: dict[str, Any], undecoded: list[str], ctx: FileContext
) -> None:
    text = (elem.text or "").strip()
    if not text:
        return
    code_space = elem.get("codeSpace")
    if code_space:
        label = ctx.codelists.decode(code_space, text, ctx.path)
        raw[f"{name}_code"] = text
        raw[name] = label if label is not None else text
        if label is None:
            undecoded.append(name)
    else:
        raw[name] = text


def _generic(elem: etree._Element, raw: dict[str, Any]) -> None:
    """Flatten gen:*Attribute / gen:genericAttributeSet (recursively) by attribute name."""
    if local_name(elem.tag) == "genericAttributeSet":
        for child in elem:
            if isinstance(child.tag, str):
                _generic(child, raw)
        return
    name = elem.get("name")
    value = next((c.text for c in elem if local_name(c.tag) == "value"), None)
    if name and value is not None:
        raw[name] = value.strip()


def _normalise_iur14(obj: etree._Element, raw: dict[str, Any]) -> None:
    """Give i-UR 1.4 ``DistrictsAndZones`` the i-UR 2.0 ``function`` and class name."""
    local = local_name(obj.tag)
    if local == "DistrictsAndZones" and "class" in raw:
        raw.setdefault("function", raw["class"])
        raw.setdefault("function_code", raw.get("class_code", raw["class"]))
        code = str(raw.get("class_code", raw["class"]))
        raw["feature_type"] = CLASS_TO_TYPE.get(code, local)
    else:
        raw["feature_type"] = local


# --------------------------------------------------------------------------- geometry


def _is_geometry_property(elem: etree._Element) -> bool:
    return any(local_name(d.tag) in _SURFACES for d in elem.iterdescendants())


def _geometry(props: list[etree._Element], ctx: FileContext) -> BaseGeometry | None:
    """Polygons of the lowest-LOD geometry property, as a CRS84 MultiPolygon."""
    if not props:
        return None
    prop = sorted(props, key=lambda p: local_name(p.tag))[0]
    polygons: list[Polygon] = []
    srs = ctx.default_srs
    for poly in prop.iter("{*}Polygon"):
        srs = _inherited(poly, "srsName") or ctx.default_srs
        polygons.append(_polygon(poly, srs, ctx))
    if not polygons:
        return None
    return to_crs84(MultiPolygon(polygons), srs)


def _polygon(poly: etree._Element, srs: str, ctx: FileContext) -> Polygon:
    exterior: list[tuple[float, float]] = []
    interiors: list[list[tuple[float, float]]] = []
    for boundary in poly:
        name = local_name(boundary.tag)
        if name not in ("exterior", "interior", "outerBoundaryIs", "innerBoundaryIs"):
            continue
        ring = _ring(boundary, srs, ctx)
        if name in ("exterior", "outerBoundaryIs"):
            exterior = ring
        else:
            interiors.append(ring)
    if len(exterior) < 4:
        raise SourceError(
            f"{where(ctx.path, poly)}: polygon exterior has {len(exterior)} positions (needs 4+)"
        )
    return Polygon(exterior, interiors)


def _ring(boundary: etree._Element, srs: str, ctx: FileContext) -> list[tuple[float, float]]:
    values: list[float] = []
    dim: int | None = None
    pos_list = next(boundary.iter("{*}posList"), None)
    try:
        if pos_list is not None:
            values = [float(v) for v in (pos_list.text or "").split()]
            dim = _dimension(pos_list, ctx)
        else:
            for pos in boundary.iter("{*}pos"):
                part = [float(v) for v in (pos.text or "").split()]
                dim = dim or len(part)
                values.extend(part)
    except ValueError:
        raise SourceError(f"{where(ctx.path, boundary)}: non-numeric coordinate") from None
    dim = dim or 3
    if len(values) % dim:
        raise SourceError(
            f"{where(ctx.path, boundary)}: {len(values)} numbers "
            f"do not divide into {dim}-D positions"
        )
    lat_first = is_lat_lon(srs)
    ring: list[tuple[float, float]] = []
    for i in range(0, len(values), dim):
        a, b = values[i], values[i + 1]
        ring.append((b, a) if lat_first else (a, b))
    return ring


def _dimension(pos_list: etree._Element, ctx: FileContext) -> int:
    """srsDimension of a posList: its own or inherited, else the envelope's, else 3.

    PLATEAU always writes 3-D positions (height 0 for 2-D zones), hence the default.
    """
    dim = _inherited(pos_list, "srsDimension")
    if dim:
        return int(dim)
    return ctx.default_dim or 3


def _inherited(elem: etree._Element, attribute: str) -> str | None:
    node: etree._Element | None = elem
    while node is not None:
        value = node.get(attribute)
        if value:
            return value
        if local_name(node.tag) in ("cityObjectMember", "featureMember"):
            break
        node = node.getparent()
    return None
