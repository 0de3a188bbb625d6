"""One parser for every request body: size, nesting depth, item count, GeoJSON geometry.

Why one place: a JSON document nested 100,000 deep made Python's decoder raise a
``RecursionError`` (a 500) in each route that called ``json.loads`` itself, and only some
write routes limited the body size.  Now ``BodyGuard`` (ASGI middleware, added by
``create_app``) reads the body of every POST/PUT/PATCH/DELETE once, answers 413 past the size
limit and 400 for a JSON body that breaks a limit, and hands the parsed document to the
route (``request_json``).  Routes that take pydantic models get the same bytes, already
checked.  Geometry limits (vertices, rings) are checked on every GeoJSON geometry object
anywhere in a body, before any route touches shapely.

>>> parse_json(b'{"a": [1, 2]}', BodyLimits())
{'a': [1, 2]}
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoservice.config import BodyLimits
from geoservice.errors import InvalidParameter, PayloadTooLarge, ServiceError

__all__ = ["BodyGuard", "BodyLimits", "check_geometry", "parse_json", "read_body",
           "request_json"]

#: Methods whose body the guard reads (a DELETE may carry one too).
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Where the guard leaves the parsed JSON document for the route (``request.state``).
STATE_KEY = "geoservice_json"
_SURROGATE = re.compile("[\ud800-\udfff]")
_POINTS = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2,
           "Polygon": 2, "MultiPolygon": 3}


class _Duplicate(ValueError):
    pass


def is_json_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` declares JSON (``application/json``, ``…+json``)."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _Duplicate(f"duplicate member name {dup[:80]!r} in an object")
    return obj


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _limits_text(limits: BodyLimits) -> str:
    return (f"accepted: UTF-8 JSON, at most {limits.depth} levels deep, {limits.items} values,"
            f" strings of at most {limits.string_chars} characters, {limits.vertices}"
            f" geometry vertices in {limits.rings} rings")


def parse_json(raw: bytes, limits: BodyLimits) -> Any:
    """Decode a JSON body within ``limits``; anything else is a 400 saying which limit.

    Rejected: invalid UTF-8 or JSON, duplicate member names, ``NaN``/``Infinity``, nesting
    deeper than ``limits.depth``, more than ``limits.items`` values, longer strings or
    unpaired surrogates, and GeoJSON geometries past the vertex or ring limits.
    """
    if not raw.strip():
        raise InvalidParameter("the request body is empty: send a JSON document")
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_constant)
    except UnicodeDecodeError as exc:
        raise InvalidParameter(f"body: not valid UTF-8 (byte {exc.start}); "
                               + _limits_text(limits)) from None
    except RecursionError:
        raise InvalidParameter(f"body: nested deeper than {limits.depth} levels; "
                               + _limits_text(limits)) from None
    except ValueError as exc:
        raise InvalidParameter(f"body: not valid JSON ({str(exc)[:200]})") from None
    check_document(doc, limits)
    return doc


def _check_scalar(value: Any, limits: BodyLimits) -> None:
    if isinstance(value, str):
        if len(value) > limits.string_chars:
            raise InvalidParameter(f"body: a string of {len(value)} characters is longer than"
                                   f" the limit of {limits.string_chars}")
        if not value.isascii() and _SURROGATE.search(value):
            raise InvalidParameter("body: a string holds an unpaired UTF-16 surrogate escape")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidParameter("body: numbers must be finite")


def check_document(doc: Any, limits: BodyLimits) -> None:
    """Walk a decoded document once (iteratively: no recursion to exhaust) within limits."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    items, budget = 0, GeometryBudget(limits)
    while stack:
        node, depth = stack.pop()
        if depth > limits.depth:
            raise InvalidParameter(f"body: nested deeper than {limits.depth} levels")
        if isinstance(node, dict):
            if isinstance(node.get("type"), str) and "coordinates" in node:
                budget.add(node)
            children: Any = node.values()
            for key in node:
                _check_scalar(key, limits)
        elif isinstance(node, list):
            children = node
        else:
            _check_scalar(node, limits)
            continue
        items += len(node)
        if items > limits.items:
            raise InvalidParameter(f"body: more than {limits.items} values (arrays and"
                                   " objects together)")
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            else:
                _check_scalar(child, limits)


