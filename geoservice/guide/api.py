"""HTTP adapter of the guide room (placeholder until the route lands)."""

from __future__ import annotations

from fastapi import APIRouter

from geoservice.ogc.runtime import Runtime

router = APIRouter()


def attach(rt: Runtime) -> None:
    """Build the guide's services once at start-up (nothing yet)."""
