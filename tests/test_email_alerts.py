"""E-mail alerts end to end: a real SMTP server on loopback (aiosmtpd) receives the mails.

Double opt-in, RFC 8058 one-click unsubscribe, forged / reused / expired links, rate
limits, an SMTP server that is down then up, moderation and the read policy, digests, and
both state backends (SQLite side file, PostgreSQL schema).
"""

from __future__ import annotations

import email
import email.policy
import ipaddress
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fastapi.testclient import TestClient

from geoservice.app import create_app
from geoservice.auth.http import AuthServices
from geoservice.build import build
from geoservice.config import EmailAlertSettings, Settings, SightingsSettings, SmtpSettings
from geoservice.features import Feature
from geoservice.runtime import runtime_of_app
from geoservice.sightings.email_alerts import EmailAlerts
from geoservice.sightings.events import EventBus
from tests.conftest import DATA, ROOT, free_port, pg_settings_for, settings_for

LAYERS = ["admin-boundaries", "wildlife-sightings"]
OKUTAMA = (139.0944, 35.8093)  # 奥多摩町 (13308)
HACHIOJI = (139.30, 35.66)  # 八王子市, ~25 km away
ADDRESS = "hanako.yamada+bears@example.jp"
SENDER = "alerts@geotwin.example.jp"
NEAR = {"point": list(OKUTAMA), "radius_m": 5000}


# -- a real SMTP server ------------------------------------------------------------------


class Mailbox:
    """An SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it accepts.

    Requires ``AUTH LOGIN``/``PLAIN`` with the given credentials when ``user`` is set."""

    def __init__(self, port: int | None = None, user: str | None = None,
                 password: str | None = None, refuse: frozenset[str] = frozenset(),
                 tls: tuple[Path, Path] | None = None) -> None:
        self.port = port or free_port()
        self.refused: list[str] = []
        self.over_tls: list[bool] = []
        self.messages: list[tuple[list[str], EmailMessage, bytes]] = []
        self.logins: list[str] = []
        self._cv = threading.Condition()
        outer = self

        class Handler:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                                  address: str, options: Any) -> str:
                if address in refuse:
                    outer.refused.append(address)
                    return "550 5.1.1 No such user here"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                raw = bytes(envelope.original_content or envelope.content)
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(msg, EmailMessage)
                with outer._cv:
                    outer.over_tls.append(session.ssl is not None)
                    outer.messages.append((list(envelope.rcpt_tos), msg, raw))
                    outer._cv.notify_all()
                return "250 Message accepted for delivery"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                         data: Any) -> AuthResult:
            ok = (isinstance(data, LoginPassword) and data.login.decode() == user
                  and data.password.decode() == password)
            if ok:
                self.logins.append(data.login.decode())
            return AuthResult(success=ok)

        kwargs: dict[str, Any] = {}
        if user:
            kwargs = {"authenticator": authenticate, "auth_required": True,
                      "auth_require_tls": tls is not None}
        if tls is not None:  # STARTTLS required before anything else
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            kwargs.update(tls_context=context, require_starttls=True)
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> Mailbox:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def wait(self, n: int, timeout: float = 10) -> list[EmailMessage]:
        """The first ``n`` messages, once they arrived."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    subjects = [str(m["Subject"]) for _, m, _ in self.messages]
                    raise AssertionError(f"expected {n} mails, got {subjects}")
                self._cv.wait(left)
            return [m for _, m, _ in self.messages[:n]]

    def quiet(self, n: int, seconds: float = 1.0) -> None:
        """Assert that no more than ``n`` messages arrive within ``seconds``."""
        time.sleep(seconds)
        assert len(self.messages) == n, [str(m["Subject"]) for _, m, _ in self.messages]


def bodies(msg: EmailMessage) -> tuple[str, str]:
    """(plain text, HTML) of a multipart/alternative mail."""
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None, msg.get_content_type()
    return text.get_content(), html.get_content()


def link(msg: EmailMessage, kind: str) -> str:
    """The path + query of the confirm/unsubscribe link in a mail's text."""
    text, _ = bodies(msg)
    found = re.search(rf"https?://\S+(/api/subscriptions/{kind}\?token=\S+)", text)
    assert found, text
    return found.group(1)


# -- the app -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def email_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the municipalities and the sightings (built from the real extracts)."""
    tmp = tmp_path_factory.mktemp("email_store")
    build(settings_for(tmp, ROOT / "layers"), mirror=DATA, layers=LAYERS)
    return tmp


