"""``geoservice build``: layer specs + source files → a complete new store, swapped in whole.

The new GeoPackage is written beside the old one and moved into place only when every
layer loaded; a failed build leaves the previous store untouched.  With the PostGIS
backend the layers load into a fresh schema that replaces the live one in a single
transaction (two renames), with the same guarantee.  Sources come from a
mirror directory laid out like ``../shared/data`` (``--mirror``), from files bundled in
``data/`` (synthetic demo layers), or from the download cache filled from official URLs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from geoservice.catalogue import LayerSpec, load_catalogue
from geoservice.config import Settings
from geoservice.errors import SourceError
from geoservice.features import Feature
from geoservice.loaders import codelists
from geoservice.loaders.sources import (
    BuildReport,
    Mirror,
    resolve_sources,
    source_features,
)
from geoservice.runtime import AfterBuild
from geoservice.store import database_url
from geoservice.store.base import Store
from geoservice.store.gpkg import GpkgStore

log = logging.getLogger(__name__)
Progress = Callable[[str, int], None]


def _counted(features: Iterable[Feature], lid: str, progress: Progress | None) -> Iterator[Feature]:
    for i, f in enumerate(features, 1):
        if progress is not None and i % 200 == 0:
            progress(lid, i)
        yield f


def build(
    settings: Settings,
    mirror: Path | None = None,
    layers: list[str] | None = None,
    progress: Progress | None = None,
    after_build: Mapping[str, AfterBuild] | None = None,
) -> BuildReport:
    """Load every enabled layer into a fresh store and swap it in; raise on any failure.

    Then run the after-build step of each room that has a layer in this build (``after_build``
    by room name; default: the rooms of ``geoservice.app.rooms``)."""
    specs = load_catalogue(settings.layers_dir, settings.enabled_layers)
    if layers:
        unknown = sorted(set(layers) - set(specs))
        if unknown:
            raise SourceError(f"unknown layer(s) {unknown}; known: {sorted(specs)}")
        specs = {k: v for k, v in specs.items() if k in layers}
    mir = Mirror.open(mirror) if mirror is not None else None
    swap_in = _build_postgis if settings.store.backend == "postgis" else _build_gpkg
    codelists.take_absent()
    report = swap_in(settings, specs, mir, progress)
    _after_build(settings, specs, mir, report, after_build)
    report.raw_codelists = codelists.take_absent()
    if report.raw_codelists:  # one line, not one warning per list
        log.warning("%d PLATEAU code lists are not in the sources (%s): their coded"
                    " attributes keep raw codes", len(report.raw_codelists),
                    ", ".join(report.raw_codelists))
    prebuild_tiles(tile_target(settings), specs, report)
    return report


def tile_target(settings: Settings) -> Path | tuple[str, str]:
    """Where a store keeps its prebuilt tiles: the GeoPackage, or (URL, schema)."""
    if settings.store.backend == "postgis":
        from geoservice.store.postgis import DEFAULT_SCHEMA

        return database_url(settings), DEFAULT_SCHEMA
    return settings.store.path


def prebuild_tiles(target: Path | tuple[str, str], specs: dict[str, LayerSpec],
                   report: BuildReport) -> None:
    """After the swap: the vector tile pyramids of layers with ``tiles.prebuild``
    (``store.pyramid``).  Until a pyramid is done its tiles are made on demand, so a
    failure is recorded in ``report.skipped`` and the new store stays in place;
    ``geoservice prebuild-tiles`` resumes it."""
    from geoservice.store import pyramid

    for lid, spec in specs.items():
        if not spec.tiles.prebuild or lid not in report.counts:
            continue
        try:
            pyramid.prebuild(target, lid)
        except Exception as exc:  # the store is fine without: tiles are made on demand
            log.exception("prebuilt tiles of %s failed; they are made on demand", lid)
            report.skipped[f"{lid}-tiles"] = str(exc)


def _build_gpkg(
    settings: Settings,
    specs: dict[str, LayerSpec],
    mir: Mirror | None,
    progress: Progress | None,
) -> BuildReport:
    """Load into a new file beside the store, then move it into place (or remove it)."""
    target = settings.store.path
    tmp = target.with_name(target.name + ".building")
    _remove(tmp)
    report = BuildReport(store=target)
    store = GpkgStore(tmp, create=True)
    try:
        _load_all(store, settings, specs, mir, progress, report)
        store.checkpoint()
    except BaseException:
        store.close()
        _remove(tmp)
        raise
    store.close()
    _swap(tmp, target)
    return report


def _after_build(
    settings: Settings,
    specs: dict[str, LayerSpec],
    mir: Mirror | None,
    report: BuildReport,
    steps: Mapping[str, AfterBuild] | None,
) -> None:
    """After the swap: each room's step, for the rooms whose layers (``domain``) were built
    (the hazards room writes its flood raster, city3d its 3D Tiles)."""
    if steps is None:
        from geoservice.app import after_build_steps

        steps = after_build_steps()
    present = {spec.domain for spec in specs.values()}
    for room, step in steps.items():
        if room in present:
            step(settings, specs, mir, report)


def _load_all(
    store: Store,
    settings: Settings,
    specs: dict[str, LayerSpec],
    mir: Mirror | None,
    progress: Progress | None,
    report: BuildReport,
) -> None:
    """Create and bulk-load every layer into ``store`` (either backend)."""
    for lid, spec in specs.items():
        if spec.source.kind == "reinfolib":  # fetched per tile later (geoservice.reinfolib)
            _carry_over_reinfolib(store, settings, spec, report)
            continue
        files, root, label, synthetic = resolve_sources(spec, settings, mir)
        store.create_collection(spec, source=label, synthetic=synthetic or spec.synthetic)
        n = store.bulk_load(lid, _counted(source_features(spec, files, root), lid, progress))
        report.counts[lid] = n
        if progress is not None:
            progress(lid, n)


def _carry_over_reinfolib(
    store: Store, settings: Settings, spec: LayerSpec, report: BuildReport
) -> None:
    """An API layer's collection in the new store, with what the live store had fetched
    (a rebuild must not throw away a prefetch that cost the operator's request budget)."""
    from geoservice.reinfolib.cache import carry_over

    report.counts[spec.id] = carry_over(settings, spec, store)


def _build_postgis(
    settings: Settings,
    specs: dict[str, LayerSpec],
    mir: Mirror | None,
    progress: Progress | None,
) -> BuildReport:
    """Load into a staging schema, then swap it in atomically (or drop it on failure)."""
    from geoservice.store import postgis

    url = database_url(settings)
    staging = postgis.staging_schema()
    report = BuildReport(store=None)
    store = postgis.PostgisStore(url, schema=staging, create=True)
    try:
        _load_all(store, settings, specs, mir, progress, report)
        store.close()
        postgis.swap_schema(url, staging)
    except BaseException:
        store.close()
        postgis.drop_schema(url, staging)
        raise
    create_state(settings)
    return report


def create_state(settings: Settings) -> list[str]:
    """Create or migrate the schema of every state concern in the PostGIS database
    (servers do the same at start-up; a build does it up front).  Returns the schemas.

    The concerns' state survives rebuilds: tokens, audit, jobs and alerts are not layers."""
    from geoservice.auth.db import DDL as AUTH
    from geoservice.guide.jobs import DDL as JOBS
    from geoservice.sightings.alerts import DDL as ALERTS
    from geoservice.sightings.harvest import DDL as HARVEST
    from geoservice.sightings.photos import open_photos
    from geoservice.state import open_db, schema_of
    from geoservice.store import open_store

    store = open_store(settings)
    try:
        for concern, ddl in (("auth", AUTH), ("jobs", JOBS), ("alerts", ALERTS),
                             ("harvest", HARVEST)):
            open_db(settings, store, concern, ddl).close()
        open_photos(settings, store)
    finally:
        store.close()
    return [schema_of(c) for c in ("auth", "jobs", "alerts", "harvest", "photos")]


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)


