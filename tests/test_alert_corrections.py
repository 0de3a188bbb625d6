"""Alerts not yet attempted follow a correction of their sighting, on both state backends.

A digest waiting for its hour (or an alert not yet claimed) must carry the corrected
sighting, and be cancelled for a subscription the correction no longer matches; an alert
already attempted keeps what it carried (a retry repeats the same alert).  That a
correction alerts nobody new is tested through the write path in test_alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import Point, box

from geoservice.features import Feature
from geoservice.sightings.alerts import DDL, Outbox
from geoservice.sightings.events import EventBus
from geoservice.state import schema_of
from geoservice.state.pg import PgDB
from geoservice.store.postgis import PostgisStore

OKUTAMA = Point(139.10, 35.81)
HACHIOJI = Point(139.30, 35.66)
CID = "wildlife-sightings"


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outbox]:
    """The alerts database of each backend."""
    if request.param == "sqlite":
        ob = Outbox(tmp_path / "alerts.sqlite")
        yield ob
        ob.close()
        return
    make_db: Callable[[str], str] = request.getfixturevalue("pg_database")
    store = PostgisStore(make_db(f"corr_{tmp_path.name[-12:].lower()}"), create=True)
    try:
        yield Outbox(PgDB(store, schema_of("alerts"), DDL["postgresql"]))
    finally:
        store.close()


def _sighting(where: Point, **props: Any) -> Feature:
    return Feature("ws-1", {"species": "asian-black-bear", "status": "published",
                            "count": 1, **props}, where)


def _rows(ob: Outbox, sid: str) -> list[tuple[str, str]]:
    return [(d["event_id"], d["status"]) for d in ob.deliveries(sid, None)]


def test_unsent_alerts_follow_the_correction_or_are_cancelled(outbox: Outbox) -> None:
    bus = EventBus(outbox)
    here, *_ = outbox.add_subscription(OKUTAMA.buffer(0.05), {}, [], "http://example.invalid/a")
    both, *_ = outbox.add_subscription(box(139.0, 35.6, 139.4, 35.9), {}, [],
                                       "http://example.invalid/b")
    first = _sighting(OKUTAMA)
    bus.published(CID, first)
    counted = _sighting(OKUTAMA, count=2)
    e2 = bus.changed(CID, first, counted)
    assert _rows(outbox, here) == [(e2, "pending")] and _rows(outbox, both) == [(e2, "pending")]
    moved = _sighting(HACHIOJI, count=2)
    e3 = bus.changed(CID, counted, moved)
    assert _rows(outbox, here) == [(e2, "cancelled")]  # no longer in its area
    assert _rows(outbox, both) == [(e3, "pending")]
    # an alert once attempted keeps what it carried
    (claimed,) = outbox.claim("test-owner", 10, 60.0)
    outbox.retry_later(claimed.id, "test-owner", 0.0, 500, "HTTP 500")
    bus.changed(CID, moved, _sighting(HACHIOJI, count=3))
    assert _rows(outbox, both) == [(e3, "pending")]