class GeometryBudget:
    """Vertices and rings of the GeoJSON geometries of one body, against the limits."""

    def __init__(self, limits: BodyLimits) -> None:
        self.limits = limits
        self.vertices = 0
        self.rings = 0

    def add(self, geometry: dict[str, Any]) -> None:
        """Count one geometry object (malformed ones are left to the geometry parser)."""
        level = _POINTS.get(geometry["type"])
        coords = geometry["coordinates"]
        if level is None or not isinstance(coords, list):
            return
        self.vertices += _positions(coords, level)
        if geometry["type"] in ("Polygon", "MultiPolygon"):
            self.rings += _positions(coords, level - 1)
        if self.vertices > self.limits.vertices:
            raise InvalidParameter(f"geometry: more than {self.limits.vertices} vertices"
                                   " (simplify it, or split the request)")
        if self.rings > self.limits.rings:
            raise InvalidParameter(f"geometry: more than {self.limits.rings} polygon rings")


def _positions(coords: list[Any], level: int) -> int:
    """How many arrays ``level`` list levels below ``coords`` (0: ``coords`` is one)."""
    if level == 0:
        return 1
    if level == 1:
        return len(coords)
    return sum(_positions(c, level - 1) for c in coords if isinstance(c, list))


def check_geometry(geometry: Any, limits: BodyLimits) -> None:
    """The vertex and ring limits for one GeoJSON geometry (e.g. from a query parameter)."""
    if isinstance(geometry, dict) and isinstance(geometry.get("type"), str) \
            and "coordinates" in geometry:
        GeometryBudget(limits).add(geometry)


async def read_body(request: Request, limit: int) -> bytes:
    """The body (already bounded by ``BodyGuard``), or 413 past this route's own ``limit``."""
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body of {len(raw)} bytes exceeds this route's limit"
                              f" of {limit} bytes")
    return raw


async def request_json(request: Request, limit: int | None = None) -> Any:
    """The JSON body as ``BodyGuard`` parsed it (or parsed now, within the same limits)."""
    raw = await read_body(request, limit) if limit is not None else await request.body()
    state = request.scope.get("state") or {}
    if STATE_KEY in state:
        return state[STATE_KEY]
    settings = getattr(request.app.state, "settings", None)
    return parse_json(raw, settings.limits if settings is not None else BodyLimits())


def size_limit(limits: BodyLimits, content_type: str | None) -> int:
    """The byte limit for a body of this type: JSON bodies vs other uploads (CSV, files)."""
    media = (content_type or "").split(";")[0].strip().lower()
    json_like = not media or is_json_type(media)
    return limits.json_bytes if json_like else limits.upload_bytes


class BodyGuard:
    """ASGI middleware: every write request's body read once, within the limits.

    Bodies declared as JSON are parsed by ``parse_json`` and left in ``request.state``;
    the bytes are replayed to the route.  Others are only size-limited here: a route that
    reads them as JSON anyway calls ``request_json``, which parses with the same limits.
    """

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        ctype = headers.get("content-type")
        try:
            raw = await _read(receive, headers.get("content-length"), size_limit(self.limits,
                                                                                  ctype))
            if raw and is_json_type(ctype):
                scope.setdefault("state", {})[STATE_KEY] = parse_json(raw, self.limits)
        except ServiceError as exc:
            await _reject(exc, scope, receive, send)
            return
        await self.app(scope, _replay(raw, receive), send)


async def _read(receive: Receive, declared: str | None, limit: int) -> bytes:
    # ASCII digits only: "²" passes ``str.isdigit`` and then fails ``int`` (a 500)
    if declared is not None and declared.isascii() and declared.isdigit() \
            and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of"
                              f" {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(raw: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


async def _reject(exc: ServiceError, scope: Scope, receive: Receive, send: Send) -> None:
    from geoservice.fastjson import FastJSONResponse

    doc = {"code": exc.code, "description": exc.description}
    # The rest of a refused body is not read: tell the client the connection ends.
    response = FastJSONResponse(doc, status_code=exc.status, headers={"Connection": "close"})
    await response(scope, receive, send)
