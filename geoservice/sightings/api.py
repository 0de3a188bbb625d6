"""HTTP adapter of the sightings room: citizen reports, moderation, CSV import, audit.

``attach`` builds the write side once at start-up (tokens, audit, the municipality index,
OGC API Features Part 4 — see ``geoservice.ogc.transactions``) and installs the read
policy of ``wildlife-sightings`` for the OGC read routes (``rt.read_policies``):
unpublished reports hidden, sensitive locations generalised.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from geoservice import crs as crsmod
from geoservice.auth.errors import Forbidden, UnsupportedMediaType
from geoservice.auth.http import AuthServices
from geoservice.edge.bodies import read_body, request_json
from geoservice.errors import InvalidParameter, NotFound
from geoservice.fastjson import FastJSONResponse
from geoservice.features import Feature
from geoservice.ogc import features_api, transactions
from geoservice.runtime import RoomParts, Runtime, RuntimeDep
from geoservice.sightings import feed, importer
from geoservice.sightings.alerts_api import router as alerts_router
from geoservice.sightings.email_api import router as email_router
from geoservice.sightings.events import attach_alerts
from geoservice.sightings.photos import open_photos
from geoservice.sightings.policy import COLLECTION, SightingsView
from geoservice.sightings.pwa import api_router as pwa_api_router
from geoservice.sightings.service import SightingsService
from geoservice.store import Store

router = APIRouter(tags=["sightings"])
router.include_router(email_router)  # before alerts' /api/subscriptions/{sid}
router.include_router(alerts_router)
router.include_router(pwa_api_router)
MAX_CSV = 10 * 1024 * 1024


def attach(rt: Runtime) -> None:
    """Build the room's services once at start-up: the write side, the read policy of
    ``wildlife-sightings`` and the alerts (bus, outbox, dispatcher)."""
    auth = transactions.attach(rt)
    svc = rt.services.put(
        SightingsService(
            auth, rt.settings.work_dir, rt.settings.sightings, open_photos(rt.settings, rt.store)
        )
    )

    def read_policy(request: Request, base: Store) -> Store:
        return SightingsView(base, auth.reader(request), svc.sensitive)

    rt.read_policies[COLLECTION] = read_policy
    rt.collection_links.append(lambda cid: feed.feed_links(rt, cid))
    bus = attach_alerts(rt)

    def publish_event(cid: str, before: Feature | None, after: Feature | None) -> None:
        if cid == COLLECTION:
            bus.changed(cid, before, after)

    auth.writer.listeners.append(publish_event)


def room() -> RoomParts:
    """The sightings room for the composition root (``geoservice.app.rooms``)."""
    from geoservice.sightings.pages import PAGE
    from geoservice.sightings.pages import router as pages

    return RoomParts("sightings", router, attach, pages, PAGE)


def _svc(rt: Runtime) -> SightingsService:
    svc = rt.services.get(SightingsService)
    if svc is None:
        attach(rt)
        svc = rt.services.require(SightingsService)
    return svc


def _auth(rt: Runtime) -> AuthServices:
    return _svc(rt).auth


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _feature_json(f: Feature) -> dict[str, Any]:
    return features_api.feature_doc(f, crsmod.crs_info(crsmod.CRS84))


@router.get(feed.PATH, response_class=Response)
async def sightings_feed(request: Request, rt: RuntimeDep) -> Response:
    """Atom feed (GeoRSS points) of published sightings; ``municipality=`` and/or ``bbox=``."""
    fq = feed.parse_feed_query(dict(request.query_params))
    view = feed.public_view(rt, _svc(rt).sensitive)
    body = await run_in_threadpool(feed.atom_feed, rt, view, fq)
    return Response(body, media_type=feed.MEDIA_TYPE)


@router.post("/api/reports", status_code=201)
async def report(request: Request, rt: RuntimeDep) -> Response:
    """A citizen's sighting report (no token): stored ``pending`` until a municipality
    approves it.  JSON: ``point`` ([lon, lat] or GeoJSON Point), ``species``, ``kind``,
    ``observed_at``, ``count``, ``description`` (plain text), optional ``photo`` (base64
    JPEG / PNG / WebP) and ``photo_content_type``.  Rate-limited per client address."""
    svc = _svc(rt)
    await run_in_threadpool(svc.limiter.hit, f"report:{_client_ip(request)}")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise UnsupportedMediaType("send the report as application/json")
    body = await request_json(request, svc.limits.max_report_body)
    f = await run_in_threadpool(svc.report, body)
    return FastJSONResponse(
        {
            "id": f.id,
            "status": f.properties.get("status"),
            "message": "thank you: the report will be published after a municipality checks it",
        },
        status_code=201,
    )


@router.get("/api/moderation/queue")
async def moderation_queue(
    request: Request, rt: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Response:
    """Pending reports of the token's municipality (admins: all), newest first."""
    svc = _svc(rt)
    who = svc.auth.require(request)

    def docs_of() -> list[dict[str, Any]]:  # the query and photo look-ups off the event loop
        docs = []
        for f in svc.queue(who, limit):
            doc = _feature_json(f)
            if svc.photos.has(f.id):
                doc["links"] = [{"rel": "enclosure", "href": f"/api/moderation/{f.id}/photo"}]
            docs.append(doc)
        return docs

    docs = await run_in_threadpool(docs_of)
    return FastJSONResponse(
        {"type": "FeatureCollection", "features": docs, "numberReturned": len(docs)}
    )


