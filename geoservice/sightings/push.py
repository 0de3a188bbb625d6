"""Web Push alerts: a browser's push subscription as an outbox delivery kind.

A phone or browser that allows notifications subscribes on ``/map/`` (the service worker's
``PushManager.subscribe`` with this server's VAPID public key) and posts its
``PushSubscription`` to ``POST /api/subscriptions`` as ``push`` in place of ``webhook``.
Each matching published sighting then becomes a ``push`` delivery in the durable outbox
(exactly once per subscription and event, retried like webhooks), which ``PushSender``
sends to the subscription's endpoint at its push service:

- the payload (a small JSON, below 4 KiB) is encrypted for the browser per RFC 8291
  (``Content-Encoding: aes128gcm``, RFC 8188) with the subscription's ``p256dh`` and
  ``auth`` keys - ``pywebpush`` does this;
- the request carries a VAPID (RFC 8292) ``Authorization: vapid t=<ES256 JWT>, k=<public
  key>`` whose ``aud`` is the push service's origin - ``py_vapid`` signs it;
- 201/202 is delivered; 404/410 mean the browser dropped the subscription, so it is
  deleted (never retried); 429 and 5xx are retried with back-off, honouring
  ``Retry-After``; 400/401/403/413 cannot succeed on retry and are dead at once.

The payload is built from the event as recorded, which is already the public view of the
sighting (sensitive records at the centre of their grid cell, see ``events.public_geojson``);
pending reports never become events, so they are never pushed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid
from pywebpush import WebPusher

from geoservice.config import Settings, WebPushSettings
from geoservice.errors import Unprocessable
from geoservice.runtime import Runtime
from geoservice.sightings.alerts import Claimed, Outbox, Outcome

log = logging.getLogger("geoservice.push")

#: The delivery kind of a Web Push message (``Dispatcher.senders``).
PUSH = "push"
JST = timedelta(hours=9)
#: A P-256 public key as an uncompressed point, and the auth secret (RFC 8291 §3)
P256DH_BYTES = 65
AUTH_BYTES = 16
#: Push services must accept at least 4096 bytes of encrypted payload (RFC 8030 §7.2);
#: aes128gcm adds 86 bytes of header, padding delimiter and tag.
MAX_PAYLOAD = 3800
#: Retry-After beyond this is capped (a push service asking for days is a dead endpoint).
MAX_RETRY_AFTER_S = 86_400.0


class PushUnavailable(RuntimeError):
    """Push is not configured (no VAPID private key found)."""


# -- keys -----------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    """base64url without padding (how Web Push writes keys)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: Any) -> bytes:
    """Decode base64url with or without padding; ValueError for anything else."""
    if not isinstance(text, str) or not text or set(text) - _B64URL:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


_B64URL = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")


