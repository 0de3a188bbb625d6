"""Errors of the write side that need HTTP headers (``WWW-Authenticate``, ``Retry-After``)."""

from __future__ import annotations

from geoservice.errors import ServiceError


class HeaderError(ServiceError):
    """A ``ServiceError`` whose class declares default response headers."""


class Unauthorized(HeaderError):
    """No token, or a token that is unknown or revoked."""

    status = 401
    code = "Unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="geotwin"'}


class Forbidden(ServiceError):
    """A valid token that may not do this (another municipality, not an admin)."""

    status = 403
    code = "Forbidden"


class PreconditionFailed(ServiceError):
    """``If-Match`` does not match the current ETag of the feature."""

    status = 412
    code = "PreconditionFailed"


class UnsupportedMediaType(ServiceError):
    """A body in a media type this endpoint does not take."""

    status = 415
    code = "UnsupportedMediaType"


class TooManyRequests(HeaderError):
    """The client exceeded its rate limit."""

    status = 429
    code = "TooManyRequests"