def _swap(new: Path, target: Path) -> None:
    """Move the finished store into place (the old one's WAL files go with it)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(new, target)


def is_stale(settings: Settings, mirror: Path | None) -> bool:
    """True when the store is missing or older than a spec or a source file, or when an
    after-build step was interrupted: a build killed in its 3D Tiles step (after the store
    swap) leaves ``.<name>.staging`` in ``tiles_dir`` (``city3d/resume.py``), and only a
    build resumes it - without this, ``make run`` (``--if-stale``) would never finish it."""
    if any(Path(settings.tiles_dir).glob(".*.staging")):
        return True
    inputs = list(settings.layers_dir.glob("*.yml"))
    if mirror is not None and mirror.exists():
        inputs += [p for p in mirror.rglob("*") if p.is_file()]
    if settings.store.backend == "postgis":
        from datetime import datetime

        from geoservice.store import postgis

        stamps = postgis.schema_built_at(database_url(settings))
        if not stamps:
            return True
        built = min(datetime.fromisoformat(t.replace("Z", "+00:00")) for t in stamps).timestamp()
        return any(p.stat().st_mtime > built for p in inputs)
    target = settings.store.path
    if not target.exists():
        return True
    built = target.stat().st_mtime
    return any(p.stat().st_mtime > built for p in inputs)
