"""HTTP routes of e-mail alerts: subscribe (``POST /api/subscriptions`` with ``email``),
confirm and unsubscribe links, and their pages.

A link opened with ``GET`` only shows a page with a button (mail scanners prefetch links;
a prefetch must change nothing); the button ``POST``s.  The unsubscribe URL is also the
RFC 8058 one-click target: a ``POST`` with ``List-Unsubscribe=One-Click`` unsubscribes with
no further step.  Answers never say whether an address was known; pages and JSON show the
address masked at most.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry.base import BaseGeometry

from geoservice.auth.http import auth_services
from geoservice.auth.ratelimit import RateLimiter
from geoservice.edge.bodies import read_body
from geoservice.errors import InvalidParameter, ServiceError, Unprocessable
from geoservice.fastjson import FastJSONResponse
from geoservice.runtime import Runtime, RuntimeDep
from geoservice.sightings.email_alerts import (
    LANGS,
    EmailAlerts,
    Recipient,
    TokenRejected,
    check_address,
    mask,
)
from geoservice.sightings.events import EventBus
from geoservice.sightings.mailer import strings

router = APIRouter(tags=["alerts"])
RT = RuntimeDep
#: what the link routes answer besides 200 (documented for clients and the fuzz tests)
LINK_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"description": "No token given"},
    403: {"description": "A forged or altered link: nothing was changed"},
    410: {"description": "A used or expired link: nothing was changed"},
}


class EmailSubscriptionIn(BaseModel):
    """A new e-mail alert subscription (double opt-in: a confirmation mail is sent first)."""

    model_config = ConfigDict(extra="forbid")
    email: str = Field(description="The address to alert (plain ASCII addr-spec)")
    area: dict[str, Any] = Field(
        description='{"point": [lon, lat], "radius_m": N}, {"municipality": "13308"} or a '
        "GeoJSON Polygon/MultiPolygon (CRS84)"
    )
    species: list[str] = Field(default_factory=list, description="Species codes; empty: all")
    mode: Literal["immediate", "digest"] = Field("immediate", description="digest: daily")
    lang: Literal["ja", "en"] = Field("ja", description="Language of the mails")


def _email(rt: Runtime, sending: bool = False) -> EmailAlerts:
    """The e-mail subscriptions; ``sending``: 422 when this server has no SMTP relay (the
    links of mails already sent keep working without one)."""
    alerts = rt.services.require(EmailAlerts, ServiceError("alerts are not enabled"))
    if sending and rt.settings.alerts.smtp is None:
        raise Unprocessable("this server sends no e-mail (alerts.smtp is not configured); "
                            "subscribe a webhook instead")
    return alerts


def _area(area: dict[str, Any], rt: Runtime) -> tuple[BaseGeometry | None, str | None]:
    """(geometry, None) for a point/polygon area; (None, code) for a municipality."""
    from geoservice.sightings.alerts_api import municipality_code, parse_area

    if "municipality" not in area:
        return parse_area(area, rt), None
    return None, municipality_code(area, rt)


def subscribe_email(body: EmailSubscriptionIn, rt: Runtime, client: str) -> FastJSONResponse:
    """Queue a confirmation mail; 202 whatever the address's history (nothing revealed)."""
    from geoservice.sightings.alerts_api import accepted_species

    alerts = _email(rt, sending=True)
    addr = check_address(body.email)
    geom, muni = _area(body.area, rt)
    accepted = accepted_species(rt)
    if accepted is not None:
        unknown = sorted(set(body.species) - set(accepted))
        if unknown:
            raise Unprocessable(f"unknown species {unknown}; accepted: {', '.join(accepted)}")
    s = rt.settings.alerts.email
    db = auth_services(rt).db  # the shared rate-limit log (keyed hashes only)
    # per client first (a flood from one client cannot probe or spam many addresses) ...
    RateLimiter(db, s.subscribe_per_client, 3600).hit(
        "email-client:" + alerts.keys.address_hash(client)
    )
    # ... then per address, counted only when a confirmation mail would go out
    h = alerts.keys.address_hash(addr)
    RateLimiter(db, s.confirm_per_address, 86400).hit("email-addr:" + h)
    alerts.subscribe(addr, geom, muni, body.area, body.species, body.mode, body.lang)
    bus = rt.services.get(EventBus)
    if bus is not None:
        bus.notifier.notify()
    return FastJSONResponse(
        {
            "status": "confirmation-sent",
            "email": mask(addr),
            "description": "Check your mail: alerts start once you open the confirmation "
            "link we sent (if this address can receive them). / 確認メールのリンクを開くと"
            "通知が始まります。",
        },
        status_code=202,
    )


