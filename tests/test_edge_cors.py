"""Issue 15.3: CORS, tested from real browser pages on OTHER loopback ports.

A neighbour's page (its own origin, a plain static server on another port) reads the OGC
API with ``fetch`` (headers such as ``ETag`` readable), draws our vector tiles with
MapLibre and our 3D Tiles and GeoJSON with CesiumJS; a write with a token works only from
an origin listed in ``cors.write_origins``, and from an unlisted one the browser refuses it.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geoservice.app import create_app
from geoservice.auth.db import AuthDB, auth_db_path
from geoservice.auth.tokens import TokenStore
from geoservice.city3d.synthetic import write_synthetic
from geoservice.city3d.tiles3d import write_tiles
from geoservice.config import CorsSettings, Settings
from tests.browser import browser_page
from tests.conftest import ROOT, LiveServer, build_layers, free_port, settings_for

LAYERS = ["admin-boundaries", "wildlife-sightings", "shelters"]
VENDOR = ROOT / "geoservice" / "web" / "static" / "vendor"
NEIGHBOUR_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/vendor/maplibre-gl.css">
<script src="/vendor/maplibre-gl.js"></script>
<script>window.CESIUM_BASE_URL = "/vendor/cesium/";</script>
<script src="/vendor/cesium/Cesium.js"></script>
</head><body><div id="map" style="width:512px;height:512px"></div>
<div id="globe" style="width:512px;height:512px"></div></body></html>"""


