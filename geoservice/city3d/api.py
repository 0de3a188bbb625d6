"""HTTP adapter of the city3d room.

The room's HTTP surface is its ``/3d/`` page (``pages.py``) and the static ``/3dtiles/``
mount (``static.py``, mounted by ``create_app``); it has no JSON routes, so ``router`` is
empty.  At start-up it contributes the collection links to built 3D Tiles tilesets
(``rt.collection_links``), so the OGC adapter knows nothing about 3D Tiles.
"""

from __future__ import annotations

from fastapi import APIRouter

from geoservice.city3d.static import tileset_links
from geoservice.runtime import RoomParts, Runtime

router = APIRouter()


def attach(rt: Runtime) -> None:
    """Link each collection's document to its built tileset (none until built)."""
    rt.collection_links.append(lambda cid: tileset_links(rt.settings, cid))


def room() -> RoomParts:
    """The city3d room for the composition root (``geoservice.app.rooms``)."""
    from geoservice.city3d.pages import PAGE
    from geoservice.city3d.pages import router as pages
    from geoservice.city3d.tiles3d import tiles_after_build

    return RoomParts("city3d", router, attach, pages, PAGE, after_build=tiles_after_build)