def email_settings(base: Settings, work: Path, smtp_port: int,
                   smtp_opts: dict[str, Any] | None = None, **email_opts: Any) -> Settings:
    """``base`` with fast retries, SMTP on loopback and the outbox under ``work``."""
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port, sender=SENDER,
                        username_env="TEST_SMTP_USER", password_env="TEST_SMTP_PASSWORD",
                        timeout_s=2.0, **{"starttls": False, **(smtp_opts or {})})
    alerts = base.alerts.model_copy(update={
        "db": work / "alerts.sqlite", "retry_base_s": 0.3, "retry_max_s": 1.0, "poll_s": 0.2,
        "timeout_s": 2.0, "lease_s": 5.0, "smtp": smtp,
        "email": EmailAlertSettings(**email_opts),
    })
    return base.model_copy(update={
        "alerts": alerts, "work_dir": work, "enabled_layers": LAYERS,
        "sightings": SightingsSettings(reports_per_minute=1000),
    })


@pytest.fixture(params=["gpkg", "postgis"])
def base_settings(request: pytest.FixtureRequest, email_store: Path,
                  tmp_path: Path) -> Settings:
    """Store settings on either backend (PostGIS: a fresh database, state in its schemas)."""
    if request.param == "gpkg":
        return settings_for(email_store, ROOT / "layers")
    make: Callable[[str], str] = request.getfixturevalue("pg_database")
    settings = pg_settings_for(tmp_path, ROOT / "layers", make(f"email{uuid4()}"))
    build(settings.model_copy(update={"enabled_layers": LAYERS}), mirror=DATA, layers=LAYERS)
    return settings


def uuid4() -> str:
    import uuid

    return uuid.uuid4().hex[:6]


@pytest.fixture()
def smtp_env(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """SMTP credentials in the environment variables the config names."""
    monkeypatch.setenv("TEST_SMTP_USER", "geotwin")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret-for-tests")
    return "geotwin", "s3cret-for-tests"


def app_for(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), raise_server_exceptions=False)


def bus(client: TestClient) -> EventBus:
    return runtime_of_app(client.app).services.require(EventBus)


def alerts(client: TestClient) -> EmailAlerts:
    return runtime_of_app(client.app).services.require(EmailAlerts)


def sighting(fid: str, where: tuple[float, float] = OKUTAMA, species: str = "asian-black-bear",
             status: str = "published", muni: str = "13308") -> Feature:
    from shapely.geometry import Point

    props = {"species": species, "kind": "witness", "observed_at": "2025-11-20T06:30:00Z",
             "count": 2, "status": status, "municipality_code": muni, "source": "test"}
    return Feature(fid, props, Point(*where))


def subscribe(client: TestClient, address: str = ADDRESS, **body: Any) -> dict[str, Any]:
    payload = {"email": address, "area": NEAR, "species": ["asian-black-bear"], **body}
    r = client.post("/api/subscriptions", json=payload)
    assert r.status_code == 202, r.text
    assert address not in r.text  # masked at most
    return r.json()  # type: ignore[no-any-return]


def confirm(client: TestClient, msg: EmailMessage) -> None:
    path = link(msg, "confirm")
    page = client.get(path)
    assert page.status_code == 200, page.text
    assert '<form method="post" action="/api/subscriptions/confirm">' in page.text
    token = parse_qs(urlsplit(path).query)["token"][0]
    done = client.post("/api/subscriptions/confirm", data={"token": token})
    assert done.status_code == 200, done.text
    assert "h***@e***.jp" in done.text and ADDRESS not in done.text


