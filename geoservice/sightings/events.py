"""The event interface the sighting write paths call when a sighting's publication changes.

    rt.services.require(EventBus).changed("wildlife-sightings", before, after)

is called after each successful write of a sighting (``before``/``after`` None for a
create/delete).  A write that leaves a sighting published (created as published, updated
while published, approved by moderation, harvested) calls ``published``; one that takes
a published sighting away (rejected, set to another status, deleted) calls ``withdrawn``,
so a stream client that was shown it learns to drop it.  A correction of a published
sighting is streamed again but alerts only the subscriptions it newly matches (see
``EventBus.published``).  ``published`` records the
event and one outbox row per matching subscription in one transaction and returns (a few
milliseconds; no network): on PostGIS in the feature write's own transaction (a
transactional outbox: the feature, its audit entry, its event and its deliveries commit
together), on the embedded store in one durable SQLite transaction after the write.  The
app's dispatcher task posts the webhooks and the SSE stream tails the event table, so
events published by another process (the ``geoservice harvest`` CLI, another app host)
are delivered too; on PostGIS a ``LISTEN`` connection per process wakes both at once.

``attach_alerts(rt)`` builds the bus, the outbox and the dispatcher once at start-up; it
registers its shutdown in ``rt.shutdown_hooks`` (run by the app lifespan).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shapely.geometry import mapping

from geoservice.config import Settings
from geoservice.features import Feature
from geoservice.runtime import Runtime
from geoservice.sightings.alerts import CHANNEL, DDL, Dispatcher, Notifier, Outbox, Subscription
from geoservice.sightings.email_alerts import EmailAlerts
from geoservice.sightings.mailer import EmailSender, mail_context
from geoservice.sightings.policy import PUBLISHED, SensitiveConfig
from geoservice.sightings.push import PUSH, push_sender
from geoservice.state import open_db
from geoservice.state.pg import Listener, PgDB
from geoservice.store import Store

log = logging.getLogger("geoservice.events")
#: A delivery of another channel: (subscription id, kind, due at epoch seconds).
Delivery = tuple[str, str, float]
#: A channel's matcher: the deliveries a feature makes.
Matcher = Callable[[Feature], list[Delivery]]

#: Collections whose features carry sightings (published status, species, sensitivity).
SIGHTINGS = "wildlife-sightings"


def outbox_path(settings: Settings) -> Path:
    """Where the embedded alerts database lives."""
    return settings.alerts.db or (settings.work_dir / "alerts.sqlite")


def open_outbox(settings: Settings, store: Store | None) -> Outbox:
    """The alerts database: ``alerts.sqlite``, or on PostGIS the ``geoservice_alerts``
    schema of the store's database (every host's streams and dispatchers share it)."""
    return Outbox(open_db(settings, store, "alerts", DDL, outbox_path(settings)))


def public_geojson(feature: Feature, sensitive: SensitiveConfig | None = None) -> dict[str, Any]:
    """The feature as the public may see it: sensitive positions generalised (read policy)."""
    if sensitive is not None:
        feature = sensitive.public(feature)
    geom = feature.geometry
    return {
        "type": "Feature",
        "id": feature.id,
        "properties": dict(feature.properties),
        "geometry": None if geom is None else mapping(geom),
    }


class EventBus:
    """Durable, non-blocking publication of sighting events."""

    def __init__(
        self,
        outbox: Outbox,
        notifier: Notifier | None = None,
        sensitive: SensitiveConfig | None = None,
    ) -> None:
        self.outbox = outbox
        self.notifier = notifier or Notifier()
        self.sensitive = sensitive
        #: other channels' matchers (e-mail, ...): (feature, public GeoJSON) -> deliveries
        #: as (subscription id, kind, due at); they run in the event's transaction
        self.matchers: list[Matcher] = []

    def published(
        self, collection: str, feature: Feature, corrects: Feature | None = None
    ) -> str | None:
        """Record that ``feature`` of ``collection`` is now published; return the event id.

        ``corrects``: the published version this write corrects (same sighting, still
        published).  The stream gets every version (clients replace it by id), but a
        subscription is alerted to a sighting at most once, and by a correction only
        when the correction newly matches it (moved into its area, or now of its
        species): it is alerted iff the feature matches it, ``corrects`` did not, and no
        alert of this sighting is pending, sent or dead for it (a point moved away and
        back, a sighting withdrawn and re-approved).  A public service does not alert
        citizens again for every edit.  Its alerts not yet attempted follow the correction
        (``Outbox.follow_correction``).  Matching uses the exact position; payloads carry
        the public one (sensitive records generalised as the read policy does).
        Features whose ``status`` is set to anything but ``published`` are ignored.
        """
        if not is_published(feature):
            log.debug("not publishing %s/%s with status %s", collection, feature.id,
                      feature.properties.get("status"))
            return None
        matched, others = self.alerts(feature)
        matches = {s.id for s in matched} | {sid for sid, _, _ in others}
        if matches:
            done = self.outbox.alerted(collection, feature.id)
            if corrects is not None:
                old, old_others = self.alerts(corrects)
                done |= {s.id for s in old} | {sid for sid, _, _ in old_others}
            matched = [s for s in matched if s.id not in done]
            others = [d for d in others if d[0] not in done]
        doc = public_geojson(feature, self.sensitive)
        body = json.dumps(doc, ensure_ascii=False, default=str)
        event_id, _ = self.outbox.append_event(
            collection, feature.id, body, matched, others,
            correction_matches=None if corrects is None else matches,
        )
        self.notifier.notify()
        return event_id

    def alerts(self, feature: Feature) -> tuple[list[Subscription], list[Delivery]]:
        """The alerts ``feature`` makes: the outbox's matching subscriptions (webhook,
        push) and the other channels' deliveries (e-mail) as (id, kind, due at)."""
        species = feature.properties.get("species")
        subs = [s for s in self.outbox.subscriptions() if s.matches(feature.geometry, species)]
        return subs, [d for m in self.matchers for d in m(feature)]

    def withdrawn(self, collection: str, feature_id: str) -> str:
        """Record that a published sighting was withdrawn; return the event id (the event
        names the feature only; its pending alerts are cancelled)."""
        event_id = self.outbox.withdraw(collection, feature_id)
        self.notifier.notify()
        return event_id

    def changed(
        self, collection: str, before: Feature | None, after: Feature | None
    ) -> str | None:
        """Record what a write did to a sighting's publication; the event id, if any.

        The writers' listener: published -> ``published``; still published -> ``published``
        as a correction of ``before`` (alerts only where it newly matches); published
        before but not after (rejected, unpublished, deleted) -> ``withdrawn``; a sighting
        that was never public makes no event (nobody was shown it)."""
        if is_published(after):
            assert after is not None
            return self.published(collection, after, before if is_published(before) else None)
        if is_published(before):
            assert before is not None
            return self.withdrawn(collection, before.id)
        return None


