"""Issue 15.2: security headers on every response, the pages' CSP built from the config.

That every page WORKS under its CSP is checked by the browser tests: ``tests.browser``
fails any ``browser_page`` whose console reports a CSP violation (portal, items, map,
guide, 3D viewer, pygeoapi's pages reached from the portal).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geoservice.app import create_app
from geoservice.config import Settings
from geoservice.edge.headers import content_security_policy, page_origins
from tests.conftest import ROOT

PAGES = ["/", "/map/", "/guide/", "/3d/", "/ogc/?f=html", "/ogc/collections?f=html",
         "/ogc/collections/shelters?f=html", "/ogc/collections/shelters/items?f=html",
         "/docs", "/ogc/openapi?f=html"]
OTHERS = ["/ogc/?f=json", "/ogc/collections/shelters/items?limit=1", "/healthz",
          "/static/site.css", "/ogc/collections/nope", "/api/guide/rules"]


@pytest.fixture(scope="module")
def client(real_settings: Settings) -> TestClient:
    with TestClient(create_app(real_settings), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_csp_and_frame_and_permission_headers(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    if not path.startswith("/3d/"):  # CesiumJS needs eval (see PAGE_EXCEPTIONS)
        assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
        assert directives["style-src"] == "'self'"
    assert r.headers["x-frame-options"] == "DENY"
    assert "geolocation=(self)" in r.headers["permissions-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "strict-transport-security" not in r.headers  # server.url is not https
    assert "<script>" not in r.text  # no inline script (a data block has a type)


@pytest.mark.parametrize("path", OTHERS)
def test_every_response_is_nosniff(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in r.headers  # not a page


def test_hsts_when_the_public_url_is_https(real_settings: Settings) -> None:
    server = real_settings.server.model_copy(update={"url": "https://geotwin.example.jp"})
    with TestClient(create_app(real_settings.model_copy(update={"server": server}))) as c:
        r = c.get("/healthz")
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")


def test_csp_lists_configured_tile_origins() -> None:
    """img-src/connect-src come from ``page_origins`` over the settings (basemaps)."""
    settings = Settings(layers_dir=ROOT / "layers")
    origins = page_origins(settings)
    csp = content_security_policy(settings)
    for directive in ("img-src", "connect-src"):
        part = next(d for d in csp.split("; ") if d.startswith(directive))
        assert all(o in part for o in origins)
        assert "*" not in part.split()
    assert origins == sorted(settings.basemaps.tile_origins())
    assert "https://cyberjapandata.gsi.go.jp" in origins  # 地理院タイル by default


def test_static_script_files_replace_inline_ones() -> None:
    for tpl in (ROOT / "geoservice" / "web" / "templates").glob("*.html"):
        text = tpl.read_text("utf-8")
        assert "<script>" not in text and " onclick=" not in text, tpl.name
    assert (Path(ROOT) / "geoservice/web/static/cesium-base.js").exists()
