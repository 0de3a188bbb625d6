"""Feature storage behind one interface; ``open_store(settings)`` picks the backend."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from geoservice.store.base import CollectionInfo, Page, Query, Store

if TYPE_CHECKING:
    from geoservice.config import Settings

__all__ = [
    "CollectionInfo", "Page", "Query", "Store", "database_url", "open_read_store", "open_store",
    "store_problem",
]


def database_url(settings: Settings) -> str:
    """The PostGIS URL: ``store.database_url`` or else ``GEOSERVICE_DATABASE_URL``."""
    url = settings.store.database_url or os.environ.get("GEOSERVICE_DATABASE_URL")
    if not url:
        raise ValueError(
            "store.backend is 'postgis' but no database URL is configured: set "
            "store.database_url in config.yml or GEOSERVICE_DATABASE_URL"
        )
    return url


def open_store(settings: Settings) -> Store:
    """Open the configured store (GeoPackage file by default, PostGIS when selected)."""
    if settings.store.backend == "postgis":
        from geoservice.store.postgis import PostgisStore

        return PostgisStore(database_url(settings))
    from geoservice.store.gpkg import GpkgStore

    return GpkgStore(settings.store.path)


def store_problem(settings: Settings) -> str | None:
    """Why the configured store cannot be served, in one line naming what to run; or None.

    ``geoservice serve`` calls this before starting the server, so a missing build is one
    clear line and a non-zero exit instead of a traceback from inside the server.
    """
    build = "run `geoservice build --mirror DIR` (or `make run` for the demo)"
    if settings.store.backend == "gpkg" and not settings.store.path.exists():
        return f"no store at {settings.store.path}: it has not been built; {build}"
    try:
        store = open_store(settings)
    except Exception as exc:  # any driver error: the point is one line, not its type
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"cannot open the {settings.store.backend} store ({first}); check config.yml"
    try:
        if not store.collections():
            return f"the {settings.store.backend} store holds no layers; {build}"
    finally:
        store.close()
    return None


def open_read_store(settings: Settings, store: Store) -> Store:
    """The store the public read paths use: a view of ``store`` that reads from the read
    replica (``store.read_database_url`` or ``GEOSERVICE_READ_DATABASE_URL``) when one is
    configured for a PostGIS store, else ``store`` itself."""
    url = settings.store.read_database_url or os.environ.get("GEOSERVICE_READ_DATABASE_URL")
    if settings.store.backend != "postgis" or not url:
        return store
    from geoservice.store.postgis import PostgisStore

    assert isinstance(store, PostgisStore)
    return store.with_replica(url)
