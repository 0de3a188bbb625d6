"""Tokens, scoped write access and the audit journal (``auth.sqlite``, or on PostGIS the
schema ``geoservice_auth``; see ``geoservice.state``).

- ``tokens``: bearer tokens, shown once, stored as salted + peppered HMAC-SHA256 hashes;
- ``audit``: the write journal (pending → committed / aborted; crash-detectable);
- ``scope``: the municipality of a point (index over ``admin-boundaries``);
- ``writes``: ``GuardedWriter``, the one path of every feature write;
- ``ratelimit``: a per-key sliding window shared by all server processes;
- ``http``: the FastAPI glue (services of a runtime, caller, body limits, error headers).
"""

from geoservice.auth.audit import AuditLog
from geoservice.auth.db import AuthDB, auth_db_path
from geoservice.auth.tokens import Principal, TokenInfo, TokenStore

__all__ = ["AuditLog", "AuthDB", "Principal", "TokenInfo", "TokenStore", "auth_db_path"]
