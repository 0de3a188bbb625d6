"""Web Push alerts at the protocol level: the test is the push service.

A push service on 127.0.0.1 (started here) receives what the dispatcher sends for a
subscription whose keys the test made like a browser does (a P-256 key pair and a 16-byte
auth secret).  The test checks the VAPID JWT (RFC 8292) with the public key from the
request, and decrypts the aes128gcm body (RFC 8291 / RFC 8188) itself - HKDF and AES-GCM
from ``cryptography``, not the library that encrypted it - before reading the JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi.testclient import TestClient
from shapely.geometry import Point

from geoservice.config import Settings
from geoservice.features import Feature
from geoservice.sightings.alerts import Outbox
from geoservice.sightings.policy import generalise
from geoservice.sightings.push import check_push_subscription, generate_vapid_keys, retry_after
from tests.conftest import ROOT, build_layers, pg_built, settings_for
from tests.test_alerts import AREA, OKUTAMA, Receiver, bus_of, wired_app

SUBJECT = "mailto:alerts@geotwin.test"
LAYERS = ["admin-boundaries", "wildlife-sightings"]


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Browser:
    """The keys a browser's PushManager makes for one subscription."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.auth = os.urandom(16)

    def subscription(self, endpoint: str) -> dict[str, Any]:
        return {"endpoint": endpoint, "expirationTime": None,
                "keys": {"p256dh": b64e(self.public), "auth": b64e(self.auth)}}

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 §3.4 + RFC 8188 §2: one aes128gcm record from the sender's key."""
        salt, rs, idlen = body[:16], struct.unpack(">I", body[16:20])[0], body[20]
        sender = body[21:21 + idlen]
        ciphertext = body[21 + idlen:]
        assert idlen == 65 and sender[0] == 4, "keyid must be the sender's uncompressed key"
        assert len(ciphertext) <= rs, "one record expected"
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
        ecdh = self.key.exchange(ec.ECDH(), peer)

        def hmac256(key: bytes, data: bytes) -> bytes:
            return hmac.new(key, data, hashlib.sha256).digest()

        prk_key = hmac256(self.auth, ecdh)
        ikm = hmac256(prk_key, b"WebPush: info\x00" + self.public + sender + b"\x01")
        prk = hmac256(salt, ikm)
        cek = hmac256(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
        nonce = hmac256(prk, b"Content-Encoding: nonce\x00\x01")[:12]
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        plain = padded.rstrip(b"\x00")
        assert plain.endswith(b"\x02"), "last record delimiter"
        return plain[:-1]


def verify_vapid(authorization: str, audience: str, public_key: str) -> dict[str, Any]:
    """RFC 8292 §3: ``vapid t=<JWT>, k=<key>``; ES256 over header.claims with key k."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid", authorization
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == public_key
    header_b64, claims_b64, sig_b64 = parts["t"].split(".")
    assert json.loads(b64d(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    sig = b64d(sig_b64)
    assert len(sig) == 64
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(parts["k"]))
    key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    claims: dict[str, Any] = json.loads(b64d(claims_b64))
    assert claims["aud"] == audience
    assert claims["sub"] == SUBJECT
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    return claims


class PushService(Receiver):
    """A push service on loopback: records each POST, answers from ``script`` (then 201);
    started and stopped like the webhook ``Receiver``."""

    def __init__(self, script: list[tuple[int, dict[str, str]]] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script = list(script or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"t": time.monotonic(), "path": self.path,
                                       "headers": dict(self.headers), "body": body})
                status, headers = outer.script.pop(0) if outer.script else (201, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def endpoint(self, name: str) -> str:
        return f"{self.origin}/wpush/v2/{name}"

    def wait(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.requests) >= n, f"expected {n} push requests, got {len(self.requests)}"
        return self.requests


def wait_for(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def vapid_pair() -> tuple[str, str]:
    return generate_vapid_keys()


def push_settings(base: Settings, work: Path, key_file: Path, **webpush: Any) -> Settings:
    """``base`` with fast retries, the outbox in ``work`` and push configured by key file."""
    wp = base.alerts.webpush.model_copy(update={
        "private_key_file": key_file, "subject": SUBJECT, "allow_insecure_endpoints": True,
        "vapid_public_key": None, **webpush,
    })
    alerts = base.alerts.model_copy(update={
        "db": work / "alerts.sqlite", "retry_base_s": 0.2, "poll_s": 0.2, "timeout_s": 2.0,
        "lease_s": 5.0, "webpush": wp,
    })
    return base.model_copy(update={"alerts": alerts, "work_dir": work})


@pytest.fixture(scope="session")
def push_store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Sightings and the municipality boundaries (for the names in the payload)."""
    return build_layers(settings_for(tmp_path_factory.mktemp("push"), ROOT / "layers"), LAYERS)


@pytest.fixture(params=["geopackage", "postgis"])
def backend(request: pytest.FixtureRequest, push_store: Settings) -> Settings:
    """Settings over the embedded store, or over a fresh PostGIS database (built once)."""
    if request.param == "geopackage":
        return push_store
    return request.getfixturevalue("pg_push_settings")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def pg_push_settings(
    tmp_path_factory: pytest.TempPathFactory, pg_database: Callable[[str], str]
) -> Settings:
    return pg_built(tmp_path_factory.mktemp("pg-push"), pg_database("push"), LAYERS)


@pytest.fixture()
def client(
    backend: Settings, tmp_path: Path, vapid_pair: tuple[str, str]
) -> Iterator[TestClient]:
    key_file = tmp_path / "vapid.key"
    key_file.write_text(vapid_pair[0])
    settings = push_settings(backend, tmp_path, key_file)
    with TestClient(wired_app(settings), raise_server_exceptions=False) as c:
        yield c


def subscribe(client: TestClient, browser: Browser, endpoint: str, **body: Any) -> dict[str, Any]:
    payload = {"area": AREA, "species": [], "push": browser.subscription(endpoint), **body}
    r = client.post("/api/subscriptions", json=payload)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def sighting(fid: str, where: Point = OKUTAMA, species: str = "asian-black-bear",
             status: str = "published") -> Feature:
    return Feature(fid, {
        "species": species, "kind": "witness", "observed_at": "2025-11-20T06:30:00Z",
        "municipality_code": "13308", "count": 1, "status": status, "source": "test",
    }, where)


def outbox_of(client: TestClient) -> Outbox:
    return bus_of(client).outbox


# -- delivery -------------------------------------------------------------------------


def test_push_is_vapid_signed_and_decrypts_to_the_alert(
    client: TestClient, vapid_pair: tuple[str, str]
) -> None:
    browser = Browser()
    with PushService() as ps:
        sub = subscribe(client, browser, ps.endpoint("abc"))
        assert sub["kind"] == "push" and sub["push"] == {"endpoint": ps.endpoint("abc")}
        assert "webhook" not in sub
        bus_of(client).published("wildlife-sightings", sighting("push-1"))
        (req,) = ps.wait(1)
        h = {k.lower(): v for k, v in req["headers"].items()}
        assert req["path"] == "/wpush/v2/abc"
        assert h["content-encoding"] == "aes128gcm"
        assert int(h["ttl"]) == 86400 and h["urgency"] == "high"
        verify_vapid(h["authorization"], ps.origin, vapid_pair[1])
        alert = json.loads(browser.decrypt(req["body"]))
        # the payload is what the published AsyncAPI document says it is
        doc = client.get("/api/asyncapi.json").json()
        assert doc["channels"]["webPush"]["messages"]["pushAlert"]
        jsonschema.validate(alert, doc["components"]["schemas"]["PushAlert"])
        assert alert["type"] == "sighting" and alert["id"] == "push-1"
        assert alert["species"] == "asian-black-bear"
        assert alert["observed_at_jst"] == "2025-11-20T15:30:00+09:00"  # 06:30Z in JST
        assert alert["municipality_code"] == "13308" and alert["municipality"] == "奥多摩町"
        assert alert["title"]["ja"].startswith("ツキノワグマ")
        assert "奥多摩町" in alert["title"]["ja"]
        assert alert["location"] == [round(OKUTAMA.x, 6), round(OKUTAMA.y, 6)]
        assert alert["location_generalised_m"] is None
        assert alert["url"].endswith("/map/?id=push-1")
        # another subscriber's keys cannot read it
        with pytest.raises(Exception):  # noqa: B017 - AES-GCM tag mismatch (InvalidTag)
            Browser().decrypt(req["body"])
        wait_for(lambda: outbox_of(client).delivery_counts(sub["id"])["delivered"] == 1)
    assert len(ps.requests) == 1  # exactly once


def test_gone_subscription_is_deleted(client: TestClient) -> None:
    with PushService([(410, {})]) as ps:
        sub = subscribe(client, Browser(), ps.endpoint("expired"))
        bus_of(client).published("wildlife-sightings", sighting("push-410"))
        ps.wait(1)
        outbox = outbox_of(client)
        wait_for(lambda: outbox.subscription_row(sub["id"]) is None)
        assert outbox.db.execute("SELECT count(*) FROM push_subscriptions WHERE"
                                 " subscription_id = ?", (sub["id"],)).fetchone() == (0,)
        r = client.get(f"/api/subscriptions/{sub['id']}",
                       headers={"Authorization": f"Bearer {sub['management_token']}"})
        assert r.status_code == 404
        bus_of(client).published("wildlife-sightings", sighting("push-after"))
        time.sleep(0.6)
    assert len(ps.requests) == 1  # nothing more goes to a gone endpoint


def test_unavailable_push_service_is_retried_after_retry_after_and_delivered_once(
    client: TestClient,
) -> None:
    browser = Browser()
    with PushService([(503, {"Retry-After": "1"}), (429, {}), (201, {})]) as ps:
        sub = subscribe(client, browser, ps.endpoint("busy"))
        bus_of(client).published("wildlife-sightings", sighting("push-503"))
        reqs = ps.wait(3)
        assert reqs[1]["t"] - reqs[0]["t"] >= 0.95  # Retry-After: 1 beats the 0.2 s back-off
        bodies = [json.loads(browser.decrypt(r["body"])) for r in reqs]
        assert {b["event_id"] for b in bodies} == {bodies[0]["event_id"]}
        outbox = outbox_of(client)
        wait_for(lambda: outbox.delivery_counts(sub["id"])["delivered"] == 1)
        time.sleep(0.5)
        (d,) = outbox.deliveries(sub["id"], None)
        assert d["status"] == "delivered" and d["attempts"] == 3
    assert len(ps.requests) == 3


def test_pending_report_is_never_pushed_and_sensitive_is_generalised(client: TestClient) -> None:
    browser = Browser()
    with PushService() as ps:
        subscribe(client, browser, ps.endpoint("policy"))
        bus = bus_of(client)
        assert bus.published("wildlife-sightings", sighting("pending-1", status="pending")) is None
        bus.published("wildlife-sightings", sighting("serow-1", species="japanese-serow"))
        (req,) = ps.wait(1)
        alert = json.loads(browser.decrypt(req["body"]))
        assert alert["id"] == "serow-1"
        cell = generalise(OKUTAMA, 1000)
        assert alert["location"] == [round(cell.x, 6), round(cell.y, 6)]
        assert alert["location"] != [round(OKUTAMA.x, 6), round(OKUTAMA.y, 6)]
        assert alert["location_generalised_m"] == 1000
        assert "1000" in alert["body"]["ja"]
        time.sleep(0.6)
    assert len(ps.requests) == 1


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["geopackage"], indirect=True)
def test_bad_push_subscriptions_are_refused(client: TestClient) -> None:
    good = Browser().subscription("https://push.example.net/wpush/abc")
    not_on_curve = b64e(b"\x04" + b"\x01" * 64)
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "endpoint": "http://push.example.net/x"}, "https://"),
        ({**good, "endpoint": "ftp://push.example.net/x"}, "https://"),
        ({**good, "endpoint": "not a url"}, "https://"),
        ({**good, "keys": {"auth": good["keys"]["auth"]}}, "p256dh"),
        ({**good, "keys": {**good["keys"], "p256dh": "short"}}, "p256dh"),
        ({**good, "keys": {**good["keys"], "p256dh": not_on_curve}}, "p256dh"),
        ({**good, "keys": {**good["keys"], "p256dh": "@@@"}}, "p256dh"),
        ({**good, "keys": {**good["keys"], "auth": b64e(b"x" * 15)}}, "auth"),
        ({**good, "keys": "p256dh"}, "keys"),
        ({**good, "extra": 1}, "unexpected"),
        ({"keys": good["keys"]}, "endpoint"),
    ]
    for push, words in cases:
        r = client.post("/api/subscriptions", json={"area": AREA, "push": push})
        assert r.status_code == 422, (push, r.text)
        body = r.json()
        assert body["code"] and words in body["description"], (push, body)
    both = {"area": AREA, "push": good, "webhook": "https://hooks.example.net/x"}
    neither = {"area": AREA}
    for body in (both, neither):
        r = client.post("/api/subscriptions", json=body)
        assert r.status_code == 422 and "exactly one" in r.json()["description"]
    bad_area = client.post("/api/subscriptions", json={"area": {"type": "Point"}, "push": good})
    assert bad_area.status_code == 400
    ok = client.post("/api/subscriptions", json={"area": AREA, "push": good})
    assert ok.status_code == 201, ok.text


