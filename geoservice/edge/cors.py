"""CORS: public reads from any origin; writes, admin and token-bearing requests only from
the origins listed in ``config.yml`` (``cors.write_origins``).

Why two classes: a neighbouring prefecture's web map must read the OGC API, tiles, 3D
Tiles and feeds from its own origin (``Access-Control-Allow-Origin: *``: no cookies are
involved, so a wildcard exposes nothing a plain HTTP client could not fetch), but a page
on an arbitrary origin must not drive a municipality's token into a write.  A request is
"public" when it is a GET/HEAD without ``Authorization``; everything else (writes, the
moderation and audit routes, any request with a token) is answered with CORS headers only
for a listed origin.  Preflights (``OPTIONS`` + ``Access-Control-Request-Method``) are
answered here, before routing.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoservice.config import CorsSettings

__all__ = ["CORS", "EXPOSED"]

PUBLIC_METHODS = frozenset({"GET", "HEAD"})
#: Response headers a cross-origin client may read (OGC API clients need all of them).
EXPOSED = ("ETag, Link, Location, Content-Crs, Content-Type, Content-Length, Last-Modified,"
           " Preference-Applied, Retry-After, WWW-Authenticate, Cache-Control, Vary")
#: Request headers a public read may carry (conditional and content negotiation).
PUBLIC_HEADERS = frozenset({"accept", "accept-language", "content-type", "if-none-match",
                            "if-modified-since", "range", "cache-control"})
WRITE_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


class CORS:
    """ASGI middleware implementing the policy above."""

    def __init__(self, app: ASGIApp, settings: CorsSettings) -> None:
        self.app = app
        self.trusted = frozenset(o.rstrip("/") for o in settings.write_origins)
        self.max_age = str(settings.max_age_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self.preflight(origin, headers)(scope, receive, send)
            return
        public = scope["method"] in PUBLIC_METHODS and "authorization" not in headers

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.allow(MutableHeaders(scope=message), origin, public)
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def allow(self, out: MutableHeaders, origin: str, public: bool) -> None:
        """CORS headers of an actual response (none for an origin that may not read it)."""
        out.add_vary_header("Origin")
        if public:
            out["Access-Control-Allow-Origin"] = "*"
        elif origin in self.trusted:
            out["Access-Control-Allow-Origin"] = origin
        else:
            return
        out["Access-Control-Expose-Headers"] = EXPOSED

    def preflight(self, origin: str, headers: Headers) -> Response:
        """204 allowing the request, or 403 (no CORS headers) naming what is not allowed."""
        method = headers["access-control-request-method"].upper()
        asked = {h.strip().lower() for h in
                 headers.get("access-control-request-headers", "").split(",") if h.strip()}
        public = method in PUBLIC_METHODS and asked <= PUBLIC_HEADERS
        base = {"Vary": "Origin", "Access-Control-Max-Age": self.max_age}
        if public:
            return Response(status_code=204, headers={
                **base, "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                "Access-Control-Allow-Headers": ", ".join(sorted(asked)) or "Accept"})
        if origin.rstrip("/") in self.trusted:
            return Response(status_code=204, headers={
                **base, "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": WRITE_METHODS,
                "Access-Control-Allow-Headers": ", ".join(sorted(asked)) or "Accept"})
        why = (f"origin {origin} may only read (GET/HEAD without a token); writes and"
               " token requests are allowed from cors.write_origins in config.yml")
        return Response(why, status_code=403, media_type="text/plain", headers=base)
