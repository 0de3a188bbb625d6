"""OGC API - Tiles for every feature collection: vector tiles (MVT) in WebMercatorQuad.

``/ogc/collections/{cid}/tiles`` lists the one tileset, ``.../tiles/WebMercatorQuad`` is its
metadata, ``.../tiles/WebMercatorQuad/{z}/{y}/{x}`` a Mapbox Vector Tile encoded by the store
(``Store.tile``, made for its zoom by ``geoservice.store.tiling`` on both stores).
Reads go through the same read policy as the Features API (the sightings room hides
unpublished records and generalises sensitive ones in tiles too).

An empty tile is ``204 No Content`` - also a tile outside the layer's zoom range
(``tiles.minzoom``/``maxzoom`` of its spec), with the same ETag and caching headers as any
tile; non-integer indices are a 400, indices outside the tile matrix (or zoom >
``mvt.MAX_ZOOM``) a 404, both as OGC exception JSON.  Tiles are made for their zoom and
kept under a byte budget (``geoservice.store.tiling``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from geoservice import mvt
from geoservice.catalogue import LayerSpec
from geoservice.concurrency import in_thread
from geoservice.errors import NotFound
from geoservice.fastjson import FastJSONResponse
from geoservice.ogc import params, tilecache
from geoservice.runtime import Runtime, RuntimeDep, read_store, runtime_of

router = APIRouter(prefix="/ogc", include_in_schema=False)

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
]
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"


def _check(rt: Runtime, request: Request, cid: str, tms: str | None = None) -> LayerSpec:
    """The collection's spec; a 404 for an unknown collection or tile matrix set, a 400
    for a query parameter other than ``f``."""
    spec = rt.spec_of(cid)
    params.check_known(dict(request.query_params), {"f"})
    if tms is not None and tms != mvt.TMS:
        raise NotFound(f"tile matrix set {tms!r} is not served; use {mvt.TMS}")
    return spec


def _tileset_summary(rt: Runtime, cid: str) -> dict[str, Any]:
    base = f"{rt.base}/collections/{cid}/tiles/{mvt.TMS}"
    return {
        "title": f"{rt.specs[cid].title} ({mvt.TMS})",
        "dataType": "vector",
        "crs": CRS_3857,
        "tileMatrixSetURI": mvt.TMS_URI,
        "links": [
            {"href": base, "rel": "self", "type": "application/json", "title": "Tileset"},
            {
                "href": f"{rt.base}/TileMatrixSets/{mvt.TMS}",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                "type": "application/json",
                "title": "WebMercatorQuad tile matrix set",
            },
        ],
    }


@router.get("/collections/{cid}/tiles")
async def tilesets(cid: str, request: Request, rt: RuntimeDep) -> Response:
    """The vector tilesets of a collection (one: WebMercatorQuad)."""
    _check(rt, request, cid)
    return FastJSONResponse(
        {
            "links": [
                {
                    "href": f"{rt.base}/collections/{cid}/tiles",
                    "rel": "self",
                    "type": "application/json",
                    "title": "Tilesets",
                },
                {
                    "href": f"{rt.base}/collections/{cid}",
                    "rel": "collection",
                    "type": "application/json",
                },
            ],
            "tilesets": [_tileset_summary(rt, cid)],
        }
    )


@router.get("/collections/{cid}/tiles/{tms}")
async def tileset(cid: str, tms: str, request: Request, rt: RuntimeDep) -> Response:
    """Tileset metadata: tile matrix set, tile URL template, the layer and its bounds."""
    spec = _check(rt, request, cid, tms)
    doc = _tileset_summary(rt, cid)
    doc["links"].append(
        {
            "href": f"{rt.base}/collections/{cid}/tiles/{mvt.TMS}/{{tileMatrix}}/{{tileRow}}"
            "/{tileCol}",
            "rel": "item",
            "type": mvt.MVT_MEDIA_TYPE,
            "title": "Mapbox vector tiles",
            "templated": True,
        }
    )
    layer: dict[str, Any] = {
        "id": cid,
        "title": spec.title,
        "dataType": "vector",
        "geometryType": spec.geometry_type,
        # the layer's zoom range (layer spec ``tiles``): outside it tiles are empty
        "minTileMatrix": str(spec.tiles.minzoom),
        "maxTileMatrix": str(spec.tiles.maxzoom),
        "propertiesSchema": {
            "type": "object",
            "properties": {"id": {"type": "string"}}
            | {p.name: {"type": _json_type(p.type)} for p in spec.properties},
        },
    }
    extent = rt.reader.info(cid).extent
    if extent is not None:
        layer["boundingBox"] = {"lowerLeft": list(extent[:2]), "upperRight": list(extent[2:]),
                                "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
        doc["boundingBox"] = layer["boundingBox"]
    doc["layers"] = [layer]
    return FastJSONResponse(doc)


def _json_type(kind: str) -> str:
    return {"integer": "integer", "number": "number", "boolean": "boolean"}.get(kind, "string")


async def tile(request: Request) -> Response:
    """One Mapbox Vector Tile (204 when no feature reaches the tile).

    A plain Starlette endpoint (no FastAPI dependency solving): a map asks for dozens of
    these per view.  Public tiles are cached per data version (``tilecache``) and carry a
    strong ETag, so a CDN or browser revalidates with a 304."""
    rt = runtime_of(request)
    p = request.path_params
    cid = p["cid"]
    _check(rt, request, cid, p["tms"])
    zi, yi, xi = mvt.check_tile(p["z"], p["y"], p["x"])
    store = read_store(rt, request, cid)
    # A token's own view is never shared; a store without data versions is not cached.
    public = "authorization" not in request.headers
    version = await in_thread(store.tile_version, cid, zi, xi, yi) if public else None
    if version is None:
        return _tile_response(await in_thread(store.tile, cid, zi, xi, yi), {})
    key = (cid, zi, xi, yi, version)
    headers = {"ETag": tilecache.etag(key), "Cache-Control": "public, no-cache"}
    if tilecache.matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    cache = tilecache.of(rt.services, rt.settings.server.tile_cache_mb)
    data = None if cache is None else cache.get(key)
    if data is None:
        data = await in_thread(store.tile, cid, zi, xi, yi)
        if cache is not None:
            cache.put(key, data)
    return _tile_response(data, headers)


def _tile_response(data: bytes, headers: dict[str, str]) -> Response:
    if not data:
        return Response(status_code=204, headers=headers)
    return Response(data, media_type=mvt.MVT_MEDIA_TYPE, headers=headers)


#: The tile endpoint, on a router without prefix that the app matches first.
tile_router = APIRouter(include_in_schema=False)
tile_router.add_route("/ogc/collections/{cid}/tiles/{tms}/{z}/{y}/{x}", tile, methods=["GET"],
                      include_in_schema=False)


def tilesets_link(base: str, cid: str) -> dict[str, str]:
    """The collection link to its vector tilesets (OGC API - Tiles)."""
    return {
        "href": f"{base}/collections/{cid}/tiles?f=json",
        "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
        "type": "application/json",
        "title": "Vector tilesets",
    }
