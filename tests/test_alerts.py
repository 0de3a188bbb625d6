"""Alert subscriptions: signed webhook delivery, retries, durability, SSE, AsyncAPI."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from shapely.geometry import Point

from geoservice.app import create_app
from geoservice.build import build
from geoservice.config import Settings
from geoservice.features import Feature
from geoservice.runtime import runtime_of_app
from geoservice.sightings.alerts import Outbox
from geoservice.sightings.events import EventBus, open_bus
from tests.cluster import Receiver
from tests.conftest import DATA, ROOT, LiveServer, free_port, settings_for

OKUTAMA = Point(139.10, 35.81)  # 奥多摩町
HACHIOJI = Point(139.30, 35.66)  # 八王子市, ~25 km away
AREA = {
    "type": "Polygon",
    "coordinates": [[[139.0, 35.75], [139.2, 35.75], [139.2, 35.9], [139.0, 35.9], [139.0, 35.75]]],
}


# -- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(scope="session")
def sightings_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with only the wildlife-sightings layer (built from the real extract)."""
    tmp = tmp_path_factory.mktemp("sightings")
    build(settings_for(tmp, ROOT / "layers"), mirror=DATA, layers=["wildlife-sightings"])
    return tmp


def alert_settings(store_dir: Path, work: Path, port: int | None = None, **alerts: Any) -> Settings:
    """Settings over ``store_dir`` whose alert outbox lives in ``work`` (fast retries)."""
    base = settings_for(store_dir, ROOT / "layers", port)
    opts: dict[str, Any] = {
        "db": work / "alerts.sqlite",
        "allow_private_webhooks": True,
        "retry_base_s": 0.2,
        "poll_s": 0.2,
        "timeout_s": 2.0,
        "lease_s": 5.0,
    }
    opts.update(alerts)
    return base.model_copy(update={"alerts": base.alerts.model_copy(update=opts)})


def wired_app(settings: Settings) -> FastAPI:
    """The app, with the alerts router added unless the room already has it."""
    from geoservice.sightings.alerts_api import router

    app = create_app(settings)
    if "/api/subscriptions" not in {getattr(r, "path", None) for r in app.routes}:
        app.include_router(router)
    return app


def sighting(fid: str, where: Point = OKUTAMA, species: str = "asian-black-bear") -> Feature:
    return Feature(
        fid,
        {
            "species": species,
            "kind": "witness",
            "observed_at": "2025-11-20T06:30:00Z",
            "count": 1,
            "status": "published",
            "source": "test",
        },
        where,
    )


def bus_of(client: TestClient) -> EventBus:
    bus = runtime_of_app(client.app).services.require(EventBus)
    assert isinstance(bus, EventBus)
    return bus


