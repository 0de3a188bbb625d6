"""The one in-memory shape of a feature that loaders, the store and the API share.

Geometries are shapely objects in CRS84 (longitude, latitude) everywhere inside the
service; CRS conversion happens only at the edges (loaders in, OGC responses out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shapely.geometry.base import BaseGeometry


@dataclass(slots=True)
class Feature:
    """A feature: a stable string id, typed properties and an optional CRS84 geometry."""

    id: str
    properties: dict[str, Any] = field(default_factory=dict)
    geometry: BaseGeometry | None = None
