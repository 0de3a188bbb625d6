"""Alert mails: composed from the templates in ``mail/`` and sent by SMTP, as outbox senders.

Each mail is multipart (plain text + simple HTML), UTF-8, its Japanese subject MIME-encoded
by the standard library; alert mails carry ``List-Unsubscribe`` (the one-click URL) and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058) and a ``Message-ID`` made
from the outbox's idempotency key, so a retried mail is recognisably the same mail.
What a mail says of a sighting comes from the event's public GeoJSON: a sensitive record
arrives generalised (the read policy), so the mail shows no exact coordinates for it -
only the municipality and a map link to its grid cell's centre.

The SMTP conversation (``smtplib``, in a worker thread) never runs in a write's path: a
relay that is down makes the sender report an error, and the dispatcher retries the row.
Errors recorded in the outbox carry SMTP codes, never the address.
"""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jinja2
import yaml

from geoservice.config import AlertSettings, SmtpSettings
from geoservice.runtime import Runtime
from geoservice.sightings.alerts import Cancelled, Claimed, Dispatcher, Outcome, backoff
from geoservice.sightings.email_alerts import (
    CONFIRM,
    DIGEST,
    EMAIL,
    JST,
    EmailAlerts,
    Recipient,
)
from geoservice.sightings.feed import label

MAIL_DIR = Path(__file__).with_name("mail")


@lru_cache(maxsize=1)
def strings() -> dict[str, dict[str, str]]:
    """The words of mails and pages per language (``mail/strings.yml``)."""
    raw: dict[str, dict[str, str]] = yaml.safe_load((MAIL_DIR / "strings.yml").read_text("utf-8"))
    return raw


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(MAIL_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        keep_trailing_newline=True,
    )


def render(name: str, **ctx: Any) -> str:
    """A template of ``mail/`` (HTML ones autoescaped)."""
    return _env().get_template(name).render(**ctx)


@dataclass(frozen=True)
class Context:
    """What mails need from the running service (kept as callables: read when sent)."""

    base_url: str
    names: Callable[[], dict[str, str]]
    credit: Callable[[], str]


def mail_context(rt: Runtime) -> Context:
    """The service's base URL, municipality names and the sightings layer's credit line."""
    from geoservice.ogc.pygeoapi_adapter import layer_notice
    from geoservice.sightings.feed import municipality_names
    from geoservice.sightings.policy import COLLECTION

    def credit() -> str:
        spec = rt.specs.get(COLLECTION)
        if spec is None:
            return ""
        return layer_notice(spec, bool(spec.synthetic or rt.reader.info(COLLECTION).synthetic))

    return Context(rt.settings.server.base_url, lambda: municipality_names(rt), credit)


def observed(value: Any, lang: str) -> str:
    """``2025-11-14 08:30（日本時間）``: when, in Japan time (a bare date stays a date)."""
    t = strings()[lang]
    text = str(value or "")
    if len(text) == 10:
        return f"{text}{t['date_only']}"
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return f"{(at.astimezone(UTC) + JST).strftime('%Y-%m-%d %H:%M')}{t['jst']}"


def sighting_view(doc: dict[str, Any], lang: str, ctx: Context) -> dict[str, Any]:
    """One sighting as the templates show it (from the event's public GeoJSON)."""
    p = doc.get("properties") or {}
    t = strings()[lang]
    code = str(p.get("municipality_code") or "")
    place = ctx.names().get(code, code) or "—"
    q: dict[str, Any] = {"lang": lang, "id": doc.get("id")}
    coords = (doc.get("geometry") or {}).get("coordinates")
    generalised = p.get("location_generalised_m")
    if coords:
        q.update(lon=f"{coords[0]:.5f}", lat=f"{coords[1]:.5f}", r=1)
    return {
        "species": label("species", p.get("species"), lang),
        "kind": label("kind", p.get("kind"), lang),
        "count": p.get("count"),
        "when": observed(p.get("observed_at"), lang),
        "place": place,
        "approx": t["approx"].format(m=generalised) if generalised else "",
        "map": f"{ctx.base_url}/map/?{urlencode(q)}",
    }


