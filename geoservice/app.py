"""The app factory: ``create_app(settings)`` builds everything; nothing happens at import.

This is the composition root: the one place that knows every room (``rooms()``), in what
order they start and what one hands another.  The lifespan opens the store, reads the layer
specs it was built with, generates the pygeoapi configuration and OpenAPI document,
registers the store for our provider, then attaches the rooms.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from geoservice import __version__
from geoservice.city3d.static import mount_tiles
from geoservice.config import Settings
from geoservice.edge import openapi as edge_openapi
from geoservice.edge.bodies import BodyGuard
from geoservice.edge.cors import CORS
from geoservice.edge.headers import SecurityHeaders
from geoservice.edge.proxy import ForwardedLinks
from geoservice.errors import ServiceError
from geoservice.fastjson import FastJSONResponse
from geoservice.ogc import generated, provider
from geoservice.ogc.pygeoapi_adapter import Pygeoapi, build_config
from geoservice.runtime import AfterBuild, Room, Runtime
from geoservice.store import Store, open_read_store, open_store
from geoservice.web.html import HtmlRenderer

log = logging.getLogger("geoservice")
STATIC = Path(__file__).parent / "web" / "static"


def store_key(settings: Settings) -> str:
    """The name pygeoapi's provider definitions give the store: the GeoPackage path, or a
    digest of the PostGIS URL - never the URL itself, which carries the password, since the
    configuration is written to ``<work_dir>/generated``."""
    if settings.store.backend == "gpkg":
        return str(settings.store.path)
    url = settings.store.database_url or ""
    return "postgis:" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def build_runtime(settings: Settings, store: Store, served: Sequence[BaseRoute] = ()) -> Runtime:
    """Everything requests need, built once (``served``: the OGC routes, for OpenAPI)."""
    specs = {c: store.spec(c) for c in store.collections()}
    if settings.enabled_layers is not None:
        specs = {k: v for k, v in specs.items() if k in settings.enabled_layers}
    key = store_key(settings)
    provider.register_store(key, store)
    from geoservice.reinfolib.source import ReinfolibSource

    reinfolib = ReinfolibSource.open(settings, store, specs.values())
    unlisted = reinfolib.unfillable(specs.values())
    listed = {k: v for k, v in specs.items() if k not in unlisted}
    config = build_config(settings, listed, store, key)
    openapi = generated.load_or_build(settings, config, served or ogc_routes())
    rt = Runtime(settings, store, specs, HtmlRenderer(settings.server.title),
                 read_store=open_read_store(settings, store), reinfolib=reinfolib,
                 unlisted=unlisted)
    rt.services.put(Pygeoapi(config, openapi))  # shared by workers
    return rt


def prepare_generated(settings: Settings) -> Path:
    """Generate configuration + OpenAPI once (before workers start); return the folder."""
    store = open_store(settings)
    try:
        build_runtime(settings, store)
    finally:
        store.close()
    return Path(settings.work_dir) / generated.DIRNAME


def _error(status: int, code: str, description: str) -> FastJSONResponse:
    return FastJSONResponse({"code": code, "description": description}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """One map from exceptions to OGC exception documents; no stack trace reaches a client."""

    @app.exception_handler(ServiceError)
    async def _service(_: Request, exc: ServiceError) -> FastJSONResponse:
        response = _error(exc.status, exc.code, exc.description)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> FastJSONResponse:
        parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return _error(422, "UnprocessableEntity", "; ".join(parts))

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _database_down(request: Request, exc: Exception) -> FastJSONResponse:
        # the primary is down, restarting or being failed over: say so, and when to retry
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        response = _error(503, "ServiceUnavailable",
                          "the database is unavailable (restarting or failing over); retry")
        response.headers["Retry-After"] = "2"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> FastJSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "ServerError", "internal error; it has been logged")


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """Build the service app for ``settings`` (optionally over an already-open store)."""
    the_rooms = rooms()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        st = store or open_store(settings)
        rt = build_runtime(settings, st)
        app.state.runtime = rt
        for room in the_rooms:
            if room.page is not None:
                rt.pages.append(room.page)
        for room in the_rooms:
            room.attach(rt)
        try:
            yield
        finally:
            await run_shutdown_hooks(rt)
            if rt.reinfolib is not None:
                await rt.reinfolib.aclose()
            if rt.read_store is not None and rt.read_store is not st:
                rt.read_store.close()
            if store is None:
                st.close()

    app = FastAPI(
        title="Tokyo GeoTwin API",
        version=__version__,
        lifespan=lifespan,
        description="REST endpoints of Tokyo GeoTwin; the OGC API lives at /ogc/.",
        # FastAPI's pages load Swagger UI / ReDoc from a CDN with an inline script (refused
        # by the CSP); /docs is served by geoservice.web.routes with the vendored copy.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # The last added runs first: headers on every response, CORS (preflights answered
    # before routing), then the body guard.
    if settings.server.trust_forwarded and not settings.server.url:
        app.add_middleware(ForwardedLinks, base_url=settings.server.base_url)
    app.add_middleware(BodyGuard, limits=settings.limits)
    app.add_middleware(CORS, settings=settings.cors)
    app.add_middleware(SecurityHeaders, settings=settings)
    edge_openapi.install(app)
    _include_routers(app, the_rooms)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    mount_tiles(app, settings)  # /3dtiles/… built tilesets (geoservice.city3d.static)
    return app


def rooms() -> list[Room]:
    """The domain rooms, in start-up order (``Room`` in ``geoservice.runtime``).

    The hazards room comes before the guide: the guide's answers (and the jobs it resumes
    at start-up) embed the hazard card, which this function hands to the guide.
    """
    from geoservice.city3d import api as city3d
    from geoservice.guide import api as guide
    from geoservice.hazards import api as hazards
    from geoservice.sightings import api as sightings

    return [
        hazards.room(),
        guide.room(hazards=hazards.HazardCards()),
        sightings.room(),
        city3d.room(),
    ]


def after_build_steps() -> dict[str, AfterBuild]:
    """Each room's after-build step by room name (``geoservice.build`` runs the steps of the
    rooms whose layers it built)."""
    return {r.name: r.after_build for r in rooms() if r.after_build is not None}


def ogc_routes() -> list[BaseRoute]:
    """The routes of the OGC adapter that pygeoapi's OpenAPI document describes."""
    from geoservice.ogc import routes, transactions

    return [*routes.router.routes, *transactions.router.routes]


def _include_routers(app: FastAPI, the_rooms: list[Room]) -> None:
    from geoservice.ogc.routes import features_router
    from geoservice.ogc.routes import router as ogc_router
    from geoservice.ogc.tiles import router as tiles_router
    from geoservice.ogc.tiles import tile_router
    from geoservice.ogc.transactions import router as transactions_router
    from geoservice.web.routes import router as web_router

    # Hot read paths first (matching is linear); none of them overlaps a room's route.
    app.include_router(features_router)
    app.include_router(tile_router)
    app.include_router(tiles_router)  # OGC API - Tiles (vector tiles)
    app.include_router(web_router)
    for room in the_rooms:
        if room.pages is not None:
            app.include_router(room.pages)
    for room in the_rooms:
        app.include_router(room.router)
    app.include_router(transactions_router)
    app.include_router(ogc_router)


async def run_shutdown_hooks(rt: Runtime) -> None:
    """Run the hooks rooms put in ``rt.shutdown_hooks`` (last first).

    A hook is a callable without arguments; if it returns an awaitable it is awaited.
    A failing hook is logged and does not stop the others or the store from closing.
    """
    import inspect

    for hook in reversed(rt.shutdown_hooks):
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("shutdown hook %r failed", hook)