def rows(client: TestClient, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return alerts(client).db.execute(sql, params).fetchall()


# -- the whole flow, on both backends ----------------------------------------------------


def test_opt_in_alert_and_one_click_unsubscribe(
    base_settings: Settings, tmp_path: Path, smtp_env: tuple[str, str]
) -> None:
    user, password = smtp_env
    with Mailbox(user=user, password=password) as box, app_for(
        email_settings(base_settings, tmp_path, box.port)
    ) as client:
        info = subscribe(client)
        assert info["email"] == "h***@e***.jp"
        (conf,) = box.wait(1)
        assert box.logins and box.logins[0] == user  # credentials from the named env vars
        assert box.messages[0][0] == [ADDRESS]
        assert str(conf["Subject"]) == "【確認】野生動物出没メール通知の登録"
        assert "=?utf-8?" in box.messages[0][2].split(b"\r\n\r\n")[0].decode().lower()
        assert "List-Unsubscribe" not in conf  # nothing but the opt-in before confirmation
        # unconfirmed: a matching sighting sends nothing; a GET of the link changes nothing
        bus(client).published("wildlife-sightings", sighting("before-confirm"))
        assert client.get(link(conf, "confirm")).status_code == 200
        bus(client).published("wildlife-sightings", sighting("after-get"))
        box.quiet(1, 1.0)
        confirm(client, conf)
        # a confirmation link works once
        token = parse_qs(urlsplit(link(conf, "confirm")).query)["token"][0]
        again = client.post("/api/subscriptions/confirm", data={"token": token})
        assert again.status_code == 410 and "already used" in again.text

        t0 = time.monotonic()
        bus(client).published("wildlife-sightings", sighting("bear-1"))
        bus(client).published("wildlife-sightings", sighting("far", HACHIOJI, muni="13201"))
        bus(client).published("wildlife-sightings", sighting("boar", species="wild-boar"))
        alert = box.wait(2)[1]
        assert time.monotonic() - t0 < 3
        box.quiet(2, 1.0)  # neither the far sighting nor the other species
        assert str(alert["Subject"]) == "【出没情報】ツキノワグマ — 奥多摩町"
        unsub = alert["List-Unsubscribe"]
        assert re.fullmatch(r"<https?://[^>]+/api/subscriptions/unsubscribe\?token=[^>]+>", unsub)
        assert alert["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert alert["Message-ID"].endswith("@geotwin.example.jp>")
        text, html = bodies(alert)
        assert "2025-11-20 15:30（日本時間）" in text  # 06:30Z in Japan time
        assert "奥多摩町" in text and "ツキノワグマ" in text and "目撃" in text
        assert "/map/?lang=ja&id=bear-1&lon=139.09440&lat=35.80930&r=1" in text
        assert "kankyo.metro.tokyo.lg.jp" in text and "kankyo.metro.tokyo.lg.jp" in html
        assert "CC BY 4.0" in text or "東京都" in text  # the layer's credit line
        assert "<li>" in html and "奥多摩町" in html

        # RFC 8058 one-click: a POST of List-Unsubscribe=One-Click to the header's URL
        target = urlsplit(unsub.strip("<>"))
        one_click = client.post(
            f"{target.path}?{target.query}", content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200, one_click.text
        assert ADDRESS not in one_click.text and "h***@e***.jp" in one_click.text
        assert rows(client, "SELECT count(*) FROM email_subscriptions") == [(0,)]
        bus(client).published("wildlife-sightings", sighting("after-unsubscribe"))
        box.quiet(2, 1.0)
        reused = client.post(f"{target.path}?{target.query}",
                             content=b"List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert reused.status_code == 410 and "already used" in reused.text
    # no state file holds the address (it was encrypted, then deleted)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert ADDRESS.encode() not in f.read_bytes(), f


def test_english_mails_and_the_unsubscribe_page(email_store: Path, tmp_path: Path) -> None:
    with Mailbox() as box, app_for(
        email_settings(settings_for(email_store, ROOT / "layers"), tmp_path, box.port)
    ) as client:
        subscribe(client, "taro@example.com", lang="en", area={"municipality": "13308"},
                  species=[])
        (conf,) = box.wait(1)
        assert str(conf["Subject"]) == "Confirm your wildlife sighting e-mail alerts"
        assert conf["Content-Language"] == "en"
        confirm_path = link(conf, "confirm")
        token = parse_qs(urlsplit(confirm_path).query)["token"][0]
        assert client.post("/api/subscriptions/confirm", data={"token": token}).status_code == 200
        bus(client).published("wildlife-sightings", sighting("serow-muni", species="sika-deer"))
        bus(client).published("wildlife-sightings", sighting("other-town", HACHIOJI, muni="13201"))
        alert = box.wait(2)[1]
        box.quiet(2, 0.8)
        assert str(alert["Subject"]) == "Sighting: Sika deer — 奥多摩町"
        text, _ = bodies(alert)
        assert "2025-11-20 15:30 (Japan time)" in text and "Show on the map" in text
        # the unsubscribe page: GET shows a button and changes nothing; its POST deletes
        path = urlsplit(alert["List-Unsubscribe"].strip("<>"))
        page = client.get(f"{path.path}?{path.query}")
        assert page.status_code == 200 and "Unsubscribe" in page.text
        assert rows(client, "SELECT count(*) FROM email_subscriptions") == [(1,)]
        utoken = parse_qs(path.query)["token"][0]
        done = client.post("/api/subscriptions/unsubscribe", data={"token": utoken})
        assert done.status_code == 200 and "t***@e***.com" in done.text
        assert rows(client, "SELECT count(*) FROM email_subscriptions") == [(0,)]


# -- bad input ---------------------------------------------------------------------------


@pytest.fixture()
def client_box(email_store: Path, tmp_path: Path) -> Iterator[tuple[TestClient, Mailbox]]:
    with Mailbox() as box, app_for(
        email_settings(settings_for(email_store, ROOT / "layers"), tmp_path, box.port,
                       confirm_per_address=2, subscribe_per_client=6)
    ) as client:
        yield client, box


@pytest.mark.parametrize("bad", [
    "no-at-sign", "a@localhost", "two@@example.jp", "a b@example.jp", ".dot@example.jp",
    "x@example.jp\r\nBcc: victim@example.jp", "ユーザー@example.jp", '"quoted"@example.jp',
    "x@[127.0.0.1]", "a" * 65 + "@example.jp", "",
])
def test_malformed_addresses_are_refused_saying_what_is_accepted(
    client_box: tuple[TestClient, Mailbox], bad: Any
) -> None:
    client, box = client_box
    r = client.post("/api/subscriptions", json={"email": bad, "area": NEAR})
    assert r.status_code == 400, r.text
    doc = r.json()
    assert doc["code"] == "InvalidParameterValue"
    assert "name@example.jp" in doc["description"]
    assert rows(client, "SELECT count(*) FROM email_subscriptions") == [(0,)]
    box.quiet(0, 0.3)


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"area": {"municipality": "Okutama"}}, 400, "5-digit"),
    ({"area": {"municipality": "99999"}}, 422, "not a municipality"),
    ({"area": {"point": [139.1, 35.8], "radius_m": 10**7}}, 422, "radius_m"),
    ({"mode": "hourly"}, 422, "mode"),
    ({"lang": "fr"}, 422, "lang"),
    ({"species": ["dragon"]}, 422, "unknown species"),
    ({"webhook": "https://example.jp/hook"}, 422, "webhook"),
])
def test_other_bad_fields(client_box: tuple[TestClient, Mailbox], body: dict[str, Any],
                          status: int, says: str) -> None:
    client, _ = client_box
    r = client.post("/api/subscriptions", json={"email": ADDRESS, "area": NEAR, **body})
    assert r.status_code == status, r.text
    assert says in r.json()["description"]
    assert rows(client, "SELECT count(*) FROM email_subscriptions") == [(0,)]


