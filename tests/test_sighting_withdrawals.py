"""Withdrawn sightings on the SSE stream, on both stores.

A stream client (live, or replaying with ``Last-Event-ID``) that was sent a sighting must
learn when it is withdrawn - rejected, set to another status, deleted - from an
``event: withdrawn`` that names the feature only; a sighting never published makes no
event at all.  The event is written by the write path itself (``GuardedWriter`` listeners),
so the test writes through the writer every route uses.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import Point

from geoservice.auth.http import AuthServices
from geoservice.auth.tokens import Principal
from geoservice.auth.writes import GuardedWriter
from geoservice.config import Settings
from geoservice.features import Feature
from geoservice.runtime import runtime_of_app
from geoservice.sightings.alerts import Outbox
from tests.conftest import ROOT, LiveServer, build_layers, free_port, pg_built, settings_for
from tests.test_alerts import SseReader

LAYERS = ["admin-boundaries", "wildlife-sightings"]
SIGHTINGS = "wildlife-sightings"
OKUTAMA = Point(139.0944, 35.8093)
ADMIN = Principal("-", "withdrawal test", None, True)


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The app over a sightings store of each backend, served on a free port."""
    tmp = tmp_path_factory.mktemp(f"withdrawn-{request.param}")
    port = free_port()
    settings: Settings
    if request.param == "gpkg":
        settings = build_layers(settings_for(tmp, ROOT / "layers", port), LAYERS)
    else:
        make_db: Callable[[str], str] = request.getfixturevalue("pg_database")
        settings = pg_built(tmp, make_db("withdrawn"), LAYERS)
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={"port": port})}
        )
    # heartbeats every 0.3 s let a stopped reader's thread notice and hang up
    alerts = settings.alerts.model_copy(update={"heartbeat_s": 0.3, "poll_s": 0.2})
    with LiveServer(settings.model_copy(update={"alerts": alerts})) as srv:
        yield srv


def _writer(srv: LiveServer) -> GuardedWriter:
    return runtime_of_app(srv.server.config.app).services.require(AuthServices).writer


def _create(writer: GuardedWriter, **props: Any) -> Feature:
    base = {"species": "asian-black-bear", "kind": "witness",
            "observed_at": "2025-10-01T06:30:00+09:00"}
    return writer.create(ADMIN, SIGHTINGS, Feature("", {**base, **props}, OKUTAMA))


def _drain(reader: SseReader, wait_s: float = 1.5) -> list[dict[str, str]]:
    """Every event the stream sends until it is quiet for ``wait_s``."""
    got = []
    while True:
        try:
            got.append(reader.next(timeout=wait_s))
        except queue.Empty:
            return got


def _named(events: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(event type, feature id) of stream events."""
    return [(ev["event"], json.loads(ev["data"])["id"]) for ev in events]


def test_withdrawals_reach_live_and_replaying_stream_clients(served: LiveServer) -> None:
    writer = _writer(served)
    stream = f"{served.url}/api/sightings/stream"
    live = SseReader(stream)
    assert live.connected.wait(5)
    anchor = _create(writer)
    rejected, deleted = _create(writer), _create(writer)
    writer.update(ADMIN, SIGHTINGS, rejected.id, {"status": "rejected"}, None, None)
    writer.delete(ADMIN, SIGHTINGS, deleted.id, None)
    # a report never published, then deleted: nobody was shown it, so no event
    pending = _create(writer, status="pending")
    writer.delete(ADMIN, SIGHTINGS, pending.id, None)
    # a rejected sighting edited again: still not public, nothing to say
    writer.update(ADMIN, SIGHTINGS, rejected.id, {"count": 2}, None, None)
    expected = [
        ("sighting", rejected.id),
        ("sighting", deleted.id),
        ("withdrawn", rejected.id),
        ("withdrawn", deleted.id),
    ]
    seen = _drain(live)
    live.stop.set()
    assert _named(seen) == [("sighting", anchor.id), *expected]
    # reconnecting after the anchor replays the withdrawals too, in order
    replay = SseReader(stream, last_event_id=seen[0]["id"])
    replayed = _drain(replay)
    replay.stop.set()
    assert _named(replayed) == expected
    for ev in replayed:  # a withdrawal names the feature, nothing else
        if ev["event"] == "withdrawn":
            assert set(json.loads(ev["data"])) == {"id"}


def test_a_withdrawal_cancels_the_sightings_alerts_not_yet_sent(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "alerts.sqlite")
    try:
        sid, *_ = ob.add_subscription(OKUTAMA.buffer(0.1), {}, [], "http://example.invalid/")
        ob.append_event(SIGHTINGS, "ws-1", "{}", [sid])
        ob.append_event(SIGHTINGS, "ws-2", "{}", [sid])
        ob.withdraw(SIGHTINGS, "ws-1")
        assert ob.delivery_counts(sid) == {"pending": 1, "delivered": 0, "dead": 0,
                                           "cancelled": 1}
        last = ob.events_after(0)[-1]
        assert (last.event_type, json.loads(last.data)) == ("withdrawn", {"id": "ws-1"})
    finally:
        ob.close()
