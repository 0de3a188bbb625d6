"""HTTP adapter of the hazards room: the hazard card, the flood-depth coverage and tiles.

Routes (declared before the ``/ogc`` routes, so the coverage paths win over the generic
collection routes):

* ``GET /api/hazards?lon=&lat=`` and ``POST /api/hazards`` (GeoJSON geometry or Feature,
  CRS84) -> the hazard card (:meth:`HazardService.card`);
* ``GET /api/hazards/tiles/flood-depth/{z}/{x}/{y}.png`` -> XYZ raster tiles;
* ``GET /ogc/collections/flood-depth`` (collection document of a coverage, with the
  ``coverage`` link GDAL's OGCAPI driver follows), ``.../coverage`` (GeoTIFF; ``bbox``,
  ``subset=Lon(a:b),Lat(c:d)``, ``scaleSize=Lon(w),Lat(h)`` / ``scale-size``,
  ``width``/``height``, ``scale-factor``), ``.../coverage/domainset`` and
  ``.../coverage/rangetype``.

``attach(rt)`` builds the service once: it writes the synthetic COG if the build did not
(older store), reads every hazard layer into indexes, registers the coverage collection
with the ``/ogc/collections`` listing (``rt.extra_collections``) and adds the Coverages
conformance classes.  ``card_for`` is what the composition root hands the guide room.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from shapely.geometry.base import BaseGeometry
from starlette.concurrency import run_in_threadpool

from geoservice.edge.bodies import request_json
from geoservice.errors import InvalidParameter, NotFound
from geoservice.fastjson import FastJSONResponse
from geoservice.hazards import raster as rastermod
from geoservice.hazards.service import HazardService, point
from geoservice.reinfolib.site import Results, fetch_site
from geoservice.runtime import RoomParts, Runtime, RuntimeDep, runtime_of

log = logging.getLogger(__name__)
router = APIRouter()
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GEOTIFF = "image/tiff; application=geotiff"
MAX_BODY = 1024 * 1024
COVERAGES_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/subsetting",
    "http://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/scaling",
    "http://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/geotiff",
]


def attach(rt: Runtime) -> None:
    """Build the hazard service once (indexes, raster) and register the coverage.

    The coverage goes with the hazards layers: a server without any hazards-domain layer
    (e.g. the CQL2 test layers) neither writes nor lists it.
    """
    if not rastermod.serves_hazards(rt.specs):
        rt.services.put(HazardService.build(rt.store, rt.specs, None))
        return
    path = rastermod.raster_path(rt.settings)
    if not path.exists():
        try:
            rastermod.write_flood_cog(rt.settings)
        except Exception:  # the card then reports the raster as unavailable
            log.exception("could not write the synthetic flood-depth raster %s", path)
    rt.services.put(HazardService.build(rt.store, rt.specs, path))
    rt.extra_collections.append(lambda: coverage_collection(rt))
    rt.conform(COVERAGES_CONFORMANCE)


def room() -> RoomParts:
    """The hazards room for the composition root (``geoservice.app.rooms``)."""
    return RoomParts("hazards", router, attach, after_build=rastermod.after_build)


class HazardCards:
    """The hazard card as another room gets it (the composition root hands it to the guide):
    ``None`` / no layers on a server where this room did not attach."""

    def card(
        self, rt: Runtime, geometry: BaseGeometry | Mapping[str, Any], official: Results | None
    ) -> dict[str, Any] | None:
        """The card of a site, given the API layers already fetched for it."""
        svc = rt.services.get(HazardService)
        return None if svc is None else svc.card(geometry, official=official)

    def layers(self, rt: Runtime) -> list[str]:
        """The API layers the card shows (fetched together with the asking room's)."""
        svc = rt.services.get(HazardService)
        return [] if svc is None else list(svc.api_layers)


async def _hazard_service(request: Request) -> HazardService:
    """The service built by ``attach`` (404 when absent)."""
    missing = NotFound("the hazards service is not attached")
    return runtime_of(request).services.require(HazardService, missing)


#: A route parameter receiving the hazard service.
HazardsDep = Annotated[HazardService, Depends(_hazard_service)]


def _raster(svc: HazardService) -> rastermod.FloodRaster:
    if svc.raster is None:
        raise NotFound(
            f"the flood-depth coverage is not available: {svc.raster_error or 'not built'}"
        )
    return svc.raster


# --------------------------------------------------------------------------- the card


@router.get("/api/hazards", tags=["hazards"])
async def card_at_point(
    svc: HazardsDep,
    rt: RuntimeDep,
    lon: Annotated[float, Query(description="Longitude (CRS84 degrees)")],
    lat: Annotated[float, Query(description="Latitude (CRS84 degrees)")],
) -> FastJSONResponse:
    """The hazard card of a point (not a legal hazard map; no data is not safe)."""
    return await _card(rt, svc, point(lon, lat))


@router.post("/api/hazards", tags=["hazards"])
async def card_of_geometry(
    request: Request, svc: HazardsDep, rt: RuntimeDep
) -> FastJSONResponse:
    """The hazard card of a GeoJSON geometry (Point, Polygon, ...; CRS84)."""
    doc = await request_json(request, MAX_BODY)
    return await _card(rt, svc, doc)


async def _card(rt: Runtime, svc: HazardService, geometry: Any) -> FastJSONResponse:
    """The card, with its 不動産情報ライブラリ API layers fetched for the site first."""
    site = svc.checked_site(geometry)  # bad input fails before any request to the API
    specs = list(svc.api_specs.values())
    official = await fetch_site(rt.reinfolib, specs, site)
    return FastJSONResponse(await run_in_threadpool(svc.card, site, official))


# --------------------------------------------------------------------------- tiles


@router.get("/api/hazards/tiles/flood-depth/{z}/{x}/{y}.png", tags=["hazards"])
async def flood_tile(
    svc: HazardsDep,
    z: Annotated[int, Path(ge=0, le=22)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
) -> Response:
    """A 256 px Web-Mercator tile of the synthetic flood depth (colour = depth class)."""
    r = _raster(svc)
    png = await run_in_threadpool(r.tile_png, z, x, y)
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


# --------------------------------------------------------------------------- OGC API Coverages


def coverage_collection(rt: Runtime) -> dict[str, Any]:
    """The ``/ogc/collections/flood-depth`` document (also listed in ``/ogc/collections``)."""
    base = f"{rt.base}/collections/{rastermod.COLLECTION}"
    svc = rt.services.get(HazardService)
    r = svc.raster if svc is not None else None
    bbox = list(r.bounds) if r is not None else list(rastermod.EXTENT)
    tiles = f"{rt.settings.server.base_url}/api/hazards/tiles/flood-depth"
    doc: dict[str, Any] = {
        "id": rastermod.COLLECTION,
        "title": rastermod.TITLE,
        "description": rastermod.DESCRIPTION,
        "keywords": ["浸水深", "flood depth", "coverage", "synthetic"],
        "itemType": "coverage",
        "dataType": "coverage",
        "layerDataType": "Coverage",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "extent": {"spatial": {"bbox": [bbox], "crs": CRS84}},
        "attribution": rastermod.ATTRIBUTION,
        "license": rastermod.LICENCE,
        "synthetic": True,
        "coverage": {
            "description": "Synthetic demo: declared areas only (boxes around 大田区 and "
            "葛飾区); nodata elsewhere, which is no data, not 'no flooding'",
            "areas": r.declared_areas() if r is not None else [],
        },
        "available": r is not None,
        "links": [
            {"href": f"{base}?f=json", "rel": "self", "type": "application/json",
             "title": "This collection"},
            {"href": f"{base}/coverage?f=geotiff", "rel":
             "http://www.opengis.net/def/rel/ogc/1.0/coverage", "type": GEOTIFF,
             "title": "Coverage (GeoTIFF)"},
            {"href": f"{base}/coverage/domainset?f=json",
             "rel": "http://www.opengis.net/def/rel/ogc/1.0/coverage-domainset",
             "type": "application/json", "title": "Domain set"},
            {"href": f"{base}/coverage/rangetype?f=json",
             "rel": "http://www.opengis.net/def/rel/ogc/1.0/coverage-rangetype",
             "type": "application/json", "title": "Range type"},
            {"href": f"{tiles}/{{z}}/{{x}}/{{y}}.png",
             "rel": "tiles-xyz", "type": "image/png", "templated": True,
             "title": "XYZ raster tiles (Web Mercator)"},
            {"href": "https://creativecommons.org/licenses/by/4.0/", "rel": "license",
             "type": "text/html", "title": rastermod.LICENCE},
        ],
    }
    if r is not None:
        doc["domainset"] = domainset(r)
        doc["rangetype"] = RANGETYPE
    return doc


RANGETYPE: dict[str, Any] = {
    "type": "DataRecord",
    "field": [
        {
            "type": "Quantity",
            "name": "depth",
            "id": "depth",
            "definition": "FLOAT32",
            "description": "flood depth in metres (SYNTHETIC)",
            "uom": {"type": "UnitReference", "code": "m"},
            "nodata": rastermod.NODATA,
        }
    ],
}


def domainset(r: rastermod.FloodRaster) -> dict[str, Any]:
    """The CIS 1.1 domain set (a regular grid in CRS84)."""
    left, bottom, right, top = r.bounds
    return {
        "type": "DomainSet",
        "generalGrid": {
            "type": "GeneralGridCoverage",
            "srsName": CRS84,
            "axisLabels": ["Lon", "Lat"],
            "axis": [
                {"type": "RegularAxis", "axisLabel": "Lon", "lowerBound": left,
                 "upperBound": right, "uomLabel": "deg", "resolution": r.res},
                {"type": "RegularAxis", "axisLabel": "Lat", "lowerBound": bottom,
                 "upperBound": top, "uomLabel": "deg", "resolution": -r.res},
            ],
            "gridLimits": {
                "type": "GridLimits",
                "srsName": "http://www.opengis.net/def/crs/OGC/0/Index2D",
                "axisLabels": ["i", "j"],
                "axis": [
                    {"type": "IndexAxis", "axisLabel": "i", "lowerBound": 0,
                     "upperBound": r.width - 1},
                    {"type": "IndexAxis", "axisLabel": "j", "lowerBound": 0,
                     "upperBound": r.height - 1},
                ],
            },
        },
    }


PREFIX = f"/ogc/collections/{rastermod.COLLECTION}"


@router.get(PREFIX, include_in_schema=False)
async def flood_collection(rt: RuntimeDep) -> FastJSONResponse:
    """Collection metadata of the flood-depth coverage."""
    return FastJSONResponse(coverage_collection(rt))


@router.get(f"{PREFIX}/coverage/domainset", include_in_schema=False)
async def flood_domainset(svc: HazardsDep) -> FastJSONResponse:
    """The coverage's domain set."""
    return FastJSONResponse(domainset(_raster(svc)))


@router.get(f"{PREFIX}/coverage/rangetype", include_in_schema=False)
async def flood_rangetype(svc: HazardsDep) -> FastJSONResponse:
    """The coverage's range type."""
    _raster(svc)
    return FastJSONResponse(RANGETYPE)


_X_AXES = {"lon", "long", "longitude", "x", "e", "easting"}
_Y_AXES = {"lat", "latitude", "y", "n", "northing"}
_SUBSET = re.compile(r"\s*([A-Za-z_]+)\s*\(\s*([^:()]*?)\s*(?::\s*([^()]*?)\s*)?\)\s*")
_SIZE = re.compile(r"\s*([A-Za-z_]+)\s*\(\s*(\d+)\s*\)\s*")
_COVERAGE_PARAMS = {"f", "bbox", "bbox-crs", "subset", "scaleSize", "scale-size",
                    "scale-factor", "scaleFactor", "width", "height", "properties"}


def _axis(name: str) -> str:
    low = name.lower()
    if low in _X_AXES:
        return "x"
    if low in _Y_AXES:
        return "y"
    raise InvalidParameter(f"unknown axis {name!r}; the axes are Lon and Lat")


def _float(text: str, what: str) -> float:
    """A finite number (``float`` also reads ``nan`` and ``inf``, which no extent or scale
    can be: NaN became a 500 in the pixel arithmetic)."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameter(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidParameter(f"{what}: {text!r} is not a finite number")
    return value


def _split_top(text: str) -> list[str]:
    """Split ``A(1:2),B(3:4)`` on commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def parse_coverage_request(
    request: Request, r: rastermod.FloodRaster
) -> tuple[list[float] | None, tuple[int | None, int | None]]:
    """bbox (CRS84) and output size of a coverage request (400 on anything unclear)."""
    qp = request.query_params
    unknown = sorted(set(qp.keys()) - _COVERAGE_PARAMS)
    if unknown:
        raise InvalidParameter(
            f"unknown parameter(s) {unknown}; accepted: {sorted(_COVERAGE_PARAMS)}"
        )
    fmt = qp.get("f")
    if fmt is not None and fmt.lower() not in ("geotiff", "tif", "tiff", GEOTIFF, "image/tiff"):
        raise InvalidParameter(f"f={fmt!r}: this coverage is served as GeoTIFF only (f=geotiff)")
    props = qp.get("properties")
    if props is not None and props not in ("depth", "*"):
        raise InvalidParameter(f"properties={props!r}: the only field is 'depth'")
    crs = qp.get("bbox-crs")
    if crs is not None and not crs.endswith("CRS84"):
        raise InvalidParameter("bbox-crs: only CRS84 is supported")
    left, bottom, right, top = r.bounds
    box = [left, bottom, right, top]
    given = False
    if "bbox" in qp:
        parts = qp["bbox"].split(",")
        if len(parts) != 4:
            raise InvalidParameter("bbox: expected minLon,minLat,maxLon,maxLat")
        box = [_float(p, "bbox") for p in parts]
        given = True
    for raw in qp.getlist("subset"):
        for item in _split_top(raw):
            m = _SUBSET.fullmatch(item)
            if m is None:
                raise InvalidParameter(f"subset: {item!r} is not Axis(low:high)")
            axis = _axis(m.group(1))
            lo, hi = m.group(2), m.group(3) if m.group(3) is not None else m.group(2)
            i = 0 if axis == "x" else 1
            if lo not in ("*", ""):
                box[i] = _float(lo.strip('"'), "subset")
            if hi not in ("*", ""):
                box[i + 2] = _float(hi.strip('"'), "subset")
            given = True
    if not (box[2] > box[0] and box[3] > box[1]):
        raise InvalidParameter("bbox/subset: the low bound must be below the high bound")
    if box[0] < -180 or box[2] > 180 or box[1] < -90 or box[3] > 90:
        raise InvalidParameter("bbox/subset: outside CRS84 longitude/latitude ranges")
    width: int | None = None
    height: int | None = None
    size = qp.get("scaleSize") or qp.get("scale-size")
    if size:
        items = _split_top(size)
        if all(_SIZE.fullmatch(i) for i in items):
            for item in items:
                m = _SIZE.fullmatch(item)
                assert m is not None
                if _axis(m.group(1)) == "x":
                    width = int(m.group(2))
                else:
                    height = int(m.group(2))
        elif len(items) == 2 and all(_digits(i.strip()) for i in items):
            width, height = int(items[0]), int(items[1])
        else:
            raise InvalidParameter(f"scaleSize: {size!r} is not Lon(w),Lat(h)")
    for name in ("width", "height"):
        if name in qp:
            if not _digits(qp[name]):
                raise InvalidParameter(f"{name}: expected a positive integer")
            if name == "width":
                width = int(qp[name])
            else:
                height = int(qp[name])
    factor = qp.get("scale-factor") or qp.get("scaleFactor")
    if factor is not None:
        f = _float(factor, "scale-factor")
        if f <= 0:
            raise InvalidParameter("scale-factor: must be positive")
        width = max(1, int(round((box[2] - box[0]) / r.res / f)))
        height = max(1, int(round((box[3] - box[1]) / r.res / f)))
    if (width is not None and width < 1) or (height is not None and height < 1):
        raise InvalidParameter("scaleSize/width/height: must be at least 1")
    return (box if given else None), (width, height)


def _digits(text: str) -> bool:
    """ASCII digits only: ``"²"`` passes ``str.isdigit`` and then fails ``int`` (a 500)."""
    return text.isascii() and text.isdigit()


@router.get(f"{PREFIX}/coverage", include_in_schema=False)
async def flood_coverage(request: Request, svc: HazardsDep) -> Response:
    """The coverage as GeoTIFF (whole raster, or a bbox/subset, optionally scaled)."""
    r = _raster(svc)
    bbox, size = parse_coverage_request(request, r)
    tiff = await run_in_threadpool(r.coverage_tiff, bbox, size)
    out = bbox or list(r.bounds)
    return Response(
        tiff,
        media_type=GEOTIFF,
        headers={
            "Content-Crs": f"<{CRS84}>",
            "Content-Bbox": ",".join(f"{v:.7f}" for v in out),
            "Content-Disposition": 'inline; filename="flood-depth.tif"',
        },
    )