def _message(
    smtp: SmtpSettings, rec: Recipient, subject: str, text: str, html: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = rec.address
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    msg["Content-Language"] = rec.lang  # after set_content, which drops Content-* headers
    return msg


def confirmation_mail(
    smtp: SmtpSettings, rec: Recipient, links: dict[str, str], area: str, safety_url: str
) -> EmailMessage:
    """The double opt-in mail: the confirmation link, nothing else actionable."""
    t = strings()[rec.lang]
    expires = (datetime.fromtimestamp(rec.expires_at, UTC) + JST).strftime("%Y-%m-%d %H:%M")
    ctx = {"t": t, "lang": rec.lang, "links": links, "area": area,
           "expires": f"{expires}{t['jst']}", "safety_url": safety_url}
    msg = _message(smtp, rec, t["confirm_subject"], render("confirm.txt", **ctx),
                   render("confirm.html", **ctx))
    msg["Message-ID"] = make_msgid("confirm", _domain(smtp.sender))
    return msg


def alert_mail(
    smtp: SmtpSettings,
    rec: Recipient,
    docs: list[dict[str, Any]],
    links: dict[str, str],
    ctx: Context,
    safety_url: str,
    key: str,
) -> EmailMessage:
    """An alert (one sighting) or a digest (several) with the one-click unsubscribe."""
    t = strings()[rec.lang]
    views = [sighting_view(d, rec.lang, ctx) for d in docs]
    if rec.mode == "digest":
        date = (datetime.now(UTC) + JST).date().isoformat()
        subject = t["digest_subject"].format(date=date, n=len(views))
        intro = t["digest_intro"].format(date=date, n=len(views))
    else:
        subject = t["alert_subject"].format(species=views[0]["species"], place=views[0]["place"])
        intro = t["alert_intro"]
    c = {"t": t, "lang": rec.lang, "links": links, "sightings": views, "intro": intro,
         "subject": subject, "credit": ctx.credit(), "safety_url": safety_url}
    msg = _message(smtp, rec, subject, render("alert.txt", **c), render("alert.html", **c))
    msg["Message-ID"] = f"<{key}@{_domain(smtp.sender)}>"
    msg["List-Unsubscribe"] = f"<{links['unsubscribe']}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return msg


def _domain(sender: str) -> str:
    return sender.rpartition("@")[2].strip(">") or "localhost"


def send_smtp(smtp: SmtpSettings, msg: EmailMessage) -> None:
    """One SMTP conversation (STARTTLS and login as configured); raises on any failure."""
    user = os.environ.get(smtp.username_env) if smtp.username_env else None
    password = os.environ.get(smtp.password_env) if smtp.password_env else None
    with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as s:
        s.ehlo()
        if smtp.starttls:
            cafile = str(smtp.ca_file) if smtp.ca_file else None
            s.starttls(context=ssl.create_default_context(cafile=cafile))
            s.ehlo()
        if user and password:
            s.login(user, password)
        s.send_message(msg)


def smtp_error(exc: Exception) -> tuple[int | None, str]:
    """An outbox-safe description of a failure: the class and SMTP code, no address."""
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in exc.recipients.values()]
        code = codes[0] if codes else None
    return code, f"{type(exc).__name__}" + (f" (SMTP {code})" if code else "")


