"""Harvest neighbouring prefectures' sighting feeds (OGC API Features) into our store.

For each feed in ``config.yml`` (``feeds: [{id, url, collection, mapping, value_maps, …}]``)
``harvest()`` pages through ``{url}/collections/{collection}/items`` following ``next``
links, maps each remote feature to our schema, and writes it to the target collection
(``wildlife-sightings``) under the stable id ``feed-<feed id>-<remote id>`` with provenance
``source`` = feed id and ``source_id`` = remote id.

Incremental: when a feed names an ``updated_field`` (a remote temporal property that grows
when a record changes) the largest value seen is kept as the feed's high-water mark and
the next run asks for ``datetime=<mark>/..`` only.  Remotes that ignore ``datetime`` (or
feeds without an update field) are read in full; either way every record's content hash
(of the mapped, storage-normalised properties and geometry) decides: unknown id → create,
known id with another hash → replace, same hash → unchanged.  So re-running is idempotent
and a run interrupted half-way is simply resumed by the next one.

New or changed records that are published are announced on the event bus (webhooks, SSE).
Every write is journalled in the audit log as actor ``harvest:<feed id>``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from geoservice import feeds as pager
from geoservice.auth.audit import AuditLog, audited_upsert
from geoservice.auth.db import open_auth_db
from geoservice.auth.tokens import Principal
from geoservice.catalogue import LayerSpec
from geoservice.config import FeedSettings, Settings
from geoservice.errors import InvalidParameter, NotFound, SourceError
from geoservice.features import Feature
from geoservice.runs import RunReport
from geoservice.state import StateDB, open_db
from geoservice.state.sqlite import SqliteDB
from geoservice.store import Store, values

if TYPE_CHECKING:
    from geoservice.sightings.events import EventBus

log = logging.getLogger("geoservice.harvest")

_DDL = """
CREATE TABLE IF NOT EXISTS feeds (
    feed_id TEXT PRIMARY KEY,
    high_water TEXT,
    last_run TEXT,
    last_report TEXT
);
CREATE TABLE IF NOT EXISTS items (
    feed_id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    local_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (feed_id, remote_id)
);
"""
DDL = {"sqlite": _DDL, "postgresql": _DDL}  # portable as written


@dataclass(kw_only=True)
class HarvestReport(RunReport):
    """What one run did for one feed (its JSON is kept as the feed's last report)."""

    feed: str
    fetched: int = 0
    pages: int = 0
    incremental: bool = False
    high_water: str | None = None


class HarvestState:
    """Per-feed high-water marks and per-record content hashes (``harvest.sqlite``, or the
    ``geoservice_harvest`` schema on PostGIS, so a harvest may run from any host)."""

    def __init__(self, db: StateDB | Path) -> None:
        self.db: StateDB = SqliteDB(db, _DDL) if isinstance(db, Path) else db


    def high_water(self, feed: str) -> str | None:
        """The feed's high-water mark (ISO datetime) or None before the first run."""
        row = self.db.execute(
            "SELECT high_water FROM feeds WHERE feed_id = ?", (feed,)
        ).fetchone()
        return None if row is None else row[0]

    def item_hash(self, feed: str, remote_id: str) -> str | None:
        """The content hash last stored for a remote record."""
        row = self.db.execute(
            "SELECT hash FROM items WHERE feed_id = ? AND remote_id = ?", (feed, remote_id)
        ).fetchone()
        return None if row is None else row[0]

    def remember(self, feed: str, remote_id: str, local_id: str, digest: str) -> None:
        """Record a remote record's content hash (after the store write)."""
        self.db.execute(
            "INSERT INTO items (feed_id, remote_id, local_id, hash, seen_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT (feed_id, remote_id) DO UPDATE SET local_id = excluded.local_id,"
            " hash = excluded.hash, seen_at = excluded.seen_at",
            (feed, remote_id, local_id, digest, _now()),
        )

    def finish(self, report: HarvestReport) -> None:
        """Store the run's high-water mark and report."""
        self.db.execute(
            "INSERT INTO feeds (feed_id, high_water, last_run, last_report) VALUES (?,?,?,?)"
            " ON CONFLICT (feed_id) DO UPDATE SET"
            " high_water = COALESCE(excluded.high_water, feeds.high_water),"
            " last_run = excluded.last_run, last_report = excluded.last_report",
            (report.feed, report.high_water, _now(), json.dumps(report.as_json())),
        )

    def close(self) -> None:
        """Release the database handle."""
        self.db.close()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def local_id(feed: FeedSettings, remote_id: str) -> str:
    """The stable local id of a harvested record."""
    return f"feed-{feed.id}-{remote_id}"


def content_hash(spec: LayerSpec, f: Feature) -> str:
    """Hash of the storage form of properties and geometry (what decides 'changed')."""
    props = values.to_storage(spec, f.properties)
    geom = "" if f.geometry is None else shapely.to_wkt(f.geometry, rounding_precision=7)
    doc = json.dumps({"p": props, "g": geom}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


def _with_zone(text: str, zone: str) -> str:
    """An ISO date-time string; one without an offset is taken in ``zone``."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("/", "-"))
    except ValueError:
        return text  # left for validation to report
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(zone))
    return dt.isoformat()


def map_feature(feed: FeedSettings, spec: LayerSpec, remote: dict[str, Any]) -> Feature:
    """Our feature for a remote GeoJSON feature (``InvalidParameter`` if it cannot map)."""
    rprops = remote.get("properties") or {}
    rid = rprops.get(feed.id_field) if feed.id_field else remote.get("id")
    if rid is None or str(rid).strip() == "":
        raise InvalidParameter("remote feature has no id")
    rid = str(rid).strip()
    props: dict[str, Any] = {}
    for local, remote_field in feed.mapping.items():
        v = rprops.get(remote_field)
        vmap = feed.value_maps.get(local)
        if vmap is not None and v is not None:
            if str(v) not in vmap:
                raise InvalidParameter(
                    f"{local}: remote value {v!r} of {remote_field!r} has no mapping; "
                    f"mapped: {sorted(vmap)}"
                )
            v = vmap[str(v)]
        if v is not None and v != "":
            props[local] = v
    for k, v in feed.constants.items():
        props.setdefault(k, v)
    for p in spec.properties:
        if p.type == "datetime" and isinstance(props.get(p.name), str):
            props[p.name] = _with_zone(props[p.name], feed.timezone)
    props["source"] = feed.id
    props["source_id"] = rid
    known = {p.name for p in spec.properties}
    props = {k: v for k, v in props.items() if k in known}
    geom: BaseGeometry | None
    if feed.lon_field and feed.lat_field:
        try:
            geom = Point(float(rprops[feed.lon_field]), float(rprops[feed.lat_field]))
        except (KeyError, TypeError, ValueError):
            raise InvalidParameter(
                f"no numeric {feed.lon_field}/{feed.lat_field} on remote {rid}"
            ) from None
    else:
        g = remote.get("geometry")
        try:
            geom = shape(g) if g else None
        except Exception:
            raise InvalidParameter(f"remote {rid}: invalid geometry") from None
    if geom is None or geom.is_empty:
        raise InvalidParameter(f"remote {rid}: no geometry")
    if spec.geometry_type not in ("Geometry", geom.geom_type):
        raise InvalidParameter(f"remote {rid}: {geom.geom_type}, expected {spec.geometry_type}")
    x, y = geom.centroid.x, geom.centroid.y
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        raise InvalidParameter(f"remote {rid}: coordinates are not CRS84 degrees")
    values.to_storage(spec, props)  # validate types and code lists
    return Feature(local_id(feed, rid), props, geom)


@dataclass
class _FeedRun:
    """One harvest of one feed: what it writes to and what it has seen so far."""

    feed: FeedSettings
    spec: LayerSpec
    store: Store
    state: HarvestState
    bus: EventBus | None
    audit: AuditLog | None
    report: HarvestReport
    high: datetime | None

    def take(self, remote: dict[str, Any]) -> None:
        """Map, dedupe and write one remote record (its audit, mark and event with it)."""
        feed, spec, store, state, report = self.feed, self.spec, self.store, self.state, self.report
        report.fetched += 1
        try:
            f = map_feature(feed, spec, remote)
        except InvalidParameter as exc:
            report.skip(exc.description, keep=50)
            return
        rid = str(f.properties["source_id"])
        self.saw((remote.get("properties") or {}).get(feed.updated_field or ""))
        digest = content_hash(spec, f)
        try:
            before: Feature | None = store.get(feed.target, f.id)
        except NotFound:
            before = None
        if before is not None and (
            state.item_hash(feed.id, rid) == digest or content_hash(spec, before) == digest
        ):
            report.unchanged += 1
            state.remember(feed.id, rid, f.id, digest)
            return
        try:
            # PostGIS: the record, its audit entry, its mark and its event commit together
            with store.unit():
                who = Principal(f"harvest-{feed.id}", f"harvest:{feed.id}", None, True)
                stored = audited_upsert(store, self.audit, who, feed.target, before, f, "harvest")
                state.remember(feed.id, rid, f.id, digest)
                if self.bus is not None:  # published, withdrawn, or nothing to say
                    self.bus.changed(feed.target, before, stored)
        except Exception as exc:  # one bad record must not stop the feed
            report.skip(f"{f.id}: {exc}")
            return
        report.wrote(before)

    def saw(self, raw: Any) -> None:
        """Raise the high-water mark to a record's ``updated_field`` value (if it parses)."""
        if raw is None or not self.feed.updated_field:
            return
        try:
            t = values.parse_datetime(raw)
        except (TypeError, ValueError):
            return
        if t is not None and (self.high is None or t > self.high):
            self.high = t

    def walk(self, client: httpx.Client, params: dict[str, Any]) -> None:
        """Write page by page: a page is written before the next one is fetched."""
        url = pager.items_url(self.feed.url, self.feed.collection)
        for page in pager.pages(client, url, params, self.feed.id):
            self.report.pages += 1
            for remote in page:
                self.take(remote)


def harvest_feed(
    feed: FeedSettings,
    store: Store,
    state: HarvestState,
    client: httpx.Client,
    bus: EventBus | None = None,
    audit: AuditLog | None = None,
) -> HarvestReport:
    """Pull one feed; return what changed."""
    params: dict[str, Any] = {"limit": feed.page_size}
    mark = state.high_water(feed.id) if feed.updated_field else None
    report = HarvestReport(feed=feed.id, incremental=bool(mark))
    if mark:
        params["datetime"] = f"{mark}/.."
    high = values.parse_datetime(mark) if mark else None
    run = _FeedRun(feed, store.spec(feed.target), store, state, bus, audit, report, high)
    try:
        run.walk(client, params)
    except SourceError:
        if not report.incremental or report.pages:
            raise
        # the remote refused datetime= (on its first page): read it in full (hashes dedupe)
        log.warning("feed %s refused datetime=; reading in full", feed.id)
        report.incremental = False
        params.pop("datetime")
        run.walk(client, params)
    if run.high is not None:
        report.high_water = values.format_datetime(run.high)
    state.finish(report)
    return report


def harvest(
    settings: Settings,
    store: Store,
    bus: EventBus | None = None,
    only: list[str] | None = None,
    client: httpx.Client | None = None,
    audit: bool = True,
) -> list[HarvestReport]:
    """Harvest every configured feed (or those in ``only``); one report per feed."""
    feeds = settings.feeds
    if only:
        unknown = sorted(set(only) - {f.id for f in feeds})
        if unknown:
            raise SourceError(f"unknown feed(s) {unknown}; configured: {[f.id for f in feeds]}")
        feeds = [f for f in feeds if f.id in only]
    state = HarvestState(open_db(settings, store, "harvest", DDL))
    own = client is None
    http = client or httpx.Client(follow_redirects=True, timeout=60)
    journal = AuditLog(open_auth_db(settings, store)) if audit else None
    reports = []
    try:
        for feed in feeds:
            http.timeout = httpx.Timeout(feed.timeout_s)
            reports.append(harvest_feed(feed, store, state, http, bus, journal))
    finally:
        if own:
            http.close()
        state.close()
        if journal is not None:
            journal.db.close()
    return reports
