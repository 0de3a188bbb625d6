"""The public bear / wildlife sightings map (``GET /map/``).

The page is static HTML + ``/static/map.js`` (MapLibre GL JS bundled from npm, no CDN, no
online tiles): everything it shows comes from this service's OGC API, read in the browser
(``/ogc/collections/wildlife-sightings/items`` with paging, ``admin-boundaries`` for the
municipality names and outlines). The server only renders the shell, the default settings
(recency thresholds) and a credit line that is there even before the script runs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from geoservice.ogc.pygeoapi_adapter import layer_notice
from geoservice.runtime import PageLink, RuntimeDep
from geoservice.sightings.pwa import push_page_config
from geoservice.sightings.pwa import router as pwa_router
from geoservice.web.basemaps import page_basemaps

router = APIRouter(include_in_schema=False)
router.include_router(pwa_router)  # /map/manifest.webmanifest, /map/sw.js

#: The portal's link to this page.
PAGE: PageLink = {
    "href": "/map/",
    "title": "クマ出没マップ / Bear sightings map",
    "description": "ツキノワグマ等の目撃・痕跡・撮影・捕獲を地図と一覧で"
    "（色＝経過、市区町村・期間・動物・距離で絞り込み）"
    " / Sightings by recency with municipality, period, animal and distance filters",
}

COLLECTION = "wildlife-sightings"
BOUNDARIES = "admin-boundaries"

#: Defaults of the page (overridable per request with the query string, see map.js):
#: recency colour thresholds as "<n>m" (calendar months) or "<n>d" (days), the radius
#: choices of the distance filter (km) and the initial view.
DEFAULTS: dict[str, Any] = {
    "collection": COLLECTION,
    "boundaries": BOUNDARIES,
    "recency": {"red": "1m", "yellow": "3m"},
    "radii_km": [1, 2, 3, 5, 10, 20, 30, 50, 100],
    "default_radius_km": 5,
    "page_size": 1000,
    "center": [139.2, 35.75],
    "zoom": 9.2,
    "timezone": "Asia/Tokyo",
}


def map_config(rt: Any) -> dict[str, Any]:
    """The JSON config embedded in the page (what the collection is, whether it is served)."""
    spec = rt.specs.get(COLLECTION)
    cfg = dict(DEFAULTS)
    cfg["served"] = spec is not None
    cfg["boundaries_served"] = BOUNDARIES in rt.specs
    if spec is not None:
        cfg["coverage_bbox"] = list(spec.coverage.bbox) if spec.coverage.bbox else None
        cfg["licence_url"] = spec.licence.url
    cfg["push"] = push_page_config(rt)  # None: the page hides its push panel
    return cfg


@router.get("/map/", response_class=HTMLResponse)
async def bear_map(rt: RuntimeDep) -> HTMLResponse:
    """The bear / wildlife sightings map: recency colours, list, filters, details, credit."""
    spec = rt.specs.get(COLLECTION)
    credit = None
    synthetic = False
    if spec is not None:
        synthetic = bool(spec.synthetic or rt.store.info(COLLECTION).synthetic)
        credit = {
            "attribution": layer_notice(spec, synthetic),
            "licence": spec.licence.name,
            "licence_url": spec.licence.url,
        }
    return rt.html.render(
        "map.html", config=map_config(rt), credit=credit, synthetic=synthetic,
        basemaps=page_basemaps(rt.settings), email_alerts=email_panel(rt),
    )


def email_panel(rt: Any) -> dict[str, Any] | None:
    """What the e-mail alert form offers (None - no form - without an SMTP relay)."""
    if rt.settings.alerts.smtp is None:
        return None
    from geoservice.sightings.alerts_api import accepted_species
    from geoservice.sightings.feed import label

    codes = accepted_species(rt) or ["asian-black-bear"]
    return {
        "species": [{"code": c, "ja": label("species", c, "ja"), "en": label("species", c, "en")}
                    for c in codes],
        "radii_km": [r for r in DEFAULTS["radii_km"]
                     if r * 1000 <= rt.settings.alerts.radius_max_m],
        "default_radius_km": DEFAULTS["default_radius_km"],
    }
