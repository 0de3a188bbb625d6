"""Feature storage behind one interface; ``open_store(settings)`` picks the backend."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from geoservice.store.base import CollectionInfo, Page, Query, Store

if TYPE_CHECKING:
    from geoservice.config import Settings

log = logging.getLogger("geoservice.store")
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
    """Open the configured store (GeoPackage file by default, PostGIS when selected), with
    the indexes the layer specs declare (``ensure_declared_indexes``)."""
    store: Store
    if settings.store.backend == "postgis":
        from geoservice.store.postgis import PostgisStore

        store = PostgisStore(database_url(settings))
    else:
        from geoservice.store.gpkg import GpkgStore

        store = GpkgStore(settings.store.path)
    try:
        ensure_declared_indexes(store, settings)
    except BaseException:
        store.close()
        raise
    return store


def ensure_declared_indexes(store: Store, settings: Settings) -> list[str]:
    """Create the indexes ``layers/*.yml`` declare that the store lacks; their names.

    A store built by an older release has only the indexes its build made; a newer
    release's ``indexes:`` would otherwise wait for a rebuild while every filtered count
    scans the table.  Unreadable specs are logged and skipped: an index is worth having,
    not worth refusing to serve for."""
    from geoservice.catalogue import load_catalogue

    try:
        declared = load_catalogue(settings.layers_dir)
    except (OSError, ValueError) as exc:
        log.warning("declared indexes not checked: %s", exc)
        return []
    made = store.ensure_indexes(declared)
    if made:
        log.info("created the declared indexes the store lacked: %s", ", ".join(made))
    return made


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
