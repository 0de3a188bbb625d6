"""The app factory: ``create_app(settings)`` builds everything; nothing happens at import.

The lifespan opens the store, reads the layer specs it was built with, generates the
pygeoapi configuration and OpenAPI document, and registers the store for our provider.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from geoservice import __version__
from geoservice.city3d.static import mount_tiles
from geoservice.config import Settings
from geoservice.edge import openapi as edge_openapi
from geoservice.edge.bodies import BodyGuard
from geoservice.edge.cors import CORS
from geoservice.edge.headers import SecurityHeaders
from geoservice.errors import ServiceError
from geoservice.fastjson import FastJSONResponse
from geoservice.ogc import generated, provider
from geoservice.ogc.pygeoapi_adapter import Pygeoapi, build_config
from geoservice.ogc.runtime import Runtime
from geoservice.store import Store, open_read_store, open_store
from geoservice.web.html import HtmlRenderer

log = logging.getLogger("geoservice")
STATIC = Path(__file__).parent / "web" / "static"


def build_runtime(settings: Settings, store: Store) -> Runtime:
    """Everything requests need, built once."""
    specs = {c: store.spec(c) for c in store.collections()}
    if settings.enabled_layers is not None:
        specs = {k: v for k, v in specs.items() if k in settings.enabled_layers}
    key = str(
        settings.store.path if settings.store.backend == "gpkg" else settings.store.database_url
    )
    provider.register_store(key, store)
    config = build_config(settings, specs, store, key)
    pg = Pygeoapi(config, generated.load_or_build(settings, config))  # shared by workers
    from geoservice.reinfolib.source import ReinfolibSource

    return Runtime(settings, store, specs, pg, HtmlRenderer(settings.server.title),
                   read_store=open_read_store(settings, store),
                   reinfolib=ReinfolibSource.open(settings, store, specs.values()))


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        st = store or open_store(settings)
        app.state.runtime = build_runtime(settings, st)
        for hook in app.state.startup_hooks:
            hook(app.state.runtime)
        try:
            yield
        finally:
            await run_shutdown_hooks(app.state.runtime)
            if app.state.runtime.reinfolib is not None:
                await app.state.runtime.reinfolib.aclose()
            reader = app.state.runtime.read_store
            if reader is not None and reader is not st:
                reader.close()
            if store is None:
                st.close()

    app = FastAPI(
        title="Tokyo GeoTwin API",
        version=__version__,
        lifespan=lifespan,
        description="REST endpoints of Tokyo GeoTwin; the OGC API lives at /ogc/.",
    )
    app.state.startup_hooks = []
    app.state.settings = settings
    install_error_handlers(app)
    # The last added runs first: headers on every response, CORS (preflights answered
    # before routing), then the body guard.
    app.add_middleware(BodyGuard, limits=settings.limits)
    app.add_middleware(CORS, settings=settings.cors)
    app.add_middleware(SecurityHeaders, settings=settings)
    edge_openapi.install(app)
    _include_routers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    mount_tiles(app, settings)  # /3dtiles/… built tilesets (geoservice.city3d.static)
    return app


#: Domain rooms: each package has an ``api`` module with ``router`` (its HTTP routes, declared
#: before the ``/ogc`` routes so a room can serve a more specific OGC path) and
#: ``attach(runtime)`` (builds the room's services once, at start-up).
ROOMS: tuple[str, ...] = (
    "geoservice.hazards",  # before the guide: the guide's answers (and resumed jobs) embed its card
    "geoservice.guide",
    "geoservice.sightings",
    "geoservice.city3d",
)


def _rooms() -> list[Any]:
    import importlib

    return [importlib.import_module(f"{room}.api") for room in ROOMS]


def _pages() -> list[Any]:
    """Rooms' page modules (``<room>.pages`` with ``router`` and a portal ``PAGE`` entry)."""
    import importlib
    import importlib.util

    found = [f"{room}.pages" for room in ROOMS if importlib.util.find_spec(f"{room}.pages")]
    return [importlib.import_module(name) for name in found]


def _portal_links(pages: list[Any]) -> Any:
    def hook(rt: Runtime) -> None:
        rt.services["pages"] = [dict(p.PAGE) for p in pages if hasattr(p, "PAGE")]

    return hook


def _include_routers(app: FastAPI) -> None:
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
    pages = _pages()
    for page in pages:
        app.include_router(page.router)
    add_startup_hook(app, _portal_links(pages))
    for room in _rooms():
        app.include_router(room.router)
        add_startup_hook(app, room.attach)
    app.include_router(transactions_router)
    app.include_router(ogc_router)


async def run_shutdown_hooks(rt: Runtime) -> None:
    """Run the hooks rooms put in ``rt.services["shutdown_hooks"]`` (last first).

    A hook is a callable without arguments; if it returns an awaitable it is awaited.
    A failing hook is logged and does not stop the others or the store from closing.
    """
    import inspect

    for hook in reversed(rt.services.get("shutdown_hooks", [])):
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("shutdown hook %r failed", hook)


def add_startup_hook(app: FastAPI, hook: Any) -> None:
    """Let a domain room add its services to the runtime at start-up."""
    app.state.startup_hooks.append(hook)
