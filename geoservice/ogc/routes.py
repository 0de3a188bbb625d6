"""HTTP routes of ``/ogc``: ours for items (full CQL2, CRS, strict parameters), pygeoapi's
for the landing page, collections, OpenAPI and processes, all in one router.

Routes are thin: parse, call the store or pygeoapi, shape the response.  Errors are raised
as ``ServiceError`` and turned into OGC exception documents by the app's handler.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pygeoapi.api as core_api
import pygeoapi.api.itemtypes as itemtypes_api
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from geoservice import crs as crsmod
from geoservice.catalogue import LayerSpec
from geoservice.concurrency import in_thread
from geoservice.errors import InvalidParameter, NotFound
from geoservice.fastjson import FastJSONResponse
from geoservice.ogc import features_api, params, tiles
from geoservice.ogc.pygeoapi_adapter import layer_notice, pygeoapi_of, to_response
from geoservice.ogc.transactions import feature_etag
from geoservice.runtime import Runtime, RuntimeDep, read_store, runtime_of
from geoservice.store.filtering import queryable_schema

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/landing-page",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/accent-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/array-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    *tiles.CONFORMANCE,  # OGC API - Tiles (geoservice/ogc/tiles.py)
]

router = APIRouter(prefix="/ogc", include_in_schema=False)
# The hot read paths (items, one item) on a router of their own, which the app matches
# before every other room's routes: route matching is linear and was an eighth of the
# CPU of an items request when these came last.
features_router = APIRouter(include_in_schema=False)


def _qp(request: Request) -> dict[str, str]:
    """Query parameters as a dict (a repeated parameter keeps its last value)."""
    return dict(request.query_params)


def _accept(request: Request) -> str:
    return request.headers.get("accept", "")


async def _html(
    request: Request, rt: Runtime, fn: Callable[..., tuple[dict[str, Any], int, Any]], *args: str
) -> Response | None:
    """pygeoapi's HTML page when the client asks for HTML (``f``/``lang`` checked first),
    else ``None``: the route answers JSON itself."""
    qp = _qp(request)
    params.check_known(qp, {"f", "lang"})
    if params.parse_format(qp, _accept(request)) == "html":
        return await pygeoapi_of(rt).respond(fn, request, *args)
    return None


@router.get("")
async def ogc_root(request: Request, rt: RuntimeDep) -> Response:
    """The landing page as JSON (clients such as QGIS do not follow a redirect here);
    browsers are redirected to ``/ogc/`` so that relative links in the page resolve."""
    if params.parse_format(_qp(request), _accept(request)) == "html":
        return RedirectResponse("/ogc/")
    return await landing(request, rt)


@router.get("/")
async def landing(request: Request, rt: RuntimeDep) -> Response:
    """OGC API landing page (pygeoapi)."""
    params.check_known(_qp(request), {"f", "lang"})
    return await pygeoapi_of(rt).respond(core_api.landing_page, request)


@router.get("/openapi")
async def openapi(request: Request, rt: RuntimeDep) -> Response:
    """The OpenAPI document (JSON; HTML with f=html).

    The HTML page is our vendored Swagger UI (``ui=redoc`` too): pygeoapi's swagger/redoc
    templates load from a CDN with an inline script, which the pages' CSP refuses.
    """
    params.check_known(_qp(request), {"f", "lang", "ui"})
    if params.parse_format(_qp(request), _accept(request)) == "html":
        return rt.html.render("apidocs.html", heading="OGC API",
                              spec_url="/ogc/openapi?f=json")
    return FastJSONResponse(
        pygeoapi_of(rt).openapi, media_type="application/vnd.oai.openapi+json;version=3.0"
    )


@router.get("/conformance")
async def conformance(request: Request, rt: RuntimeDep) -> Response:
    """The conformance classes this service implements (ours, not pygeoapi's list)."""
    if (page := await _html(request, rt, core_api.conformance)) is not None:
        return page
    return FastJSONResponse({"conformsTo": CONFORMANCE + rt.extra_conformance})


def _enrich(rt: Runtime, coll: dict[str, Any]) -> dict[str, Any]:
    """Add licence, attribution, coverage and the synthetic flag to a collection document."""
    spec = rt.specs.get(coll.get("id", ""))
    if spec is None:
        return coll
    info = rt.reader.info(spec.id)
    synthetic = spec.synthetic or info.synthetic
    coll.update(
        {
            "attribution": layer_notice(spec, synthetic),
            "license": spec.licence.name,
            "synthetic": synthetic,
            "coverage": spec.coverage.model_dump(exclude_none=True),
            "itemCount": info.count,
        }
    )
    coll["links"].append(
        {
            "href": f"{rt.base}/collections/{spec.id}/queryables?f=json",
            "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
            "type": "application/schema+json",
            "title": "Queryables",
        }
    )
    if rt.reinfolib is not None and spec.id in rt.reinfolib.layers:
        coll["source"] = rt.reinfolib.describe(spec)  # the API, fetch dates, on or off
    for links in rt.collection_links:  # rooms' links (city3d: its 3D Tiles, when built)
        coll["links"] += links(spec.id)
    coll["links"].append(tiles.tilesets_link(rt.base, spec.id))  # OGC API Tiles (ogc/tiles.py)
    return coll


async def _collections_json(request: Request, rt: RuntimeDep, cid: str | None) -> Response:
    pg = pygeoapi_of(rt)
    headers, status, content = await pg.call(core_api.describe_collections, request, cid)
    if status != 200:
        return to_response(headers, status, content)
    doc = json.loads(content) if isinstance(content, str | bytes) else content
    if cid is None:
        doc["collections"] = [_enrich(rt, c) for c in doc["collections"]]
        # Rooms' non-feature collections (the hazards room's flood-depth coverage).
        doc["collections"] += [extra() for extra in rt.extra_collections]
    else:
        doc = _enrich(rt, doc)
    return FastJSONResponse(doc)


@router.get("/collections")
async def collections(request: Request, rt: RuntimeDep) -> Response:
    """All collections, with licences and credits."""
    if (page := await _html(request, rt, core_api.describe_collections)) is not None:
        return page
    return await _collections_json(request, rt, None)


@router.get("/collections/{cid}")
async def collection(cid: str, request: Request, rt: RuntimeDep) -> Response:
    """One collection's metadata."""
    rt.spec_of(cid)
    if (page := await _html(request, rt, core_api.describe_collections, cid)) is not None:
        return page
    return await _collections_json(request, rt, cid)


@router.get("/collections/{cid}/queryables")
async def queryables(cid: str, request: Request, rt: RuntimeDep) -> Response:
    """JSON Schema of the properties that filters may use."""
    spec = rt.spec_of(cid)
    html = await _html(request, rt, itemtypes_api.get_collection_queryables, cid)
    if html is not None:
        return html
    return FastJSONResponse(queryables_doc(spec, rt.base), media_type="application/schema+json")


_JSON = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "geometry": {"format": "geometry-any"},
}