def test_forged_and_tampered_links_do_nothing(client_box: tuple[TestClient, Mailbox]) -> None:
    client, box = client_box
    subscribe(client)
    (conf,) = box.wait(1)
    token = parse_qs(urlsplit(link(conf, "confirm")).query)["token"][0]
    payload, _, sig = token.rpartition(".")
    purpose, sid, nonce, expires = payload.split(".")
    forged = [
        payload + "." + ("A" if sig[0] != "A" else "B") + sig[1:],  # signature altered
        f"{purpose}.{sid}.{nonce}.{int(expires) + 86400}.{sig}",  # expiry pushed
        f"u.{sid}.{nonce}.{expires}.{sig}",  # a confirmation token used to unsubscribe
        "garbage",
    ]
    for bad in forged:
        for path in ("/api/subscriptions/confirm", "/api/subscriptions/unsubscribe"):
            r = client.post(path, data={"token": bad})
            assert r.status_code == 403, (path, bad, r.text)
            assert "not valid" in r.text
            j = client.get(path, params={"token": bad}, headers={"Accept": "application/json"})
            assert j.status_code == 403 and j.json()["code"] == "InvalidToken"
    assert rows(client, "SELECT confirmed FROM email_subscriptions WHERE id = ?", sid) == [(0,)]
    missing = client.post("/api/subscriptions/confirm")
    assert missing.status_code == 400 and "token is missing" in missing.text


def test_expired_confirmation_does_nothing_and_is_purged(
    email_store: Path, tmp_path: Path
) -> None:
    with Mailbox() as box, app_for(
        email_settings(settings_for(email_store, ROOT / "layers"), tmp_path, box.port,
                       confirm_ttl_h=1.5 / 3600)
    ) as client:
        subscribe(client)
        (conf,) = box.wait(1)
        time.sleep(1.8)
        path = link(conf, "confirm")
        assert client.get(path).status_code == 410
        r = client.post(path)
        assert r.status_code == 410 and "expired" in r.text
        assert alerts(client).purge_unconfirmed() == 1
        assert rows(client, "SELECT count(*) FROM email_subscriptions") == [(0,)]


