"""The error answers of ``/api`` write routes, in their OpenAPI document (``/docs``).

Why: FastAPI documents only what a route declares (its success code and 422), but every
write route can also get the edge's 400 (a body past a limit) and 413, and the rooms
raise 401/403/404/409/415/429 through the one error map.  Fuzzing checks that every
status answered is documented, so they are listed here for every write operation.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

WRITE_METHODS = ("post", "put", "patch", "delete")
ERRORS = {
    "400": "Invalid input (a body past a limit, a bad parameter)",
    "401": "No token, or an unknown or revoked one",
    "403": "The token may not do this",
    "404": "No such resource",
    "409": "Conflict with the current state",
    "413": "The request body is too large",
    "415": "Unsupported Content-Type",
    "422": "Well-formed input that cannot be acted on",
    "429": "Too many requests (see Retry-After)",
}
_EXCEPTION = {"application/json": {"schema": {
    "type": "object", "required": ["code", "description"],
    "properties": {"code": {"type": "string"}, "description": {"type": "string"}}}}}


def with_write_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the OGC exception answers added to every write operation."""
    for item in doc.get("paths", {}).values():
        for method in WRITE_METHODS:
            op = item.get(method)
            if op is None:
                continue
            responses = op.setdefault("responses", {})
            for code, text in ERRORS.items():
                responses.setdefault(code, {"description": text, "content": _EXCEPTION})
    return doc


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the document with the write errors (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_write_errors(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
