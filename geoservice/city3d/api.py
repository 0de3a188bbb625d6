"""HTTP adapter of the city3d room.

The room's HTTP surface is its ``/3d/`` page (``pages.py``) and the static ``/3dtiles/``
mount (``static.py``, mounted by ``create_app``); it has no JSON routes and nothing to build
at start-up, so ``router`` is empty and ``attach`` does nothing. Listing the room in
``app.ROOMS`` is what makes its page module found and linked from the portal.
"""

from __future__ import annotations

from fastapi import APIRouter

from geoservice.ogc.runtime import Runtime

router = APIRouter()


def attach(rt: Runtime) -> None:
    """Nothing to build: tiles are static files written by ``geoservice build``."""
