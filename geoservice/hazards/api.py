"""HTTP adapter of this room (placeholder until its routes land)."""

from __future__ import annotations

from fastapi import APIRouter

from geoservice.ogc.runtime import Runtime

router = APIRouter()


def attach(rt: Runtime) -> None:
    """Build the room's services once at start-up (nothing yet)."""