def subscribe(client: TestClient, webhook: str, **body: Any) -> dict[str, Any]:
    payload = {"area": AREA, "species": ["asian-black-bear"], "webhook": webhook, **body}
    r = client.post("/api/subscriptions", json=payload)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def verify(secret: str, req: dict[str, Any]) -> dict[str, Any]:
    expected = "sha256=" + hmac.new(secret.encode(), req["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req["headers"]["X-GeoTwin-Signature"], expected)
    assert abs(int(req["headers"]["X-GeoTwin-Timestamp"]) - time.time()) < 60
    return json.loads(req["body"])  # type: ignore[no-any-return]


@pytest.fixture()
def app_client(sightings_store: Path, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(
        wired_app(alert_settings(sightings_store, tmp_path)), raise_server_exceptions=False
    ) as c:
        yield c


# -- webhook delivery -------------------------------------------------------------------


def test_matching_sighting_is_delivered_signed_within_one_second(app_client: TestClient) -> None:
    with Receiver() as rx:
        sub = subscribe(app_client, rx.url)
        assert sub["secret"] and sub["management_token"] and sub["id"]
        t0 = time.monotonic()
        event_id = bus_of(app_client).published("wildlife-sightings", sighting("a-1"))
        (req,) = rx.wait(1)
        latency = req["t"] - t0
        assert latency < 1.0, f"delivered after {latency:.3f} s"
        body = verify(sub["secret"], req)
        assert body["event_id"] == event_id
        assert body["subscription_id"] == sub["id"]
        assert body["feature"]["type"] == "Feature"
        assert body["feature"]["id"] == "a-1"
        assert body["feature"]["geometry"]["coordinates"] == [OKUTAMA.x, OKUTAMA.y]
        assert req["headers"]["X-GeoTwin-Event-Id"] == event_id
        time.sleep(0.5)
        assert len(rx.requests) == 1
    auth = {"Authorization": f"Bearer {sub['secret']}"}
    got = app_client.get(f"/api/subscriptions/{sub['id']}", headers=auth).json()
    assert got["deliveries"]["delivered"] == 1
    assert "secret" not in got


def test_radius_area_and_non_matching_area_or_species(app_client: TestClient) -> None:
    with Receiver() as rx:
        near = {"point": [OKUTAMA.x, OKUTAMA.y], "radius_m": 2000}
        sub = subscribe(app_client, rx.url, area=near, species=[])
        assert sub["area_geometry"]["type"] == "Polygon"
        bus = bus_of(app_client)
        bus.published("wildlife-sightings", sighting("far", HACHIOJI))
        # ~1.5 km east of the centre: inside the 2 km circle (distance in EPSG:6677 metres)
        bus.published("wildlife-sightings", sighting("near", Point(OKUTAMA.x + 0.0165, OKUTAMA.y)))
        # ~2.5 km east: outside
        bus.published("wildlife-sightings", sighting("out", Point(OKUTAMA.x + 0.0275, OKUTAMA.y)))
        (req,) = rx.wait(1)
        assert verify(sub["secret"], req)["feature"]["id"] == "near"
        time.sleep(0.8)
        assert len(rx.requests) == 1

    with Receiver() as rx2:
        subscribe(app_client, rx2.url, species=["japanese-macaque"])
        bus.published("wildlife-sightings", sighting("bear", OKUTAMA))  # wrong species
        bus.published("wildlife-sightings", sighting("monkey", HACHIOJI, "japanese-macaque"))
        time.sleep(1.0)
        assert rx2.requests == []


def test_failing_receiver_is_retried_with_backoff(app_client: TestClient) -> None:
    with Receiver(fail_first=3) as rx:
        sub = subscribe(app_client, rx.url)
        bus_of(app_client).published("wildlife-sightings", sighting("r-1"))
        reqs = rx.wait(1, timeout=15)
        assert len(reqs) == 4
        gaps = [b["t"] - a["t"] for a, b in zip(reqs, reqs[1:], strict=False)]
        # base 0.2 s doubling (+ up to 20 % jitter): ~0.2, ~0.4, ~0.8
        assert gaps[0] >= 0.18 and gaps[1] >= 0.36 and gaps[2] >= 0.72, gaps
        assert gaps[2] > gaps[0]
        ids = {json.loads(r["body"])["event_id"] for r in reqs}
        assert len(ids) == 1
        attempts = [int(r["headers"]["X-GeoTwin-Delivery-Attempt"]) for r in reqs]
        assert attempts == [1, 2, 3, 4]
        verify(sub["secret"], reqs[-1])


def test_dead_letter_after_bounded_attempts(sightings_store: Path, tmp_path: Path) -> None:
    settings = alert_settings(sightings_store, tmp_path, max_attempts=3, retry_base_s=0.05)
    with TestClient(wired_app(settings)) as client, Receiver(fail_first=100) as rx:
        sub = subscribe(client, rx.url)
        bus_of(client).published("wildlife-sightings", sighting("d-1"))
        auth = {"Authorization": f"Bearer {sub['management_token']}"}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            counts = client.get(f"/api/subscriptions/{sub['id']}", headers=auth).json()
            if counts["deliveries"]["dead"] == 1:
                break
            time.sleep(0.05)
        assert counts["deliveries"] == {"pending": 0, "delivered": 0, "dead": 1, "cancelled": 0}
        assert len(rx.requests) == 3
        dead = client.get(
            f"/api/subscriptions/{sub['id']}/deliveries?status=dead", headers=auth
        ).json()["deliveries"]
        assert dead[0]["attempts"] == 3 and dead[0]["last_status"] == 500
        assert "HTTP 500" in dead[0]["last_error"]


def test_pending_delivery_survives_restart_exactly_once(
    sightings_store: Path, tmp_path: Path
) -> None:
    port = free_port()  # nobody listens yet: the receiver is down
    url = f"http://127.0.0.1:{port}/hook"
    settings = alert_settings(sightings_store, tmp_path, max_attempts=30, retry_base_s=0.1)
    with TestClient(wired_app(settings)) as first:
        sub = subscribe(first, url)
        event_id = bus_of(first).published("wildlife-sightings", sighting("s-1"))
        outbox = runtime_of_app(first.app).services.require(Outbox)
        deadline = time.monotonic() + 5
        while outbox.deliveries(sub["id"], "pending")[0]["attempts"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    # the app is stopped with the delivery pending; nothing is delivered meanwhile
    row = Outbox(settings.alerts.db).deliveries(sub["id"], None)  # type: ignore[arg-type]
    assert [d["status"] for d in row] == ["pending"]
    with Receiver(port=port) as rx, TestClient(wired_app(settings)):
        (req,) = rx.wait(1, timeout=10)
        assert verify(sub["secret"], req)["event_id"] == event_id
        time.sleep(1.0)
        assert len(rx.requests) == 1


def test_two_processes_do_not_claim_the_same_delivery(tmp_path: Path) -> None:
    db = tmp_path / "alerts.sqlite"
    a, b = Outbox(db), Outbox(db)
    area = Point(139, 35).buffer(1)
    sid, *_ = a.add_subscription(area, {}, [], "http://example.invalid/")
    for i in range(200):
        a.append_event("wildlife-sightings", f"f{i}", "{}", [sid])
    claimed: dict[str, list[int]] = {"a": [], "b": []}

    def run(name: str, ob: Outbox) -> None:
        while batch := ob.claim(name, 7, 60):
            claimed[name] += [c.id for c in batch]

    threads = [threading.Thread(target=run, args=x) for x in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(claimed["a"]) & set(claimed["b"])
    assert len(claimed["a"]) + len(claimed["b"]) == 200
    # an expired lease is taken over by another process
    a.append_event("wildlife-sightings", "late", "{}", [sid])
    (c,) = a.claim("a", 10, 0.2)
    assert b.claim("b", 10, 60) == []
    time.sleep(0.25)
    (again,) = b.claim("b", 10, 60)
    assert again.id == c.id and again.attempts == 2


# -- validation and management ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"webhook": "ftp://example.org/x"}, 422, "http"),
        ({"webhook": "not a url"}, 422, "http"),
        ({"species": ["unicorn"]}, 422, "asian-black-bear"),
        ({"area": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}, 400, "area"),
        (
            {
                "area": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                }
            },
            400,
            "valid",
        ),
        ({"area": {"type": "Point", "coordinates": [139, 35]}}, 400, "Polygon"),
        ({"area": {"type": "Polygon", "coordinates": "x"}}, 400, "area"),
        ({"area": {"type": "Polygon", "coordinates": [[[139, 35], [139.1, 35.1], [139.1, 35],
                                                      [139, 35.1], [139, 35]]]}},
         400, "Self-intersection"),
        ({"area": {"point": [139.1, 95], "radius_m": 100}}, 400, "point"),
        ({"area": {"point": [139.1, 35.8], "radius_m": 1}}, 422, "radius_m"),
        ({"area": {"point": [139.1, 35.8], "radius_m": 10_000_000}}, 422, "radius_m"),
        ({"area": {"point": [139.1, 35.8]}}, 422, "radius_m"),
        ({"extra": 1}, 422, "extra"),
    ],
)
def test_subscription_validation(
    app_client: TestClient, body: dict[str, Any], status: int, fragment: str
) -> None:
    payload = {"area": AREA, "species": [], "webhook": "https://example.org/hook", **body}
    r = app_client.post("/api/subscriptions", json=payload)
    assert r.status_code == status, r.text
    doc = r.json()
    assert set(doc) == {"code", "description"}
    assert fragment in doc["description"]


def test_private_webhooks_refused_by_default(sightings_store: Path, tmp_path: Path) -> None:
    settings = alert_settings(sightings_store, tmp_path, allow_private_webhooks=False)
    with TestClient(wired_app(settings)) as client:
        for hook in ("http://127.0.0.1:9/x", "http://localhost/x", "http://10.0.0.1/x"):
            r = client.post("/api/subscriptions", json={"area": AREA, "webhook": hook})
            assert r.status_code == 422, hook


def test_get_and_delete_need_the_secret_or_token(app_client: TestClient) -> None:
    sub = subscribe(app_client, "https://example.org/hook")
    url = f"/api/subscriptions/{sub['id']}"
    assert app_client.get(url).status_code == 401
    assert app_client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert app_client.get("/api/subscriptions/nope").status_code == 404
    for cred in (sub["secret"], sub["management_token"]):
        got = app_client.get(url, headers={"Authorization": f"Bearer {cred}"})
        assert got.status_code == 200
        assert got.json()["webhook"] == "https://example.org/hook"
    auth = {"Authorization": f"Bearer {sub['management_token']}"}
    assert app_client.delete(url, headers={"Authorization": "Bearer x"}).status_code == 403
    assert app_client.delete(url, headers=auth).status_code == 204
    assert app_client.get(url, headers=auth).status_code == 404


def test_asyncapi_document(app_client: TestClient) -> None:
    r = app_client.get("/api/asyncapi.json")
    assert r.status_code == 200
    doc = json.loads(r.text)
    assert doc["asyncapi"].startswith("3.")
    for key in ("info", "channels", "operations", "components"):
        assert key in doc
    assert {"title", "version"} <= set(doc["info"])
    assert {"webhook", "sightingStream"} <= set(doc["channels"])
    headers = doc["components"]["schemas"]["WebhookHeaders"]
    assert "X-GeoTwin-Signature" in headers["required"]
    payload = doc["components"]["schemas"]["WebhookBody"]
    assert {"event_id", "subscription_id", "feature"} <= set(payload["required"])

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    for ref in refs(doc):  # every internal reference resolves
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]


# -- server-sent events -----------------------------------------------------------------


class SseReader:
    """Reads an SSE stream in a thread, putting parsed events (and comments) on a queue."""

    def __init__(self, url: str, last_event_id: str | None = None) -> None:
        self.url = url
        self.headers = {"Accept": "text/event-stream"}
        if last_event_id:
            self.headers["Last-Event-ID"] = last_event_id
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        self.comments: list[str] = []
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.status: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.stream("GET", self.url, headers=self.headers, timeout=30) as r:
            self.status = r.status_code
            assert r.headers["content-type"].startswith("text/event-stream")
            current: dict[str, str] = {}
            for line in r.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith(":"):
                    self.comments.append(line)
                    self.connected.set()
                elif line == "":
                    if "data" in current:
                        self.events.put(current)
                    current = {}
                else:
                    field, _, value = line.partition(":")
                    current[field] = value.removeprefix(" ")

    def next(self, timeout: float = 5) -> dict[str, str]:
        return self.events.get(timeout=timeout)


def test_sse_stream_and_last_event_id_replay(sightings_store: Path, tmp_path: Path) -> None:
    settings = alert_settings(sightings_store, tmp_path, free_port(), heartbeat_s=0.3)
    srv = LiveServer(settings)
    srv.server = uvicorn.Server(
        uvicorn.Config(wired_app(settings), host="127.0.0.1", port=srv.port, log_level="warning")
    )
    srv.thread = threading.Thread(target=srv.server.run, daemon=True)
    with srv:
        bus = runtime_of_app(srv.server.config.app).services.require(EventBus)
        stream = f"{srv.url}/api/sightings/stream"
        reader = SseReader(stream)
        assert reader.connected.wait(5)
        t0 = time.monotonic()
        e1 = bus.published("wildlife-sightings", sighting("sse-1"))
        ev = reader.next()
        assert time.monotonic() - t0 < 1.0
        assert ev["event"] == "sighting" and ev["id"] == e1
        assert json.loads(ev["data"])["id"] == "sse-1"
        # another process (e.g. the harvest CLI) publishing through the same database
        other = open_bus(settings)
        e2 = other.published("wildlife-sightings", sighting("sse-2", HACHIOJI))
        ev2 = reader.next()
        assert ev2["id"] == e2 and json.loads(ev2["data"])["id"] == "sse-2"
        time.sleep(0.7)
        assert any("heartbeat" in c for c in reader.comments)
        reader.stop.set()
        e3 = bus.published("wildlife-sightings", sighting("sse-3"))
        # reconnect after e1: e2 and e3 are replayed in order
        replay = SseReader(stream, last_event_id=e1)
        got = [replay.next(), replay.next()]
        assert [g["id"] for g in got] == [e2, e3]
        replay.stop.set()
        # an unknown (pruned) id: a reset notice, then live events only
        lost = SseReader(stream, last_event_id="unknown")
        assert lost.next()["event"] == "reset"
        e4 = bus.published("wildlife-sightings", sighting("sse-4"))
        assert lost.next()["id"] == e4
        lost.stop.set()


# -- end to end through the write path ------------------------------------------------------


def test_create_through_ogc_transactions_triggers_delivery(
    sightings_store: Path, tmp_path: Path
) -> None:
    settings = alert_settings(sightings_store, tmp_path)
    items = "/ogc/collections/wildlife-sightings/items"
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [OKUTAMA.x, OKUTAMA.y]},
        "properties": {
            "species": "asian-black-bear",
            "kind": "witness",
            "observed_at": "2025-11-21T07:00:00Z",
            "municipality_code": "13308",
            "count": 1,
            "status": "published",
        },
    }
    with TestClient(wired_app(settings), raise_server_exceptions=False) as client:
        # the Part 4 route exists and refuses an anonymous write (a 404/405 here is a failure)
        probe = client.post(items, json=feature, headers={"Content-Type": "application/geo+json"})
        assert probe.status_code == 401, probe.text
        from geoservice.auth.db import AuthDB, auth_db_path
        from geoservice.auth.tokens import TokenStore

        token, _ = TokenStore(AuthDB(auth_db_path(settings.work_dir))).create(
            "alerts-e2e", admin=True
        )
        with Receiver() as rx:
            sub = subscribe(client, rx.url)
            t0 = time.monotonic()
            r = client.post(
                items,
                json=feature,
                headers={
                    "Content-Type": "application/geo+json",
                    "Authorization": f"Bearer {token}",
                },
            )
            assert r.status_code == 201, r.text
            try:
                (req,) = rx.wait(1, timeout=3)
            except AssertionError:
                pytest.fail(
                    "POST …/items exists and created the sighting, but no webhook was sent: "
                    "the write path must call rt.services.require(EventBus).published(collection, "
                    "feature) after a successful write of a published sighting"
                )
            assert req["t"] - t0 < 1.5
            body = verify(sub["secret"], req)
            assert body["feature"]["properties"]["observed_at"].startswith("2025-11-21")


