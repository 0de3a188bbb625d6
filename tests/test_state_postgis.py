"""State on PostGIS: tokens, audit, events, outbox, jobs, photos in the store's database.

Two apps over one fresh database (what two hosts see), a work_dir that holds no state
file afterwards, and the transactional outbox: a write whose event cannot be recorded
leaves no feature, no audit entry and no event behind.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from geoservice.app import create_app
from geoservice.auth.db import open_auth_db
from geoservice.auth.http import AuthServices
from geoservice.auth.tokens import TokenStore
from geoservice.config import Settings, SightingsSettings
from geoservice.features import Feature
from geoservice.guide.jobs import JobStore
from geoservice.runtime import runtime_of_app
from geoservice.store import open_store
from tests.conftest import pg_built

LAYERS = ["admin-boundaries", "wildlife-sightings"]
ITEMS = "/ogc/collections/wildlife-sightings/items"
OKUTAMA_POINT = [139.0944, 35.8093]  # 奥多摩町
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
STATE_FILES = ("auth.sqlite", "alerts.sqlite", "guide-jobs.sqlite", "harvest.sqlite", "photos")


@pytest.fixture(scope="module")
def pg_state(
    tmp_path_factory: pytest.TempPathFactory, pg_database: Callable[[str], str]
) -> Settings:
    return pg_built(tmp_path_factory.mktemp("pg_state"), pg_database("state"), LAYERS,
                    sightings=SightingsSettings(reports_per_minute=1000))


@pytest.fixture(scope="module")
def admin(pg_state: Settings) -> str:
    store = open_store(pg_state)
    try:
        token, _ = TokenStore(open_auth_db(pg_state, store)).create("都 管理者", admin=True)
    finally:
        store.close()
    return token


@pytest.fixture(scope="module")
def two(pg_state: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[TestClient, TestClient]
]:
    """Two apps with separate work dirs over the one database."""
    apps = []
    for name in ("host-a", "host-b"):
        work = tmp_path_factory.mktemp(name)
        apps.append(TestClient(create_app(pg_state.model_copy(update={"work_dir": work})),
                               raise_server_exceptions=False))
    with apps[0] as a, apps[1] as b:
        yield a, b


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/geo+json"}


def _sighting(**props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": OKUTAMA_POINT},
        "properties": {"species": "asian-black-bear", "kind": "witness",
                       "observed_at": "2025-10-01T06:30:00+09:00", **props},
    }


def _scalar(settings: Settings, sql: str, *params: Any) -> Any:
    url = settings.store.database_url
    assert url is not None
    with psycopg.connect(url) as con:
        row = con.execute(sql, params).fetchone()  # type: ignore[arg-type]
        return None if row is None else row[0]


def test_a_write_on_one_host_is_audited_and_published_for_the_other(
    two: tuple[TestClient, TestClient], admin: str, pg_state: Settings
) -> None:
    a, b = two
    r = a.post(ITEMS, content=json.dumps(_sighting()), headers=_auth(admin))
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    assert b.get(f"{ITEMS}/{fid}", headers=_auth(admin)).status_code == 200
    audit = b.get("/api/audit", params={"feature": fid}, headers=_auth(admin)).json()
    assert [e["action"] for e in audit["entries"]] == ["create"]
    assert audit["entries"][0]["state"] == "committed"
    events = _scalar(pg_state, "SELECT count(*) FROM geoservice_alerts.events"
                     " WHERE feature_id = %s", fid)
    assert events == 1
    # the hosts' work dirs hold no state: it all lives in the database
    for client in two:
        work = client.app.state.runtime.settings.work_dir  # type: ignore[attr-defined]
        assert not [n for n in STATE_FILES if (Path(work) / n).exists()], list(Path(work).iterdir())


def test_tokens_made_on_one_host_work_on_the_other_and_revocation_is_shared(
    two: tuple[TestClient, TestClient], admin: str
) -> None:
    a, b = two
    tokens = runtime_of_app(a.app).services.require(AuthServices).tokens
    token, info = tokens.create("奥多摩町 環境整備課", "13308")
    assert b.post(ITEMS, content=json.dumps(_sighting()), headers=_auth(token)).status_code == 201
    tokens.revoke(info.id)
    r = b.post(ITEMS, content=json.dumps(_sighting()), headers=_auth(token))
    assert r.status_code == 401


def test_a_write_whose_event_fails_leaves_nothing_behind(
    two: tuple[TestClient, TestClient], pg_state: Settings
) -> None:
    """Transactional outbox: feature, audit entry and event commit together or not at all."""
    a, _ = two
    rt = runtime_of_app(a.app)
    auth = rt.services.require(AuthServices)
    who = auth.tokens.verify(auth.tokens.create("都 管理者 2", admin=True)[0])
    features = 'SELECT count(*) FROM geoservice."wildlife-sightings"'
    before = _scalar(pg_state, features)
    audits = _scalar(pg_state, "SELECT count(*) FROM geoservice_auth.audit")
    events = _scalar(pg_state, "SELECT count(*) FROM geoservice_alerts.events")

    def broken(cid: str, before: Feature | None, after: Feature | None) -> None:
        raise RuntimeError("event log unavailable")

    from shapely.geometry import Point

    auth.writer.listeners.append(broken)
    try:
        with pytest.raises(RuntimeError):
            auth.writer.create(who, "wildlife-sightings",
                               Feature("", _sighting()["properties"], Point(*OKUTAMA_POINT)))
    finally:
        auth.writer.listeners.remove(broken)
    assert _scalar(pg_state, "SELECT count(*) FROM geoservice_auth.audit") == audits
    assert _scalar(pg_state, "SELECT count(*) FROM geoservice_alerts.events") == events
    assert _scalar(pg_state, features) == before, "a feature without its audit entry"
    # and the writer works again once the event log does
    f = auth.writer.create(who, "wildlife-sightings",
                           Feature("", _sighting()["properties"], Point(*OKUTAMA_POINT)))
    assert _scalar(pg_state, features) == before + 1
    assert _scalar(pg_state, "SELECT count(*) FROM geoservice_alerts.events") == events + 1
    assert rt.store.get("wildlife-sightings", f.id).id == f.id


def test_report_photos_are_stored_in_the_database_and_served_by_any_host(
    two: tuple[TestClient, TestClient], admin: str, pg_state: Settings
) -> None:
    a, b = two
    body = {"point": OKUTAMA_POINT, "species": "wild-boar", "kind": "witness",
            "observed_at": "2025-10-02T07:00:00+09:00",
            "photo": base64.b64encode(PNG).decode(), "photo_content_type": "image/png"}
    r = a.post("/api/reports", json=body)
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    photo = b.get(f"/api/moderation/{fid}/photo", headers=_auth(admin))
    assert photo.status_code == 200 and photo.content == PNG
    assert photo.headers["content-type"] == "image/png"
    assert _scalar(pg_state, "SELECT media_type FROM geoservice_photos.photos"
                   " WHERE feature_id = %s", fid) == "image/png"
    fake = base64.b64encode(b"GIF89a" + b"\x00" * 20).decode()
    assert a.post("/api/reports", json={**body, "photo": fake,
                                        "photo_content_type": None}).status_code == 422


def test_guide_jobs_submitted_on_one_host_are_read_and_dismissed_on_the_other(
    two: tuple[TestClient, TestClient],
) -> None:
    a, b = two
    for c in two:
        runtime_of_app(c.app).services.require(JobStore).pause()
    try:
        body = {"inputs": {"site": {"point": OKUTAMA_POINT},
                           "works": {"activities": ["new-building"]}}}
        r = a.post("/ogc/processes/procedure-guide/execution", json=body,
                   headers={"Prefer": "respond-async"})
        assert r.status_code == 201, r.text
        jid = r.json()["jobID"]
        assert b.get(f"/ogc/jobs/{jid}").json()["status"] == "accepted"
        assert jid in [j["jobID"] for j in b.get("/ogc/jobs").json()["jobs"]]
        assert b.delete(f"/ogc/jobs/{jid}").status_code == 200
        assert a.get(f"/ogc/jobs/{jid}").status_code == 404
    finally:
        for c in two:
            runtime_of_app(c.app).services.require(JobStore).resume()


def test_a_dropped_database_connection_answers_503_and_recovers(
    two: tuple[TestClient, TestClient], admin: str, pg_state: Settings
) -> None:
    """The primary restarting (every connection cut): a clear 503 with Retry-After, never
    a 500, and the pool reconnects by itself."""
    a, _ = two
    r = a.post(ITEMS, content=json.dumps(_sighting()), headers=_auth(admin))
    fid = r.json()["id"]
    url = pg_state.store.database_url
    assert url is not None
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    codes = []
    for _ in range(30):
        r = a.get(f"{ITEMS}/{fid}", headers=_auth(admin))
        codes.append(r.status_code)
        if r.status_code == 503:
            assert r.headers["Retry-After"] == "2"
            assert r.json()["code"] == "ServiceUnavailable"
        if r.status_code == 200:
            break
    assert 500 not in codes and codes[-1] == 200 and 503 in codes, codes


def test_generated_files_hold_no_database_password(pg_state: Settings) -> None:
    """The pygeoapi configuration written under ``work_dir/generated`` names the store by a
    digest: the database URL (with its password) stays in the config and environment."""
    url = pg_state.store.database_url
    assert url is not None
    password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    assert password, "the test database URL carries a password"
    with TestClient(create_app(pg_state)) as c:
        assert c.get("/ogc/collections").status_code == 200
    written = list((pg_state.work_dir / "generated").glob("*"))
    assert written
    for path in written:
        text = path.read_text("utf-8")
        assert url not in text and f":{password}@" not in text, path