def _lang(request: Request, rec: Recipient | None = None) -> str:
    if rec is not None:
        return rec.lang
    asked = request.query_params.get("lang")
    return asked if asked in LANGS else "ja"


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _page(rt: Runtime, request: Request, kind: str, token: str, status: int, lang: str,
          message: str, button: bool) -> Response:
    t = strings()[lang]
    title = t["page_confirm_title" if kind == "confirm" else "page_unsub_title"]
    if _wants_json(request):
        return FastJSONResponse({"status": "ok" if status < 400 else "rejected",
                                 "description": message}, status_code=status)
    return rt.html.render(
        "email_link.html", status=status, lang=lang, title=title, message=message,
        action=f"/api/subscriptions/{kind}", token=token if button else None,
        button=t["page_confirm_button" if kind == "confirm" else "page_unsub_button"],
        failed=status >= 400 and t["page_failed"],
    )


def _rejected(rt: Runtime, request: Request, kind: str, exc: TokenRejected) -> Response:
    lang = _lang(request)
    if _wants_json(request):
        return FastJSONResponse({"code": exc.code, "description": exc.description},
                                status_code=exc.status)
    return _page(rt, request, kind, "", exc.status, lang, exc.description, False)


async def _token(request: Request) -> str:
    """The token of a link: the query's, else the posted form's (urlencoded)."""
    token = request.query_params.get("token")
    if request.method == "POST" and not token:
        raw = await read_body(request, 64 * 1024)
        token = (parse_qs(raw.decode("utf-8", "replace")).get("token") or [""])[0]
    if not token:
        raise InvalidParameter("token is missing: open the link from the mail as it was sent")
    return token


async def _show(request: Request, rt: Runtime, kind: str) -> Response:
    """A link opened with GET: checked, not acted on - a page with the button to POST."""
    alerts = _email(rt)
    token = await _token(request)
    try:
        rec = await asyncio.to_thread(alerts.check, token, kind)
    except TokenRejected as exc:
        return _rejected(rt, request, kind, exc)
    t = strings()[rec.lang]
    intro = t["confirm_intro" if kind == "confirm" else "page_unsub_title"]
    return _page(rt, request, kind, token, 200, rec.lang, intro, True)


async def _act(request: Request, rt: Runtime, kind: str) -> Response:
    """A link's POST: confirm or unsubscribe, once; the page says what was done."""
    alerts = _email(rt)
    token = await _token(request)
    action = alerts.confirm if kind == "confirm" else alerts.unsubscribe
    try:
        rec = await asyncio.to_thread(action, token)
    except TokenRejected as exc:
        return _rejected(rt, request, kind, exc)
    done = "page_confirmed" if kind == "confirm" else "page_unsubscribed"
    msg = strings()[rec.lang][done].format(addr=mask(rec.address))
    return _page(rt, request, kind, "", 200, rec.lang, msg, False)


@router.get("/api/subscriptions/confirm", response_class=HTMLResponse, responses=LINK_ANSWERS)
async def confirm_page(request: Request, rt: RT) -> Response:
    """The confirmation link: a page with a button (a GET changes nothing)."""
    return await _show(request, rt, "confirm")


@router.post("/api/subscriptions/confirm", response_class=HTMLResponse, responses=LINK_ANSWERS)
async def confirm(request: Request, rt: RT) -> Response:
    """Confirm a subscription (the page's button); single use."""
    return await _act(request, rt, "confirm")


@router.get("/api/subscriptions/unsubscribe", response_class=HTMLResponse,
            responses=LINK_ANSWERS)
async def unsubscribe_page(request: Request, rt: RT) -> Response:
    """The unsubscribe link opened in a browser: a page with a button."""
    return await _show(request, rt, "unsubscribe")


@router.post("/api/subscriptions/unsubscribe", response_class=HTMLResponse,
             responses=LINK_ANSWERS)
async def unsubscribe(request: Request, rt: RT) -> Response:
    """Unsubscribe and delete the address: the page's button, or an RFC 8058 one-click POST
    (``List-Unsubscribe=One-Click``) from a mail client."""
    return await _act(request, rt, "unsubscribe")