def test_prune_keeps_events_with_pending_deliveries(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "alerts.sqlite")
    sid, *_ = ob.add_subscription(Point(139, 35).buffer(1), {}, [], "http://example.invalid/")
    ob.append_event("wildlife-sightings", "no-subscriber", "{}", [])
    kept, _ = ob.append_event("wildlife-sightings", "pending", "{}", [sid])
    assert ob.prune(-1) == 1
    assert [e.event_id for e in ob.events_after(0)] == [kept]


def test_sensitive_sighting_is_matched_exactly_but_sent_generalised(tmp_path: Path) -> None:
    from shapely.geometry import shape

    from geoservice.sightings.policy import SensitiveConfig, generalise

    ob = Outbox(tmp_path / "alerts.sqlite")
    try:
        bus = EventBus(ob, sensitive=SensitiveConfig({"japanese-serow": 1000}))
        # an area far smaller than the 1 km cell: only the exact position is inside it
        near, *_ = ob.add_subscription(OKUTAMA.buffer(0.0001), {}, [], "http://example.invalid/")
        serow = Feature("s1", {"species": "japanese-serow", "status": "published"}, OKUTAMA)
        bear = Feature("b1", {"species": "asian-black-bear", "status": "published"}, OKUTAMA)
        assert bus.published("wildlife-sightings", serow) is not None
        assert bus.published("wildlife-sightings", bear) is not None
        assert ob.delivery_counts(near)["pending"] == 2
        sent_serow, sent_bear = (e.data for e in ob.events_after(0))
        doc = json.loads(sent_serow)
        assert shape(doc["geometry"]).equals_exact(generalise(OKUTAMA, 1000), 1e-7)
        assert not shape(doc["geometry"]).equals_exact(OKUTAMA, 1e-6)
        assert doc["properties"]["location_generalised_m"] == 1000
        plain = json.loads(sent_bear)
        assert shape(plain["geometry"]).equals_exact(OKUTAMA, 1e-9)
        assert "location_generalised_m" not in plain["properties"]
    finally:
        ob.close()


