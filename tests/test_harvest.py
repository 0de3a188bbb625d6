"""Harvesting neighbour feeds: a real pygeoapi server, and a second instance of this service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from shapely.geometry import Point

from geoservice.config import FeedSettings, Settings
from geoservice.features import Feature
from geoservice.sightings.events import open_bus
from geoservice.sightings.harvest import HarvestReport, harvest
from geoservice.store.gpkg import GpkgStore
from tests.conftest import ROOT, LiveServer, free_port, settings_for
from tests.test_alerts import sightings_store  # noqa: F401 - shared session fixture

COLLECTION = "wildlife-sightings"

# 山梨県-style schema: its own field names, Japanese code values, naive JST timestamps
ANIMALS = ["ツキノワグマ"] * 15 + ["ニホンザル"] * 3 + ["ニホンジカ"] + ["タヌキ"]


def neighbour_features(n: int = 20) -> list[dict[str, Any]]:
    feats = []
    for i in range(n):
        lon, lat = 138.60 + 0.02 * i, 35.60 + 0.01 * (i % 7)
        feats.append(
            {
                "type": "Feature",
                "id": f"Y{i + 1:03d}",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "no": f"Y{i + 1:03d}",
                    "animal": ANIMALS[i % len(ANIMALS)],
                    "type": "目撃" if i % 3 else "痕跡",
                    "seen": f"2025-10-{1 + i:02d} 07:30",
                    "lat": lat,
                    "lon": lon,
                    "city": "甲州市",
                    "heads": 1 + i % 2,
                },
            }
        )
    return feats


def yamanashi_feed(url: str) -> FeedSettings:
    return FeedSettings(
        id="yamanashi",
        url=url,
        collection="yamanashi-sightings",
        id_field="no",
        lon_field="lon",
        lat_field="lat",
        page_size=7,
        mapping={
            "species": "animal",
            "kind": "type",
            "observed_at": "seen",
            "count": "heads",
            "description": "city",
        },
        value_maps={
            "species": {
                "ツキノワグマ": "asian-black-bear",
                "ニホンザル": "japanese-macaque",
                "ニホンジカ": "sika-deer",
            },
            "kind": {"目撃": "witness", "痕跡": "trace"},
        },
        constants={"status": "published"},
    )


def pygeoapi_config(port: int, data: Path) -> dict[str, Any]:
    return {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": f"http://127.0.0.1:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "language": "ja-JP",
            "limits": {"default_items": 10, "max_items": 1000},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": "OSM"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "山梨県 野生動物目撃情報 (test)",
                "description": "A neighbour's feed for harvest tests",
                "keywords": ["bear"],
                "keywords_type": "theme",
                "terms_of_service": "https://example.org/terms",
                "url": "https://example.org/",
            },
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "Yamanashi (test)", "url": "https://example.org/"},
            "contact": {"name": "test", "email": "test@example.org", "url": "https://example.org/"},
        },
        "resources": {
            "yamanashi-sightings": {
                "type": "collection",
                "title": "山梨県 クマ等目撃情報",
                "description": "test data",
                "keywords": ["bear"],
                "links": [],
                "extents": {
                    "spatial": {
                        "bbox": [138.2, 35.1, 139.2, 36.0],
                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
                    }
                },
                "providers": [
                    {"type": "feature", "name": "GeoJSON", "data": str(data), "id_field": "no"}
                ],
            }
        },
    }


@pytest.fixture()
def pygeoapi_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real pygeoapi (uvicorn subprocess) serving a GeoJSON file of neighbour sightings."""
    port = free_port()
    data = tmp_path / "yamanashi.geojson"
    data.write_text(
        json.dumps({"type": "FeatureCollection", "features": neighbour_features()}), "utf-8"
    )
    config = tmp_path / "pygeoapi-config.yml"
    config.write_text(yaml.safe_dump(pygeoapi_config(port, data), allow_unicode=True), "utf-8")
    openapi = tmp_path / "pygeoapi-openapi.yml"
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    subprocess.run(
        [
            str(bindir / "pygeoapi"),
            "openapi",
            "generate",
            str(config),
            "--output-file",
            str(openapi),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    log = (tmp_path / "pygeoapi.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "pygeoapi.starlette_app:APP"]
        + ["--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/collections?f=json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "pygeoapi did not start:\n" + (tmp_path / "pygeoapi.log").read_text()
                )
            time.sleep(0.2)
        yield url, data
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def copy_store(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "store.gpkg", dst / "store.gpkg")
    return dst


def target_settings(store_dir: Path, feeds: list[FeedSettings]) -> Settings:
    base = settings_for(store_dir, ROOT / "layers")
    return base.model_copy(update={"feeds": feeds})


def counts(r: HarvestReport) -> tuple[int, int, int, int]:
    return r.created, r.updated, r.unchanged, r.skipped


def event_count(settings: Settings) -> int:
    bus = open_bus(settings)
    try:
        return bus.outbox.last_seq()
    finally:
        bus.outbox.close()


def test_harvest_from_real_pygeoapi(
    pygeoapi_server: tuple[str, Path],
    sightings_store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    url, data = pygeoapi_server
    settings = target_settings(copy_store(sightings_store, tmp_path / "a"), [yamanashi_feed(url)])
    store = GpkgStore(settings.store.path)
    bus = open_bus(settings)
    try:
        (r1,) = harvest(settings, store, bus)
        assert counts(r1) == (19, 0, 0, 1), r1
        assert r1.pages >= 3  # page_size 7: paged through next links
        assert "タヌキ" in r1.problems[0]
        f = store.get(COLLECTION, "feed-yamanashi-Y001")
        assert f.properties["species"] == "asian-black-bear"
        assert f.properties["kind"] == "trace"
        assert f.properties["source"] == "yamanashi"
        assert f.properties["source_id"] == "Y001"
        assert f.properties["status"] == "published"
        assert f.properties["observed_at"] == "2025-09-30T22:30:00Z"  # 07:30 JST
        assert f.geometry is not None and f.geometry.equals_exact(Point(138.60, 35.60), 1e-9)
        assert store.get(COLLECTION, "feed-yamanashi-Y016").properties["species"] == (
            "japanese-macaque"
        )
        assert event_count(settings) == 19

        (r2,) = harvest(settings, store, bus)
        assert counts(r2) == (0, 0, 19, 1), r2
        assert event_count(settings) == 19

        doc = json.loads(data.read_text("utf-8"))
        doc["features"][4]["properties"]["heads"] = 3
        doc["features"].append(neighbour_features(21)[20])
        doc["features"][-1]["properties"]["animal"] = "ツキノワグマ"
        data.write_text(json.dumps(doc), "utf-8")
        (r3,) = harvest(settings, store, bus)
        assert counts(r3) == (1, 1, 18, 1), r3
        assert store.get(COLLECTION, "feed-yamanashi-Y005").properties["count"] == 3
        assert store.get(COLLECTION, "feed-yamanashi-Y021").properties["source_id"] == "Y021"
        assert event_count(settings) == 21
    finally:
        bus.outbox.close()
        store.close()


def test_harvest_from_another_geotwin_incrementally(
    sightings_store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    remote_dir = copy_store(sightings_store, tmp_path / "remote")
    remote_settings = settings_for(remote_dir, ROOT / "layers", free_port())
    with LiveServer(remote_settings) as remote:
        items = httpx.get(
            f"{remote.url}/ogc/collections/{COLLECTION}/items", params={"limit": 1}, timeout=30
        ).json()
        total = items["numberMatched"]
        assert total > 100
        feed = FeedSettings(
            id="tokyo-b",
            url=f"{remote.url}/ogc",
            collection=COLLECTION,
            page_size=250,
            updated_field="observed_at",
            mapping={
                k: k
                for k in (
                    "species",
                    "kind",
                    "reliability",
                    "observed_at",
                    "municipality_code",
                    "count",
                    "description",
                    "status",
                )
            },
        )
        settings = target_settings(copy_store(sightings_store, tmp_path / "local"), [feed])
        store = GpkgStore(settings.store.path)
        bus = open_bus(settings)
        try:
            (r1,) = harvest(settings, store, bus)
            assert counts(r1) == (total, 0, 0, 0), r1
            assert not r1.incremental and r1.high_water
            (r2,) = harvest(settings, store, bus)
            assert r2.incremental and r2.created == 0 and r2.updated == 0
            assert r2.fetched < total  # only records at or after the high-water mark

            remote_store = GpkgStore(remote_settings.store.path)
            try:
                victim = next(remote_store.iter_features(COLLECTION))
                newer = "2025-11-25T03:00:00Z"
                remote_store.update(COLLECTION, victim.id, {"observed_at": newer, "count": 2})
                remote_store.create(
                    COLLECTION,
                    Feature(
                        "tokyo-new-1",
                        {
                            "species": "asian-black-bear",
                            "kind": "witness",
                            "observed_at": "2025-11-25T04:00:00Z",
                            "count": 1,
                            "status": "published",
                        },
                        Point(139.15, 35.78),
                    ),
                )
            finally:
                remote_store.close()
            (r3,) = harvest(settings, store, bus)
            assert (r3.created, r3.updated) == (1, 1), r3
            assert r3.incremental and r3.fetched < 10
            assert r3.high_water == "2025-11-25T04:00:00Z"
            changed = store.get(COLLECTION, f"feed-tokyo-b-{victim.id}")
            assert changed.properties["count"] == 2
            assert changed.properties["source"] == "tokyo-b"
            assert changed.properties["source_id"] == victim.id
            assert store.get(COLLECTION, "feed-tokyo-b-tokyo-new-1")
        finally:
            bus.outbox.close()
            store.close()


def test_harvest_cli_without_feeds(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from geoservice.cli import app

    config = tmp_path / "config.yml"
    config.write_text("store: {path: store.gpkg}\nwork_dir: .\n", "utf-8")
    result = CliRunner().invoke(app, ["harvest", "--config", str(config)])
    assert result.exit_code == 0
    assert "no feeds configured" in result.output


def test_remote_refusing_datetime_is_read_in_full(
    sightings_store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    feats = neighbour_features(3)
    asked: list[str] = []

    def remote(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if "datetime" in request.url.params:
            return httpx.Response(400, json={"code": "InvalidParameterValue"})
        return httpx.Response(200, json={"type": "FeatureCollection", "features": feats})

    feed = yamanashi_feed("http://neighbour.invalid").model_copy(update={"updated_field": "seen"})
    settings = target_settings(copy_store(sightings_store, tmp_path / "a"), [feed])
    store = GpkgStore(settings.store.path)
    client = httpx.Client(transport=httpx.MockTransport(remote))
    try:
        (r1,) = harvest(settings, store, client=client, audit=False)
        assert counts(r1) == (3, 0, 0, 0), r1
        assert not r1.incremental and r1.high_water
        (r2,) = harvest(settings, store, client=client, audit=False)
        # asked with datetime=<mark>/.., refused, then read in full: hashes keep it idempotent
        assert any("datetime" in u for u in asked)
        assert not r2.incremental and r2.pages == 1
        assert counts(r2) == (0, 0, 3, 0), r2
    finally:
        client.close()
        store.close()