def test_loopback_endpoint_refused_unless_allowed_and_push_unconfigured(
    push_store: Settings, tmp_path: Path, vapid_pair: tuple[str, str]
) -> None:
    key_file = tmp_path / "vapid.key"
    key_file.write_text(vapid_pair[0])
    base = push_store
    loop = Browser().subscription("http://127.0.0.1:9/wpush/x")
    strict = push_settings(base, tmp_path, key_file, allow_insecure_endpoints=False)
    with TestClient(wired_app(strict), raise_server_exceptions=False) as c:
        r = c.post("/api/subscriptions", json={"area": AREA, "push": loop})
        assert r.status_code == 422 and "https://" in r.json()["description"]
        for inside in ("https://localhost/wpush/x", "https://10.0.0.7/wpush/x",
                       "https://169.254.169.254/latest/meta-data", "https://[fd00::1]/w",
                       "https://192.168.1.1:8443/w"):  # the service's own network
            r = c.post("/api/subscriptions",
                       json={"area": AREA, "push": {**loop, "endpoint": inside}})
            assert r.status_code == 422, (inside, r.text)
            assert "not a public address" in r.json()["description"], inside
        for public in ("https://8.8.8.8/wpush/x", "https://fcm.googleapis.com/fcm/send/x"):
            checked = check_push_subscription({**loop, "endpoint": public},
                                              strict.alerts.webpush)  # nothing is sent
            assert checked[0] == public
    off = push_settings(base, tmp_path, tmp_path / "none", private_key_env="NO_SUCH_VAR_X")
    off = off.model_copy(update={"alerts": off.alerts.model_copy(update={
        "webpush": off.alerts.webpush.model_copy(update={"private_key_file": None})})})
    with TestClient(wired_app(off), raise_server_exceptions=False) as c:
        r = c.post("/api/subscriptions", json={"area": AREA, "push": loop})
        assert r.status_code == 422 and "not configured" in r.json()["description"]