# -- corrections --------------------------------------------------------------------------


def test_corrections_alert_only_the_subscriptions_they_newly_match(
    app_client: TestClient,
) -> None:
    """Edits of a published sighting through the write path: every version is streamed,
    but each subscription is alerted to the sighting once - by a correction only when the
    correction newly matches it (moved into its area, now of its species)."""
    from geoservice.auth.http import AuthServices
    from geoservice.auth.tokens import Principal

    rt = runtime_of_app(app_client.app)
    writer = rt.services.require(AuthServices).writer
    admin = Principal("-", "corrections test", None, True)
    cid = "wildlife-sightings"
    there = {"point": [HACHIOJI.x, HACHIOJI.y], "radius_m": 3000}
    with Receiver() as bears_here, Receiver() as bears_there, Receiver() as boars_here:
        subscribe(app_client, bears_here.url)
        subscribe(app_client, bears_there.url, area=there)
        subscribe(app_client, boars_here.url, species=["wild-boar"])
        f = writer.create(admin, cid, sighting("", OKUTAMA))
        bears_here.wait(1)
        writer.update(admin, cid, f.id, {"count": 3, "description": "三頭"}, None, None)
        writer.update(admin, cid, f.id, {}, HACHIOJI, None)  # into bears_there's area
        bears_there.wait(1)
        writer.update(admin, cid, f.id, {}, OKUTAMA, None)  # and back: alerted already
        writer.update(admin, cid, f.id, {"species": "wild-boar"}, None, None)
        boars_here.wait(1)
        time.sleep(1.0)  # time for any further (wrong) alert to arrive
        for rx in (bears_here, bears_there, boars_here):
            assert [json.loads(r["body"])["feature"]["id"] for r in rx.requests] == [f.id]
    versions = [e for e in rt.services.require(Outbox).events_after(0)
                if json.loads(e.data)["id"] == f.id]
    assert len(versions) == 5 and {e.event_type for e in versions} == {"sighting"}
