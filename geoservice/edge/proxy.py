"""Links that follow the request's public address behind a reverse proxy.

Why: links (OGC API ``links``, ``Location``, the pages' hrefs, pygeoapi's documents) are
written with one base URL, ``server.url`` or else the address served.  Behind a proxy that
publishes the service under another host, scheme or path prefix, and with ``server.url``
unset, a client would follow links to the internal address.  With
``server.trust_forwarded: true`` the proxy's ``Forwarded`` (RFC 7239) or
``X-Forwarded-Proto/-Host/-Port/-Prefix`` headers name the public base of each request,
and this middleware rewrites the configured base into it in text responses and in the
``Location``/``Link`` headers.  One place, so pygeoapi's documents and ours agree.  Only
enable it behind a proxy that sets (or strips) those headers: a client could otherwise
choose the host its own links name.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ForwardedLinks", "forwarded_base"]

#: Response types whose bodies carry links (binary tiles and event streams do not).
_TEXT = re.compile(r"^(text/(html|plain|xml|csv)|application/([\w.+-]*json|[\w.+-]*xml))")
_TOKEN = re.compile(r"^[A-Za-z0-9.:\[\]_-]+$")


def _forwarded_pairs(value: str) -> dict[str, str]:
    """The first element of an RFC 7239 ``Forwarded`` header as lower-case pairs."""
    first = value.split(",")[0]
    pairs = (p.split("=", 1) for p in first.split(";") if "=" in p)
    return {k.strip().lower(): v.strip().strip('"') for k, v in pairs}


def forwarded_base(headers: Headers) -> str | None:
    """``scheme://host[:port][/prefix]`` the proxy says the client used; None if none said.

    >>> forwarded_base(Headers({"x-forwarded-host": "geo.example.jp",
    ...                         "x-forwarded-proto": "https"}))
    'https://geo.example.jp'
    """
    fwd = _forwarded_pairs(headers.get("forwarded", ""))
    host = fwd.get("host") or headers.get("x-forwarded-host", "").split(",")[0].strip()
    if not host or not _TOKEN.match(host):
        return None
    proto = (fwd.get("proto") or headers.get("x-forwarded-proto", "http")).split(",")[0]
    proto = "https" if proto.strip().lower() == "https" else "http"
    port = headers.get("x-forwarded-port", "").split(",")[0].strip()
    if port.isdigit() and ":" not in host.rsplit("]", 1)[-1]:
        default = {"http": "80", "https": "443"}[proto]
        host = host if port == default else f"{host}:{port}"
    prefix = headers.get("x-forwarded-prefix", "").split(",")[0].strip().rstrip("/")
    if prefix and not re.fullmatch(r"(/[\w.~-]+)+", prefix):
        prefix = ""
    return f"{proto}://{host}{prefix}"


class ForwardedLinks:
    """ASGI middleware: the configured base URL → the request's forwarded base."""

    def __init__(self, app: ASGIApp, base_url: str) -> None:
        self.app = app
        self.base = base_url.rstrip("/").encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        public = forwarded_base(Headers(scope=scope)) if scope["type"] == "http" else None
        if public is None or public.encode() == self.base:
            await self.app(scope, receive, send)
            return
        new = public.encode()
        state: dict[str, object] = {}

        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name in ("location", "link", "content-location"):
                    if name in headers:
                        headers[name] = headers[name].replace(self.base.decode(), public)
                headers.add_vary_header("Forwarded, X-Forwarded-Host, X-Forwarded-Proto")
                if _TEXT.match(headers.get("content-type", "")):
                    state["start"], state["chunks"] = message, []
                    return
                await send(message)
            elif "start" in state:
                chunks = state["chunks"]
                assert isinstance(chunks, list)
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._flush(state, new, send)
            else:
                await send(message)

        await self.app(scope, receive, rewrite)

    async def _flush(self, state: dict[str, object], new: bytes, send: Send) -> None:
        chunks = state["chunks"]
        start = state["start"]
        assert isinstance(chunks, list) and isinstance(start, dict)
        body = b"".join(chunks).replace(self.base, new)
        headers = MutableHeaders(scope=start)
        if "content-length" in headers:
            headers["content-length"] = str(len(body))
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})
