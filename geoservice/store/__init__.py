"""Feature storage behind one interface; ``open_store(settings)`` picks the backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from geoservice.store.base import CollectionInfo, Page, Query, Store

if TYPE_CHECKING:
    from geoservice.config import Settings

__all__ = ["CollectionInfo", "Page", "Query", "Store", "open_store"]


def open_store(settings: Settings) -> Store:
    """Open the configured store (GeoPackage file by default)."""
    if settings.store.backend == "postgis":
        raise NotImplementedError("the PostGIS backend is not available in this build")
    from geoservice.store.gpkg import GpkgStore

    return GpkgStore(settings.store.path)
