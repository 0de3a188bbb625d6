"""Read replicas: the public read paths read a real streaming standby, writes the primary.

CI (``.ci/run``) starts a hot standby of the test cluster (``pg_basebackup -R``) and sets
``GEOSERVICE_TEST_REPLICA_URL``.  The proof that reads go to the replica is behavioural:
with WAL replay on the standby *paused*, a feature written through the API is returned by
the write itself (read from the primary) but is not found by the public read paths; once
replay resumes it appears - in items, by id, and in the public vector tile, whose cache is
keyed by the replica's own data version.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from geoservice.app import create_app
from geoservice.auth.db import open_auth_db
from geoservice.auth.tokens import TokenStore
from geoservice.build import build
from geoservice.config import Settings
from geoservice.store import open_store
from tests.conftest import DATA, ROOT, need, pg_settings_for

pytestmark = pytest.mark.postgis

LAYERS = ["admin-boundaries", "wildlife-sightings"]
ITEMS = "/ogc/collections/wildlife-sightings/items"
LON, LAT = 139.10, 35.80  # 奥多摩町 (13308), where the real extract has sightings


@dataclass
class Env:
    client: TestClient
    replica_admin: str  # the standby's URL for this test database
    admin_token: str


def _replica_admin_url() -> str:
    import os

    url = os.environ.get("GEOSERVICE_TEST_REPLICA_URL")
    need(url is not None, "a PostgreSQL streaming replica (GEOSERVICE_TEST_REPLICA_URL)")
    assert url is not None
    with psycopg.connect(url, autocommit=True) as con:
        row = con.execute("SELECT pg_is_in_recovery()").fetchone()
    assert row and row[0], "GEOSERVICE_TEST_REPLICA_URL is not a standby"
    return url


def _wait(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except psycopg.Error:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _replayed(replica_url: str) -> Callable[[], bool]:
    """True once the standby has replayed everything the primary has written so far."""

    def check() -> bool:
        with psycopg.connect(replica_url, autocommit=True) as con:
            row = con.execute(
                "SELECT to_regclass('geoservice.\"wildlife-sightings\"') IS NOT NULL"
            ).fetchone()
        return bool(row and row[0])

    return check


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, pg_database: Callable[[str], str]
) -> Iterator[Env]:
    replica_admin = _replica_admin_url()
    tmp: Path = tmp_path_factory.mktemp("replica")
    primary = pg_database("replica")
    replica = make_conninfo(replica_admin, dbname=conninfo_to_dict(primary)["dbname"])
    settings: Settings = pg_settings_for(tmp, ROOT / "layers", primary)
    settings = settings.model_copy(update={
        "enabled_layers": LAYERS,
        "store": settings.store.model_copy(update={"read_database_url": replica}),
    })
    build(settings, mirror=DATA, layers=LAYERS)
    _wait(_replayed(replica), "the standby to replay the build")
    store = open_store(settings)  # tokens live in the primary's auth schema on PostGIS
    try:
        token, _ = TokenStore(open_auth_db(settings, store)).create("都 管理者", admin=True)
    finally:
        store.close()
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Env(client, replica, token)


def _replay(env: Env, paused: bool) -> None:
    with psycopg.connect(env.replica_admin, autocommit=True) as con:
        con.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


def _tile_ids(client: TestClient, z: int = 14) -> tuple[set[str], str]:
    n = 2**z
    x = int((LON + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(LAT))) / math.pi) / 2 * n)
    r = client.get(f"/ogc/collections/wildlife-sightings/tiles/WebMercatorQuad/{z}/{y}/{x}")
    assert r.status_code in (200, 204), r.text
    if r.status_code == 204:
        return set(), r.headers["etag"]
    layer = mapbox_vector_tile.decode(r.content).get("wildlife-sightings", {"features": []})
    return {str(f["properties"]["id"]) for f in layer["features"]}, r.headers["etag"]


def _bear(**props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [LON, LAT]},
        "properties": {"species": "asian-black-bear", "kind": "witness", "reliability": "high",
                       "observed_at": "2025-10-01T06:30:00+09:00", "count": 1, **props},
    }


def test_reads_wait_for_the_replica_writes_do_not(env: Env) -> None:
    client = env.client
    before = client.get(ITEMS, params={"limit": 1}).json()["numberMatched"]
    ids_before, etag_before = _tile_ids(client)
    _replay(env, paused=True)
    try:
        r = client.post(ITEMS, content=json.dumps(_bear()), headers={
            "Content-Type": "application/geo+json", "Authorization": f"Bearer {env.admin_token}"})
        assert r.status_code == 201, r.text
        fid = r.json()["id"]
        assert r.json()["properties"]["status"] == "published"  # read back from the primary
        time.sleep(0.5)  # the primary has long committed; the standby is paused
        assert client.get(f"{ITEMS}/{fid}").status_code == 404
        assert client.get(ITEMS, params={"limit": 1}).json()["numberMatched"] == before
        ids, etag = _tile_ids(client)
        assert fid not in ids and etag == etag_before  # same replica data version
    finally:
        _replay(env, paused=False)
    _wait(lambda: client.get(f"{ITEMS}/{fid}").status_code == 200, "the write on the replica")
    assert client.get(ITEMS, params={"limit": 1}).json()["numberMatched"] == before + 1
    ids_after, etag_after = _tile_ids(client)
    assert fid in ids_after and fid not in ids_before and etag_after != etag_before


def test_a_stale_etag_read_from_the_replica_gets_412(env: Env) -> None:
    """If-Match is checked against the primary: an ETag the lagging standby still serves
    cannot overwrite a newer version (no lost update)."""
    client, auth = env.client, {"Authorization": f"Bearer {env.admin_token}"}
    r = client.post(ITEMS, content=json.dumps(_bear()),
                    headers={**auth, "Content-Type": "application/geo+json"})
    assert r.status_code == 201, r.text
    path = f"{ITEMS}/{r.json()['id']}"
    _wait(lambda: client.get(path).status_code == 200, "the write on the replica")
    old_tag = client.get(path).headers["ETag"]
    _replay(env, paused=True)
    try:
        patch = {**auth, "Content-Type": "application/json"}
        ok = client.patch(path, content=json.dumps({"properties": {"count": 2}}),
                          headers={**patch, "If-Match": old_tag})
        assert ok.status_code == 200, ok.text
        assert client.get(path).headers["ETag"] == old_tag  # the paused standby lags
        stale = client.patch(path, content=json.dumps({"properties": {"count": 5}}),
                             headers={**patch, "If-Match": old_tag})
        assert stale.status_code == 412, stale.text
    finally:
        _replay(env, paused=False)
    _wait(lambda: client.get(path).json()["properties"]["count"] == 2, "the update")


def test_runtime_routes_reads_to_a_standby(env: Env) -> None:
    rt = env.client.app.state.runtime  # type: ignore[attr-defined]
    with rt.reader.read_pool.connection() as con:
        assert con.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
    with rt.store.pool.connection() as con:
        assert con.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False


def test_a_replica_that_is_down_costs_reads_nothing_but_a_short_wait(
    pg_database: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """No standby listening: the store opens at once, public reads are answered by the
    primary (after at most REPLICA_WAIT, then straight away for REPLICA_BACKOFF), and the
    switch is logged - a client never sees the replica's outage."""
    import uuid

    import shapely

    from geoservice.features import Feature
    from geoservice.store import postgis
    from tests.conftest import free_port
    from tests.test_store import load_things

    primary = pg_database("replica_down")
    store = postgis.PostgisStore(primary, schema=f"t_{uuid.uuid4().hex[:12]}", create=True)
    load_things(store)
    dead = make_conninfo(primary, port=str(free_port()))
    t0 = time.monotonic()
    view = store.with_replica(dead)
    assert time.monotonic() - t0 < 2, "opening a replica view must not wait for the replica"
    try:
        with caplog.at_level("WARNING", logger="geoservice.store"):
            t0 = time.monotonic()
            assert view.query("things", postgis.Query(limit=5)).number_matched == 20
            first = time.monotonic() - t0
            t0 = time.monotonic()
            assert view.get("things", "f03").properties["n"] == 3
            assert view.data_version("things") == store.data_version("things")
            assert view.info("things").count == 20
            assert view.tile("things", 10, 907, 402) == store.tile("things", 10, 907, 402)
            later = time.monotonic() - t0
        assert first <= postgis.REPLICA_WAIT + 1.5 and later < 1.0, (first, later)
        assert "read replica unavailable" in caplog.text
        created = view.create("things", Feature("new", {"n": 1}, shapely.Point(139, 35)))
        assert created.id == "new"  # writes and their read-back: the primary
    finally:
        view.close()
        store.close()
