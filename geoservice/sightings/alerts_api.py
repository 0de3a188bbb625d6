"""HTTP routes of alerts: subscriptions, the sighting event stream (SSE), AsyncAPI."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlsplit

import shapely
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from geoservice.auth.errors import Forbidden, Unauthorized
from geoservice.errors import InvalidParameter, NotFound, ServiceError, Unprocessable
from geoservice.fastjson import FastJSONResponse
from geoservice.geometry import InvalidGeometry, parse_geometry
from geoservice.runtime import Runtime, RuntimeDep
from geoservice.sightings.alerts import (
    ATTEMPT_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Event,
    Outbox,
    circle,
    token_hash,
)
from geoservice.sightings.email_api import EmailSubscriptionIn, subscribe_email
from geoservice.sightings.events import SIGHTINGS, EventBus
from geoservice.sightings.feed import BOUNDARIES, MUNICIPALITY, municipality_names
from geoservice.sightings.push import (
    PUSH,
    check_push_subscription,
    public_key,
    with_push_channel,
)
from geoservice.store import Query

router = APIRouter(tags=["alerts"])
RT = RuntimeDep


class SubscriptionIn(BaseModel):
    """A new alert subscription."""

    model_config = ConfigDict(extra="forbid")
    area: dict[str, Any] = Field(
        description='A GeoJSON Polygon/MultiPolygon (CRS84), {"point": [lon, lat], '
        '"radius_m": N} or {"municipality": "13308"} (its admin-boundaries outline)'
    )
    species: list[str] = Field(
        default_factory=list, description="Species codes to alert on; empty means all"
    )
    webhook: str | None = Field(None, description="http(s) URL that receives signed POSTs")
    push: dict[str, Any] | None = Field(
        None,
        description="A Web Push subscription (the browser's PushSubscription.toJSON(): "
        "endpoint, keys.p256dh, keys.auth) in place of webhook",
    )


def _services(rt: Runtime) -> tuple[Outbox, EventBus]:
    missing = ServiceError("alerts are not enabled on this server")
    return rt.services.require(Outbox, missing), rt.services.require(EventBus, missing)


def accepted_species(rt: Runtime) -> list[str] | None:
    """The species codes of the sightings layer (None: the layer declares no list)."""
    spec = rt.specs.get(SIGHTINGS)
    if spec is None:
        return None
    for p in spec.properties:
        if p.name == "species" and p.enum:
            return [str(v) for v in p.enum]
    return None


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def municipality_code(area: dict[str, Any], rt: Runtime) -> str:
    """The code of a ``{"municipality": "13308"}`` area; 400 for a malformed one, 422 for
    one that is not a municipality of this map (when the boundaries are served)."""
    code = area.get("municipality")
    if set(area) != {"municipality"} or not isinstance(code, str) or not MUNICIPALITY.match(code):
        raise InvalidParameter(
            'area.municipality must be a 5-digit municipality code such as "13308", alone'
        )
    names = municipality_names(rt)
    if names and code not in names:
        raise Unprocessable(f"area.municipality {code!r} is not a municipality of this map")
    return code


def municipality_area(area: dict[str, Any], rt: Runtime) -> BaseGeometry:
    """The outline of a ``{"municipality": "13308"}`` area from ``admin-boundaries`` (the
    outlines the map draws), for channels that match by area (webhook, push)."""
    code = municipality_code(area, rt)
    if BOUNDARIES not in rt.specs:
        raise Unprocessable("municipality areas need the admin-boundaries layer on this server")
    page = rt.reader.query(BOUNDARIES, Query(properties={"municipality_code": code}, limit=100))
    parts = [f.geometry for f in page.features if f.geometry is not None]
    if not parts:
        raise Unprocessable(f"area.municipality {code!r} is not a municipality of this map")
    return shapely.union_all(parts)


def parse_area(area: dict[str, Any], rt: Runtime) -> BaseGeometry:
    """The CRS84 area of a subscription; 400 for bad geometry, 422 for out-of-range radius."""
    s = rt.settings.alerts
    if "municipality" in area:
        return municipality_area(area, rt)
    if "point" in area or "radius_m" in area:
        extra = set(area) - {"point", "radius_m"}
        if extra:
            raise InvalidParameter(f"area: unexpected keys {sorted(extra)} beside point/radius_m")
        pt = area.get("point")
        if (
            not isinstance(pt, list)
            or len(pt) != 2
            or not all(_number(v) for v in pt)
            or not (-180 <= pt[0] <= 180 and -90 <= pt[1] <= 90)
        ):
            raise InvalidGeometry("area.point must be [longitude, latitude] in CRS84 degrees")
        r = area.get("radius_m")
        if not isinstance(r, int | float) or not _number(r):
            raise Unprocessable("area.radius_m must be a number of metres")
        if not s.radius_min_m <= r <= s.radius_max_m:
            raise Unprocessable(
                f"area.radius_m must be between {s.radius_min_m:g} and {s.radius_max_m:g} m; "
                f"got {r:g}"
            )
        return circle(float(pt[0]), float(pt[1]), float(r))
    if area.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidGeometry(
            f"area must be a GeoJSON Polygon or MultiPolygon, {{point, radius_m}} or "
            f"{{municipality}}; "
            f"got type {area.get('type')!r}"
        )
    return parse_geometry(area, "area")


def check_webhook(url: str, allow_private: bool) -> str:
    """422 unless ``url`` is an absolute http(s) URL (to a public host unless allowed)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        raise Unprocessable(f"webhook {url!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise Unprocessable(f"webhook must be an absolute http:// or https:// URL; got {url!r}")
    if parts.username or parts.password:
        raise Unprocessable("webhook must not carry credentials in the URL")
    if not allow_private:
        private = host.lower() in ("localhost", "localhost.localdomain")
        try:
            ip = ipaddress.ip_address(host)
            private = private or not ip.is_global
        except ValueError:
            pass
        if private:
            raise Unprocessable(f"webhook host {host!r} is not a public address")
    return url


def push_channel(push: dict[str, Any], rt: Runtime) -> tuple[str, str, str]:
    """A validated push subscription; 422 when this server does not offer push."""
    if public_key(rt.settings) is None:
        raise Unprocessable("Web Push is not configured on this server (no VAPID key)")
    return check_push_subscription(push, rt.settings.alerts.webpush)


def _authorise(outbox: Outbox, sid: str, authorization: str | None) -> dict[str, Any]:
    row = outbox.subscription_row(sid)
    if row is None:
        raise NotFound(f"no subscription {sid!r}")
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized(
            "send 'Authorization: Bearer <secret or management token>' given at creation"
        )
    cred = authorization[7:].strip()
    ok = hmac.compare_digest(cred.encode(), row["secret"].encode()) or hmac.compare_digest(
        token_hash(cred), row["token_hash"]
    )
    if not ok:
        raise Forbidden("the credential is not valid for this subscription")
    return row


def _view(rt: Runtime, outbox: Outbox, row: dict[str, Any]) -> dict[str, Any]:
    sid = row["id"]
    base = rt.settings.server.base_url
    return {
        "id": sid,
        "area": json.loads(row["area_input"]),
        "area_geometry": json.loads(row["area"]),
        "species": json.loads(row["species"]),
        "kind": row["kind"],
        **({"push": {"endpoint": row["webhook"]}} if row["kind"] == PUSH
           else {"webhook": row["webhook"]}),
        "created_at": row["created_at"],
        "deliveries": outbox.delivery_counts(sid),
        "links": [
            {"rel": "self", "href": f"{base}/api/subscriptions/{sid}"},
            {"rel": "deliveries", "href": f"{base}/api/subscriptions/{sid}/deliveries"},
            {"rel": "describedby", "href": f"{base}/api/asyncapi.json"},
        ],
    }


@router.post("/api/subscriptions", status_code=201, responses={
    202: {"description": "E-mail: a confirmation mail is on its way (said whatever the "
          "address's history)"}})
def create_subscription(
    body: SubscriptionIn | EmailSubscriptionIn, rt: RT, request: Request
) -> FastJSONResponse:
    """Subscribe a webhook to sightings in an area (the secret is shown only in this reply),
    or an e-mail address (``email`` in place of ``webhook``; double opt-in)."""
    if isinstance(body, EmailSubscriptionIn):
        return subscribe_email(body, rt, request.client.host if request.client else "unknown")
    outbox, _ = _services(rt)
    channels = [k for k in ("webhook", "push") if getattr(body, k) is not None]
    if len(channels) != 1:
        raise Unprocessable("give exactly one of webhook (a URL), push (a PushSubscription) or "
                            "email (an address)")
    push = None
    if body.push is not None:
        push = push_channel(body.push, rt)
    else:
        assert body.webhook is not None
        check_webhook(body.webhook, rt.settings.alerts.allow_private_webhooks)
    area = parse_area(body.area, rt)
    accepted = accepted_species(rt)
    if accepted is not None:
        unknown = sorted(set(body.species) - set(accepted))
        if unknown:
            raise Unprocessable(f"unknown species {unknown}; accepted: {', '.join(accepted)}")
    species = list(dict.fromkeys(body.species))
    if push is not None:
        endpoint, p256dh, auth = push
        sid, secret, token, _ = outbox.add_subscription(
            area, body.area, species, endpoint, kind=PUSH, push_keys=(p256dh, auth)
        )
    else:
        assert body.webhook is not None
        sid, secret, token, _ = outbox.add_subscription(area, body.area, species, body.webhook)
    row = outbox.subscription_row(sid)
    assert row is not None
    out = _view(rt, outbox, row)
    out["area_geometry"] = mapping(area)
    out["secret"] = secret
    out["management_token"] = token
    out["signature"] = {
        "header": SIGNATURE_HEADER,
        "scheme": "sha256=<hex HMAC-SHA256(secret, raw request body)>",
        "timestamp_header": TIMESTAMP_HEADER,
    }
    return FastJSONResponse(out, status_code=201, headers={"Location": f"/api/subscriptions/{sid}"})


@router.get("/api/subscriptions/{sid}")
def get_subscription(
    sid: str,
    rt: RT,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """A subscription and its delivery counts (Bearer secret or management token)."""
    outbox, _ = _services(rt)
    return _view(rt, outbox, _authorise(outbox, sid, authorization))


@router.get("/api/subscriptions/{sid}/deliveries")
def list_deliveries(
    sid: str,
    rt: RT,
    status: str | None = None,
    limit: int = 100,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Deliveries of a subscription, newest first; ``status=dead`` lists the dead letters."""
    outbox, _ = _services(rt)
    _authorise(outbox, sid, authorization)
    allowed = ("pending", "delivered", "dead", "cancelled")
    if status is not None and status not in allowed:
        raise InvalidParameter(f"status must be one of {', '.join(allowed)}")
    if not 1 <= limit <= 1000:
        raise InvalidParameter("limit must be between 1 and 1000")
    return {"subscription_id": sid, "deliveries": outbox.deliveries(sid, status, limit)}


@router.delete("/api/subscriptions/{sid}", status_code=204)
def delete_subscription(
    sid: str,
    rt: RT,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Cancel a subscription (its pending deliveries are cancelled too)."""
    outbox, _ = _services(rt)
    _authorise(outbox, sid, authorization)
    outbox.delete_subscription(sid)
    return Response(status_code=204)


def _sse(event: Event) -> str:
    """One event in ``text/event-stream`` framing (``id`` is what Last-Event-ID resumes)."""
    return f"event: {event.event_type}\nid: {event.event_id}\ndata: {event.data}\n\n"


@router.get(
    "/api/sightings/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def sighting_stream(
    request: Request,
    rt: RT,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Server-sent events of published sightings (``event: sighting``, ``id`` = event id)
    and of their withdrawal (``event: withdrawn``, data ``{"id": feature id}``: drop it).

    Reconnect with ``Last-Event-ID`` to replay what was missed (an id no longer retained
    gets an ``event: reset`` first, then live events); ``: heartbeat`` comments keep
    proxies from closing an idle stream.
    """
    outbox, bus = _services(rt)
    found = await asyncio.to_thread(outbox.seq_of, last_event_id.strip()) if last_event_id else None
    start = found if found is not None else await asyncio.to_thread(outbox.last_seq)
    # an unknown (e.g. pruned) Last-Event-ID: say so, then continue live from now
    reset = bool(last_event_id) and found is None
    heartbeat = rt.settings.alerts.heartbeat_s
    poll = rt.settings.alerts.poll_s
    notifier = bus.notifier

    async def gen() -> AsyncIterator[str]:
        seq = start
        last_sent = time.monotonic()
        yield "retry: 3000\n: connected\n\n"
        if reset:
            note = json.dumps({"reason": "unknown Last-Event-ID; events may have been missed"})
            yield f"event: reset\ndata: {note}\n\n"
        while True:
            if await request.is_disconnected():
                return
            generation = notifier.generation
            rows = await asyncio.to_thread(outbox.events_after, seq, 100)
            for event in rows:
                yield _sse(event)
            if rows:
                seq = rows[-1].seq
                last_sent = time.monotonic()
                continue
            if time.monotonic() - last_sent >= heartbeat:
                yield ": heartbeat\n\n"
                last_sent = time.monotonic()
            until_beat = heartbeat - (time.monotonic() - last_sent)
            await notifier.wait(generation, min(poll, max(until_beat, 0.01)))

    return StreamingResponse(
        gen(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/api/asyncapi.json")
def asyncapi(rt: RT) -> dict[str, Any]:
    """AsyncAPI 3.0 description of the webhook and SSE channels."""
    return asyncapi_document(rt.settings.server.base_url, accepted_species(rt))


def asyncapi_document(base: str, species: list[str] | None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document (pure function, for tests and docs)."""
    species_schema: dict[str, Any] = {"type": "string"}
    if species:
        species_schema["enum"] = species
    feature = {
        "type": "object",
        "description": "A published sighting as a GeoJSON Feature (CRS84). Sensitive "
        "sightings carry the centre of their EPSG:6677 grid cell (1 km by default) instead "
        "of the position, and location_generalised_m.",
        "required": ["type", "id", "geometry", "properties"],
        "properties": {
            "type": {"const": "Feature"},
            "id": {"type": "string"},
            "geometry": {
                "type": "object",
                "required": ["type", "coordinates"],
                "properties": {
                    "type": {"const": "Point"},
                    "coordinates": {"type": "array", "items": {"type": "number"}},
                },
            },
            "properties": {
                "type": "object",
                "properties": {
                    "species": species_schema,
                    "kind": {"type": "string"},
                    "observed_at": {"type": "string", "format": "date-time"},
                    "municipality_code": {"type": "string"},
                    "count": {"type": "integer"},
                    "source": {"type": "string"},
                    "source_id": {"type": "string"},
                    "status": {"const": "published"},
                },
            },
        },
    }
    return with_push_channel({
        "asyncapi": "3.0.0",
        "id": "urn:tokyo-geotwin:sightings",
        "info": {
            "title": "Tokyo GeoTwin sighting alerts",
            "version": "1.0.0",
            "description": "Published wildlife sightings, pushed to subscribers' webhooks "
            "(signed POSTs, retried with exponential back-off, dead-lettered after the last "
            "attempt) and streamed as server-sent events. Create a webhook subscription with "
            "POST /api/subscriptions.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "geotwin": {
                "host": urlsplit(base).netloc,
                "protocol": urlsplit(base).scheme or "http",
                "pathname": "/api",
                "description": "This service (SSE stream, subscription management)",
            },
            "subscriber": {
                "host": "{webhookHost}",
                "protocol": "https",
                "description": "The subscriber's webhook endpoint given at subscription",
                "variables": {"webhookHost": {"description": "Host of the webhook URL"}},
            },
        },
        "channels": {
            "webhook": {
                "address": "{webhook}",
                "title": "Webhook deliveries",
                "description": "POSTed to the subscription's webhook URL for every published "
                "sighting inside its area and of its species, once per sighting: a correction "
                "of a published sighting is POSTed only to subscriptions it newly matches "
                "(moved into the area, now of the species) that were not alerted to it before. "
                "Answer 2xx within the timeout to acknowledge; anything else is retried. "
                "Dedupe on event_id.",
                "servers": [{"$ref": "#/servers/subscriber"}],
                "parameters": {"webhook": {"description": "The subscription's webhook URL"}},
                "messages": {"sightingAlert": {"$ref": "#/components/messages/sightingAlert"}},
            },
            "sightingStream": {
                "address": "/sightings/stream",
                "title": "Server-sent events of published sightings",
                "description": "text/event-stream: `event: sighting`, `id:` the event id, "
                "`data:` the GeoJSON Feature (a correction of a published sighting is sent "
                "again with the same feature id: replace it); `event: withdrawn` when a "
                "published sighting is rejected, unpublished or deleted, `data:` "
                '`{"id": feature id}` only: remove it. Send Last-Event-ID to replay '
                "(withdrawals included, in order); `: heartbeat` comments are sent when idle.",
                "servers": [{"$ref": "#/servers/geotwin"}],
                "messages": {
                    "sighting": {"$ref": "#/components/messages/sighting"},
                    "withdrawn": {"$ref": "#/components/messages/withdrawn"},
                },
            },
        },
        "operations": {
            "receiveSightingAlert": {
                "action": "send",
                "channel": {"$ref": "#/channels/webhook"},
                "summary": "The service sends a signed alert to a subscriber's webhook",
                "messages": [{"$ref": "#/channels/webhook/messages/sightingAlert"}],
            },
            "streamSightings": {
                "action": "send",
                "channel": {"$ref": "#/channels/sightingStream"},
                "summary": "The service streams published sightings to SSE clients",
                "messages": [
                    {"$ref": "#/channels/sightingStream/messages/sighting"},
                    {"$ref": "#/channels/sightingStream/messages/withdrawn"},
                ],
            },
        },
        "components": {
            "schemas": {
                "SightingFeature": feature,
                "WebhookBody": {
                    "type": "object",
                    "required": ["type", "event_id", "subscription_id", "timestamp", "feature"],
                    "properties": {
                        "type": {"const": "sighting.published"},
                        "event_id": {"type": "string", "description": "Unique; dedupe on it"},
                        "subscription_id": {"type": "string"},
                        "collection": {"type": "string"},
                        "timestamp": {"type": "string", "format": "date-time"},
                        "attempt": {"type": "integer", "minimum": 1},
                        "feature": {"$ref": "#/components/schemas/SightingFeature"},
                    },
                },
                "WebhookHeaders": {
                    "type": "object",
                    "required": [SIGNATURE_HEADER, TIMESTAMP_HEADER],
                    "properties": {
                        SIGNATURE_HEADER: {
                            "type": "string",
                            "pattern": "^sha256=[0-9a-f]{64}$",
                            "description": "HMAC-SHA256 of the raw body with the "
                            "subscription secret, hex-encoded, prefixed 'sha256='",
                        },
                        TIMESTAMP_HEADER: {
                            "type": "string",
                            "description": "Unix seconds when sent; reject stale deliveries",
                        },
                        EVENT_HEADER: {"type": "string"},
                        ATTEMPT_HEADER: {"type": "string"},
                    },
                },
            },
            "messages": {
                "sightingAlert": {
                    "name": "sightingAlert",
                    "contentType": "application/json",
                    "headers": {"$ref": "#/components/schemas/WebhookHeaders"},
                    "payload": {"$ref": "#/components/schemas/WebhookBody"},
                },
                "sighting": {
                    "name": "sighting",
                    "contentType": "application/geo+json",
                    "payload": {"$ref": "#/components/schemas/SightingFeature"},
                },
                "withdrawn": {
                    "name": "withdrawn",
                    "contentType": "application/json",
                    "summary": "A sighting sent earlier is no longer published",
                    "payload": {
                        "type": "object",
                        "required": ["id"],
                        "additionalProperties": False,
                        "properties": {"id": {"type": "string",
                                              "description": "The sighting's feature id"}},
                    },
                },
            },
        },
    })
