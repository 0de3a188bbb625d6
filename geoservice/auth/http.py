"""HTTP glue of the write side: the auth services of a runtime and the caller."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from fastapi import Request

from geoservice.auth.audit import AuditLog
from geoservice.auth.db import open_auth_db
from geoservice.auth.errors import Unauthorized
from geoservice.auth.scope import MunicipalityIndex
from geoservice.auth.tokens import Principal, TokenStore, bearer
from geoservice.auth.writes import GuardedWriter
from geoservice.catalogue import LayerSpec
from geoservice.config import Settings
from geoservice.runtime import Runtime
from geoservice.state import StateDB
from geoservice.store import Store

_lock = threading.Lock()


@dataclass
class AuthServices:
    """Tokens, audit, the municipality index and the guarded writer of one app."""

    db: StateDB
    tokens: TokenStore
    audit: AuditLog
    index: MunicipalityIndex
    writer: GuardedWriter

    def caller(self, request: Request) -> Principal | None:
        """The principal of the request's bearer token; ``None`` without one.

        An invalid or revoked token raises 401 (so a client never mistakes a bad token for
        anonymous access on a write).
        """
        token = bearer(request.headers.get("authorization"))
        if token is None:
            return None
        who = self.tokens.verify(token)
        if who is None:
            raise Unauthorized(
                "the bearer token is unknown or revoked",
                {"WWW-Authenticate": 'Bearer realm="geotwin", error="invalid_token"'},
            )
        return who

    def require(self, request: Request) -> Principal:
        """The caller, or 401 with ``WWW-Authenticate: Bearer``."""
        who = self.caller(request)
        if who is None:
            raise Unauthorized("this endpoint needs 'Authorization: Bearer <token>'")
        return who

    def reader(self, request: Request) -> Principal | None:
        """The caller for reads: a bad token reads as anonymous (public view)."""
        token = bearer(request.headers.get("authorization"))
        return None if token is None else self.tokens.verify(token)


def auth_services(rt: Runtime) -> AuthServices:
    """The auth services of a runtime, built once (at start-up by the sightings room)."""
    svc = rt.services.get(AuthServices)
    if svc is not None:
        return svc
    with _lock:
        svc = rt.services.get(AuthServices)
        if svc is None:
            svc = rt.services.put(build_auth_services(rt.settings, rt.store, rt.specs))
    return svc


def build_auth_services(
    settings: Settings, store: Store, specs: dict[str, LayerSpec]
) -> AuthServices:
    """Open the auth database, index the municipalities, resolve interrupted writes."""
    db = open_auth_db(settings, store)
    audit = AuditLog(db)
    index = MunicipalityIndex.from_store(store)
    tokens = TokenStore(db, settings.auth.pepper)
    svc = AuthServices(db, tokens, audit, index, GuardedWriter(store, specs, audit, index))
    audit.reconcile(store)
    return svc