class _Static(threading.Thread):
    """A neighbour's web server: static files on its own loopback port (its own origin)."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.port = free_port()
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.origin = f"http://127.0.0.1:{self.port}"

    def run(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@dataclass
class World:
    api: LiveServer
    trusted: _Static
    stranger: _Static
    token: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("cors")
    site = tmp / "site"
    site.mkdir()
    (site / "index.html").write_text(NEIGHBOUR_PAGE, "utf-8")
    (site / "vendor").symlink_to(VENDOR)
    trusted, stranger = _Static(site), _Static(site)
    settings = build_layers(settings_for(tmp, ROOT / "layers", free_port()), LAYERS,
                            cors=CorsSettings(write_origins=[trusted.origin]))
    gml = write_synthetic(tmp / "gml" / "synthetic_bldg.gml", 40)
    write_tiles([gml], settings.tiles_dir / "buildings", synthetic=True,
                attribution="SYNTHETIC test buildings")
    token, _ = TokenStore(AuthDB(auth_db_path(tmp))).create("admin", admin=True)
    trusted.start()
    stranger.start()
    try:
        with LiveServer(settings) as api:
            yield World(api, trusted, stranger, token)
    finally:
        trusted.stop()
        stranger.stop()


def _sighting() -> dict[str, object]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [139.06, 35.8]},
            "properties": {"species": "asian-black-bear", "kind": "witness",
                           "reliability": "high", "observed_at": "2025-10-01T06:30:00+09:00",
                           "count": 1}}


FETCH = """async ([url, init, header]) => {
  try {
    const r = await fetch(url, init);
    return {ok: true, status: r.status, header: header ? r.headers.get(header) : null};
  } catch (e) { return {ok: false, error: String(e)}; }
}"""


@pytest.mark.browser
def test_a_neighbours_page_reads_the_api_and_writes_only_when_listed(world: World) -> None:
    api = world.api.url
    with browser_page() as page:
        page.goto(world.stranger.origin + "/index.html")
        coll = page.evaluate(FETCH, [f"{api}/ogc/collections/shelters", {}, "Content-Type"])
        assert coll["ok"] and coll["status"] == 200 and "json" in coll["header"], coll
        item = page.evaluate(FETCH, [f"{api}/ogc/collections/shelters/items?limit=1",
                                     {"headers": {"Accept": "application/geo+json"}}, "Link"])
        assert item["ok"] and item["status"] == 200, item
        tile = page.evaluate(FETCH, [f"{api}/ogc/collections/shelters/tiles/WebMercatorQuad/"
                                     "0/0/0", {}, "ETag"])
        assert tile["ok"] and tile["header"], tile  # ETag is exposed to the page
        body = json.dumps(_sighting())
        write = {"method": "POST", "body": body, "headers": {
            "Content-Type": "application/geo+json", "Authorization": f"Bearer {world.token}"}}
        refused = page.evaluate(FETCH, [f"{api}/ogc/collections/wildlife-sightings/items",
                                        write, "Location"])
        assert not refused["ok"] and "Failed to fetch" in refused["error"], refused
        page.goto(world.trusted.origin + "/index.html")
        done = page.evaluate(FETCH, [f"{api}/ogc/collections/wildlife-sightings/items",
                                     write, "Location"])
        assert done["ok"] and done["status"] == 201, done
        assert done["header"].startswith(f"{api}/ogc/collections/wildlife-sightings/items/")


MAPLIBRE = """async (api) => {
  const map = new maplibregl.Map({container: "map", center: [139.4, 35.7], zoom: 8,
    style: {version: 8, sources: {s: {type: "vector", maxzoom: 14,
      tiles: [api + "/ogc/collections/shelters/tiles/WebMercatorQuad/{z}/{y}/{x}"]}},
      layers: [{id: "p", type: "circle", source: "s", "source-layer": "shelters"}]}});
  await new Promise((ok) => map.on("idle", ok));
  return map.querySourceFeatures("s", {sourceLayer: "shelters"}).length;
}"""

CESIUM = """async (api) => {
  const viewer = new Cesium.Viewer("globe", {baseLayer: false, baseLayerPicker: false,
    geocoder: false, homeButton: false, sceneModePicker: false, navigationHelpButton: false,
    animation: false, timeline: false, fullscreenButton: false, infoBox: false,
    selectionIndicator: false});
  const tileset = await Cesium.Cesium3DTileset.fromUrl(api + "/3dtiles/buildings/tileset.json");
  viewer.scene.primitives.add(tileset);
  await viewer.zoomTo(tileset);
  const loaded = await new Promise((ok) => {
    tileset.allTilesLoaded.addEventListener(() => ok(true));
    setTimeout(() => ok(false), 60000);
  });
  const geojson = await Cesium.GeoJsonDataSource.load(
    api + "/ogc/collections/shelters/items?limit=20&f=json");
  return {loaded: loaded, tiles: tileset.root ? 1 : 0,
          entities: geojson.entities.values.length};
}"""


@pytest.mark.browser
def test_maplibre_and_cesium_load_tiles_cross_origin(world: World) -> None:
    with browser_page() as page:
        page.goto(world.stranger.origin + "/index.html")
        assert page.evaluate(MAPLIBRE, world.api.url) > 0
        got = page.evaluate(CESIUM, world.api.url)
        assert got["loaded"] and got["tiles"] == 1 and got["entities"] == 20, got
        assert page.errors == []


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with _client(world.api.settings) as c:
        yield c


def test_public_preflight_and_reads_allow_any_origin(client: TestClient) -> None:
    pre = client.options("/ogc/collections/shelters/items", headers={
        "Origin": "https://maps.example.org", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "if-none-match, accept"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
    assert "if-none-match" in pre.headers["access-control-allow-headers"]
    r = client.get("/3dtiles/buildings/tileset.json", headers={"Origin": "https://x.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    for name in ("ETag", "Link", "Location", "Content-Crs"):
        assert name in r.headers["access-control-expose-headers"]


def test_write_preflight_only_for_listed_origins(client: TestClient, world: World) -> None:
    ask = {"Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    no = client.options("/ogc/collections/wildlife-sightings/items",
                        headers={"Origin": "https://evil.example", **ask})
    assert no.status_code == 403 and "access-control-allow-origin" not in no.headers
    assert "cors.write_origins" in no.text
    yes = client.options("/ogc/collections/wildlife-sightings/items",
                         headers={"Origin": world.trusted.origin, **ask})
    assert yes.status_code == 204
    assert yes.headers["access-control-allow-origin"] == world.trusted.origin
    assert "POST" in yes.headers["access-control-allow-methods"]
    admin = client.get("/api/audit", headers={"Origin": "https://evil.example",
                                              "Authorization": f"Bearer {world.token}"})
    assert "access-control-allow-origin" not in admin.headers


def test_write_origins_must_be_origins() -> None:
    with pytest.raises(ValueError, match="not origins"):
        CorsSettings(write_origins=["https://ok.example", "https://bad.example/path", "*"])
