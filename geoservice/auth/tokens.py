"""Bearer tokens: shown once, stored only as a salted, peppered hash.

A token reads ``gt_<id>_<secret>``: ``id`` (12 hex digits) is the public lookup key and
``secret`` 32 random bytes (URL-safe base64).  The database keeps, per token, a random salt
and ``HMAC-SHA256(pepper, salt || secret)``; the pepper comes from the environment
(``GEOSERVICE_TOKEN_PEPPER``), so a stolen database alone does not allow offline checking.
Verification compares digests in constant time.  With 256-bit secrets no slow KDF is
needed: guessing is infeasible, and the hash only has to be one-way.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from geoservice.state import StateDB

PEPPER_ENV = "GEOSERVICE_TOKEN_PEPPER"
_TOKEN = re.compile(r"^gt_([0-9a-f]{12})_([A-Za-z0-9_\-]{20,})$")
_CODE = re.compile(r"^\d{5}$")


def now_utc() -> str:
    """The current UTC time in ISO form (``…Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request: a named token scoped to a municipality, or an admin."""

    token_id: str
    name: str
    municipality: str | None
    admin: bool

    @property
    def label(self) -> str:
        """``name (municipality)`` for audit records and messages."""
        scope = "admin" if self.admin else self.municipality
        return f"{self.name} ({scope})"

    def may_access(self, municipality: str | None) -> bool:
        """Admins access everything; a municipality token its own municipality only."""
        return self.admin or (municipality is not None and municipality == self.municipality)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token without its secret."""

    id: str
    name: str
    municipality: str | None
    admin: bool
    created_at: str
    revoked_at: str | None


def _digest(pepper: bytes, salt: bytes, secret: str) -> str:
    return hmac.new(pepper, salt + secret.encode("utf-8"), hashlib.sha256).hexdigest()


class TokenStore:
    """Create, verify, list and revoke tokens in the auth database."""

    def __init__(self, db: StateDB, pepper: str | None = None) -> None:
        self.db = db
        self.pepper = (pepper if pepper is not None else os.environ.get(PEPPER_ENV, "")).encode()

    def create(
        self, name: str, municipality: str | None = None, admin: bool = False
    ) -> tuple[str, TokenInfo]:
        """Make a token; return its plaintext (show it once, it is not kept) and its record."""
        name = name.strip()
        if not name:
            raise ValueError("a token needs a name")
        if not admin and (municipality is None or not _CODE.match(municipality)):
            raise ValueError(
                "a municipality token needs --municipality with a 5-digit 全国地方公共団体コード"
                " (e.g. 13308 for 奥多摩町), or use --admin"
            )
        if municipality is not None and not _CODE.match(municipality):
            raise ValueError(f"municipality {municipality!r} is not a 5-digit code")
        tid = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        info = TokenInfo(tid, name, municipality, admin, now_utc(), None)
        with self.db.write() as con:
            con.execute(
                "INSERT INTO tokens (id, name, municipality, admin, salt, hash, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    tid,
                    name,
                    municipality,
                    int(admin),
                    salt.hex(),
                    _digest(self.pepper, salt, secret),
                    info.created_at,
                ),
            )
        return f"gt_{tid}_{secret}", info

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token; ``None`` otherwise."""
        m = _TOKEN.match(token.strip())
        if m is None:
            return None
        tid, secret = m.groups()
        row = self.db.execute(
            "SELECT name, municipality, admin, salt, hash, revoked_at FROM tokens WHERE id = ?",
            (tid,),
        ).fetchone()
        if row is None:
            # Spend the same work as a real check so timing does not reveal known ids.
            hmac.compare_digest(_digest(self.pepper, b"", secret), "0" * 64)
            return None
        name, municipality, admin, salt, digest, revoked = row
        ok = hmac.compare_digest(_digest(self.pepper, bytes.fromhex(salt), secret), digest)
        if not ok or revoked is not None:
            return None
        return Principal(tid, name, municipality, bool(admin))

    def list(self) -> list[TokenInfo]:
        """Every token (revoked ones included), oldest first."""
        rows = self.db.execute(
            "SELECT id, name, municipality, admin, created_at, revoked_at FROM tokens"
            " ORDER BY created_at, id"
        ).fetchall()
        return [TokenInfo(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]

    def revoke(self, id_or_name: str) -> int:
        """Revoke the token with this id (or every live token with this name); return count."""
        with self.db.write() as con:
            cur = con.execute(
                "UPDATE tokens SET revoked_at = ? WHERE revoked_at IS NULL"
                " AND (id = ? OR name = ?)",
                (now_utc(), id_or_name, id_or_name),
            )
            return cur.rowcount


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, if any."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
