"""The bear map as an installable web app: manifest and service worker under ``/map/``.

Why under ``/map/`` and not ``/static/``: a service worker controls only the pages below
the path it is served from, so ``/map/sw.js`` controls ``/map/`` without the
``Service-Worker-Allowed`` header (sent anyway, naming the one scope it may take).  The
worker (``static/map-sw.js``) shows the notifications of Web Push alerts
(``geoservice.sightings.push``) and opens the sighting on the map when one is tapped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from geoservice.errors import NotFound
from geoservice.fastjson import FastJSONResponse
from geoservice.runtime import Runtime, RuntimeDep
from geoservice.sightings.alerts_api import accepted_species
from geoservice.sightings.feed import label
from geoservice.sightings.push import public_key

router = APIRouter(include_in_schema=False)
#: The JSON route, listed in the API docs (the room's router includes it)
api_router = APIRouter(tags=["alerts"])

SCOPE = "/map/"
WORKER = Path(__file__).parents[1] / "web" / "static" / "map-sw.js"
ICONS = "/static/icons"
THEME = "#2d5a27"

#: The web app manifest (W3C Web Application Manifest); ``translations`` carries the
#: English names for browsers that read it (others ignore unknown members).
MANIFEST: dict[str, Any] = {
    "id": SCOPE,
    "name": "クマ出没マップ（東京都）",
    "short_name": "クマ出没マップ",
    "description": "東京都のクマ等の出没情報の地図と、指定した地域のプッシュ通知",
    "lang": "ja",
    "dir": "ltr",
    "start_url": SCOPE,
    "scope": SCOPE,
    "display": "standalone",
    "orientation": "any",
    "background_color": "#ffffff",
    "theme_color": THEME,
    "categories": ["navigation", "news", "utilities"],
    "icons": [
        {"src": f"{ICONS}/map-192.png", "sizes": "192x192", "type": "image/png",
         "purpose": "any"},
        {"src": f"{ICONS}/map-512.png", "sizes": "512x512", "type": "image/png",
         "purpose": "any"},
        {"src": f"{ICONS}/map-maskable-512.png", "sizes": "512x512", "type": "image/png",
         "purpose": "maskable"},
    ],
    "translations": {
        "en": {
            "name": "Bear sightings map (Tokyo)",
            "short_name": "Bear map",
            "description": "Wildlife sightings in Tokyo on a map, with push alerts for "
            "the area you choose",
        }
    },
}


@router.get("/map/manifest.webmanifest")
async def manifest() -> FastJSONResponse:
    """The manifest that makes ``/map/`` installable (name, icons, standalone display)."""
    return FastJSONResponse(
        MANIFEST,
        media_type="application/manifest+json",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get("/map/sw.js")
async def service_worker() -> FileResponse:
    """The map's service worker, revalidated on every update check (no stale worker)."""
    return FileResponse(
        WORKER,
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": SCOPE},
    )


def push_page_config(rt: Runtime) -> dict[str, Any] | None:
    """What the map page needs to offer push alerts (None: not configured here)."""
    settings = rt.settings
    key = public_key(settings)
    if key is None:
        return None
    codes = accepted_species(rt) or []
    return {
        "species": [[c, label("species", c, "ja"), label("species", c, "en")] for c in codes],
        "public_key": key,
        "worker": f"{SCOPE}sw.js",
        "scope": SCOPE,
        "subscriptions": "/api/subscriptions",
        "radius_min_m": settings.alerts.radius_min_m,
        "radius_max_m": settings.alerts.radius_max_m,
    }


@api_router.get("/api/push/public-key")
async def vapid_public_key(rt: RuntimeDep) -> FastJSONResponse:
    """The server's VAPID public key (``applicationServerKey`` for PushManager.subscribe)."""
    cfg = push_page_config(rt)
    if cfg is None:
        raise NotFound("Web Push is not configured on this server")
    return FastJSONResponse({"public_key": cfg["public_key"], "subscribe": cfg["subscriptions"]})