class EmailSender:
    """The outbox senders of the three e-mail kinds (registered in ``Dispatcher.senders``)."""

    def __init__(self, alerts: EmailAlerts, settings: AlertSettings, ctx: Context) -> None:
        assert settings.smtp is not None
        self.alerts = alerts
        self.settings = settings
        self.smtp = settings.smtp
        self.ctx = ctx
        self._owner = ""

    def register(self, dispatcher: Dispatcher) -> None:
        """Make the dispatcher send the e-mail kinds."""
        dispatcher.senders.update({EMAIL: self.send, DIGEST: self.send, CONFIRM: self.send})
        dispatcher.housekeeping.append(self.alerts.purge_unconfirmed)
        self._owner = dispatcher.owner

    async def send(self, client: httpx.AsyncClient, c: Claimed) -> Outcome:
        """Compose and send the mail of one claimed delivery (``Cancelled`` when moot)."""
        rec = await asyncio.to_thread(self.alerts.recipient, c.subscription_id)
        if rec is None:
            raise Cancelled("the subscription is gone (unsubscribed or expired)")
        if c.kind == CONFIRM:
            if rec.confirmed or c.event_id != f"confirm.{rec.confirm_nonce}":
                raise Cancelled("confirmation superseded or already confirmed")
            area = await asyncio.to_thread(self._area_text, rec)
            links = self.alerts.links(rec, self.ctx.base_url)
            return await self._send(confirmation_mail(
                self.smtp, rec, links, area, self.settings.email.safety_url))
        if not rec.confirmed:
            raise Cancelled("subscription not confirmed")
        if c.kind == DIGEST:
            return await self._digest(rec, c)
        return await self._send(self._alert(rec, [json.loads(c.feature)], c.idempotency_key))

    def _alert(self, rec: Recipient, docs: list[dict[str, Any]], key: str) -> EmailMessage:
        links = self.alerts.links(rec, self.ctx.base_url)
        return alert_mail(self.smtp, rec, docs, links, self.ctx, self.settings.email.safety_url,
                          key)

    async def _digest(self, rec: Recipient, c: Claimed) -> Outcome:
        """One mail for every due digest row of the subscription; a task that finds them
        taken by another digest mail reports so (its row is no longer its to record)."""
        token = f"{self._owner}#digest{c.id}"
        rows = await asyncio.to_thread(
            self.alerts.take_digest, rec.id, self._owner, token, self.settings.lease_s
        )
        if not rows:
            return Outcome(None, "carried by another digest mail")
        msg = self._alert(rec, [json.loads(f) for _, f in rows], c.idempotency_key)
        out = await self._send(msg)
        dead = out.permanent or c.attempts >= self.settings.max_attempts
        outcome = "delivered" if out.error is None else "dead" if dead else "retry"
        await asyncio.to_thread(
            self.alerts.settle_digest, token, outcome, backoff(self.settings, c.attempts),
            out.error,
        )
        return out

    async def _send(self, msg: EmailMessage) -> Outcome:
        """One SMTP conversation; a 5xx refusal is permanent (dead, not retried: the
        relay will refuse it again), anything else - down, 4xx - is retried."""
        try:
            await asyncio.to_thread(send_smtp, self.smtp, msg)
        except (OSError, smtplib.SMTPException) as exc:
            code, error = smtp_error(exc)
            return Outcome(code, error, permanent=code is not None and 500 <= code < 600)
        return Outcome(250)

    def _area_text(self, rec: Recipient) -> str:
        """The alert area in words, for the confirmation mail."""
        row = self.alerts.db.execute(
            "SELECT area_input, species FROM email_subscriptions WHERE id = ?", (rec.id,)
        ).fetchone()
        if row is None:
            return ""
        area = json.loads(row[0])
        species = json.loads(row[1])
        if "municipality" in area:
            where = self.ctx.names().get(area["municipality"], area["municipality"])
        elif "point" in area:
            lon, lat = area["point"]
            where = f"{lat:.4f}, {lon:.4f} ± {area.get('radius_m', 0) / 1000:g} km"
        else:
            where = "GeoJSON"
        kinds = ", ".join(label("species", s, rec.lang) for s in species) or "*"
        return f"{where} / {kinds} / {strings()[rec.lang]['mode_' + rec.mode]}"
