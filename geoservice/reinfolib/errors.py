"""Why an API layer could not be used: one typed error with a stable ``reason`` code.

Descriptions are written here, from the status and our own words, never from the
upstream body or request headers, so they can never carry the subscription key.
"""

from __future__ import annotations

from typing import Literal

from geoservice.errors import ServiceError

Reason = Literal[
    "not-configured",
    "unauthorized",
    "bad-request",
    "not-found",
    "timeout",
    "rate-limited",
    "server-error",
    "bad-body",
    "bad-pbf",
    "zoom-out-of-range",
    "budget-exhausted",
    "site-too-large",
    "unreachable",
]

#: Reasons worth a retry with back-off (the operator's transient answers).
RETRYABLE: frozenset[str] = frozenset({"timeout", "rate-limited", "server-error", "unreachable"})


class ReinfolibError(ServiceError):
    """A request to the 不動産情報ライブラリ API failed (or could not be made)."""

    status = 502
    code = "UpstreamError"

    def __init__(self, reason: Reason, description: str, *, api: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(description)
        self.reason: Reason = reason
        self.api = api
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, str | None]:
        """The JSON form answers use: ``{"reason", "description", "api"}``."""
        return {"reason": self.reason, "description": self.description, "api": self.api}


def status_error(api: str, status: int, retry_after: float | None = None) -> ReinfolibError:
    """The error for a non-200 HTTP status of the API (documented: 400, 401, 404, 429, 5xx)."""
    where = f"不動産情報ライブラリ API {api}"
    if status == 401:
        return ReinfolibError("unauthorized", f"{where}: the API key was refused (HTTP 401); "
                              "check the key in the configured environment variable", api=api)
    if status == 403:  # not in the manual; API gateways use it for a suspended key or quota
        return ReinfolibError("unauthorized", f"{where}: access was refused (HTTP 403); the "
                              "key may be suspended or over its quota", api=api)
    if status == 400:
        return ReinfolibError("bad-request", f"{where}: the request parameters were refused "
                              "(HTTP 400)", api=api)
    if status == 404:
        return ReinfolibError("not-found", f"{where}: no such API (HTTP 404)", api=api)
    if status == 429:
        return ReinfolibError("rate-limited", f"{where}: too many requests (HTTP 429)",
                              api=api, retry_after=retry_after)
    if status >= 500:
        return ReinfolibError("server-error", f"{where}: server error (HTTP {status})", api=api)
    return ReinfolibError("bad-body", f"{where}: unexpected HTTP status {status}", api=api)
