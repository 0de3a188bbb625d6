"""Alert subscriptions, the event log and the durable outbox of deliveries.

One database - ``<work_dir>/alerts.sqlite`` on the embedded store (unless ``alerts.db``
says otherwise; WAL, ``synchronous=FULL``), the ``geoservice_alerts`` schema of the
PostGIS store's database otherwise (``geoservice.state``) - holds these tables:

- ``subscriptions``: area (GeoJSON, CRS84; a point + radius is stored as the metric buffer
  it stands for), species filter, delivery ``kind`` (``webhook``, ``push``), the URL
  deliveries go to (webhook URL or push endpoint), signing secret, hashed management token;
- ``push_subscriptions``: a Web Push subscription's encryption keys (``p256dh``, ``auth``;
  see ``geoservice.sightings.push``), deleted with its subscription;
- ``events``: every published sighting (``event_type`` ``sighting``, the public GeoJSON)
  and every withdrawal of one (``withdrawn``: ``{"id": feature id}`` only), in order
  (``seq``), with a globally unique ``event_id``; the SSE stream tails it and replays from
  it (``Last-Event-ID``), so a client that saw a sighting also learns it was withdrawn.  Appends
  take turns until their commit (an advisory lock on PostgreSQL, the write lock on
  SQLite), so ``seq`` order is commit order and a reader tailing by ``seq`` never skips;
- ``deliveries``: the outbox, one row per (event, matching subscription) with its ``kind``
  (``webhook``; the dispatcher maps kinds to senders, so other channels add a sender),
  written in the same transaction as the event - on PostGIS the feature write's own;
- ``meta``: ``subs_version``, bumped on every subscription change so each process reloads
  its prepared geometries only when they changed.

Delivery is claimed with one atomic ``UPDATE … WHERE status='pending' AND next_attempt_at
<= now AND lease_until <= now … RETURNING`` (on PostgreSQL over ``FOR UPDATE SKIP
LOCKED``, so hosts claiming at once take different rows without waiting): a row belongs to
one process until its lease expires (a process or host that dies mid-delivery loses it
after ``lease_s``; the row is then retried by anyone), and only the lease holder can record
the outcome, so each (event, subscription) is recorded delivered once.  A receiver may see
a delivery twice only in that crash window - sent, then the host died before recording
it; every attempt carries the same ``Idempotency-Key`` (``<event_id>.<subscription_id>``)
to de-duplicate on.  Lease times are epoch seconds of the hosts' clocks: keep them in NTP
sync (a skew of a second shortens or lengthens a lease by that much).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.prepared import PreparedGeometry, prep

from geoservice.config import AlertSettings
from geoservice.crs import CRS84, SUPPORTED, transform
from geoservice.sightings.email_schema import CONFIRM, EMAIL_DDL, EMAIL_KINDS
from geoservice.state import DB_ERRORS, StateDB, Tx, pg_ddl, worker_id
from geoservice.state.sqlite import SqliteDB

log = logging.getLogger("geoservice.alerts")

SIGNATURE_HEADER = "X-GeoTwin-Signature"
TIMESTAMP_HEADER = "X-GeoTwin-Timestamp"
EVENT_HEADER = "X-GeoTwin-Event-Id"
#: One key per (event, subscription), the same on every attempt and host (dedupe on it).
IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "X-GeoTwin-Delivery-Attempt"
#: The delivery kind of a webhook POST (``Dispatcher.senders`` maps kinds to senders).
WEBHOOK = "webhook"
METRIC = SUPPORTED["http://www.opengis.net/def/crs/EPSG/0/6677"]
WGS = SUPPORTED[CRS84]

_CORE_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('subs_version', 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    area TEXT NOT NULL,
    area_input TEXT NOT NULL,
    species TEXT NOT NULL,
    webhook TEXT NOT NULL,
    secret TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'webhook'
);
CREATE TABLE IF NOT EXISTS push_subscriptions (
    subscription_id TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL,
    feature_id TEXT NOT NULL,
    feature TEXT NOT NULL,
    created_at REAL NOT NULL,
    event_type TEXT NOT NULL DEFAULT 'sighting'
);
CREATE INDEX IF NOT EXISTS events_feature ON events (collection, feature_id);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'webhook',
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'dead', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL,
    UNIQUE (event_id, subscription_id)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_sub ON deliveries (subscription_id, status);
"""
#: PostgreSQL schemas made before subscriptions had a kind or events a type (SQLite:
#: ``_migrate``)
_PG_MIGRATE = (
    "ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS kind TEXT NOT NULL DEFAULT 'webhook';"
    "ALTER TABLE events ADD COLUMN IF NOT EXISTS event_type TEXT NOT NULL DEFAULT 'sighting';"
)
_DDL = _CORE_DDL + EMAIL_DDL
DDL = {"sqlite": _DDL, "postgresql": pg_ddl(_DDL) + _PG_MIGRATE}
#: PostgreSQL channel that wakes every host's SSE streams and dispatcher on a new event
CHANNEL = "geoservice_events"
#: Event types of the log (the SSE ``event:`` field): a sighting published (or corrected
#: while published), and a published sighting withdrawn (rejected, unpublished, deleted).
SIGHTING, WITHDRAWN = "sighting", "withdrawn"


