"""The portal page and the health endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from geoservice.fastjson import FastJSONResponse
from geoservice.ogc.pygeoapi_adapter import layer_notice
from geoservice.runtime import RuntimeDep

router = APIRouter(include_in_schema=False)
FAVICON = Path(__file__).with_name("static") / "favicon.svg"


def layer_rows(rt: Any) -> list[dict[str, Any]]:
    """One row per served layer: title, count, coverage, credit, licence, synthetic flag."""
    rows = []
    for lid in sorted(rt.collections):
        spec = rt.specs[lid]
        info = rt.store.info(lid)
        synthetic = spec.synthetic or info.synthetic
        rows.append(
            {
                "id": lid,
                "title": spec.title,
                "title_en": spec.title_en,
                "count": info.count,
                "coverage": spec.coverage.description,
                "attribution": layer_notice(spec, synthetic),
                "licence": spec.licence.name,
                "licence_url": spec.licence.url,
                "synthetic": synthetic,
            }
        )
    return rows


@router.get("/", response_class=HTMLResponse)
async def portal(request: Request, rt: RuntimeDep) -> HTMLResponse:
    """The portal: what the service is, where to go, every layer with its credit."""
    rows = layer_rows(rt)
    return rt.html.render(
        "portal.html", layers=rows, pages=rt.pages, any_synthetic=any(r["synthetic"] for r in rows)
    )


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(rt: RuntimeDep) -> HTMLResponse:
    """The /api routes' OpenAPI document in the vendored Swagger UI (no CDN, no inline script)."""
    return rt.html.render("apidocs.html", heading="REST API", spec_url="/openapi.json")


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    """The site icon, for pages and clients that ask for /favicon.ico (no 404 in consoles)."""
    return FileResponse(FAVICON, media_type="image/svg+xml")


@router.get("/healthz")
async def healthz(rt: RuntimeDep) -> FastJSONResponse:
    """Liveness and store readiness."""
    try:
        n = len(rt.store.collections())
    except Exception:  # noqa: BLE001 - any store failure means not ready
        return FastJSONResponse({"status": "unavailable", "store": "error"}, status_code=503)
    return FastJSONResponse({"status": "ok", "store": type(rt.store).__name__, "collections": n})