@router.get("/api/moderation/{fid}/photo")
async def moderation_photo(fid: str, request: Request, rt: RuntimeDep) -> Response:
    """The photo of a report (moderators of its municipality only)."""
    svc = _svc(rt)
    who = svc.auth.require(request)
    f = await run_in_threadpool(svc.store.get, COLLECTION, fid)
    if not who.may_access(f.properties.get("municipality_code")):
        raise Forbidden("this report lies outside the token's municipality")
    found = await run_in_threadpool(svc.photos.get, fid)
    if found is None:
        raise NotFound(f"report {fid!r} has no photo")
    return Response(
        found[0], media_type=found[1], headers={"X-Content-Type-Options": "nosniff"}
    )


@router.post("/api/moderation/{fid}/{action}")
async def moderate(fid: str, action: str, request: Request, rt: RuntimeDep) -> Response:
    """``approve`` (→ published) or ``reject`` (→ rejected) a pending report; audited."""
    svc = _svc(rt)
    who = svc.auth.require(request)
    f = await run_in_threadpool(svc.moderate, who, fid, action)
    return FastJSONResponse(_feature_json(f))


@router.post("/api/sightings/import")
async def import_csv(request: Request, rt: RuntimeDep, mode: str = "all-or-nothing") -> Response:
    """Bulk import of a CSV (``text/csv``): report by line; idempotent by source + id."""
    svc = _svc(rt)
    who = svc.auth.require(request)
    if mode not in importer.MODES:
        raise InvalidParameter(f"mode={mode!r}; accepted: {', '.join(importer.MODES)}")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("text/csv", "text/plain", "application/csv"):
        raise UnsupportedMediaType("send the CSV as text/csv (UTF-8)")
    raw = await read_body(request, MAX_CSV)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter("the CSV must be UTF-8 (save as 'CSV UTF-8')") from None
    rep = await run_in_threadpool(importer.import_csv, svc.writer, who, text, mode)
    doc = rep.as_json()
    if mode == "all-or-nothing" and rep.rejected:
        doc = {
            "code": "UnprocessableEntity",
            "description": f"{len(rep.rejected)} row(s) rejected; nothing was written",
            **doc,
        }
        return FastJSONResponse(doc, status_code=422)
    return FastJSONResponse(doc)


@router.get("/api/audit")
async def audit(
    request: Request,
    rt: RuntimeDep,
    collection: str | None = None,
    feature: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
) -> Response:
    """The write journal, newest first (admin tokens only)."""
    auth = _auth(rt)
    who = auth.require(request)
    if not who.admin:
        raise Forbidden("the audit log is readable by admin tokens only")
    entries = await run_in_threadpool(auth.audit.list, collection, feature, limit)
    return FastJSONResponse({"entries": [e.as_json() for e in entries]})
