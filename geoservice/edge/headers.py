"""Browser security headers on every response, and the pages' Content-Security-Policy.

Why: the pages show data other people wrote (sighting descriptions, feature properties);
the templates escape it, and the CSP is the second wall if an escape is ever missed: a
page may run only the service's own script files (no inline script, no ``eval``) and load
images and data only from itself and the tile servers configured in ``config.yml``.

Every response: ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy``; HSTS when
``server.url`` is https.  HTML responses also get the CSP, ``X-Frame-Options`` and
``Permissions-Policy`` (geolocation for the map's "near me", nothing else).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoservice.config import Settings

__all__ = ["SecurityHeaders", "content_security_policy", "page_origins"]

HSTS = "max-age=31536000; includeSubDomains"
#: What one page adds to the policy, by path prefix.  Only the 3D viewer, for CesiumJS:
#: its bundled Knockout finds the global object with ``(0, eval)("this")`` when Cesium.js
#: loads (the whole library fails without ``'unsafe-eval'``), its workers
#: ``importScripts`` from ``blob:`` URLs, and its widgets write inline styles.
PAGE_EXCEPTIONS: dict[str, dict[str, str]] = {
    "/3d/": {"script-src": "'unsafe-eval' blob:", "style-src": "'unsafe-inline'"},
}
PERMISSIONS = ("geolocation=(self), camera=(), microphone=(), payment=(), usb=(),"
               " interest-cohort=()")


def page_origins(settings: Settings) -> list[str]:
    """Outside origins the pages may fetch tiles from (basemaps, terrain), from the config.

    The one place that lists them: a new kind of outside source the pages load from is
    added here, and the CSP follows.
    """
    return sorted({o.rstrip("/") for o in settings.basemaps.tile_origins()})


def content_security_policy(settings: Settings, extra: dict[str, str] | None = None) -> str:
    """The pages' CSP: own scripts and styles only; images/data also from tile origins.

    ``blob:`` workers and images: MapLibre decodes tiles in blob workers and CesiumJS
    starts its workers from blobs.  ``'wasm-unsafe-eval'`` lets CesiumJS compile its
    WebAssembly decoders (Draco, KTX2) without allowing JavaScript ``eval``.
    """
    tiles = " ".join(page_origins(settings))
    directives = {
        "default-src": "'self'",
        "script-src": "'self' 'wasm-unsafe-eval'",
        "style-src": "'self'",
        "img-src": f"'self' data: blob: {tiles}",
        "connect-src": f"'self' data: blob: {tiles}",
        "font-src": "'self' data:",
        "worker-src": "'self' blob:",
        "child-src": "'self' blob:",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    for key, more in (extra or {}).items():
        directives[key] = f"{directives[key]} {more}"
    return "; ".join(f"{k} {v.strip()}" for k, v in directives.items())


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.csp = content_security_policy(settings)
        self.page_csp = {path: content_security_policy(settings, extra)
                         for path, extra in PAGE_EXCEPTIONS.items()}
        url = settings.server.url or ""
        self.hsts = url.startswith("https://")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path = scope["path"]
        csp = next((c for p, c in self.page_csp.items() if path.startswith(p)), self.csp)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.add(MutableHeaders(scope=message), csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def add(self, headers: MutableHeaders, csp: str) -> None:
        """The headers for one response (pages get the page-only ones too)."""
        headers["X-Content-Type-Options"] = "nosniff"
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        if self.hsts:
            headers["Strict-Transport-Security"] = HSTS
        if headers.get("content-type", "").startswith("text/html"):
            headers["Content-Security-Policy"] = csp
            headers["X-Frame-Options"] = "DENY"
            headers["Permissions-Policy"] = PERMISSIONS
