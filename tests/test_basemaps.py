"""The ``basemaps`` config section and what the pages are told about their tiles."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from geoservice.app import create_app
from geoservice.config import BasemapSettings, Settings
from geoservice.web.basemaps import page_basemaps, tile_origins

GSI_TERMS = "https://maps.gsi.go.jp/development/ichiran.html"


def test_defaults_are_gsi_tiles_with_their_credit() -> None:
    bm = BasemapSettings()
    assert bm.map_2d == ["pale", "std"] and bm.imagery_3d[0] == "seamlessphoto"
    assert bm.source("pale").url == "https://cyberjapandata.gsi.go.jp/xyz/pale/{z}/{x}/{y}.png"
    assert bm.source("dem_png").kind == "dem" and bm.terrain == "dem_png"
    for s in bm.sources:
        assert s.attribution.text == "地理院タイル" and s.attribution.url == GSI_TERMS
    assert tile_origins(Settings()) == ["https://cyberjapandata.gsi.go.jp"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"sources": [{"id": "a", "title": "a", "title_en": "a", "url": "https://t/{z}/{x}.png",
                       "attribution": {"text": "t"}}], "map_2d": ["a"], "imagery_3d": [],
          "terrain": None}, "must contain {z}, {x} and {y}"),
        ({"map_2d": ["nope"]}, "not raster sources"),
        ({"terrain": "pale"}, "not a dem source"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_bad_basemap_config_is_refused(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        BasemapSettings.model_validate(doc)


def test_flat_ground_when_terrain_is_off() -> None:
    settings = Settings(basemaps=BasemapSettings(terrain=None))
    assert page_basemaps(settings, three_d=True)["terrain"] is None
    assert tile_origins(settings) == ["https://cyberjapandata.gsi.go.jp"]


def test_pages_embed_basemaps_and_credit(real_settings: Settings) -> None:
    with TestClient(create_app(real_settings)) as c:
        for path, ids in [("/map/", ["pale", "std"]), ("/guide/", ["pale", "std"]),
                          ("/3d/", ["seamlessphoto", "pale"])]:
            html = c.get(path).text
            m = re.search(r'id="basemaps-config">(.*?)</script>', html, re.S)
            assert m, path
            doc = json.loads(m.group(1))
            assert [s["id"] for s in doc["sources"]] == ids
            assert all(s["url"].startswith("http://127.0.0.1:") for s in doc["sources"])
            assert f'<a href="{GSI_TERMS}">地理院タイル</a>' in html, path
            assert "<script>" not in html, f"inline script on {path}"
        assert c.get("/favicon.ico").status_code == 200