@pytest.mark.parametrize("backend", ["geopackage"], indirect=True)
def test_municipality_area_is_its_outline(client: TestClient) -> None:
    browser = Browser()
    hachioji = Point(139.30, 35.66)
    with PushService() as ps:
        sub = subscribe(client, browser, ps.endpoint("muni"), area={"municipality": "13308"})
        assert sub["area"] == {"municipality": "13308"}
        assert sub["area_geometry"]["type"] in ("Polygon", "MultiPolygon")
        bus = bus_of(client)
        bus.published("wildlife-sightings", sighting("in-hachioji", where=hachioji))
        bus.published("wildlife-sightings", sighting("in-okutama"))
        (req,) = ps.wait(1)
        assert json.loads(browser.decrypt(req["body"]))["id"] == "in-okutama"
        time.sleep(0.6)
    assert len(ps.requests) == 1
    good = browser.subscription("https://push.example.net/wpush/m")
    for area, status, words in [({"municipality": "1330"}, 400, "5-digit"),
                                ({"municipality": "13308", "radius_m": 5}, 400, "alone"),
                                ({"municipality": "99999"}, 422, "not a municipality")]:
        r = client.post("/api/subscriptions", json={"area": area, "push": good})
        assert r.status_code == status and words in r.json()["description"], r.text