def test_rate_limits_per_address_and_per_client(client_box: tuple[TestClient, Mailbox]) -> None:
    client, box = client_box
    for n in (1, 2):
        subscribe(client)  # the same request again re-sends the confirmation
        box.wait(n)  # (one asked before the first left supersedes it: one mail)
    r = client.post("/api/subscriptions", json={"email": ADDRESS.upper(), "area": NEAR})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert ADDRESS.lower() not in r.text.lower()
    box.wait(2)
    assert rows(client, "SELECT count(*) FROM email_subscriptions") == [(1,)]
    # the newest confirmation supersedes the older one
    first, second = box.wait(2)
    old = client.post(link(first, "confirm"))
    assert old.status_code == 410
    assert client.post(link(second, "confirm")).status_code == 200
    for i in range(3):
        subscribe(client, f"other{i}@example.jp")
    r = client.post("/api/subscriptions", json={"email": "more@example.jp", "area": NEAR})
    assert r.status_code == 429 and "retry in" in r.json()["description"]


# -- delivery guarantees -----------------------------------------------------------------


def test_smtp_down_delays_mail_then_delivers_it_exactly_once(
    email_store: Path, tmp_path: Path
) -> None:
    port = free_port()
    with app_for(email_settings(settings_for(email_store, ROOT / "layers"), tmp_path,
                                port)) as client:
        t0 = time.monotonic()
        subscribe(client)  # nobody listens on the SMTP port yet
        assert time.monotonic() - t0 < 2, "a subscription must not wait for SMTP"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            failed = rows(client, "SELECT attempts, last_error FROM deliveries"
                                  " WHERE status = 'pending' AND attempts > 0")
            if failed and failed[0][1]:
                break
            time.sleep(0.1)
        assert failed and "ConnectionRefusedError" in failed[0][1], failed
        assert ADDRESS not in str(failed)
        with Mailbox(port=port) as box:
            (conf,) = box.wait(1, timeout=15)
            confirm(client, conf)
        # down again: an alert waits in the outbox, the write returns at once
        t0 = time.monotonic()
        bus(client).published("wildlife-sightings", sighting("while-down"))
        assert time.monotonic() - t0 < 0.5
        time.sleep(1.0)
        with Mailbox(port=port) as box:
            (alert,) = box.wait(1, timeout=15)
            assert "while-down" in bodies(alert)[0]
            box.quiet(1, 2.0)  # exactly once
        done = rows(client, "SELECT status, count(*) FROM deliveries GROUP BY status")
        assert dict(done).get("pending", 0) == 0 and dict(done)["delivered"] == 2


def test_a_refused_recipient_is_dead_at_once_not_retried(email_store: Path,
                                                          tmp_path: Path) -> None:
    gone = "nobody@example.jp"
    with Mailbox(refuse=frozenset({gone})) as box, app_for(
        email_settings(settings_for(email_store, ROOT / "layers"), tmp_path, box.port)
    ) as client:
        subscribe(client, gone)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            dead = rows(client, "SELECT attempts, last_status, last_error FROM deliveries"
                                " WHERE status = 'dead'")
            if dead:
                break
            time.sleep(0.1)
        assert dead == [(1, 550, "SMTPRecipientsRefused (SMTP 550)")]
        time.sleep(1.0)
        assert box.refused == [gone] and box.messages == []


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA (a relay with a private CA)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "geotwin test relay")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "relay.pem", directory / "relay.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def test_starttls_to_a_relay_with_a_private_ca_and_login_only_over_tls(
    email_store: Path, tmp_path: Path, smtp_env: tuple[str, str]
) -> None:
    user, password = smtp_env
    cert, key = self_signed(tmp_path)
    base = settings_for(email_store, ROOT / "layers")
    with Mailbox(user=user, password=password, tls=(cert, key)) as box:
        trusting = email_settings(base, tmp_path / "a", box.port,
                                  {"starttls": True, "ca_file": cert})
        with app_for(trusting) as client:
            subscribe(client)
            box.wait(1)
            assert box.over_tls == [True] and box.logins == [user]
        # without the CA the certificate is not trusted: nothing is sent, the mail waits
        with app_for(email_settings(base, tmp_path / "b", box.port,
                                    {"starttls": True})) as client:
            subscribe(client, "other@example.jp")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                waiting = rows(client, "SELECT status, last_error FROM deliveries")
                if waiting and waiting[0][1]:
                    break
                time.sleep(0.1)
            assert waiting == [("pending", "SSLCertVerificationError")], waiting
            assert len(box.messages) == 1 and box.logins == [user]


