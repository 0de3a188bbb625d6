"""One error hierarchy: every error carries its HTTP status, an OGC code and a safe message.

Services raise these; the HTTP layer turns them into OGC exception documents
(``{"code", "description"}``).  Nothing else about an exception reaches a client.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: a failure the client can be told about."""

    status: int = 500
    code: str = "ServerError"
    #: Response headers the error needs (``WWW-Authenticate``, ``Retry-After``).
    headers: dict[str, str] = {}

    def __init__(self, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.headers = dict(headers or self.headers)


class InvalidParameter(ServiceError):
    """A query parameter or body field has a value that is not accepted."""

    status = 400
    code = "InvalidParameterValue"


class UnknownParameter(ServiceError):
    """A query parameter that this endpoint does not define."""

    status = 400
    code = "InvalidParameterValue"


class NotFound(ServiceError):
    """A collection, item or other resource that does not exist."""

    status = 404
    code = "NotFound"


class Unprocessable(ServiceError):
    """Well-formed input that cannot be acted on (a missing field, a value out of scope)."""

    status = 422
    code = "UnprocessableEntity"


class Conflict(ServiceError):
    """The write would clash with the current state (duplicate id, failed precondition)."""

    status = 409
    code = "Conflict"


class SourceError(ServiceError):
    """A source file could not be read or parsed (used by loaders and builds)."""

    status = 400
    code = "InvalidSource"


class PayloadTooLarge(ServiceError):
    """The request body exceeds the limit."""

    status = 413
    code = "PayloadTooLarge"