def generate_vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair: (private key as base64url of the raw scalar, public key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    return b64url(raw), public_key_of(key)


def public_key_of(key: ec.EllipticCurvePrivateKey) -> str:
    """The base64url uncompressed point the browser's ``applicationServerKey`` takes."""
    return b64url(
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def load_vapid(cfg: WebPushSettings, env: dict[str, str] | None = None) -> Vapid | None:
    """The server's VAPID key from the named env var or file (None when neither is set).

    Raises ValueError for a key that cannot be read or that does not match the configured
    public key (a start-up error, not a silent failure at the first alert)."""
    env = dict(os.environ) if env is None else env
    text = env.get(cfg.private_key_env, "").strip()
    if not text and cfg.private_key_file is not None:
        text = cfg.private_key_file.read_text("utf-8").strip()
    if not text:
        return None
    try:
        vapid = Vapid.from_pem(text.encode()) if "-----BEGIN" in text else Vapid.from_string(text)
    except Exception as exc:  # noqa: BLE001 - py_vapid raises anything from cryptography
        raise ValueError(f"alerts.webpush: the VAPID private key cannot be read ({exc})") from None
    public = public_key_of(vapid.private_key)
    if cfg.vapid_public_key and cfg.vapid_public_key.rstrip("=") != public:
        raise ValueError(
            "alerts.webpush.vapid_public_key does not belong to the configured private key"
        )
    return vapid


# -- subscriptions --------------------------------------------------------------------


def _loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _not_public(host: str) -> bool:
    """A literal address that is not global (private, link-local - the cloud metadata
    service -, loopback ...): no push service lives there, and posting to it from the
    server would let anyone reach the service's own network (the webhook rule)."""
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return _loopback(host)


def check_push_subscription(push: Any, cfg: WebPushSettings) -> tuple[str, str, str]:
    """(endpoint, p256dh, auth) of a posted ``PushSubscription`` JSON; 422 saying what is
    wrong otherwise.  The endpoint must be https (http only to loopback, and only when
    ``allow_insecure_endpoints`` is on, for tests); the keys base64url of 65 bytes (an
    uncompressed P-256 point on the curve) and 16 bytes."""
    if not isinstance(push, dict):
        raise Unprocessable(
            "push must be a PushSubscription object: {endpoint, keys: {p256dh, auth}}"
        )
    extra = set(push) - {"endpoint", "keys", "expirationTime"}
    if extra:
        raise Unprocessable(f"push: unexpected keys {sorted(extra)}; accepted: endpoint, "
                            "keys, expirationTime")
    endpoint = push.get("endpoint")
    if not isinstance(endpoint, str) or len(endpoint) > 2048:
        raise Unprocessable("push.endpoint must be the subscription's URL (a string)")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError:
        raise Unprocessable(f"push.endpoint {endpoint!r} is not a valid URL") from None
    insecure_ok = cfg.allow_insecure_endpoints and parts.scheme == "http" and _loopback(host)
    if not host or (parts.scheme != "https" and not insecure_ok):
        raise Unprocessable(f"push.endpoint must be an absolute https:// URL; got {endpoint!r}")
    if parts.username or parts.password:
        raise Unprocessable("push.endpoint must not carry credentials")
    if _not_public(host) and not cfg.allow_insecure_endpoints:
        raise Unprocessable(f"push.endpoint host {host!r} is not a public address of a push "
                            "service")
    keys = push.get("keys")
    if not isinstance(keys, dict):
        raise Unprocessable("push.keys must be an object with p256dh and auth (base64url)")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    try:
        point = unb64url(p256dh)
        if len(point) != P256DH_BYTES or point[0] != 4:
            raise ValueError("length")
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise Unprocessable(
            "push.keys.p256dh must be base64url of an uncompressed P-256 public key "
            f"({P256DH_BYTES} bytes starting 0x04)"
        ) from None
    try:
        secret = unb64url(auth)
    except ValueError:
        secret = b""
    if len(secret) != AUTH_BYTES:
        raise Unprocessable(f"push.keys.auth must be base64url of {AUTH_BYTES} bytes")
    return endpoint, b64url(point), b64url(secret)


# -- payload --------------------------------------------------------------------------


def _jst(value: Any) -> str | None:
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (t.astimezone(UTC) + JST).strftime("%Y-%m-%dT%H:%M:%S+09:00")


def push_payload(c: Claimed, base_url: str, names: dict[str, str]) -> dict[str, Any]:
    """What the service worker shows: species, time in JST, municipality, the (public)
    position and the page to open.  Built from the recorded event, which already is the
    public view (sensitive positions generalised)."""
    from geoservice.sightings.feed import label  # the labels the feeds use

    feature = json.loads(c.feature)
    p = feature.get("properties") or {}
    muni = str(p.get("municipality_code") or "")
    place = names.get(muni, muni)
    species = str(p.get("species") or "")
    when = _jst(p.get("observed_at"))
    geom = feature.get("geometry") or {}
    coords = geom.get("coordinates") if geom.get("type") == "Point" else None
    generalised = p.get("location_generalised_m")
    day = f"{when[:10]} {when[11:16]}" if when else ""
    ja, en = label("species", species, "ja"), label("species", species, "en")
    kind_ja, kind_en = label("kind", p.get("kind"), "ja"), label("kind", p.get("kind"), "en")
    return {
        "type": "sighting",
        "event_id": c.event_id,
        "id": feature.get("id"),
        "species": species,
        "kind": p.get("kind"),
        "observed_at_jst": when,
        "municipality_code": muni or None,
        "municipality": place or None,
        "location": [round(v, 6) for v in coords[:2]] if coords else None,
        "location_generalised_m": generalised,
        "title": {"ja": f"{ja}（{kind_ja}）{place}", "en": f"{en} ({kind_en}) {place}".strip()},
        "body": {
            "ja": f"{day} JST" + (f"・位置は約{generalised}m四方に一般化" if generalised else ""),
            "en": f"{day} JST" + (f", location generalised to {generalised} m"
                                  if generalised else ""),
        },
        "url": f"{base_url}/map/?id={feature.get('id')}",
        "tag": f"sighting-{feature.get('id')}",
    }


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The JSON bytes, trimmed of the optional texts if a long name pushes it past 4 KiB."""
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    if len(data) > MAX_PAYLOAD:
        slim = {k: v for k, v in payload.items() if k not in ("title", "body")}
        data = json.dumps(slim, ensure_ascii=False, separators=(",", ":")).encode()
    return data


# -- sending --------------------------------------------------------------------------


def retry_after(value: str | None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # '²'.isdigit() is True too
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_S)


def outcome_of(status: int, headers: httpx.Headers) -> Outcome:
    """How a push service's answer is handled (RFC 8030 §5, §8.3; RFC 8292 §4)."""
    if 200 <= status < 300:
        return Outcome(status)
    error = f"HTTP {status} from the push service"
    if status in (404, 410):
        return Outcome(status, error, gone=True)
    if status == 429 or status >= 500:
        return Outcome(status, error, retry_after_s=retry_after(headers.get("Retry-After")))
    if status in (400, 401, 403, 413):
        return Outcome(status, error, permanent=True)
    return Outcome(status, error)


class PushSender:
    """The ``push`` sender of ``Dispatcher.senders``: encrypt, sign, POST, classify."""

    def __init__(
        self,
        outbox: Outbox,
        settings: Settings,
        vapid: Vapid,
        names: Callable[[], dict[str, str]] = dict,
    ) -> None:
        self.outbox = outbox
        self.cfg = settings.alerts.webpush
        self.base_url = settings.server.base_url
        self.vapid = vapid
        self.names = names

    def keys(self, sid: str) -> tuple[str, str, str] | None:
        """(endpoint, p256dh, auth) of a push subscription, or None when it is gone."""
        row = self.outbox.db.execute(
            "SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE subscription_id = ?",
            (sid,),
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    def request(self, c: Claimed, keys: tuple[str, str, str]) -> tuple[bytes, dict[str, str]]:
        """The encrypted body and headers of one push message (CPU only, no I/O)."""
        endpoint, p256dh, auth = keys
        data = encode_payload(push_payload(c, self.base_url, self.names()))
        pusher = WebPusher({"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}})
        body = pusher.encode(data, content_encoding="aes128gcm")["body"]
        parts = urlsplit(endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "sub": self.cfg.subject,
            "exp": int(time.time()) + 12 * 3600,  # RFC 8292 §2: at most 24 hours
        }
        headers = {
            **self.vapid.sign(claims),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self.cfg.ttl_s),
            "Urgency": self.cfg.urgency,
        }
        return bytes(body), headers

    async def __call__(self, client: httpx.AsyncClient, c: Claimed) -> Outcome:
        keys = await asyncio.to_thread(self.keys, c.subscription_id)
        if keys is None:
            return Outcome(None, "push subscription keys are gone", gone=True)
        body, headers = await asyncio.to_thread(self.request, c, keys)
        try:
            resp = await client.post(keys[0], content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:500])
        return outcome_of(resp.status_code, resp.headers)


def push_sender(rt: Runtime, outbox: Outbox) -> PushSender | None:
    """The sender for this runtime, or None when no VAPID private key is configured."""
    vapid = load_vapid(rt.settings.alerts.webpush)
    if vapid is None:
        return None
    names: dict[str, str] = {}

    def municipality_names() -> dict[str, str]:
        # read once from admin-boundaries (the names do not change while serving)
        if not names:
            from geoservice.sightings.feed import municipality_names as read

            try:
                names.update(read(rt))
            except Exception:  # noqa: BLE001 - a push without the name beats no push
                log.exception("municipality names unavailable for push payloads")
        return names

    return PushSender(outbox, rt.settings, vapid, municipality_names)


def public_key(settings: Settings) -> str | None:
    """The VAPID public key the page subscribes with (None: push is not offered)."""
    try:
        vapid = load_vapid(settings.alerts.webpush)
    except (OSError, ValueError):
        return None
    return None if vapid is None else public_key_of(vapid.private_key)


#: The decrypted push payload (what ``push_payload`` builds), for the AsyncAPI document.
PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "event_id", "id", "species", "observed_at_jst", "url", "title"],
    "properties": {
        "type": {"const": "sighting"},
        "event_id": {"type": "string", "description": "Unique per event; the same on retries"},
        "id": {"type": "string", "description": "The sighting's feature id"},
        "species": {"type": "string"},
        "kind": {"type": ["string", "null"]},
        "observed_at_jst": {"type": ["string", "null"], "format": "date-time",
                            "description": "When it was seen, in Japan time (+09:00)"},
        "municipality_code": {"type": ["string", "null"]},
        "municipality": {"type": ["string", "null"]},
        "location": {"type": ["array", "null"], "items": {"type": "number"},
                     "minItems": 2, "maxItems": 2,
                     "description": "[lon, lat] as the public map shows it"},
        "location_generalised_m": {"type": ["integer", "null"],
                                   "description": "Grid cell (m) a sensitive record is "
                                   "generalised to; null when exact"},
        "title": {"type": "object", "properties": {"ja": {"type": "string"},
                                                   "en": {"type": "string"}}},
        "body": {"type": "object", "properties": {"ja": {"type": "string"},
                                                  "en": {"type": "string"}}},
        "url": {"type": "string", "format": "uri", "description": "The sighting on /map/"},
        "tag": {"type": "string"},
    },
}


def with_push_channel(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (the AsyncAPI 3.0 document of alerts) with the Web Push channel added."""
    doc["servers"]["pushService"] = {
        "host": "{pushHost}",
        "protocol": "https",
        "description": "The browser vendor's push service holding the subscription (RFC 8030)",
        "variables": {"pushHost": {"description": "Host of the subscription's endpoint"}},
    }
    doc["channels"]["webPush"] = {
        "address": "{endpoint}",
        "title": "Web Push deliveries",
        "description": "POSTed to the push subscription's endpoint for every published "
        "sighting inside its area and of its species: the JSON below, encrypted for the "
        "browser (RFC 8291, Content-Encoding: aes128gcm) with a VAPID Authorization "
        "(RFC 8292). 404/410 delete the subscription; 429/5xx are retried (Retry-After).",
        "servers": [{"$ref": "#/servers/pushService"}],
        "parameters": {"endpoint": {"description": "The PushSubscription's endpoint URL"}},
        "messages": {"pushAlert": {"$ref": "#/components/messages/pushAlert"}},
    }
    doc["operations"]["sendPushAlert"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/webPush"},
        "summary": "The service pushes an encrypted alert to a browser's push subscription",
        "messages": [{"$ref": "#/channels/webPush/messages/pushAlert"}],
    }
    doc["components"]["schemas"]["PushAlert"] = PAYLOAD_SCHEMA
    doc["components"]["messages"]["pushAlert"] = {
        "name": "pushAlert",
        "contentType": "application/json",
        "description": "As the service worker reads it after the browser decrypted it",
        "payload": {"$ref": "#/components/schemas/PushAlert"},
    }
    return doc
