"""Basemaps for the pages: what each page's script is told about its background tiles.

The tiles come from ``settings.basemaps`` (地理院タイル by default); the browser fetches them,
the server never does. Each map page embeds the result of ``page_basemaps`` as JSON
(``templates/_basemaps.html``) and ``static/basemaps.js`` (2D) or ``static/viewer3d.js`` (3D)
adds the layers, the switcher, the credit and the "basemap unavailable" note.
"""

from __future__ import annotations

from typing import Any

from geoservice.config import BasemapSettings, BasemapSource, Settings


def _public(src: BasemapSource) -> dict[str, Any]:
    return {
        "id": src.id,
        "title": src.title,
        "title_en": src.title_en,
        "url": src.url,
        "min_zoom": src.min_zoom,
        "max_zoom": src.max_zoom,
        "tile_size": src.tile_size,
        "attribution": src.attribution.model_dump(),
    }


def credits(bm: BasemapSettings, ids: list[str]) -> list[dict[str, Any]]:
    """The distinct attributions of the sources ``ids`` (for the footer, before any script)."""
    seen: dict[str, dict[str, Any]] = {}
    for sid in ids:
        att = bm.source(sid).attribution.model_dump()
        seen.setdefault(att["text"], att)
    return list(seen.values())


def page_basemaps(settings: Settings, three_d: bool = False) -> dict[str, Any]:
    """The basemap config of a 2D page, or (``three_d``) imagery and terrain of the 3D viewer."""
    bm = settings.basemaps
    ids = list(bm.imagery_3d if three_d else bm.map_2d)
    used = ids + ([bm.terrain] if three_d and bm.terrain else [])
    doc: dict[str, Any] = {
        "sources": [_public(bm.source(i)) for i in ids],
        "credits": credits(bm, used),
    }
    if three_d:
        doc["terrain"] = _public(bm.source(bm.terrain)) if bm.terrain else None
        doc["bounds"] = list(bm.bounds_3d)
    return doc


def tile_origins(settings: Settings) -> list[str]:
    """Origins the pages load tiles from (for a Content-Security-Policy's img/connect-src)."""
    return settings.basemaps.tile_origins()
