"""E-mail alert subscriptions: double opt-in, signed links, matching and the outbox senders.

A citizen gives an address, an area (a point and radius, a polygon, or a municipality),
species, ``immediate`` or daily ``digest`` mode and ``ja``/``en``.  Nothing but a
confirmation mail is ever sent before the link in it is followed: the subscription row
waits unconfirmed (and is deleted once its link expires).  Every later mail carries a
one-click unsubscribe link (RFC 8058); unsubscribing deletes the row, address and all.

Mails go through the alerts outbox like webhooks (``Dispatcher.senders``): the confirmation
(kind ``email_confirm``), each immediate alert (``email``) and each sighting of a digest
(``email_digest``, due at the digest hour - the first one claimed takes its siblings, so a
day's sightings leave in one mail).  An SMTP server that is down only delays them.

Addresses are stored AES-GCM encrypted, found again by a keyed hash, and never logged or
shown back except masked (``t***@e***.jp``).  The key comes from the environment variable
named by ``alerts.email.key_env``; without one a random key is kept in the alerts database
(links and ciphertexts then survive restarts but not a lost database).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.prepared import PreparedGeometry, prep

from geoservice.config import AlertSettings
from geoservice.errors import InvalidParameter, ServiceError
from geoservice.features import Feature
from geoservice.sightings.email_schema import CONFIRM, DIGEST, EMAIL
from geoservice.state import StateDB

log = logging.getLogger("geoservice.email")

MODES = ("immediate", "digest")
LANGS = ("ja", "en")
JST = timedelta(hours=9)

#: ASCII addr-spec with a dot-atom local part and a host name (no quoted parts, no IP
#: literals, no internationalised addresses: what every relay accepts)
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+$")
ACCEPTED = (
    "a plain address such as name@example.jp: ASCII letters, digits and !#$%&'*+/=?^_`{|}~- "
    "in the part before @ (dots between them), a domain name with at least one dot after it, "
    "at most 254 characters"
)


class TokenRejected(ServiceError):
    """A confirmation or unsubscribe link that is forged, used or expired (nothing done)."""

    status = 410
    code = "InvalidToken"


class ForgedToken(TokenRejected):
    """A link whose signature does not verify."""

    status = 403


def check_address(raw: Any) -> str:
    """The address, stripped; 400 saying what is accepted unless it is a plain address."""
    if not isinstance(raw, str):
        raise InvalidParameter(f"email must be a string: {ACCEPTED}")
    addr = raw.strip()
    local = addr.rsplit("@", 1)[0]
    if len(addr) > 254 or len(local) > 64 or not ADDRESS.match(addr):
        raise InvalidParameter(f"email is not an accepted address; expected {ACCEPTED}")
    return addr


def mask(addr: str) -> str:
    """``t***@e***.jp``: enough for its owner to recognise, useless to anyone else."""
    local, _, domain = addr.partition("@")
    tld = domain.rsplit(".", 1)[-1]
    return f"{local[:1]}***@{domain[:1]}***.{tld}"


class Keys:
    """The secrets derived from one master key: link signing, address hashing, encryption."""

    def __init__(self, master: bytes) -> None:
        def derive(purpose: str) -> bytes:
            return hmac.new(master, purpose.encode(), hashlib.sha256).digest()

        self._sign = derive("geotwin-email-links")
        self._hash = derive("geotwin-email-address-hash")
        self._aead = AESGCM(derive("geotwin-email-address-encryption"))

    def address_hash(self, addr: str) -> str:
        """Keyed hash of the lower-cased address (duplicates, rate limits)."""
        return hmac.new(self._hash, addr.lower().encode(), hashlib.sha256).hexdigest()

    def encrypt(self, addr: str, sid: str) -> str:
        """AES-GCM ciphertext of ``addr`` bound to its subscription id."""
        nonce = secrets.token_bytes(12)
        ct = self._aead.encrypt(nonce, addr.encode(), sid.encode())
        return base64.urlsafe_b64encode(nonce + ct).decode()

    def decrypt(self, blob: str, sid: str) -> str:
        """The address back from ``encrypt``."""
        raw = base64.urlsafe_b64decode(blob.encode())
        return self._aead.decrypt(raw[:12], raw[12:], sid.encode()).decode()

    def token(self, purpose: str, sid: str, nonce: str, expires: int) -> str:
        """A link token: ``purpose.sid.nonce.expires.signature`` (URL-safe)."""
        payload = f"{purpose}.{sid}.{nonce}.{expires}"
        return f"{payload}.{self._signature(payload)}"

    def verify(self, token: str, purpose: str, now: float) -> tuple[str, str]:
        """(subscription id, nonce) of a valid token; raises ``TokenRejected`` otherwise."""
        payload, _, sig = token.rpartition(".")
        parts = payload.split(".")
        if (
            len(parts) != 4
            or parts[0] != purpose
            or not parts[3].isdigit()
            or len(parts[3]) > 12
            or not hmac.compare_digest(sig.encode(), self._signature(payload).encode())
        ):
            raise ForgedToken("this link is not valid (it was altered or not issued by us); "
                              "nothing was changed")
        _, sid, nonce, expires = parts
        if int(expires) and int(expires) < now:
            raise TokenRejected("this link has expired; nothing was changed - subscribe again")
        return sid, nonce

    def _signature(self, payload: str) -> str:
        mac = hmac.new(self._sign, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")


@dataclass(frozen=True)
class EmailSubscription:
    """A confirmed subscription as matching needs it."""

    id: str
    prepared: PreparedGeometry | None
    municipality: str | None
    species: frozenset[str]
    digest: bool

    def matches(self, f: Feature) -> bool:
        """Whether a (published) sighting is of interest; matched on its exact position."""
        if self.species and f.properties.get("species") not in self.species:
            return False
        if self.municipality is not None:
            return str(f.properties.get("municipality_code") or "") == self.municipality
        geom = f.geometry
        return (
            self.prepared is not None
            and geom is not None
            and not geom.is_empty
            and bool(self.prepared.intersects(geom))
        )


@dataclass(frozen=True)
class Recipient:
    """What a sender needs about a subscription (the address decrypted, in memory only)."""

    id: str
    address: str
    lang: str
    mode: str
    confirmed: bool
    confirm_nonce: str | None
    unsub_nonce: str
    expires_at: float


_ROW = ("id", "addr_enc", "lang", "mode", "confirmed", "confirm_nonce", "unsub_nonce",
        "expires_at")


class EmailAlerts:
    """The subscriptions of e-mail alerts in the alerts database (thread-safe)."""

    def __init__(self, db: StateDB, settings: AlertSettings, master: bytes | None = None) -> None:
        self.db = db
        self.settings = settings
        self.keys = Keys(master or self._master())
        self._subs: tuple[int, list[EmailSubscription]] = (-1, [])

    def _master(self) -> bytes:
        """The master key: from the environment, else one kept in the database."""
        import os

        env = os.environ.get(self.settings.email.key_env)
        if env:
            return hashlib.sha256(env.encode()).digest()
        fresh = base64.b64encode(secrets.token_bytes(32)).decode()
        self.db.execute(
            "INSERT INTO email_keys (name, value) VALUES ('master', ?) ON CONFLICT DO NOTHING",
            (fresh,),
        )
        row = self.db.execute("SELECT value FROM email_keys WHERE name = 'master'").fetchone()
        assert row is not None
        return base64.b64decode(row[0])

    # -- subscribing ---------------------------------------------------------------------

    def subscribe(
        self,
        addr: str,
        area: BaseGeometry | None,
        municipality: str | None,
        area_input: Any,
        species: list[str],
        mode: str,
        lang: str,
    ) -> tuple[str | None, str | None]:
        """Store an unconfirmed subscription (or find the same one) and queue its
        confirmation mail; returns (subscription id, address hash for the rate limit).

        The same address asking for the same alert again gets a fresh confirmation while
        unconfirmed, and nothing once confirmed - the caller answers the same either way.
        Returns (None, hash) when nothing is to be sent."""
        now = time.time()
        h = self.keys.address_hash(addr)
        area_json = json.dumps(area_input, sort_keys=True)
        species_json = json.dumps(sorted(set(species)))
        self.purge_unconfirmed(now)
        expires = now + self.settings.email.confirm_ttl_h * 3600
        nonce = secrets.token_urlsafe(16)
        with self.db.write() as con:
            row = con.execute(
                "SELECT id, confirmed FROM email_subscriptions WHERE addr_hash = ?"
                " AND area_input = ? AND species = ? AND mode = ? AND lang = ?",
                (h, area_json, species_json, mode, lang),
            ).fetchone()
            if row is not None and row[1]:
                return None, h
            if row is not None:
                sid = str(row[0])
                con.execute(
                    "UPDATE email_subscriptions SET confirm_nonce = ?, expires_at = ?"
                    " WHERE id = ?",
                    (nonce, expires, sid),
                )
            else:
                sid = uuid.uuid4().hex
                con.execute(
                    "INSERT INTO email_subscriptions (id, addr_hash, addr_enc, area,"
                    " municipality, area_input, species, mode, lang, confirmed, confirm_nonce,"
                    " unsub_nonce, created_at, expires_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                    (
                        sid, h, self.keys.encrypt(addr, sid),
                        "" if area is None else json.dumps(mapping(area)),
                        municipality, area_json, species_json, mode, lang, nonce,
                        secrets.token_urlsafe(16), now, expires,
                    ),
                )
            con.execute(
                "INSERT INTO deliveries (event_id, subscription_id, kind, next_attempt_at,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (f"confirm.{nonce}", sid, CONFIRM, now, now),
            )
        return sid, h

    def check(self, token: str, kind: str) -> Recipient:
        """The subscription a link (``confirm`` or ``unsubscribe``) would act on, without
        acting; raises ``TokenRejected`` as the POST would."""
        sid, nonce = self.keys.verify(token, "c" if kind == "confirm" else "u", time.time())
        rec = self.recipient(sid)
        if kind == "confirm" and (rec is None or rec.confirmed or rec.confirm_nonce != nonce):
            raise TokenRejected("this link was already used or is no longer valid; "
                                "nothing was changed")
        if rec is None:
            raise TokenRejected("this link was already used: the address is not subscribed")
        return rec

    def confirm(self, token: str) -> Recipient:
        """Confirm the subscription of a confirmation link (single use, expiring)."""
        sid, nonce = self.keys.verify(token, "c", time.time())
        with self.db.write() as con:
            row = con.execute(
                "SELECT confirmed, confirm_nonce FROM email_subscriptions WHERE id = ?", (sid,)
            ).fetchone()
            if row is None:
                raise TokenRejected("this link is no longer valid (the subscription expired "
                                    "or was cancelled); nothing was changed")
            if row[0] or row[1] != nonce:
                raise TokenRejected("this link was already used; nothing was changed")
            con.execute(
                "UPDATE email_subscriptions SET confirmed = 1, confirm_nonce = NULL WHERE id = ?",
                (sid,),
            )
            con.execute("UPDATE meta SET value = value + 1 WHERE key = 'email_version'")
        rec = self.recipient(sid)
        assert rec is not None
        return rec

    def unsubscribe(self, token: str) -> Recipient:
        """Delete the subscription of an unsubscribe link (address and all) and cancel its
        pending mails; returns what it was (for the page: masked address, language)."""
        sid, nonce = self.keys.verify(token, "u", time.time())
        rec = self.recipient(sid)
        if rec is None:
            raise TokenRejected("this link was already used: the address is not subscribed; "
                                "nothing was changed")
        if not hmac.compare_digest(rec.unsub_nonce, nonce):
            raise ForgedToken("this link is not valid; nothing was changed")
        self._delete(sid)
        return rec

    def _delete(self, sid: str) -> None:
        with self.db.write() as con:
            con.execute("DELETE FROM email_subscriptions WHERE id = ?", (sid,))
            con.execute(
                "UPDATE deliveries SET status = 'cancelled', lease_owner = NULL, lease_until = 0,"
                " last_error = 'unsubscribed' WHERE subscription_id = ? AND status = 'pending'",
                (sid,),
            )
            con.execute("UPDATE meta SET value = value + 1 WHERE key = 'email_version'")

    def purge_unconfirmed(self, now: float | None = None) -> int:
        """Delete unconfirmed subscriptions whose confirmation link has expired."""
        t = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT id FROM email_subscriptions WHERE confirmed = 0 AND expires_at < ?", (t,)
        ).fetchall()
        for (sid,) in rows:
            self._delete(str(sid))
        return len(rows)

    def recipient(self, sid: str) -> Recipient | None:
        """A subscription with its address decrypted, or None when it is gone."""
        row = self.db.execute(
            f"SELECT {', '.join(_ROW)} FROM email_subscriptions WHERE id = ?", (sid,)
        ).fetchone()
        if row is None:
            return None
        d = dict(zip(_ROW, row, strict=True))
        return Recipient(
            sid, self.keys.decrypt(d["addr_enc"], sid), d["lang"], d["mode"],
            bool(d["confirmed"]), d["confirm_nonce"], d["unsub_nonce"], float(d["expires_at"]),
        )

    def links(self, rec: Recipient, base: str) -> dict[str, str]:
        """The confirmation (while unconfirmed) and unsubscribe URLs of a subscription."""
        out = {
            "unsubscribe": f"{base}/api/subscriptions/unsubscribe?token="
            + self.keys.token("u", rec.id, rec.unsub_nonce, 0),
        }
        if rec.confirm_nonce:
            token = self.keys.token("c", rec.id, rec.confirm_nonce, int(rec.expires_at))
            out["confirm"] = f"{base}/api/subscriptions/confirm?token={token}"
        return out

    # -- matching ------------------------------------------------------------------------

    def subscriptions(self) -> list[EmailSubscription]:
        """Confirmed subscriptions with prepared areas (reloaded only when they changed)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'email_version'").fetchone()
        version = int(row[0]) if row else 0
        if version == self._subs[0]:
            return self._subs[1]
        subs = []
        for sid, area, muni, species, mode in self.db.execute(
            "SELECT id, area, municipality, species, mode FROM email_subscriptions"
            " WHERE confirmed = 1 ORDER BY id"
        ):
            geom = prep(shape(json.loads(area))) if area else None
            subs.append(EmailSubscription(
                sid, geom, muni, frozenset(json.loads(species)), mode == "digest"
            ))
        self._subs = (version, subs)
        return subs

    def match(self, f: Feature) -> list[tuple[str, str, float]]:
        """The outbox rows a published sighting makes: (subscription id, kind, due at)."""
        now = time.time()
        out = []
        for s in self.subscriptions():
            if s.matches(f):
                due = next_digest(now, self.settings.email.digest_hour_jst) if s.digest else now
                out.append((s.id, DIGEST if s.digest else EMAIL, due))
        return out

    # -- digests -------------------------------------------------------------------------

    def take_digest(self, sid: str, owner: str, token: str, lease_s: float) -> list[
        tuple[int, str]
    ]:
        """Lease every due digest row of a subscription to ``token`` in one statement -
        rows free or held by this process's dispatcher (``owner``), so the first of its
        tasks to get here carries the day's sightings and the others find none left.
        Returns [(delivery id, feature JSON)], oldest first."""
        now = time.time()
        self.db.execute(
            "UPDATE deliveries SET lease_owner = ?, lease_until = ?"
            " WHERE subscription_id = ? AND kind = ? AND status = 'pending'"
            " AND next_attempt_at <= ? AND (lease_until <= ? OR lease_owner = ?)",
            (token, now + lease_s, sid, DIGEST, now, now, owner),
        )
        rows = self.db.execute(
            "SELECT d.id, e.feature FROM deliveries d JOIN events e ON e.event_id = d.event_id"
            " WHERE d.lease_owner = ? AND d.status = 'pending' ORDER BY e.seq",
            (token,),
        ).fetchall()
        return [(int(i), str(f)) for i, f in rows]

    def settle_digest(self, token: str, outcome: str, delay_s: float,
                      error: str | None) -> None:
        """Record the outcome of a digest mail (``delivered``, ``dead`` or ``retry`` in
        ``delay_s``) on the rows ``token`` carried."""
        if outcome == "dead":
            self.db.execute(
                "UPDATE deliveries SET status = 'dead', last_error = ?, lease_owner = NULL,"
                " lease_until = 0 WHERE lease_owner = ?",
                (error, token),
            )
        elif outcome == "delivered":
            self.db.execute(
                "UPDATE deliveries SET status = 'delivered', delivered_at = ?, last_status = 250,"
                " lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?",
                (time.time(), token),
            )
        else:
            self.db.execute(
                "UPDATE deliveries SET next_attempt_at = ?, last_error = ?, lease_owner = NULL,"
                " lease_until = 0 WHERE lease_owner = ?",
                (time.time() + delay_s, error, token),
            )


def next_digest(now: float, hour_jst: int) -> float:
    """The next ``hour_jst``:00 Japan time after ``now`` (epoch seconds)."""
    local = datetime.fromtimestamp(now, UTC) + JST
    at = local.replace(hour=hour_jst, minute=0, second=0, microsecond=0)
    if at <= local:
        at += timedelta(days=1)
    return (at - JST).timestamp()

