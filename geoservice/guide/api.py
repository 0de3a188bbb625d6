"""HTTP adapter of the guide room: the REST routes and the OGC process ``procedure-guide``.

Routes (declared before the ``/ogc`` router, so the process and job paths here win):

- ``POST /api/guide`` — the answer for ``{"site": ..., "works": ...}``;
- ``GET /api/guide/rules`` — the rule catalogue (ids, titles, laws, confidence, source);
- ``GET /api/parcels?municipality_code=&q=`` — 地番 search (prefix, then close matches);
- ``GET /ogc/processes``, ``GET /ogc/processes/procedure-guide`` — OGC API Processes;
- ``POST /ogc/processes/procedure-guide/execution`` — sync, or async with
  ``Prefer: respond-async`` (201 + ``Location`` of a durable job);
- ``GET /ogc/jobs``, ``GET|DELETE /ogc/jobs/{id}``, ``GET /ogc/jobs/{id}/results``.

Everything is built once in ``attach`` (the GuideService with its indexes, the job table).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from shapely.geometry import mapping

from geoservice.edge.bodies import request_json
from geoservice.errors import InvalidParameter, NotFound, ServiceError
from geoservice.fastjson import FastJSONResponse
from geoservice.guide.jobs import DDL, Job, JobStore
from geoservice.guide.models import ACTIVITIES, STRUCTURES, USES, GuideRequest, parse_request
from geoservice.guide.process import (
    CONFORMANCE,
    PROCESS_ID,
    process_description,
    process_summary,
)
from geoservice.guide.service import GuideService, guide_config
from geoservice.guide.spatial import ParcelNotFound
from geoservice.runtime import RoomParts, Runtime, RuntimeDep, runtime_of
from geoservice.state import open_db

router = APIRouter()


class NoSuchJob(NotFound):
    """An unknown job id (OGC exception type no-such-job)."""

    code = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-job"


class ResultNotReady(NotFound):
    """The job has not finished (OGC exception type result-not-ready)."""

    code = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/result-not-ready"


# --------------------------------------------------------------------------- start-up


class HazardCards(Protocol):
    """What the guide needs from the hazards room; the composition root hands it in."""

    def card(self, rt: Runtime, geometry: Any, official: Any) -> dict[str, Any] | None:
        """The hazard card of a site given the API layers fetched for it (or ``None``)."""

    def layers(self, rt: Runtime) -> list[str]:
        """The API layers the card shows (fetched together with the guide's)."""


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The app's event loop when start-up runs on it (the lifespan), else ``None``."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def room(hazards: HazardCards | None = None) -> RoomParts:
    """The guide room for the composition root (``geoservice.app.rooms``)."""
    from geoservice.guide.pages import PAGE
    from geoservice.guide.pages import router as pages

    return RoomParts("guide", router, partial(attach, hazards=hazards), pages, PAGE)


def attach(rt: Runtime, hazards: HazardCards | None = None) -> None:
    """Build the guide once: the service (indexes over every needed layer) and the jobs.

    Pending async jobs left by a previous run (accepted or running when it stopped) are
    queued again here, so nothing acknowledged is lost (their answers embed the hazard
    card: the hazards room attaches before this one).
    """
    conf = guide_config(rt.settings.guide)
    service = rt.services.put(
        GuideService(rt.store, rt.specs, parcel_layers=conf.parcel_layers or (), conf=conf)
    )
    service.use_source(rt.reinfolib, _running_loop())
    if hazards is not None:
        service.hazard_card = partial(hazards.card, rt)
        service.card_layers = partial(hazards.layers, rt)
    db = open_db(rt.settings, rt.store, "jobs", DDL, rt.settings.work_dir / str(conf.jobs_db))
    jobs = JobStore(
        db,
        run=lambda inputs: run_inputs(service, inputs),
        paused=bool(conf.pause_jobs),
        error_doc=error_doc,
        lease_s=float(conf.job_lease_s or 30.0),
    )
    rt.services.put(jobs)
    jobs.start()
    # stopped before the store closes (a running job finishes first)
    rt.shutdown_hooks.append(lambda: asyncio.to_thread(jobs.stop))
    rt.conform(CONFORMANCE)


def _service(rt: Runtime) -> GuideService:
    # attach not run: app started without the lifespan
    return rt.services.require(GuideService, ServiceError("the guide is not initialised"))


def _jobs(rt: Runtime) -> JobStore:
    missing = ServiceError("the guide's job store is not initialised")
    return rt.services.require(JobStore, missing)


async def _guide_service(request: Request) -> GuideService:
    return _service(runtime_of(request))


#: A route parameter receiving the guide service.
GuideDep = Annotated[GuideService, Depends(_guide_service)]


# --------------------------------------------------------------------------- helpers


def error_doc(exc: ServiceError) -> dict[str, Any]:
    """The OGC exception document of an error (plus ``matches`` for an unknown 地番)."""
    doc: dict[str, Any] = {"code": exc.code, "description": exc.description}
    if isinstance(exc, ParcelNotFound):
        doc["matches"] = exc.matches
    return doc


def _error(exc: ServiceError) -> FastJSONResponse:
    return FastJSONResponse(error_doc(exc), status_code=exc.status)


def check_inputs(service: GuideService, inputs: Any) -> GuideRequest:
    """Validate a body and resolve its site (so bad input fails before a job is accepted)."""
    req = parse_request(inputs)
    service.index.site_geometry(req.site)
    return req


def run_inputs(service: GuideService, inputs: Any) -> dict[str, Any]:
    """The answer to a body, as JSON (what an async job returns; runs in its thread)."""
    return service.answer(inputs).model_dump(mode="json")


async def answer_inputs(service: GuideService, inputs: Any) -> dict[str, Any]:
    """The answer to a body, as JSON (what the REST route and a sync execution return)."""
    return (await service.answer_async(inputs)).model_dump(mode="json")


# --------------------------------------------------------------------------- REST


@router.post("/api/guide", tags=["guide"])
async def guide(request: Request, svc: GuideDep) -> Response:
    """The procedure guide: every catalogue procedure's status for this land and works."""
    body = await request_json(request)
    try:
        return FastJSONResponse(await answer_inputs(svc, body))
    except ParcelNotFound as exc:
        return _error(exc)


@router.get("/api/guide/rules", tags=["guide"])
async def guide_rules(svc: GuideDep) -> Response:
    """The rule catalogue and the accepted vocabulary (for forms)."""
    rules = [
        {
            "id": r.id,
            "order": r.order,
            "title_ja": r.title_ja,
            "title_en": r.title_en,
            "law": r.law,
            "article": r.article,
            "authority": r.authority,
            "layers": list(r.layers),
            "activities": r.trigger.activities,
            "confidence": r.confidence,
            "source": r.source,
            "last_verified": r.last_verified.isoformat(),
        }
        for r in svc.rules
    ]
    return FastJSONResponse({
        "rules": rules,
        "activities": list(ACTIVITIES),
        "uses": list(USES),
        "structures": list(STRUCTURES),
        "parcel_layers": svc.parcel_layers,
    })


@router.get("/api/parcels", tags=["guide"])
async def parcels(
    svc: GuideDep,
    municipality_code: Annotated[str | None, Query(pattern=r"^\d{5}$")] = None,
    q: Annotated[str, Query(max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """Parcels by 地番 (prefix first, then close matches), with geometry, as GeoJSON."""
    found = svc.index.search_parcels(municipality_code, q.strip(), limit)
    feats = [
        {
            "type": "Feature",
            "id": f.id,
            "geometry": mapping(f.geometry) if f.geometry is not None else None,
            "properties": {k: v for k, v in f.properties.items() if k != "id"},
        }
        for f in found
    ]
    return FastJSONResponse(
        {"type": "FeatureCollection", "numberReturned": len(feats), "features": feats},
        media_type="application/geo+json",
    )


# --------------------------------------------------------------------------- OGC process

_EXEC_KEYS = {"inputs", "outputs", "response", "subscriber", "mode"}


def _base(rt: Runtime) -> str:
    return rt.base


@router.get("/ogc/processes", include_in_schema=False)
async def processes(rt: RuntimeDep) -> Response:
    """The processes offered (OGC API Processes Part 1 ``processList``)."""
    base = _base(rt)
    return FastJSONResponse({
        "processes": [process_summary(base)],
        "links": [{"href": f"{base}/processes", "rel": "self", "type": "application/json",
                   "title": "processes"}],
    })


@router.get(f"/ogc/processes/{PROCESS_ID}", include_in_schema=False)
async def process(rt: RuntimeDep) -> Response:
    """The description of ``procedure-guide`` (inputs, outputs, job control options)."""
    return FastJSONResponse(process_description(_base(rt)))


def _status_doc(rt: Runtime, job: Job) -> dict[str, Any]:
    url = f"{_base(rt)}/jobs/{job.id}"
    links = [{"href": url, "rel": "self", "type": "application/json", "title": "job status"}]
    if job.status in ("successful", "failed"):
        links.append({"href": f"{url}/results", "type": "application/json",
                      "rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
                      "title": "job results"})
    progress = {"accepted": 0, "running": 50}.get(job.status, 100)
    return {
        "processID": job.process_id, "type": "process", "jobID": job.id,
        "status": job.status, "message": job.message, "created": job.created,
        "started": job.started, "finished": job.finished, "updated": job.updated,
        "progress": progress, "links": links,
    }


def _wants_async(request: Request) -> bool:
    prefer = request.headers.get("prefer", "").lower()
    return any(p.strip().startswith("respond-async") for p in prefer.split(","))


@router.post(f"/ogc/processes/{PROCESS_ID}/execution", include_in_schema=False)
async def execute(request: Request, rt: RuntimeDep) -> Response:
    """Execute: synchronously (the answer), or with ``Prefer: respond-async`` as a job."""
    body = await request_json(request)
    if not isinstance(body, dict) or "inputs" not in body:
        raise InvalidParameter('the execute request needs "inputs": {"site": ..., "works": ...}')
    unknown = sorted(set(body) - _EXEC_KEYS)
    if unknown:
        raise InvalidParameter(f"unknown execute request members: {', '.join(unknown)}")
    service = _service(rt)
    inputs = body["inputs"]
    try:
        if not _wants_async(request):
            return FastJSONResponse(await answer_inputs(service, inputs))
        check_inputs(service, inputs)  # bad input fails now, never as an accepted job
    except ParcelNotFound as exc:
        return _error(exc)
    job = _jobs(rt).submit(PROCESS_ID, inputs)
    url = f"{_base(rt)}/jobs/{job.id}"
    return FastJSONResponse(_status_doc(rt, job), status_code=201,
                        headers={"Location": url, "Preference-Applied": "respond-async"})


def _job(rt: Runtime, job_id: str) -> Job:
    job = _jobs(rt).get(job_id)
    if job is None:
        raise NoSuchJob(f"job {job_id!r} does not exist (or was dismissed)")
    return job


@router.get("/ogc/jobs", include_in_schema=False)
async def jobs(rt: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    """The most recent jobs, newest first."""
    base = _base(rt)
    return FastJSONResponse({
        "jobs": [_status_doc(rt, j) for j in _jobs(rt).list(limit)],
        "links": [{"href": f"{base}/jobs", "rel": "self", "type": "application/json"}],
    })


@router.get("/ogc/jobs/{job_id}", include_in_schema=False)
async def job_status(job_id: str, rt: RuntimeDep) -> Response:
    """A job's status."""
    return FastJSONResponse(_status_doc(rt, _job(rt, job_id)))


@router.get("/ogc/jobs/{job_id}/results", include_in_schema=False)
async def job_results(job_id: str, rt: RuntimeDep) -> Response:
    """The answer of a successful job (the same document as a sync execution)."""
    job = _job(rt, job_id)
    if job.status == "successful":
        return FastJSONResponse(job.result)
    if job.status == "failed":
        return FastJSONResponse(job.error, status_code=job.error_status or 500)
    raise ResultNotReady(f"job {job_id} is {job.status}; poll {_base(rt)}/jobs/{job_id}")


@router.delete("/ogc/jobs/{job_id}", include_in_schema=False)
async def dismiss(job_id: str, rt: RuntimeDep) -> Response:
    """Dismiss a job: a pending one is cancelled, a finished one and its results deleted."""
    job = _jobs(rt).dismiss(job_id)
    if job is None:
        raise NoSuchJob(f"job {job_id!r} does not exist (or was dismissed)")
    return FastJSONResponse(_status_doc(rt, job))
