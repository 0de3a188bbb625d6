"""``geoservice reinfolib prefetch``: resumable after ``kill -9``, API layers as ordinary OGC
collections, and the key never leaking into logs, answers, files or the database."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from geoservice.app import create_app
from geoservice.build import build
from geoservice.config import Settings
from geoservice.reinfolib.cache import Ledger
from geoservice.reinfolib.cli import municipality_area
from geoservice.reinfolib.source import ReinfolibSource
from geoservice.reinfolib.tiles import covering
from geoservice.store import open_store
from tests.conftest import pg_settings_for, settings_for
from tests.reinfolib_server import ReinfolibServer, use_server
from tests.test_reinfolib import DEMO, SITE, _layers

CLI = [sys.executable, "-c", "from geoservice.cli import main; main()"]
MUNICIPALITY = "13111"  # 大田区: 119 tiles at zoom 15 in the demo boundaries


def _config(settings: Settings, path: Path) -> Path:
    """A config.yml for the CLI in a subprocess (the key stays in the environment)."""
    store: dict[str, Any] = {"backend": settings.store.backend, "path": str(settings.store.path)}
    if settings.store.database_url:
        store["database_url"] = settings.store.database_url
    path.write_text(yaml.safe_dump({
        "store": store,
        "layers_dir": str(settings.layers_dir),
        "work_dir": str(settings.work_dir),
        "tiles_dir": str(settings.tiles_dir),
        "reinfolib": {"base_url": settings.reinfolib.base_url, "concurrency": 2,
                      "requests_per_minute": 6000},
    }), "utf-8")
    return path


@pytest.fixture(params=["gpkg", "postgis"])
def built(request: pytest.FixtureRequest, tmp_path: Path,
          reinfolib_server: ReinfolibServer) -> Settings:
    """A store with the API layers and the demo admin boundaries, on each backend."""
    if request.param == "gpkg":
        settings = settings_for(tmp_path, _layers(tmp_path))
    else:
        make: Callable[[str], str] = request.getfixturevalue("pg_database")
        settings = pg_settings_for(tmp_path, _layers(tmp_path), make(f"rp{uuid.uuid4().hex[:8]}"))
    build(settings, mirror=DEMO)
    return use_server(settings, reinfolib_server, requests_per_minute=6000)


def _ids_and_tiles(settings: Settings, layer: str) -> tuple[list[str], int]:
    store = open_store(settings)
    try:
        ids = [f.id for f in store.iter_features(layer)]
        return ids, Ledger.of(store).summary(layer)[0]
    finally:
        store.close()


def _prefetch(settings: Settings, cfg: Path, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "reinfolib", "prefetch", "--municipality", MUNICIPALITY, "--layers", "rf-use",
         "-c", str(cfg)], cwd=settings.work_dir, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


def test_prefetch_resumes_after_kill_without_duplicates(
        built: Settings, reinfolib_server: ReinfolibServer, tmp_path: Path) -> None:
    cfg = _config(built, tmp_path / "config.yml")
    store = open_store(built)
    area = municipality_area(store, MUNICIPALITY)
    store.close()
    total = len(covering(area, 15))
    reinfolib_server.state.latency_s = 0.05
    proc = _prefetch(built, cfg)
    deadline = time.monotonic() + 60
    while len(reinfolib_server.served) < total // 3:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "prefetch made no progress"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    _, tiles_before = _ids_and_tiles(built, "rf-use")
    assert 0 < tiles_before < total
    served_before = len(reinfolib_server.served)

    reinfolib_server.state.latency_s = 0.0
    resumed = _prefetch(built, cfg)
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out
    ids, tiles_after = _ids_and_tiles(built, "rf-use")
    assert tiles_after == total
    # only what was missing was fetched again (plus the requests in flight at the kill)
    assert len(reinfolib_server.served) - served_before <= total - tiles_before + 2
    assert len(ids) == len(set(ids))

    # the same features as one uninterrupted prefetch into a fresh store
    fresh = settings_for(tmp_path / "fresh", _layers(tmp_path / "fresh"))
    build(fresh, mirror=DEMO)
    fresh = use_server(fresh, reinfolib_server, requests_per_minute=6000)
    store = open_store(fresh)
    source = ReinfolibSource.open(fresh, store)
    report = asyncio.run(source.prefetch(source.layers["rf-use"], area))
    assert report.fetched == total and not report.failed
    expected = {f.id: f for f in store.iter_features("rf-use")}
    store.close()
    assert sorted(ids) == sorted(expected)
    resumed_store = open_store(built)
    for f in resumed_store.iter_features("rf-use"):
        assert f.properties == expected[f.id].properties
        assert f.geometry.symmetric_difference(expected[f.id].geometry).area < 1e-10
    resumed_store.close()
    served_done = len(reinfolib_server.served)
    store = open_store(built)
    source = ReinfolibSource.open(built, store)
    report = asyncio.run(source.prefetch(source.layers["rf-use"], area))
    store.close()
    assert (report.cached, report.fetched) == (total, 0)  # all cached: nothing fetched
    assert len(reinfolib_server.served) == served_done


def test_prefetched_layer_is_an_ordinary_collection(
        built: Settings, reinfolib_server: ReinfolibServer) -> None:
    store = open_store(built)
    source = ReinfolibSource.open(built, store)
    asyncio.run(source.prefetch(source.layers["rf-use"], SITE.buffer(0.02)))
    store.close()
    with TestClient(create_app(built)) as c:
        meta = c.get("/ogc/collections/rf-use").json()
        assert meta["source"]["api"] == "XKT002" and meta["source"]["tiles_cached"] > 0
        assert meta["source"]["first_fetched"].startswith("20")
        assert meta["source"]["status"] == "configured"
        assert "不動産情報ライブラリ" in meta["attribution"]  # the credit the terms require
        items = c.get("/ogc/collections/rf-use/items", params={"limit": 100}).json()
        names = {f["properties"]["use_district"] for f in items["features"]}
        assert "第一種低層住居専用地域" in names
        cql = c.get("/ogc/collections/rf-use/items", params={
            "filter": "floor_area_ratio >= 200", "filter-lang": "cql2-text"}).json()
        assert cql["features"] and all(
            f["properties"]["floor_area_ratio"] >= 200 for f in cql["features"])
        tile = c.get("/ogc/collections/rf-use/tiles/WebMercatorQuad/15/12914/29100")
        assert tile.status_code == 200 and len(tile.content) > 0


def test_no_key_empty_api_collections_are_not_offered(
        built: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key an empty API layer cannot be filled: QGIS or GDAL would offer it as a
    layer with no features and no fields, so OGC API does not list it, and a direct request
    is a 404 that says why.  The guide still knows it (tests/test_reinfolib_site.py)."""
    monkeypatch.delenv("REINFOLIB_API_KEY")
    with TestClient(create_app(built)) as c:
        listed = {x["id"] for x in c.get("/ogc/collections").json()["collections"]}
        assert "admin-boundaries" in listed and not listed & {"rf-use", "rf-prices"}
        for path in ("/ogc/collections/rf-use", "/ogc/collections/rf-use/items",
                     "/ogc/collections/rf-prices/queryables",
                     "/ogc/collections/rf-use/tiles/WebMercatorQuad/15/12914/29100"):
            r = c.get(path, params={"f": "json"})
            assert r.status_code == 404, path
            assert "REINFOLIB_API_KEY" in r.json()["description"], path
        assert "rf-use" not in c.get("/ogc/openapi", params={"f": "json"}).text
        assert "rf-use" not in c.get("/").text  # the portal's layer table
        assert c.get("/ogc/collections/admin-boundaries/items").status_code == 200


