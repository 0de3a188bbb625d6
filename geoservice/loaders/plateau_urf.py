"""``plateau-urf`` and ``plateau-lsld`` loaders: PLATEAU CityGML urban-planning zones.

Reads PLATEAU CityGML 2.0 files with the i-UR *urf* extension, both encodings found in
the wild:

* i-UR 2.0 (2022+): one element per zone kind - ``urf:UseDistrict`` (用途地域, with
  ``floorAreaRate`` / ``buildingCoverageRate``), ``urf:HeightControlDistrict`` (高度地区),
  ``urf:FirePreventionDistrict`` (防火・準防火地域), ... with ``urf:function`` coded in
  ``Common_districtsAndZonesType``;
* i-UR 1.4 (2020 data): a generic ``urf:DistrictsAndZones`` whose ``urf:class`` carries
  the same code.  The loader copies ``class`` to ``function`` and derives the i-UR 2.0
  kind from the code (1-13 -> UseDistrict, 18 -> HeightControlDistrict, 24/25 ->
  FirePreventionDistrict, ...) so one layer spec reads both vintages.

``plateau-lsld`` reads 土砂災害警戒区域 files: 2020 data encodes them as
``gen:GenericCityObject`` with a ``土砂災害警戒区域`` generic attribute set (区域区分,
現象の種類, 区域番号, 所在地, 告示日 ...), later data as ``urf:SedimentDisasterProneArea``.
Generic attributes are flattened into the raw record under their own names.

Why streaming: city-wide urf files reach hundreds of MB, so the file is read with
``lxml.etree.iterparse`` and every ``core:cityObjectMember`` is cleared once converted;
memory stays flat.

Raw record handed to the property mapping, per feature:

* every simple child element under its local name (``floorAreaRate``, ``custodian``);
* coded elements (with ``codeSpace``) as ``<name>_code`` (the raw code) and ``<name>``
  (the label from the code list, or the raw code when the list is absent);
* ``undecoded``: comma-separated names whose code list was absent (kept raw, recorded);
* ``feature_type`` (i-UR 2.0 class name), ``gml_id``.

Options: ``feature_types`` (list of class names to keep, matched against the element
name and ``feature_type``), ``codelists`` (code-list directory relative to
``options["_root"]``; see :class:`geoservice.loaders.codelists.CodeLists`).

Coordinates: ``srsName`` is taken from the geometry or the nearest ancestor, else the
file's ``gml:Envelope``, else ``spec.source.crs``.  JGD2011 (6668, and 6697 = 6668 +
height) is latitude-first, so ``posList`` is swapped to lon/lat; ``srsDimension`` 3
(PLATEAU's norm) drops the height.  Malformed or truncated XML raises ``SourceError``
naming the file and line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.errors import SourceError
from geoservice.features import Feature
from geoservice.loaders import register
from geoservice.loaders.codelists import CodeLists
from geoservice.loaders.common import (
    PropertyMapper,
    feature_id,
    is_lat_lon,
    to_crs84,
)
from geoservice.loaders.gml import gml_id, release, source_errors, spec_codelists, where

# ``_local`` is imported under this name by plateau_fld.
from geoservice.loaders.gml import local_name as _local

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
LSLD_TYPES = ("SedimentDisasterProneArea", "GenericCityObject")


@dataclass
class _FileContext:
    """What is known about the file being read: its path, default CRS and dimension."""

    path: Path
    default_srs: str
    default_dim: int | None = None
    codelists: CodeLists = field(default_factory=lambda: CodeLists(None))


@register("plateau-urf")
def load_plateau_urf(spec: LayerSpec, files: list[Path]) -> Iterator[Feature]:
    """Yield urf zones (用途地域, 高度地区, 防火地域 ...) from PLATEAU CityGML files."""
    yield from _load(spec, files, default_types=None)


@register("plateau-lsld")
def load_plateau_lsld(spec: LayerSpec, files: list[Path]) -> Iterator[Feature]:
    """Yield sediment-disaster warning zones (土砂災害警戒区域) from PLATEAU lsld files."""
    yield from _load(spec, files, default_types=LSLD_TYPES)


def _load(
    spec: LayerSpec, files: list[Path], default_types: Iterable[str] | None
) -> Iterator[Feature]:
    wanted = spec.source.options.get("feature_types", default_types)
    types = frozenset(wanted) if wanted else None
    codelists = spec_codelists(spec, files)
    mapper = PropertyMapper(spec)
    for path in files:
        ctx = _FileContext(path=path, default_srs=spec.source.crs, codelists=codelists)
        index = 0
        for obj in _iter_city_objects(ctx):
            raw, geometry = _record(obj, ctx)
            if types is not None and not ({_local(obj.tag), raw.get("feature_type")} & types):
                continue
            fid, at = _identify(spec, raw, obj, path, index)
            index += 1
            yield Feature(id=fid, properties=mapper.map(raw, at), geometry=geometry)


def _identify(
    spec: LayerSpec, raw: dict[str, Any], obj: etree._Element, path: Path, index: int
) -> tuple[str, str]:
    """A city object's feature id (``id_property``, else ``gml:id``, else file stem + index)
    and its "file: line N (gml:id)" location for error messages."""
    fid = (
        feature_id(spec, raw, path, index)
        if spec.id_property
        else str(raw.get("gml_id") or f"{path.stem}-{index}")
    )
    return fid, f"{where(path, obj)} ({raw.get('gml_id')})"


def _iter_city_objects(ctx: _FileContext) -> Iterator[etree._Element]:
    """Stream the city objects of a CityGML file, clearing each once consumed."""
    path = ctx.path
    with source_errors(path):
        events = etree.iterparse(str(path), events=("start", "end"), huge_tree=True)
        for event, elem in events:
            name = _local(elem.tag)
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


def _record(obj: etree._Element, ctx: _FileContext) -> tuple[dict[str, Any], BaseGeometry | None]:
    """Flatten one city object into (raw attributes, CRS84 geometry)."""
    raw: dict[str, Any] = {"gml_id": gml_id(obj)}
    undecoded: list[str] = []
    geometry_props: list[etree._Element] = []
    for child in obj:
        name = _local(child.tag)
        if not name or name == "boundedBy":
            continue
        if _is_geometry_property(child):
            geometry_props.append(child)
        elif name == "genericAttributeSet" or name.endswith("Attribute"):
            _generic(child, raw)
        elif len(child) == 0:
            _simple(child, name, raw, undecoded, ctx)
        else:
            for leaf in child.iter():
                if isinstance(leaf.tag, str) and len(leaf) == 0 and _local(leaf.tag) not in raw:
                    _simple(leaf, _local(leaf.tag), raw, undecoded, ctx)
    _normalise_iur14(obj, raw)
    raw["undecoded"] = ",".join(undecoded) or None
    return raw, _geometry(geometry_props, ctx)


def _simple(
    elem: etree._Element, name: str, raw: dict[str, Any], undecoded: list[str], ctx: _FileContext
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
    if _local(elem.tag) == "genericAttributeSet":
        for child in elem:
            if isinstance(child.tag, str):
                _generic(child, raw)
        return
    name = elem.get("name")
    value = next((c.text for c in elem if _local(c.tag) == "value"), None)
    if name and value is not None:
        raw[name] = value.strip()


def _normalise_iur14(obj: etree._Element, raw: dict[str, Any]) -> None:
    """Give i-UR 1.4 ``DistrictsAndZones`` the i-UR 2.0 ``function`` and class name."""
    local = _local(obj.tag)
    if local == "DistrictsAndZones" and "class" in raw:
        raw.setdefault("function", raw["class"])
        raw.setdefault("function_code", raw.get("class_code", raw["class"]))
        code = str(raw.get("class_code", raw["class"]))
        raw["feature_type"] = CLASS_TO_TYPE.get(code, local)
    else:
        raw["feature_type"] = local


# --------------------------------------------------------------------------- geometry


def _is_geometry_property(elem: etree._Element) -> bool:
    return any(_local(d.tag) in _SURFACES for d in elem.iterdescendants())


def _geometry(props: list[etree._Element], ctx: _FileContext) -> BaseGeometry | None:
    """Polygons of the lowest-LOD geometry property, as a CRS84 MultiPolygon."""
    if not props:
        return None
    prop = sorted(props, key=lambda p: _local(p.tag))[0]
    polygons: list[Polygon] = []
    srs = ctx.default_srs
    for poly in prop.iter("{*}Polygon"):
        srs = _inherited(poly, "srsName") or ctx.default_srs
        polygons.append(_polygon(poly, srs, ctx))
    if not polygons:
        return None
    return to_crs84(MultiPolygon(polygons), srs)


def _polygon(poly: etree._Element, srs: str, ctx: _FileContext) -> Polygon:
    exterior: list[tuple[float, float]] = []
    interiors: list[list[tuple[float, float]]] = []
    for boundary in poly:
        name = _local(boundary.tag)
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


def _ring(boundary: etree._Element, srs: str, ctx: _FileContext) -> list[tuple[float, float]]:
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


def _dimension(pos_list: etree._Element, ctx: _FileContext) -> int:
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
        if _local(node.tag) in ("cityObjectMember", "featureMember"):
            break
        node = node.getparent()
    return None