def sign(secret: str, body: bytes) -> str:
    """The value of ``X-GeoTwin-Signature`` for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    """How management tokens are stored (never in clear)."""
    return hashlib.sha256(token.encode()).hexdigest()


def circle(lon: float, lat: float, radius_m: float) -> BaseGeometry:
    """A CRS84 polygon for the disc of ``radius_m`` metres (buffered in EPSG:6677)."""
    centre = transform(shapely.Point(lon, lat), WGS, METRIC)
    return transform(centre.buffer(radius_m, quad_segs=32), METRIC, WGS)


@dataclass(frozen=True)
class Subscription:
    """A subscription as matching needs it."""

    id: str
    area: BaseGeometry
    prepared: PreparedGeometry
    species: frozenset[str]
    webhook: str
    kind: str = "webhook"

    def matches(self, geometry: BaseGeometry | None, species: Any) -> bool:
        """Whether a sighting at ``geometry`` of ``species`` is of interest."""
        if geometry is None or geometry.is_empty:
            return False
        if self.species and species not in self.species:
            return False
        return bool(self.prepared.intersects(geometry))


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed by this process, with what it needs to send it."""

    id: int
    event_id: str
    subscription_id: str
    attempts: int
    kind: str
    webhook: str
    secret: str
    collection: str
    feature: str

    @property
    def idempotency_key(self) -> str:
        """Equal for every attempt of one (event, subscription), on any host: a receiver
        that keeps the keys it has seen processes each alert once."""
        return f"{self.event_id}.{self.subscription_id}"


class Event(NamedTuple):
    """One entry of the event log, as the SSE stream sends it."""

    seq: int
    event_id: str
    #: the public GeoJSON Feature (``sighting``) or ``{"id": ...}`` (``withdrawn``)
    data: str
    event_type: str = SIGHTING


