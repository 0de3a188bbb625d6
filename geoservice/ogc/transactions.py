"""OGC API Features Part 4: create, replace, update (merge-patch) and delete items.

Every collection whose spec says ``editable: true`` takes writes, with
``Authorization: Bearer <token>``.  The routes are thin: read a size-limited body, parse
the GeoJSON, hand over to ``GuardedWriter`` (scope, validation, ETag, audit), shape the
response (201 + ``Location`` + ``ETag``; 200 + ``ETag``; 204).

``feature_etag`` is also used by the read route of one item so that ``GET`` returns the
ETag a client sends back in ``If-Match``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from geoservice import crs as crsmod
from geoservice.auth.errors import UnsupportedMediaType
from geoservice.auth.http import AuthServices, auth_services
from geoservice.auth.tokens import Principal
from geoservice.auth.writes import feature_etag
from geoservice.edge.bodies import request_json
from geoservice.errors import InvalidParameter
from geoservice.fastjson import FastJSONResponse
from geoservice.features import Feature
from geoservice.geometry import parse_geometry
from geoservice.ogc import features_api
from geoservice.runtime import Runtime, RuntimeDep

__all__ = ["PART4", "attach", "feature_etag", "router"]

router = APIRouter(prefix="/ogc", include_in_schema=False)

PART4 = [
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
]
FEATURE_TYPES = ("application/geo+json", "application/json")
PATCH_TYPES = ("application/merge-patch+json", *FEATURE_TYPES)


def attach(rt: Runtime) -> AuthServices:
    """Build the write services once and declare the Part 4 conformance classes."""
    svc = auth_services(rt)
    if any(s.editable for s in rt.specs.values()):
        rt.conform(PART4)
    return svc


def _media(request: Request, accepted: tuple[str, ...]) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in accepted:
        raise UnsupportedMediaType(
            f"Content-Type {ctype or '(none)'!r} is not accepted; use one of {list(accepted)}"
        )


async def _feature_body(request: Request, rt: Runtime, accepted: tuple[str, ...]) -> Any:
    _media(request, accepted)
    return await request_json(request, rt.settings.transactions.max_body)


def _parse_feature(doc: Any, content_crs: str | None) -> Feature:
    """A GeoJSON Feature body → ``Feature`` (the id is ignored: the server assigns ids)."""
    if not isinstance(doc, dict) or doc.get("type") != "Feature":
        raise InvalidParameter('body: expected a GeoJSON Feature ({"type": "Feature", ...})')
    props = doc.get("properties") or {}
    if not isinstance(props, dict):
        raise InvalidParameter("properties: expected a JSON object")
    raw = doc.get("geometry")
    geom = None if raw is None else parse_geometry(raw, content_crs=content_crs)
    return Feature("", props, geom)


def _doc(rt: Runtime, cid: str, f: Feature) -> dict[str, Any]:
    doc = features_api.feature_doc(f, crsmod.crs_info(crsmod.CRS84))
    doc["links"] = features_api.item_links(f"{rt.base}/collections/{cid}", f.id)
    return doc


def _editor(rt: Runtime, cid: str, request: Request) -> tuple[AuthServices, Principal]:
    """The auth services and the caller, once ``cid`` is known to take writes."""
    svc = auth_services(rt)
    svc.writer.editable(cid)
    return svc, svc.require(request)


def _written(rt: Runtime, cid: str, f: Feature, status: int = 200) -> FastJSONResponse:
    headers = {"ETag": feature_etag(f), "Content-Crs": f"<{crsmod.CRS84}>"}
    if status == 201:
        headers["Location"] = f"{rt.base}/collections/{cid}/items/{f.id}"
    return FastJSONResponse(
        _doc(rt, cid, f), status_code=status, media_type=features_api.GEOJSON, headers=headers
    )


@router.post("/collections/{cid}/items")
async def create_item(cid: str, request: Request, rt: RuntimeDep) -> Response:
    """Create a feature (201, ``Location``, ``ETag``)."""
    svc, who = _editor(rt, cid, request)
    body = await _feature_body(request, rt, FEATURE_TYPES)
    feature = _parse_feature(body, request.headers.get("content-crs"))
    created = await run_in_threadpool(svc.writer.create, who, cid, feature)
    return _written(rt, cid, created, 201)


@router.put("/collections/{cid}/items/{fid}")
async def replace_item(cid: str, fid: str, request: Request, rt: RuntimeDep) -> Response:
    """Replace a feature (``If-Match`` honoured)."""
    svc, who = _editor(rt, cid, request)
    body = await _feature_body(request, rt, FEATURE_TYPES)
    feature = _parse_feature(body, request.headers.get("content-crs"))
    result = await run_in_threadpool(
        svc.writer.replace, who, cid, fid, feature, request.headers.get("if-match")
    )
    return _written(rt, cid, result)


@router.patch("/collections/{cid}/items/{fid}")
async def update_item(cid: str, fid: str, request: Request, rt: RuntimeDep) -> Response:
    """JSON merge-patch of ``properties`` (``null`` removes one) and/or ``geometry``."""
    svc, who = _editor(rt, cid, request)
    body = await _feature_body(request, rt, PATCH_TYPES)
    if not isinstance(body, dict):
        raise InvalidParameter("body: expected a JSON object (merge-patch of a Feature)")
    props = body.get("properties") or {}
    if not isinstance(props, dict):
        raise InvalidParameter("properties: expected a JSON object")
    raw = body.get("geometry")
    crs = request.headers.get("content-crs")
    geom = None if raw is None else parse_geometry(raw, content_crs=crs)
    result = await run_in_threadpool(
        svc.writer.update, who, cid, fid, props, geom, request.headers.get("if-match")
    )
    return _written(rt, cid, result)


@router.delete("/collections/{cid}/items/{fid}")
async def delete_item(cid: str, fid: str, request: Request, rt: RuntimeDep) -> Response:
    """Delete a feature (204)."""
    svc, who = _editor(rt, cid, request)
    await run_in_threadpool(svc.writer.delete, who, cid, fid, request.headers.get("if-match"))
    return Response(status_code=204)