def queryables_doc(spec: LayerSpec, base: str) -> dict[str, Any]:
    """The queryables JSON Schema of a layer (no remote $refs)."""
    props: dict[str, Any] = {}
    for name, kind in queryable_schema(spec).items():
        p = spec.property(name)
        entry: dict[str, Any] = {"title": (p.title if p and p.title else name), **_JSON[kind]}
        if p is not None and p.enum:
            entry["enum"] = p.enum
        props[name] = entry
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base}/collections/{spec.id}/queryables",
        "type": "object",
        "title": spec.title,
        "properties": props,
        "additionalProperties": False,
    }


# The hot read paths are plain Starlette endpoints (``Request`` in, ``Response`` out):
# FastAPI's per-request dependency solving cost more than the database round trip.


async def items(request: Request) -> Response:
    """Features of a collection: bbox, datetime, CQL2 (text/JSON), CRS, sortby, paging."""
    rt, cid = runtime_of(request), request.path_params["cid"]
    spec = rt.spec_of(cid)
    qp = _qp(request)
    req = params.parse_items(qp, spec, _accept(request), rt.limit_default, rt.limit_max)
    base = f"{rt.base}/collections/{cid}"
    store = read_store(rt, request, cid)
    try:
        doc, _page = await in_thread(features_api.items_doc, store, cid, req, base, qp)
    except OverflowError:
        # SQLite integers are 64-bit: a larger number in a filter, queryable or offset
        # is the client's error, not ours.
        raise InvalidParameter(
            "a number in the request is out of range (64-bit integers only)"
        ) from None
    if req.fmt == "html":
        return rt.html.items(spec, doc, rt.reader.info(cid).synthetic)
    return FastJSONResponse(
        doc, media_type=features_api.GEOJSON, headers={"Content-Crs": f"<{req.crs.uri}>"}
    )


async def item(request: Request) -> Response:
    """One feature."""
    rt, cid, fid = runtime_of(request), request.path_params["cid"], request.path_params["fid"]
    spec = rt.spec_of(cid)
    qp = _qp(request)
    params.check_known(qp, params.ITEM_PARAMS)
    req_crs = crsmod.crs_info(qp.get("crs", crsmod.CRS84))
    fmt = params.parse_format(qp, _accept(request))
    f = await in_thread(read_store(rt, request, cid).get, cid, fid)
    doc = features_api.feature_doc(
        f, req_crs, None, params._bool("skipGeometry", qp.get("skipGeometry"))
    )
    doc["links"] = features_api.item_links(f"{rt.base}/collections/{cid}", fid)
    if fmt == "html":
        return rt.html.item(spec, doc, rt.reader.info(cid).synthetic)
    return FastJSONResponse(
        doc,
        media_type=features_api.GEOJSON,
        headers={"Content-Crs": f"<{req_crs.uri}>", "ETag": feature_etag(f)},
    )


features_router.add_route("/ogc/collections/{cid}/items", items, methods=["GET"],
                          include_in_schema=False)
features_router.add_route("/ogc/collections/{cid}/items/{fid}", item, methods=["GET"],
                          include_in_schema=False)


@router.get("/TileMatrixSets")
async def tile_matrix_sets(request: Request, rt: RuntimeDep) -> Response:
    """The tile matrix sets pygeoapi knows (linked from its landing page)."""
    import pygeoapi.api.tiles as tiles_api

    params.check_known(_qp(request), {"f", "lang"})
    return await pygeoapi_of(rt).respond(tiles_api.tilematrixsets, request)


@router.get("/TileMatrixSets/{tms}")
async def tile_matrix_set(tms: str, request: Request, rt: RuntimeDep) -> Response:
    """One tile matrix set."""
    import pygeoapi.api.tiles as tiles_api
    from pygeoapi.models.provider.base import TileMatrixSetEnum

    params.check_known(_qp(request), {"f", "lang"})
    known = [t.value.tileMatrixSet for t in TileMatrixSetEnum]
    if tms not in known:
        raise NotFound(f"tile matrix set {tms!r} does not exist; known: {', '.join(known)}")
    return await pygeoapi_of(rt).respond(tiles_api.tilematrixset, request, tms)


@router.get("/collections/{cid}/schema")
async def schema(cid: str, request: Request, rt: RuntimeDep) -> Response:
    """The collection's schema (pygeoapi)."""
    rt.spec_of(cid)
    params.check_known(_qp(request), {"f", "lang"})
    return await pygeoapi_of(rt).respond(core_api.get_collection_schema, request, cid)