def test_no_key_api_collection_with_fetched_features_stays_listed(
        built: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Features fetched while a key was set are real data: still served, and the source
    block says the layer is not refreshed (not configured)."""
    store = open_store(built)
    source = ReinfolibSource.open(built, store)
    asyncio.run(source.prefetch(source.layers["rf-use"], SITE.buffer(0.01)))
    store.close()
    monkeypatch.delenv("REINFOLIB_API_KEY")
    with TestClient(create_app(built)) as c:
        listed = {x["id"]: x for x in c.get("/ogc/collections").json()["collections"]}
        assert "rf-prices" not in listed  # still empty
        assert listed["rf-use"]["itemCount"] > 0
        assert listed["rf-use"]["source"]["status"].startswith("not configured")
        assert c.get("/ogc/collections/rf-use/items").json()["features"]


def test_key_never_leaks(built: Settings, reinfolib_server: ReinfolibServer, tmp_path: Path,
                         caplog: pytest.LogCaptureFixture) -> None:
    key = reinfolib_server.key
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    store = open_store(built)
    refetching = use_server(built, reinfolib_server, cache_ttl_days=1e-9, retries=1,
                            backoff_s=0.01)
    source = ReinfolibSource.open(refetching, store)
    spec = source.layers["rf-use"]

    async def site() -> None:
        for inject in (None, "503", "429", "truncated", "non-json", "bad-pbf", "hang"):
            if inject:
                reinfolib_server.inject(inject, count=10, retry_after=0, seconds=1)
            result = await source.site_features(spec, SITE.buffer(0.01),
                                                deadline=time.monotonic() + 1.5)
            texts.append(repr(result))
            if result.error is not None:
                texts.append(str(result.error.as_dict()))
            if result.provenance is not None:
                texts.append(str(result.provenance.as_dict()))
            reinfolib_server.clear()
        await source.aclose()

    asyncio.run(site())
    store.close()
    with TestClient(create_app(built)) as c:
        for path in ("/ogc/collections", "/ogc/collections/rf-use", "/ogc/openapi?f=json",
                     "/ogc/collections/rf-use/items"):
            texts.append(c.get(path).text)
    cfg = _config(built, tmp_path / "config.yml")
    out, _ = _prefetch(built, cfg).communicate(timeout=120)
    texts.append(out)
    texts.append(caplog.text)
    assert "HTTP 503" in caplog.text  # the log did record the failures
    for text in texts:
        assert key not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    if built.store.backend == "postgis":
        import psycopg

        assert built.store.database_url is not None
        with psycopg.connect(built.store.database_url) as con:
            dump = con.execute(
                "SELECT string_agg(t::text, ' ') FROM geoservice.reinfolib_tiles t").fetchone()
            meta = con.execute(
                "SELECT string_agg(m::text, ' ') FROM geoservice.geoservice_layers m").fetchone()
        assert dump and dump[0] and key not in dump[0]
        assert meta and meta[0] and key not in meta[0]


def test_prefetch_refuses_bad_input_clearly(built: Settings, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from geoservice.cli import app

    cfg = str(_config(built, tmp_path / "config.yml"))
    runner = CliRunner()
    base = ["reinfolib", "prefetch", "-c", cfg]
    res = runner.invoke(app, [*base, "--municipality", "99999"])
    assert res.exit_code == 2 and "no municipality '99999'" in res.output
    res = runner.invoke(app, [*base, "--municipality", MUNICIPALITY, "--layers", "parcels"])
    assert res.exit_code == 2 and "not API layers of this store" in res.output
    res = runner.invoke(app, ["reinfolib", "status", "-c", cfg])
    assert res.exit_code == 0 and "rf-use" in res.output and "configured" in res.output
    monkeypatch.delenv("REINFOLIB_API_KEY")
    res = runner.invoke(app, [*base, "--municipality", MUNICIPALITY])
    assert res.exit_code == 2 and "REINFOLIB_API_KEY" in res.output