def test_vapid_key_from_env_or_file_and_the_cli(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization as ser
    from typer.testing import CliRunner

    from geoservice.cli import app
    from geoservice.config import WebPushSettings
    from geoservice.sightings.push import load_vapid, public_key_of

    out = tmp_path / "vapid.key"
    run = CliRunner().invoke(app, ["sightings", "vapid-keys", "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert out.stat().st_mode & 0o777 == 0o600
    public = run.output.split("vapid_public_key: ")[1].split()[0]
    again = CliRunner().invoke(app, ["sightings", "vapid-keys", "--out", str(out)])
    assert again.exit_code == 1  # a key in use is never overwritten
    cfg = WebPushSettings(private_key_file=out, private_key_env="NO_SUCH_VAR_X")
    vapid = load_vapid(cfg, env={})
    assert vapid is not None and public_key_of(vapid.private_key) == public
    pem = vapid.private_key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                          ser.NoEncryption()).decode()
    env = {"GEOSERVICE_VAPID_PRIVATE_KEY": pem}
    from_env = load_vapid(WebPushSettings(vapid_public_key=public), env)
    assert from_env is not None and public_key_of(from_env.private_key) == public
    assert load_vapid(WebPushSettings(), env={}) is None  # push off, not an error
    other = generate_vapid_keys()[1]
    with pytest.raises(ValueError, match="does not belong"):
        load_vapid(WebPushSettings(private_key_file=out, vapid_public_key=other), env={})
    with pytest.raises(ValueError, match="cannot be read"):
        load_vapid(WebPushSettings(), {"GEOSERVICE_VAPID_PRIVATE_KEY": "not-a-key"})


@pytest.mark.parametrize("backend", ["geopackage"], indirect=True)
def test_citizen_report_is_pushed_only_when_approved_and_generalised(client: TestClient) -> None:
    from geoservice.auth.db import AuthDB, auth_db_path
    from geoservice.auth.tokens import TokenStore
    from geoservice.runtime import runtime_of_app

    work = runtime_of_app(client.app).settings.work_dir
    moderator, _ = TokenStore(AuthDB(auth_db_path(work))).create("奥多摩町 環境整備課", "13308")
    browser = Browser()
    with PushService() as ps:
        subscribe(client, browser, ps.endpoint("moderated"))
        r = client.post("/api/reports", json={
            "point": [OKUTAMA.x, OKUTAMA.y], "species": "japanese-serow", "kind": "witness",
            "observed_at": "2025-11-01T07:00:00+09:00", "count": 1, "description": "見た"})
        assert r.status_code == 201 and r.json()["status"] == "pending", r.text
        fid = r.json()["id"]
        time.sleep(1.0)  # several dispatcher polls: a pending report is never sent
        assert ps.requests == []
        ok = client.post(f"/api/moderation/{fid}/approve",
                         headers={"Authorization": f"Bearer {moderator}"})
        assert ok.status_code == 200, ok.text
        (req,) = ps.wait(1)
        alert = json.loads(browser.decrypt(req["body"]))
        assert alert["id"] == fid and alert["municipality"] == "奥多摩町"
        assert alert["observed_at_jst"] == "2025-11-01T07:00:00+09:00"
        cell = generalise(OKUTAMA, 1000)
        assert alert["location"] == [round(cell.x, 6), round(cell.y, 6)]
        assert alert["location_generalised_m"] == 1000


@pytest.mark.parametrize("header, seconds", [
    ("3", 3.0), (" 7 ", 7.0), ("²", None), ("٣", None), ("soon", None), ("", None), (None, None),
])
def test_retry_after_reads_ascii_seconds_only(header: str | None, seconds: float | None) -> None:
    """A push service's Retry-After: ASCII delta-seconds or an HTTP date; anything else
    ('²' passes str.isdigit() and then fails float()) is ignored, never an exception."""
    assert retry_after(header) == seconds
