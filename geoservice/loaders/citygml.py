"""Streaming reader of PLATEAU CityGML building (``bldg``) files.

One :class:`Building` per ``bldg:Building`` (its ``bldg:BuildingPart`` children are merged
into it: their geometry is added, their attributes fill what the building lacks).  The
file is read with ``lxml.etree.iterparse``; every ``core:cityObjectMember`` (and the
file-level ``app:appearanceMember`` texture blocks) is cleared once read, so memory stays
flat whatever the file size.

Coordinates
-----------
PLATEAU writes EPSG:6697 (JGD2011 geographic 2D + JGD2011 vertical height, T.P.) in the
authority axis order **latitude, longitude, height**.  Rings are returned as ``(n, 3)``
float64 arrays in ``(lon, lat, H)`` order, ``H`` being the orthometric height above
Tokyo Peil as in the file; :mod:`geoservice.city3d.tiles3d` converts it to ellipsoidal.
Only geographic CRSs (6697, 6668, 4326...) are accepted; any other ``srsName`` is a
``SourceError``.

Geometry kept per building
--------------------------
* ``lod0``: ``lod0FootPrint`` polygons (else ``lod0RoofEdge``);
* ``lod1``: the polygons of ``lod1Solid``;
* ``lod2``: ``(surface type, polygon)`` for each ``bldg:boundedBy`` Wall/Roof/Ground/...
  surface, ``lod2MultiSurface`` / ``lod2Geometry`` of the building and its outer
  installations; a ``lod2Solid`` made only of ``xlink:href`` references adds nothing
  (its polygons are the boundary surfaces above).

Attributes
----------
``measuredHeight`` (a value with trailing text such as ``2.8（テスト）`` is read as its
leading number, with a warning), ``storeysAboveGround``, ``usage`` and ``class`` decoded
through the PLATEAU code lists (:class:`geoservice.loaders.codelists.CodeLists`), the
建物ID (generic attribute, or i-UR 2.0 ``uro:buildingID``), ``uro`` building details
(flattened into :attr:`Building.attributes`, coded values decoded with ``<name>_code``
beside them), the districts-and-zones type, and flood risk:

* i-UR 1.4 (2020 data): ``gen:genericAttributeSet`` named ``…浸水想定区域…`` /
  ``…浸水予想区域…`` with 浸水深 (depth, m), 浸水ランク (rank), 継続時間 (duration, h),
  規模 (scale);
* i-UR 2.x: ``uro:Building{RiverFlooding,InlandFlooding,HighTide,Tsunami}RiskAttribute``
  with ``description``, ``rank``/``rankOrg``, ``depth``, ``duration``, ``scale``.

Every scenario is kept in :attr:`Building.flood`; :meth:`Building.flood_summary` is the
scenario with the greatest depth.  A coded value missing from its (present) code list is
kept raw and logged as a warning; an absent code list is reported once by ``CodeLists``.

Errors: malformed or truncated XML, a non-numeric coordinate or an unsupported CRS raise
:class:`geoservice.errors.SourceError` naming the file and line.  :func:`read_many` reads
several files, collecting such errors and continuing with the next file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from lxml import etree

from geoservice.errors import SourceError
from geoservice.loaders.codelists import CodeLists
from geoservice.loaders.common import is_lat_lon, normalise_crs
from geoservice.loaders.gml import gml_id, local_name, release, source_errors, where

log = logging.getLogger(__name__)

Ring = np.ndarray  # (n, 3) float64: lon, lat, H (orthometric, as in the file)
PolygonRings = list[np.ndarray]  # exterior first, then interiors

_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_SURFACE_TYPES = frozenset(
    {
        "WallSurface",
        "RoofSurface",
        "GroundSurface",
        "OuterCeilingSurface",
        "OuterFloorSurface",
        "ClosureSurface",
        "CeilingSurface",
        "FloorSurface",
        "InteriorWallSurface",
    }
)
_FLOOD_RISK = frozenset(
    {
        "BuildingRiverFloodingRiskAttribute",
        "BuildingInlandFloodingRiskAttribute",
        "BuildingHighTideRiskAttribute",
        "BuildingTsunamiRiskAttribute",
    }
)
_FLOOD_SET = re.compile(r"浸水|洪水|高潮|津波")
_LEADING_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


# --------------------------------------------------------------------------- model


@dataclass(slots=True)
class Building:
    """One PLATEAU building with its geometry by LOD and decoded attributes."""

    gml_id: str
    source_file: str
    line: int
    building_id: str | None = None
    measured_height: float | None = None
    storeys: int | None = None
    usage: str | None = None
    usage_code: str | None = None
    class_: str | None = None
    class_code: str | None = None
    district_zone: str | None = None
    district_zone_code: str | None = None
    description: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    flood: list[dict[str, Any]] = field(default_factory=list)
    lod0: list[PolygonRings] = field(default_factory=list)
    lod1: list[PolygonRings] = field(default_factory=list)
    lod2: list[tuple[str, PolygonRings]] = field(default_factory=list)

    @property
    def lod(self) -> int | None:
        """The highest level of detail with geometry (0, 1, 2) or ``None``."""
        if self.lod2:
            return 2
        if self.lod1:
            return 1
        if self.lod0:
            return 0
        return None

    def flood_summary(self) -> dict[str, Any]:
        """The flood scenario with the greatest depth (empty dict when none)."""
        if not self.flood:
            return {}
        return max(self.flood, key=lambda r: -1.0 if r.get("depth") is None else float(r["depth"]))

    def all_rings(self) -> Iterator[np.ndarray]:
        """Every ring of every LOD (for bounds)."""
        for poly in self.lod0:
            yield from poly
        for poly in self.lod1:
            yield from poly
        for _, poly in self.lod2:
            yield from poly

    def centroid(self) -> tuple[float, float]:
        """A representative (lon, lat): the mean of the bounds of all coordinates."""
        lo = np.array([np.inf, np.inf])
        hi = -lo
        for ring in self.all_rings():
            lo = np.minimum(lo, ring[:, :2].min(axis=0))
            hi = np.maximum(hi, ring[:, :2].max(axis=0))
        if not np.isfinite(lo).all():
            raise SourceError(f"{self.source_file}: line {self.line}: building has no geometry")
        mid = (lo + hi) / 2.0
        return float(mid[0]), float(mid[1])


# --------------------------------------------------------------------------- reading


@dataclass
class _Ctx:
    path: Path
    codelists: CodeLists
    srs: str = "EPSG:6697"
    lat_first: bool = True
    dim: int = 3
    warned: set[tuple[str, str]] = field(default_factory=set)
    decoded: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def where(self, elem: etree._Element) -> str:
        return where(self.path, elem)

    def set_srs(self, name: str, elem: etree._Element) -> None:
        srs = normalise_crs(name)
        try:
            lat_first = is_lat_lon(srs)
            from pyproj import CRS

            geographic = CRS.from_user_input(srs).is_geographic
        except Exception:
            raise SourceError(f"{self.where(elem)}: unknown CRS {name!r}") from None
        if not geographic:
            raise SourceError(
                f"{self.where(elem)}: CRS {name!r} is not geographic; the building reader "
                "accepts PLATEAU's EPSG:6697 / 6668 (lat, lon[, height])"
            )
        self.srs, self.lat_first = srs, lat_first


def read_buildings(
    path: Path, codelists: CodeLists | None = None, skip: int = 0
) -> Iterator[Building]:
    """Stream the buildings of one CityGML file; the first ``skip`` are passed over unread
    (a resumed 3D Tiles build has them: XML parsing alone costs about a quarter of reading).

    Raises
    ------
    SourceError
        Malformed or truncated XML (with the line), unreadable file, bad coordinates.
        Buildings before the fault have already been yielded.
    """
    ctx = _Ctx(path=Path(path), codelists=codelists or CodeLists(None))
    tags = ("{*}cityObjectMember", "{*}featureMember", "{*}Envelope", "{*}appearanceMember")
    with source_errors(path):
        events = etree.iterparse(
            str(path), events=("end",), tag=tags, huge_tree=True, remove_blank_text=True
        )
        for _, elem in events:
            name = local_name(elem.tag)
            if name == "Envelope":
                if elem.get("srsName") and elem.getparent() is not None:
                    # only the file's own envelope sets the default CRS
                    grand = elem.getparent().getparent()  # type: ignore[union-attr]
                    if grand is not None and local_name(grand.tag) == "CityModel":
                        ctx.set_srs(elem.get("srsName") or "", elem)
                        dim = elem.get("srsDimension")
                        ctx.dim = int(dim) if dim else 3
                continue
            if name in ("cityObjectMember", "featureMember"):
                for child in elem:
                    if local_name(child.tag) != "Building":
                        continue
                    if skip:
                        skip -= 1
                    else:
                        yield _building(child, ctx)
            release(elem)


@dataclass
class ReadErrors:
    """Errors collected by :func:`read_many`: one ``SourceError`` per failed file."""

    errors: list[SourceError] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def messages(self) -> list[str]:
        """The error messages (each names its file and line)."""
        return [e.description for e in self.errors]


def read_many(
    paths: Iterable[Path],
    codelists: CodeLists | None = None,
    errors: ReadErrors | None = None,
    skip: int = 0,
) -> Iterator[Building]:
    """Read several files in turn; a failing file is logged, recorded and skipped.
    ``skip``: buildings at the start of the first file passed over unread.

    Buildings a failing file yielded before its fault are kept (the fault is at the end
    of a truncated file, say); the error still names the file and line.
    """
    errors = errors if errors is not None else ReadErrors()
    for path in paths:
        try:
            yield from read_buildings(path, codelists, skip)
        except SourceError as exc:
            log.error("skipping the rest of %s: %s", Path(path).name, exc.description)
            errors.errors.append(exc)
        skip = 0


# --------------------------------------------------------------------------- one building


def _building(elem: etree._Element, ctx: _Ctx) -> Building:
    b = Building(
        gml_id=gml_id(elem) or f"{ctx.path.stem}-line{elem.sourceline}",
        source_file=ctx.path.name,
        line=int(elem.sourceline or 0),
    )
    _fill(b, elem, ctx)
    return b


def _fill(b: Building, elem: etree._Element, ctx: _Ctx) -> None:
    """Read one Building / BuildingPart element's children into ``b``."""
    footprint: list[PolygonRings] = []
    roof_edge: list[PolygonRings] = []
    for child in elem:
        name = local_name(child.tag)
        if not name:
            continue
        if name == "consistsOfBuildingPart":
            for part in child:
                if local_name(part.tag) == "BuildingPart":
                    _fill(b, part, ctx)
        elif name == "lod0FootPrint":
            footprint.extend(_polygons(child, ctx))
        elif name == "lod0RoofEdge":
            roof_edge.extend(_polygons(child, ctx))
        elif name == "lod1Solid":
            b.lod1.extend(_polygons(child, ctx))
        elif name in ("lod2MultiSurface", "lod2Geometry", "lod2Solid"):
            b.lod2.extend(("Building", p) for p in _polygons(child, ctx))
        elif name == "boundedBy":
            for surface in child:
                kind = local_name(surface.tag)
                if kind in _SURFACE_TYPES:
                    for prop in surface:
                        if local_name(prop.tag) == "lod2MultiSurface":
                            b.lod2.extend((kind, p) for p in _polygons(prop, ctx))
        elif name == "outerBuildingInstallation":
            for inst in child:
                for prop in inst:
                    if local_name(prop.tag) == "lod2Geometry":
                        b.lod2.extend(("BuildingInstallation", p) for p in _polygons(prop, ctx))
        elif name == "measuredHeight":
            if b.measured_height is None:
                b.measured_height = _number(child, ctx, "measuredHeight")
        elif name == "storeysAboveGround":
            if b.storeys is None:
                value = _number(child, ctx, "storeysAboveGround")
                b.storeys = int(value) if value is not None else None
        elif name == "usage":
            if b.usage_code is None:
                b.usage_code, b.usage = _coded(child, ctx)
        elif name == "class":
            if b.class_code is None:
                b.class_code, b.class_ = _coded(child, ctx)
        elif name == "description":
            b.description = b.description or (child.text or "").strip() or None
        elif name == "genericAttributeSet" or name.endswith("Attribute") and child.get("name"):
            _generic(b, child, ctx, None)
        elif child.prefix == "uro" or "/uro/" in (etree.QName(child).namespace or ""):
            _uro(b, child, ctx)
    if footprint or roof_edge:
        b.lod0.extend(footprint or roof_edge)