def test_pending_reports_are_not_mailed_until_approved(
    base_settings: Settings, tmp_path: Path
) -> None:
    with Mailbox() as box, app_for(
        email_settings(base_settings, tmp_path, box.port)
    ) as client:
        subscribe(client)
        confirm(client, box.wait(1)[0])
        report = client.post("/api/reports", json={
            "point": list(OKUTAMA), "species": "asian-black-bear", "kind": "witness",
            "observed_at": "2025-11-22T01:00:00Z", "count": 1,
        })
        assert report.status_code == 201, report.text
        fid = report.json()["id"]
        box.quiet(1, 1.0)
        auth = runtime_of_app(client.app).services.require(AuthServices)
        token, _ = auth.tokens.create("moderator", admin=True)
        ok = client.post(f"/api/moderation/{fid}/approve",
                         headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200, ok.text
        alert = box.wait(2)[1]
        assert f"id={fid}" in bodies(alert)[0]


def test_sensitive_records_are_mailed_generalised(base_settings: Settings, tmp_path: Path) -> None:
    from shapely.geometry import Point

    from geoservice.sightings.policy import generalise

    with Mailbox() as box, app_for(
        email_settings(base_settings, tmp_path, box.port)
    ) as client:
        # an area far smaller than the 1 km cell: matched on the exact position
        subscribe(client, area={"point": list(OKUTAMA), "radius_m": 20}, species=[])
        confirm(client, box.wait(1)[0])
        bus(client).published("wildlife-sightings", sighting("serow", species="japanese-serow"))
        alert = box.wait(2)[1]
        text, html = bodies(alert)
        cell = generalise(Point(*OKUTAMA), 1000)
        assert f"lon={cell.x:.5f}&lat={cell.y:.5f}" in text
        for exact in ("139.0944", "35.8093", "139.09440", "35.80930"):
            assert exact not in text and exact not in html
        assert "約1000m四方" in text


def test_daily_digest_is_one_mail_listing_the_day(base_settings: Settings, tmp_path: Path) -> None:
    with Mailbox() as box, app_for(
        email_settings(base_settings, tmp_path, box.port)
    ) as client:
        subscribe(client, mode="digest")
        confirm(client, box.wait(1)[0])
        for fid in ("d-1", "d-2", "d-3"):
            bus(client).published("wildlife-sightings", sighting(fid))
        box.quiet(1, 1.0)  # nothing before the digest hour
        due = rows(client, "SELECT DISTINCT next_attempt_at FROM deliveries"
                           " WHERE kind = 'email_digest'")
        assert len(due) == 1 and due[0][0] > time.time()
        # the digest hour comes: every row of the day becomes due
        alerts(client).db.execute("UPDATE deliveries SET next_attempt_at = 0"
                                  " WHERE kind = 'email_digest'")
        bus(client).notifier.notify()
        digest = box.wait(2)[1]
        box.quiet(2, 1.5)
        assert "【出没情報まとめ】" in str(digest["Subject"]) and "3件" in str(digest["Subject"])
        text, _ = bodies(digest)
        assert all(f"id={fid}" in text for fid in ("d-1", "d-2", "d-3"))
        assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        counts = rows(client, "SELECT status, count(*) FROM deliveries"
                              " WHERE kind = 'email_digest' GROUP BY status")
        assert dict(counts) == {"delivered": 3}


def test_no_smtp_configured_says_so(email_store: Path, tmp_path: Path) -> None:
    settings = email_settings(settings_for(email_store, ROOT / "layers"), tmp_path, 25)
    settings = settings.model_copy(update={
        "alerts": settings.alerts.model_copy(update={"smtp": None})})
    with app_for(settings) as client:
        r = client.post("/api/subscriptions", json={"email": ADDRESS, "area": NEAR})
        assert r.status_code == 422
        assert "alerts.smtp" in r.json()["description"]


def test_address_checks_unit() -> None:
    from geoservice.sightings.email_alerts import check_address, mask

    assert check_address("  a.b+c@mail.example.co.jp ") == "a.b+c@mail.example.co.jp"
    assert mask("hanako@example.jp") == "h***@e***.jp"