class Outbox:
    """Subscriptions, the event log and the outbox; safe to share between threads.

    ``db`` is the alerts ``StateDB`` (``alerts.sqlite`` or the ``geoservice_alerts``
    schema); a path opens that SQLite file."""

    def __init__(self, db: StateDB | Path) -> None:
        if isinstance(db, Path):
            db = SqliteDB(db, _DDL)
        self.db: StateDB = db
        self._subs: tuple[int, list[Subscription]] = (-1, [])
        if db.dialect == "sqlite":
            _migrate(db)

    def close(self) -> None:
        """Close every connection this outbox opened."""
        self.db.close()

    # -- subscriptions ------------------------------------------------------------------

    def add_subscription(
        self,
        area: BaseGeometry,
        area_input: Any,
        species: list[str],
        webhook: str,
        *,
        kind: str = WEBHOOK,
        push_keys: tuple[str, str] | None = None,
    ) -> tuple[str, str, str, str]:
        """Store a subscription; return (id, secret, management token, created_at).

        ``webhook`` is where deliveries go (a push subscription's endpoint for ``kind``
        ``push``, whose ``push_keys`` = (p256dh, auth) are stored in the same transaction).
        """
        sid = uuid.uuid4().hex
        secret = "whsec_" + secrets.token_urlsafe(32)
        token = "mgmt_" + secrets.token_urlsafe(32)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.db.write() as con:
            con.execute(
                f"INSERT INTO subscriptions ({', '.join(_SUB_COLUMNS)})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sid,
                    json.dumps(mapping(area)),
                    json.dumps(area_input),
                    json.dumps(sorted(species)),
                    webhook,
                    secret,
                    token_hash(token),
                    created,
                    kind,
                ),
            )
            if push_keys is not None:
                con.execute(
                    "INSERT INTO push_subscriptions (subscription_id, endpoint, p256dh, auth)"
                    " VALUES (?, ?, ?, ?)",
                    (sid, webhook, *push_keys),
                )
            con.execute("UPDATE meta SET value = value + 1 WHERE key = 'subs_version'")
        return sid, secret, token, created

    def subscription_row(self, sid: str) -> dict[str, Any] | None:
        """A subscription's stored row (with its secret and token hash), or None."""
        row = self.db.execute(
            f"SELECT {', '.join(_SUB_COLUMNS)} FROM subscriptions WHERE id = ?", (sid,)
        ).fetchone()
        return None if row is None else dict(zip(_SUB_COLUMNS, row, strict=True))

    def delete_subscription(self, sid: str) -> bool:
        """Remove a subscription and cancel its pending deliveries."""
        with self.db.write() as con:
            n = con.execute("DELETE FROM subscriptions WHERE id = ?", (sid,)).rowcount
            con.execute("DELETE FROM push_subscriptions WHERE subscription_id = ?", (sid,))
            con.execute(
                "UPDATE deliveries SET status = 'cancelled', lease_owner = NULL, lease_until = 0"
                " WHERE subscription_id = ? AND status = 'pending'",
                (sid,),
            )
            con.execute("UPDATE meta SET value = value + 1 WHERE key = 'subs_version'")
        return n > 0

    def subscriptions(self) -> list[Subscription]:
        """All subscriptions with prepared areas (reloaded only when they changed)."""
        con = self.db
        row = con.execute("SELECT value FROM meta WHERE key = 'subs_version'").fetchone()
        assert row is not None
        version = int(row[0])
        cached_version, cached = self._subs
        if version == cached_version:
            return cached
        subs = []
        for sid, area, species, webhook, kind in con.execute(
            "SELECT id, area, species, webhook, kind FROM subscriptions ORDER BY id"
        ):
            geom = shape(json.loads(area))
            kinds = frozenset(json.loads(species))
            subs.append(Subscription(sid, geom, prep(geom), kinds, webhook, kind))
        self._subs = (version, subs)
        return subs

    def delivery_counts(self, sid: str) -> dict[str, int]:
        """How many deliveries of a subscription are in each state."""
        rows = self.db.execute(
            "SELECT status, COUNT(*) FROM deliveries WHERE subscription_id = ? GROUP BY status",
            (sid,),
        )
        counts = {"pending": 0, "delivered": 0, "dead": 0, "cancelled": 0}
        counts.update({str(k): int(v) for k, v in rows.fetchall()})
        return counts

    def deliveries(self, sid: str, status: str | None, limit: int = 100) -> list[dict[str, Any]]:
        """A subscription's deliveries, newest first (dead letters: ``status='dead'``)."""
        names = ("id", "event_id", "kind", "status", "attempts", "next_attempt_at",
                 "last_status", "last_error", "created_at", "delivered_at")
        sql = f"SELECT {', '.join(names)} FROM deliveries WHERE subscription_id = ?"
        params: list[Any] = [sid]
        if status:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        out = []
        for row in self.db.execute(sql, params).fetchall():
            d = dict(zip(names, row, strict=True))
            for k in ("next_attempt_at", "created_at", "delivered_at"):
                if d[k] is not None:
                    d[k] = datetime.fromtimestamp(d[k], UTC).isoformat().replace("+00:00", "Z")
            if d["status"] != "pending":
                d["next_attempt_at"] = None
            out.append(d)
        return out

    # -- events -------------------------------------------------------------------------

    def append_event(
        self,
        collection: str,
        feature_id: str,
        feature_json: str,
        subscriptions: list[str] | list[Subscription],
        others: Sequence[tuple[str, str, float]] = (),
        correction_matches: set[str] | None = None,
    ) -> tuple[str, int]:
        """Durably record an event and its deliveries in one transaction; (event_id, seq).

        One delivery per subscription, of the subscription's kind (a bare id: a webhook),
        due now; ``others`` are the deliveries of channels with their own subscription
        tables (e-mail) as (subscription id, kind, due at epoch seconds) - a daily digest
        is due at its hour, not now.  ``correction_matches``: the event corrects the
        feature, which now matches these subscriptions (``follow_correction``)."""
        with self.db.write() as con:
            out = self._append(con, collection, feature_id, feature_json, SIGHTING,
                               [_target(sub) for sub in subscriptions], others)
            if correction_matches is not None:
                self.follow_correction(con, collection, feature_id, out[0], correction_matches)
        return out

    def follow_correction(
        self, con: Tx, collection: str, feature_id: str, event_id: str, matches: set[str]
    ) -> None:
        """Make the feature's alerts not yet attempted (a digest waiting for its hour, an
        alert not yet claimed) carry its corrected version ``event_id``, or cancel them
        for subscriptions it no longer matches (moved out of the area, another species):
        nobody gets a stale or no-longer-relevant alert.  Alerts already attempted keep
        what they first carried (a retry repeats the same alert, same Idempotency-Key)."""
        untouched = ("d.status = 'pending' AND d.attempts = 0 AND d.last_error IS NULL"
                     " AND d.lease_until <= ?")
        rows = con.execute(
            "SELECT d.id, d.subscription_id FROM deliveries d JOIN events e"
            " ON e.event_id = d.event_id WHERE e.collection = ? AND e.feature_id = ?"
            f" AND d.event_id != ? AND {untouched}",
            (collection, feature_id, event_id, time.time()),
        ).fetchall()
        moved: set[str] = set()
        for did, sid in rows:  # a claim in between is excluded by re-checking ``untouched``
            if sid in matches and sid not in moved:  # one alert per subscription and event
                moved.add(sid)
                change: tuple[str, str] = ("event_id = ?", event_id)
            else:
                change = ("status = 'cancelled', last_error = ?",
                          "superseded by a correction of the sighting")
            con.execute(f"UPDATE deliveries AS d SET {change[0]} WHERE d.id = ? AND {untouched}",
                        (change[1], did, time.time()))

    def _append(
        self,
        con: Tx,
        collection: str,
        feature_id: str,
        data: str,
        event_type: str,
        subscriptions: Sequence[tuple[str, str]],
        others: Sequence[tuple[str, str, float]],
    ) -> tuple[str, int]:
        """``append_event`` inside the caller's transaction ``con``."""
        event_id = uuid.uuid4().hex
        now = time.time()
        # Sequence numbers in commit order (readers tail by seq and must never skip a
        # late-committing lower one): appends take turns until their commit.
        self.db.lock(con, "alerts.events")
        row = con.execute(
            "INSERT INTO events (event_id, collection, feature_id, feature, created_at,"
            " event_type) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
            (event_id, collection, feature_id, data, now, event_type),
        ).fetchone()
        assert row is not None
        due_now = [(sid, kind, now) for sid, kind in subscriptions]
        for sid, kind, due in [*due_now, *others]:
            con.execute(
                "INSERT INTO deliveries (event_id, subscription_id, kind, next_attempt_at,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (event_id, sid, kind, due, now),
            )
        self.db.notify(con, CHANNEL)  # PostgreSQL: delivered to listeners at commit
        return event_id, int(row[0])

    def withdraw(self, collection: str, feature_id: str) -> str:
        """Record that a published sighting was withdrawn; return the event id.

        The event carries the feature id only (no position, no properties: what was
        withdrawn may have been wrong or private), so stream clients drop what they show.
        In the same transaction the sighting's alerts not yet sent (a daily digest waiting
        for its hour, a webhook being retried) are cancelled: nobody is alerted to a
        sighting that is no longer public.  Alerts already sent are not recalled."""
        doc = json.dumps({"id": feature_id}, ensure_ascii=False)
        with self.db.write() as con:
            event_id, _ = self._append(con, collection, feature_id, doc, WITHDRAWN, [], [])
            con.execute(
                "UPDATE deliveries SET status = 'cancelled', last_error = 'sighting withdrawn'"
                " WHERE status = 'pending' AND lease_until <= ? AND event_id IN (SELECT"
                " event_id FROM events WHERE collection = ? AND feature_id = ?)",
                (time.time(), collection, feature_id),
            )
        return event_id

    def alerted(self, collection: str, feature_id: str) -> set[str]:
        """The subscriptions already alerted to a feature: a delivery of one of its events
        pending, sent or dead (not cancelled: a withdrawal cancelled it before it left)."""
        rows = self.db.execute(
            "SELECT DISTINCT d.subscription_id FROM events e JOIN deliveries d"
            " ON d.event_id = e.event_id WHERE e.collection = ? AND e.feature_id = ?"
            " AND d.status != 'cancelled'",
            (collection, feature_id),
        )
        return {str(r[0]) for r in rows}

    def last_seq(self) -> int:
        """The newest event's sequence number (0 when there is none)."""
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return 0 if row is None else int(row[0])

    def seq_of(self, event_id: str) -> int | None:
        """The sequence number of an event id (None if unknown)."""
        row = self.db.execute("SELECT seq FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else int(row[0])

    def events_after(self, seq: int, limit: int = 100) -> list[Event]:
        """The events after ``seq``, oldest first."""
        rows = self.db.execute(
            "SELECT seq, event_id, feature, event_type FROM events WHERE seq > ?"
            " ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [Event(int(s), e, f, t) for s, e, f, t in rows.fetchall()]

    # -- delivery -----------------------------------------------------------------------

    def claim(self, owner: str, limit: int, lease_s: float) -> list[Claimed]:
        """Atomically take up to ``limit`` due deliveries for ``owner`` (one statement)."""
        now = time.time()
        con = self.db
        # PostgreSQL: rows another host is claiming right now are skipped, not waited for
        skip = " FOR UPDATE SKIP LOCKED" if con.dialect == "postgresql" else ""
        rows = con.execute(
            "UPDATE deliveries SET lease_owner = ?, lease_until = ?, attempts = attempts + 1"
            " WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending'"
            "   AND next_attempt_at <= ? AND lease_until <= ?"
            f"   ORDER BY next_attempt_at, id LIMIT ?{skip})"
            " AND status = 'pending' AND lease_until <= ?"
            " RETURNING id, event_id, subscription_id, attempts, kind",
            (owner, now + lease_s, now, now, limit, now),
        ).fetchall()
        if not rows:
            return []
        # what each claimed row needs to be sent, in one query (not two per row); other
        # channels keep their subscriptions in their own tables (their senders look them
        # up) and may send what is not an event (an e-mail confirmation)
        found = {
            r[0]: r[1:]
            for r in con.execute(
                "SELECT d.id, s.webhook, s.secret, e.collection, e.feature FROM deliveries d"
                " LEFT JOIN subscriptions s ON s.id = d.subscription_id"
                " LEFT JOIN events e ON e.event_id = d.event_id"
                f" WHERE d.id IN ({', '.join('?' * len(rows))})",
                [r[0] for r in rows],
            )
        }
        out = []
        for did, eid, sid, attempts, kind in rows:
            webhook, secret, collection, feature = found.get(did, (None,) * 4)
            own_table = kind in EMAIL_KINDS  # e-mail keeps its subscriptions apart
            if (webhook is None and not own_table) or (feature is None and kind != CONFIRM):
                self.finish(did, owner, "cancelled", None, "subscription or event gone")
                continue
            out.append(Claimed(did, eid, sid, attempts, kind, webhook or "", secret or "",
                               collection or "", feature or ""))
        return out

    def finish(
        self, did: int, owner: str, status: str, http_status: int | None, error: str | None
    ) -> None:
        """Record a final outcome (delivered, dead, cancelled) of a claimed delivery."""
        self.db.execute(
            "UPDATE deliveries SET status = ?, last_status = ?, last_error = ?,"
            " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,"
            " lease_owner = NULL, lease_until = 0 WHERE id = ? AND lease_owner = ?",
            (status, http_status, error, status, time.time(), did, owner),
        )

    def retry_later(
        self, did: int, owner: str, delay_s: float, http_status: int | None, error: str
    ) -> None:
        """Give a claimed delivery back, due again in ``delay_s``."""
        self.db.execute(
            "UPDATE deliveries SET next_attempt_at = ?, last_status = ?, last_error = ?,"
            " lease_owner = NULL, lease_until = 0 WHERE id = ? AND lease_owner = ?",
            (time.time() + delay_s, http_status, error, did, owner),
        )

    def release(self, owner: str) -> None:
        """Give back every lease ``owner`` holds (on shutdown), without spending an attempt."""
        self.db.execute(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = 0,"
            " attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END"
            " WHERE lease_owner = ? AND status = 'pending'",
            (owner,),
        )

    def prune(self, older_than_s: float) -> int:
        """Delete old events and finished deliveries (pending ones are kept)."""
        cutoff = time.time() - older_than_s
        with self.db.write() as con:
            con.execute(
                "DELETE FROM deliveries WHERE status != 'pending' AND created_at < ?", (cutoff,)
            )
            n = con.execute(
                "DELETE FROM events WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM"
                " deliveries d WHERE d.event_id = events.event_id AND d.status = 'pending')",
                (cutoff,),
            ).rowcount
        return int(n)

    def next_due(self) -> float | None:
        """When the earliest pending delivery becomes due (epoch seconds)."""
        row = self.db.execute(
            "SELECT MIN(CASE WHEN next_attempt_at > lease_until THEN next_attempt_at"
            " ELSE lease_until END) FROM deliveries WHERE status = 'pending'"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])


def _target(sub: str | Subscription) -> tuple[str, str]:
    """(subscription id, delivery kind) of a subscription (a bare id: a webhook)."""
    return (sub, WEBHOOK) if isinstance(sub, str) else (sub.id, sub.kind)


_SUB_COLUMNS = ("id", "area", "area_input", "species", "webhook", "secret", "token_hash",
                "created_at", "kind")


#: Columns added since the first release: (table, column, definition).
_ADDED = (
    ("deliveries", "kind", "TEXT NOT NULL DEFAULT 'webhook'"),
    ("subscriptions", "kind", "TEXT NOT NULL DEFAULT 'webhook'"),
    ("events", "event_type", "TEXT NOT NULL DEFAULT 'sighting'"),
)


def _migrate(db: StateDB) -> None:
    """Migrate an ``alerts.sqlite`` made before a column of ``_ADDED`` existed (SQLite has
    no ``ADD COLUMN IF NOT EXISTS``)."""
    for table, column, definition in _ADDED:
        cols = {r[1] for r in db.execute(f"PRAGMA table_info({table})").fetchall()}
        if column not in cols:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


class Notifier:
    """Wakes coroutines on one event loop; ``notify`` may be called from any thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the app's loop (called at start-up)."""
        self.loop = loop

    def notify(self) -> None:
        """Wake every waiter (thread-safe; a no-op without a running loop)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self.generation += 1
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait(self, generation: int, timeout: float) -> None:
        """Return when notified after ``generation`` was read, or after ``timeout``."""
        if self.generation != generation:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout=max(timeout, 0.0))
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)


def backoff(settings: AlertSettings, attempts: int) -> float:
    """Delay before the next attempt after ``attempts`` failures (doubling, jittered, capped)."""
    base = settings.retry_base_s * (2 ** max(attempts - 1, 0))
    return min(settings.retry_max_s, base) * (1 + random.random() * 0.2)


def webhook_body(c: Claimed) -> bytes:
    """The JSON body posted to a webhook (signed as sent)."""
    body = {
        "type": "sighting.published",
        "event_id": c.event_id,
        "subscription_id": c.subscription_id,
        "collection": c.collection,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "attempt": c.attempts,
        "feature": json.loads(c.feature),
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Outcome:
    """What a sender learnt beyond (status, error): how the receiver wants to be retried.

    ``retry_after_s``: the receiver asked to wait (``Retry-After``; honoured when longer
    than the back-off); ``gone``: the receiver says the subscription no longer exists (a
    push service's 404/410) - it is deleted, never retried; ``permanent``: retrying the
    same request cannot help (e.g. 400/413) - dead at once.
    """

    status: int | None
    error: str | None = None
    retry_after_s: float | None = None
    gone: bool = False
    permanent: bool = False


#: Sends one claimed delivery: ``(HTTP status or None, error text or None)`` or an Outcome.
Sender = Callable[
    [httpx.AsyncClient, Claimed], Awaitable[tuple[int | None, str | None] | Outcome]
]


class Cancelled(Exception):
    """Raised by a sender when a delivery can no longer be made (its subscription is gone
    or superseded): the row is recorded ``cancelled`` with the reason, not retried."""


class Dispatcher:
    """The background task that delivers the outbox (one per app process)."""

    def __init__(self, outbox: Outbox, notifier: Notifier, settings: AlertSettings) -> None:
        self.outbox = outbox
        self.notifier = notifier
        self.settings = settings
        self.owner = worker_id()
        #: delivery kind -> sender; another kind (e.g. e-mail) registers its own here
        self.senders: dict[str, Sender] = {WEBHOOK: post_webhook}
        #: hourly chores of the channels, run with the outbox's pruning (in a thread)
        self.housekeeping: list[Callable[[], object]] = []
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = False

    def start(self) -> None:
        """Start delivering on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="alerts-dispatch")

    async def stop(self) -> None:
        """Stop, cancel in-flight sends and give their leases back."""
        self._stopping = True
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self.outbox.release, self.owner)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.settings.concurrency)
        async with httpx.AsyncClient(
            timeout=self.settings.timeout_s, limits=limits, follow_redirects=False
        ) as client:
            pruned_at = 0.0
            while not self._stopping:
                if time.monotonic() - pruned_at > 3600:
                    pruned_at = time.monotonic()
                    with contextlib.suppress(*DB_ERRORS):
                        await asyncio.to_thread(
                            self.outbox.prune, self.settings.retention_days * 86400
                        )
                    for chore in self.housekeeping:
                        with contextlib.suppress(*DB_ERRORS):
                            await asyncio.to_thread(chore)
                generation = self.notifier.generation
                free = self.settings.concurrency - len(self._inflight)
                claimed: list[Claimed] = []
                if free > 0:
                    try:
                        claimed = await asyncio.to_thread(
                            self.outbox.claim, self.owner, free, self.settings.lease_s
                        )
                    except DB_ERRORS:
                        log.exception("could not claim deliveries")
                for c in claimed:
                    task = asyncio.create_task(self._deliver(client, c))
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
                if claimed:
                    continue
                wait = self.settings.poll_s
                with contextlib.suppress(*DB_ERRORS):
                    due = await asyncio.to_thread(self.outbox.next_due)
                    if due is not None:
                        wait = min(wait, max(due - time.time(), 0.01))
                await self.notifier.wait(generation, wait)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self.notifier.notify()

    async def _deliver(self, client: httpx.AsyncClient, c: Claimed) -> None:
        sender = self.senders.get(c.kind)
        out = Outcome(None, f"no sender for delivery kind {c.kind!r} on this host")
        if sender is not None:
            try:
                sent = await sender(client, c)
            except Cancelled as exc:
                await asyncio.to_thread(
                    self.outbox.finish, c.id, self.owner, "cancelled", None, str(exc)[:500]
                )
                return
            except Exception as exc:  # a sender's bug costs an attempt, never strands the row
                log.exception("delivery %s (%s): the sender failed", c.id, c.kind)
                # the type only: the message may quote what it was sending (keys, addresses)
                sent = Outcome(None, f"the sender failed ({type(exc).__name__})")
            out = sent if isinstance(sent, Outcome) else Outcome(*sent)
        status, error = out.status, out.error
        if error is None:
            await asyncio.to_thread(self.outbox.finish, c.id, self.owner, "delivered", status, None)
            return
        if out.gone:
            log.info("subscription %s gone at its receiver (%s); deleted", c.subscription_id,
                     status)
            await asyncio.to_thread(
                self.outbox.finish, c.id, self.owner, "cancelled", status, error
            )
            await asyncio.to_thread(self.outbox.delete_subscription, c.subscription_id)
            return
        if out.permanent or c.attempts >= self.settings.max_attempts:
            log.warning("delivery %s (%s) dead after %s attempts", c.id, c.kind, c.attempts)
            await asyncio.to_thread(self.outbox.finish, c.id, self.owner, "dead", status, error)
            return
        delay = max(backoff(self.settings, c.attempts), out.retry_after_s or 0.0)
        await asyncio.to_thread(self.outbox.retry_later, c.id, self.owner, delay, status, error)


async def post_webhook(client: httpx.AsyncClient, c: Claimed) -> tuple[int | None, str | None]:
    """POST a signed alert to the subscription's webhook: (HTTP status, error or None)."""
    body = webhook_body(c)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "TokyoGeoTwin-Webhooks/1",
        SIGNATURE_HEADER: sign(c.secret, body),
        TIMESTAMP_HEADER: str(int(time.time())),
        EVENT_HEADER: c.event_id,
        IDEMPOTENCY_HEADER: c.idempotency_key,
        ATTEMPT_HEADER: str(c.attempts),
    }
    try:
        resp = await client.post(c.webhook, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    ok = 200 <= resp.status_code < 300
    return resp.status_code, None if ok else f"HTTP {resp.status_code}"
