"""HTTP adapter of the city3d room (placeholder until its routes land, e.g. ``/3dtiles/``).

Created so that ``geoservice.city3d`` can be listed in ``app.ROOMS``, which is how its
``pages`` module (the ``/3d/`` viewer) is found; the 3D Tiles pipeline owns this module.
"""

from __future__ import annotations

from fastapi import APIRouter

from geoservice.ogc.runtime import Runtime

router = APIRouter()


def attach(rt: Runtime) -> None:
    """Build the room's services once at start-up (nothing yet)."""