def _number(elem: etree._Element, ctx: _Ctx, what: str) -> float | None:
    text = (elem.text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    match = _LEADING_NUMBER.match(text)
    if match:
        log.warning(
            "%s: %s %r has trailing text; read as %s", ctx.where(elem), what, text, match[1]
        )
        return float(match[1])
    log.warning("%s: %s %r is not a number; ignored", ctx.where(elem), what, text)
    return None


def _coded(elem: etree._Element, ctx: _Ctx) -> tuple[str | None, str | None]:
    """(raw code, label) of a coded element; the label is the raw code when unknown."""
    code = (elem.text or "").strip()
    if not code:
        return None, None
    space = elem.get("codeSpace")
    if not space:
        return code, code
    cached = ctx.decoded.get((space, code))
    if cached is not None:
        return cached
    result = _decode(elem, ctx, space, code)
    ctx.decoded[(space, code)] = result
    return result


def _decode(elem: etree._Element, ctx: _Ctx, space: str, code: str) -> tuple[str, str]:
    label = ctx.codelists.decode(space, code, ctx.path)
    if label is None:
        if ctx.codelists.path_for(space, ctx.path) is not None:
            key = (space, code)
            if key not in ctx.warned:
                ctx.warned.add(key)
                log.warning(
                    "%s: %s code %r is not in code list %s; kept raw",
                    ctx.where(elem),
                    local_name(elem.tag),
                    code,
                    space.replace("\\", "/").rsplit("/", 1)[-1],
                )
        return code, code
    return code, label


def _generic(b: Building, elem: etree._Element, ctx: _Ctx, set_name: str | None) -> None:
    """Flatten gen:*Attribute; a flood generic-attribute set becomes a flood scenario."""
    if local_name(elem.tag) == "genericAttributeSet":
        name = elem.get("name") or ""
        if _FLOOD_SET.search(name):
            record: dict[str, Any] = {"source": name}
            for child in elem:
                key = child.get("name")
                value = _generic_value(child)
                if key is None or value is None:
                    continue
                if key == "浸水深":
                    record["depth"] = _float_or_none(value)
                elif key == "浸水ランク":
                    record["rank"] = value
                elif key == "継続時間":
                    record["duration"] = _float_or_none(value)
                elif key == "規模":
                    record["scale"] = value
                else:
                    record[key] = value
            b.flood.append(record)
            return
        for child in elem:
            if isinstance(child.tag, str):
                _generic(b, child, ctx, name)
        return
    key = elem.get("name")
    value = _generic_value(elem)
    if not key or value is None:
        return
    if key == "建物ID" and b.building_id is None:
        b.building_id = value
    full = f"{set_name}/{key}" if set_name else key
    b.attributes.setdefault(full, value)  # duplicate names: the first one wins


def _generic_value(elem: etree._Element) -> str | None:
    for child in elem:
        if local_name(child.tag) == "value":
            return (child.text or "").strip() or None
    return None


def _float_or_none(text: str | None) -> float | None:
    if text is None:
        return None
    match = _LEADING_NUMBER.match(text)
    return float(match[1]) if match else None


def _uro(b: Building, elem: etree._Element, ctx: _Ctx) -> None:
    """i-UR (uro) attributes: ids, building details, disaster risk, districts and zones."""
    for obj in elem:
        kind = local_name(obj.tag)
        if kind in _FLOOD_RISK:
            record: dict[str, Any] = {"source": kind}
            for leaf in obj:
                key = local_name(leaf.tag)
                if key in ("depth", "duration"):
                    record[key] = _float_or_none(leaf.text)
                elif key in ("rank", "rankOrg", "scale", "description", "adminType"):
                    code, label = _coded(leaf, ctx)
                    if key == "description":
                        record["source"] = label
                    elif key == "rankOrg":
                        record.setdefault("rank", label)
                    else:
                        record[key] = label
                    record[f"{key}_code"] = code
            b.flood.append(record)
            continue
        leaves = [obj] if len(obj) == 0 else [e for e in obj.iter() if len(e) == 0]
        for leaf in leaves:
            if not isinstance(leaf.tag, str):
                continue
            key = local_name(leaf.tag)
            if leaf.get("codeSpace"):
                code, label = _coded(leaf, ctx)
                if code is None:
                    continue
                b.attributes.setdefault(f"{key}_code", code)
                b.attributes.setdefault(key, label)
            else:
                text = (leaf.text or "").strip()
                if not text:
                    continue
                b.attributes.setdefault(key, text)
                label = code = None
            if key == "buildingID" and b.building_id is None:
                b.building_id = (leaf.text or "").strip() or None
            elif key == "districtsAndZonesType" and b.district_zone_code is None:
                b.district_zone_code, b.district_zone = code, label


# --------------------------------------------------------------------------- geometry


def _polygons(prop: etree._Element, ctx: _Ctx) -> list[PolygonRings]:
    out: list[PolygonRings] = []
    for poly in prop.iter("{*}Polygon"):
        rings: PolygonRings = []
        for boundary in poly:
            bname = local_name(boundary.tag)
            if bname in ("exterior", "outerBoundaryIs"):
                rings.insert(0, _ring(boundary, ctx))
            elif bname in ("interior", "innerBoundaryIs"):
                rings.append(_ring(boundary, ctx))
        if rings and len(rings[0]) >= 3:
            out.append(rings)
    return out


def _ring(boundary: etree._Element, ctx: _Ctx) -> np.ndarray:
    pos_list = next(boundary.iter("{*}posList"), None)
    try:
        if pos_list is not None:
            dim = int(pos_list.get("srsDimension") or ctx.dim)
            values = np.array((pos_list.text or "").split(), dtype=np.float64)
        else:
            parts = [(p.text or "").split() for p in boundary.iter("{*}pos")]
            dim = len(parts[0]) if parts else ctx.dim
            values = np.array([v for part in parts for v in part], dtype=np.float64)
    except ValueError:
        raise SourceError(f"{ctx.where(boundary)}: non-numeric coordinate") from None
    if dim not in (2, 3) or values.size % dim:
        raise SourceError(
            f"{ctx.where(boundary)}: {values.size} numbers do not divide into {dim}-D positions"
        )
    pts = values.reshape(-1, dim)
    out = np.zeros((len(pts), 3), dtype=np.float64)
    if ctx.lat_first:
        out[:, 0], out[:, 1] = pts[:, 1], pts[:, 0]
    else:
        out[:, 0], out[:, 1] = pts[:, 0], pts[:, 1]
    if dim == 3:
        out[:, 2] = pts[:, 2]
    if len(out) > 1 and np.array_equal(out[0], out[-1]):
        out = out[:-1]  # open the ring: consumers close it themselves
    if not np.isfinite(out).all():
        raise SourceError(f"{ctx.where(boundary)}: non-finite coordinate")
    return out
