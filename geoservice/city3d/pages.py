"""The planners' 3D viewer (``GET /3d/``): PLATEAU buildings as 3D Tiles plus OGC overlays.

The page is an HTML shell + ``/static/viewer3d.js`` (CesiumJS bundled from npm into
``static/vendor/cesium``; no Cesium ion, no online imagery or terrain: the globe is a plain
ellipsoid). Everything it shows comes from this service: the tileset under ``/3dtiles/``,
overlays and credits from the OGC API (``/ogc/collections/{id}`` and its ``items``). The server
only renders the shell and a JSON config saying which collections are served here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

from geoservice.city3d.tiles3d import TOKYO_GEOID_M
from geoservice.runtime import PageLink, RuntimeDep
from geoservice.web.basemaps import page_basemaps

router = APIRouter(include_in_schema=False)

#: The portal's link to this page.
PAGE: PageLink = {
    "href": "/3d/",
    "title": "3D都市ビューア / 3D city viewer",
    "description": "PLATEAU建物（高さ・用途・浸水深で色分け）と用途地域・土砂災害・避難所・"
    "目撃情報の重ね合わせ、属性表示、高さ・面積の計測、共有リンク"
    " / PLATEAU buildings with zoning and hazard overlays,"
    " attributes on click, measurement and shareable links",
}

BUILDINGS = "buildings"
TILESET = "buildings"

#: Overlays (OGC collections shown as GeoJSON), in panel order: id, Japanese and English
#: labels, colour, shown by default. Collections that are not served are left out.
OVERLAYS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("zoning-use-districts", "用途地域", "Use districts (zoning)", "#e08a2e", True),
    (
        "sediment-special-zones",
        "土砂災害特別警戒区域",
        "Sediment special warning zones",
        "#c0392b",
        False,
    ),
    ("sediment-warning-zones", "土砂災害警戒区域", "Sediment warning zones", "#f1c40f", False),
    ("shelters", "避難所", "Evacuation shelters", "#0070c0", False),
    ("wildlife-sightings", "クマ等の目撃情報", "Wildlife sightings", "#6b3e26", False),
    ("incidents", "事案・通報", "Incidents", "#8e44ad", False),
)

#: Feature properties of the tileset (EXT_structural_metadata) the viewer colours and links by.
PROPERTIES = {
    "id": "building_id",
    "height": "measured_height",
    "usage": "usage",
    "flood": "flood_depth_m",
}

#: Height (m above the WGS84 ellipsoid) of the plain ground the viewer draws instead of
#: terrain: the geoid undulation in Tokyo (EGM96 ≈ 36.7 m, T.P. 0 m). The tiles carry
#: ellipsoidal heights (T.P. + geoid), so on a bare ellipsoid they would float ~37 m high.
GROUND_HEIGHT_M = TOKYO_GEOID_M

#: The initial view when neither the link nor the tileset says otherwise (Tokyo Station).
HOME = {"lon": 139.767, "lat": 35.681, "height": 9000.0}


def viewer_config(rt: Any) -> dict[str, Any]:
    """The JSON config embedded in the page (what is served here, and where)."""
    tiles = rt.settings.tiles_dir / TILESET / "tileset.json"
    overlays = [
        {"id": cid, "ja": ja, "en": en, "colour": colour, "on": on}
        for cid, ja, en, colour, on in OVERLAYS
        if cid in rt.specs
    ]
    return {
        "tileset_url": f"/3dtiles/{TILESET}/tileset.json",
        "tileset_built": tiles.is_file(),
        "buildings": BUILDINGS if BUILDINGS in rt.specs else None,
        "overlays": overlays,
        "properties": PROPERTIES,
        "ground_height_m": GROUND_HEIGHT_M,
        "home": HOME,
        "page_size": 1000,
        "max_features": 5000,
    }


@router.get("/3d", include_in_schema=False)
async def viewer3d_slash() -> RedirectResponse:
    """``/3d`` → ``/3d/``."""
    return RedirectResponse("/3d/", status_code=308)


@router.get("/3d/", response_class=HTMLResponse)
async def viewer3d(rt: RuntimeDep) -> HTMLResponse:
    """The 3D viewer: buildings, overlays, picking, measurement, shareable view."""
    return rt.html.render(
        "viewer3d.html", config=viewer_config(rt), basemaps=page_basemaps(rt.settings, three_d=True)
    )