def is_published(feature: Feature | None) -> bool:
    """Whether the bus publishes ``feature``: no status, or ``published``."""
    if feature is None:
        return False
    status = feature.properties.get("status")
    return status is None or status == PUBLISHED


def open_bus(settings: Settings, store: Store | None = None) -> EventBus:
    """A bus without a dispatcher (for the CLI: the serving app delivers what it records);
    on PostGIS give the open ``store`` (the outbox lives in its database)."""
    outbox = open_outbox(settings, store)
    bus = EventBus(outbox, sensitive=SensitiveConfig.load(settings.sightings))
    bus.matchers.append(EmailAlerts(outbox.db, settings.alerts).match)
    return bus


def attach_alerts(rt: Runtime) -> EventBus:
    """Build the alert services for a runtime and start the dispatcher on the running loop.

    Puts the ``EventBus``, the ``Outbox`` and the ``Dispatcher`` in ``rt.services`` and
    its shutdown in ``rt.shutdown_hooks``; returns the bus (the one already there, if any).
    """
    existing = rt.services.get(EventBus)
    if existing is not None:
        return existing  # already attached (idempotent)
    settings = rt.settings
    outbox = rt.services.put(open_outbox(settings, rt.store))
    notifier = Notifier()
    bus = rt.services.put(EventBus(outbox, notifier, SensitiveConfig.load(settings.sightings)))
    email = rt.services.put(EmailAlerts(outbox.db, settings.alerts))
    bus.matchers.append(email.match)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None or not settings.alerts.enabled:
        rt.shutdown_hooks.append(outbox.close)
        return bus
    notifier.bind(loop)
    dispatcher = rt.services.put(Dispatcher(outbox, notifier, settings.alerts))
    pusher = push_sender(rt, outbox)
    if pusher is not None:
        dispatcher.senders[PUSH] = pusher
    if settings.alerts.smtp is not None:
        EmailSender(email, settings.alerts, mail_context(rt)).register(dispatcher)
    dispatcher.start()
    listener = None
    if isinstance(outbox.db, PgDB):  # events committed by other hosts wake this one
        listener = Listener(outbox.db.store.url, CHANNEL, notifier.notify)
        listener.start()

    async def shutdown() -> None:
        if listener is not None:
            await asyncio.to_thread(listener.stop)
        await dispatcher.stop()
        outbox.close()

    rt.shutdown_hooks.append(shutdown)
    return bus
