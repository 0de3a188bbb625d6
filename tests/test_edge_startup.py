"""Issue 15.4/15.5: start-up errors are one line; links follow the port actually served.

``geoservice serve`` runs as a real process here (the CLI is what an operator types).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from geoservice.build import build
from tests.conftest import ROOT, build_layers, free_port, need, settings_for

LAYERS = ["admin-boundaries", "wildlife-sightings", "shelters"]
GEOSERVICE = str(Path(sys.executable).parent / "geoservice")


def _config(tmp: Path, store: Path, **server: object) -> Path:
    cfg = {
        "server": {"port": 8000, **server},
        "store": {"path": str(store)},
        "layers_dir": str(ROOT / "layers"),
        "enabled_layers": LAYERS,
        "data_dir": str(ROOT / "data"),
        "work_dir": str(tmp),
        "tiles_dir": str(tmp / "tiles"),
    }
    path = tmp / "config.yml"
    path.write_text(yaml.safe_dump(cfg), "utf-8")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "GEOSERVICE_LISTEN")}
    return subprocess.run([GEOSERVICE, *args], capture_output=True, text=True, timeout=120,
                          env=env, check=False)


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert proc.returncode != 0
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


def test_serve_without_a_built_store_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    line = _one_line(_run("serve", "-c", str(_config(tmp_path, tmp_path / "none.gpkg"))))
    assert "none.gpkg" in line and "geoservice build" in line


def test_serve_with_a_bad_config_is_one_line_naming_the_key(tmp_path: Path) -> None:
    cfg = _config(tmp_path, tmp_path / "none.gpkg")
    cfg.write_text(cfg.read_text("utf-8") + "limits: {depht: 3}\n", "utf-8")
    line = _one_line(_run("serve", "-c", str(cfg)))
    assert "limits.depht" in line


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`geoservice serve --port P` over a small real store, P not the config's port."""
    tmp = tmp_path_factory.mktemp("served")
    settings = build_layers(settings_for(tmp, ROOT / "layers"), LAYERS)
    port = free_port()
    cfg = _config(tmp, settings.store.path)
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "GEOSERVICE_LISTEN")}
    proc = subprocess.Popen([GEOSERVICE, "serve", "-c", str(cfg), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _hrefs(doc: object) -> list[str]:
    if isinstance(doc, dict):
        own = [doc["href"]] if isinstance(doc.get("href"), str) else []
        return own + [h for v in doc.values() for h in _hrefs(v)]
    if isinstance(doc, list):
        return [h for v in doc for h in _hrefs(v)]
    return []


def test_links_follow_the_port_served(served: str) -> None:
    """Every link to this service (not to licences) names the port actually served."""
    hrefs = []
    for path in ("/ogc/", "/ogc/collections", "/ogc/collections/shelters",
                 "/ogc/collections/shelters/items?limit=2"):
        r = httpx.get(served + path, params={"f": "json"}, timeout=30)
        assert r.status_code == 200, (path, r.text[:200])
        hrefs += [h for h in _hrefs(r.json())
                  if h.startswith(("http://127.0.0.1", "http://localhost"))]
    assert len(hrefs) > 10
    wrong = [h for h in hrefs if not h.startswith(served)]
    assert not wrong, wrong[:5]


def test_demo_build_notes_absent_code_lists_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Code lists missing from the demo mirror: one note listing them, not one per list."""
    layers = ["zoning-use-districts", "height-control-districts", "buildings"]
    settings = settings_for(tmp_path, ROOT / "layers").model_copy(
        update={"enabled_layers": layers})
    with caplog.at_level("WARNING"):
        report = build(settings, mirror=ROOT / "data" / "demo", layers=layers)
    notes = [r.getMessage() for r in caplog.records if "code list" in r.getMessage()]
    assert len(notes) == 1, notes
    assert report.raw_codelists and all(n in notes[0] for n in report.raw_codelists)
    assert "keep raw codes" in notes[0]


QGIS_SCRIPT = r"""
import json, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from qgis.core import QgsApplication, QgsVectorLayer
QgsApplication.setPrefixPath("/usr", True)
app = QgsApplication([], False)
app.initQgis()
url, ids = sys.argv[1], sys.argv[2:]
for cid in ids:
    layer = QgsVectorLayer(f"url='{url}' typename='{cid}' pagingEnabled='true'", cid, "OAPIF")
    feats = list(layer.getFeatures()) if layer.isValid() else []
    print(json.dumps({"id": cid, "valid": layer.isValid(), "features": len(feats)}),
          flush=True)
"""


def _qgis_available() -> bool:
    probe = subprocess.run(["/usr/bin/python3", "-c", "import qgis.core"], capture_output=True,
                           timeout=60, check=False)
    return probe.returncode == 0


def test_qgis_opens_every_collection_on_a_non_default_port(served: str) -> None:
    """QGIS's OGC API Features provider follows the service's links to every layer (given
    the landing page as a user types it: ``…/ogc``, no trailing slash)."""
    need(Path("/usr/bin/python3").exists() and _qgis_available(), "QGIS (python3-qgis)")
    colls = httpx.get(f"{served}/ogc/collections", params={"f": "json"}, timeout=30).json()
    expected = {}
    for c in colls["collections"]:
        if not any(link["rel"] == "items" for link in c["links"]):
            continue  # a coverage (flood depth): not a feature layer
        r = httpx.get(f"{served}/ogc/collections/{c['id']}/items",
                      params={"f": "json", "limit": 1}, timeout=30)
        assert r.status_code == 200, r.text
        expected[c["id"]] = r.json()["numberMatched"]
    assert set(expected) == set(LAYERS)
    proc = subprocess.run(["/usr/bin/python3", "-c", QGIS_SCRIPT, f"{served}/ogc", *expected],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    got = {d["id"]: d for d in map(json.loads, proc.stdout.splitlines()) if d}
    assert set(got) == set(expected), proc.stderr[-2000:]
    for cid, n in expected.items():
        assert got[cid]["valid"], got[cid]
        assert got[cid]["features"] == n, (cid, got[cid], n)


def _proxied_app(tmp: Path, trust: bool) -> Any:
    from geoservice.app import create_app

    settings = settings_for(tmp, ROOT / "layers").model_copy(update={"enabled_layers": LAYERS})
    server = settings.server.model_copy(update={"trust_forwarded": trust})
    return create_app(settings.model_copy(update={"server": server}))


@pytest.fixture(scope="module")
def proxied_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("proxied")
    build_layers(settings_for(tmp, ROOT / "layers"), LAYERS)
    return tmp


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "geo.example.jp",
     "X-Forwarded-Prefix": "/twin"},
    {"Forwarded": 'for=192.0.2.1;proto=https;host="geo.example.jp"',
     "X-Forwarded-Prefix": "/twin"},
])
def test_links_follow_the_proxy_when_trusted(proxied_store: Path,
                                             headers: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    public = "https://geo.example.jp/twin"
    with TestClient(_proxied_app(proxied_store, True)) as c:
        for path in ("/ogc/?f=json", "/ogc/collections?f=json",
                     "/ogc/collections/shelters/items?f=json&limit=2"):
            r = c.get(path, headers=headers)
            hrefs = [h for h in _hrefs(r.json()) if "127.0.0.1" in h or "example.jp" in h]
            assert hrefs and all(h.startswith(public + "/") for h in hrefs), hrefs[:3]
            assert int(r.headers["content-length"]) == len(r.content)
        tiles = c.get("/ogc/collections/shelters/tiles/WebMercatorQuad/0/0/0", headers=headers)
        assert tiles.status_code == 200  # binary bodies pass untouched
    with TestClient(_proxied_app(proxied_store, False)) as c:  # not trusted: ignored
        r = c.get("/ogc/?f=json", headers=headers)
        assert not any("example.jp" in h for h in _hrefs(r.json()))
