"""The ``geoservice`` command: build, serve, layers."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn
from rich.table import Table

from geoservice.config import Settings, load_settings

app = typer.Typer(
    help="Tokyo GeoTwin: build the store and serve the OGC API.", no_args_is_help=True
)
console = Console(width=None if os.isatty(1) else 200)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="config.yml to use")]


def _settings(config: Path) -> Settings:
    """The validated settings, or one line saying what is wrong with ``config`` (exit 2)."""
    from pydantic import ValidationError
    from yaml import YAMLError

    os.environ.setdefault("GEOSERVICE_CONFIG", str(config))
    try:
        return load_settings(config)
    except ValidationError as exc:
        why = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                        for e in exc.errors())
    except (OSError, ValueError, YAMLError) as exc:
        why = " ".join(str(exc).split())
    _fail(f"{config}: {why}")


def _fail(line: str) -> NoReturn:
    """One line on stderr and exit 2: start-up errors are not tracebacks."""
    Console(stderr=True, width=10_000).print(f"geoservice: {line}", markup=False,
                                              highlight=False)
    raise typer.Exit(2)


@app.command()
def build(
    config: ConfigOpt = Path("config.yml"),
    mirror: Annotated[
        Path | None, typer.Option(help="Local mirror laid out like ../shared/data")
    ] = None,
    layer: Annotated[list[str] | None, typer.Option(help="Only these layer ids")] = None,
    if_stale: Annotated[
        bool, typer.Option(help="Do nothing when the store is newer than its inputs")
    ] = False,
) -> None:
    """Load the layers into a new store; it replaces the old one only when complete."""
    from geoservice import build as buildmod
    from geoservice.errors import ServiceError

    settings = _settings(config)
    if if_stale and not buildmod.is_stale(settings, mirror):
        console.print(f"store {settings.store.path} is up to date")
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(lid: str, n: int) -> None:
            if lid not in tasks:
                tasks[lid] = bar.add_task(lid)
            bar.update(tasks[lid], description=f"{lid}: {n} features")

        try:
            report = buildmod.build(settings, mirror, layer or None, progress)
        except (ServiceError, ValueError, FileNotFoundError) as exc:
            console.print(f"[red]build failed[/red]: {exc}\nthe previous store is unchanged")
            raise typer.Exit(1) from None
    console.print(
        f"built {report.store}: " + ", ".join(f"{k} {v}" for k, v in report.counts.items())
    )


@app.command("prebuild-tiles")
def prebuild_tiles(
    config: ConfigOpt = Path("config.yml"),
    layer: Annotated[list[str] | None, typer.Option(help="Only these layer ids")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes rendering tiles")] = 2,
) -> None:
    """Make (or resume) the vector tile pyramids of the store's static layers
    (``tiles.prebuild: true``), z0 up to each layer's maxzoom."""
    from geoservice.build import tile_target
    from geoservice.store import open_store, pyramid

    settings = _settings(config)
    store = open_store(settings)
    try:
        ids = [c for c in store.collections() if store.spec(c).tiles.prebuild]
    finally:
        store.close()
    for lid in layer or ids:
        if lid not in ids:
            console.print(f"[red]{lid}: not a built layer with tiles.prebuild[/red]")
            raise typer.Exit(1)
        def shown(z: int, n: int, k: int, lid: str = lid) -> None:
            console.print(f"{lid} z{z}: {n} tiles made, {k} non-empty")

        rep = pyramid.prebuild(tile_target(settings), lid, workers=workers, progress=shown)
        console.print(f"{lid}: {rep.tiles} tiles ({rep.bytes / 1e6:.1f} MB), {rep.empty} empty,"
                      f" {rep.skipped} kept from before, in {rep.seconds:.1f} s")


@app.command()
def serve(
    config: ConfigOpt = Path("config.yml"),
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    from geoservice.store import store_problem

    settings = _settings(config)
    problem = store_problem(settings)
    if problem:
        _fail(f"cannot serve: {problem}")
    os.environ["GEOSERVICE_CONFIG"] = str(config.resolve())
    # Links name the address actually served (unless server.url says otherwise).
    host, port = host or settings.server.host, port or settings.server.port
    os.environ["GEOSERVICE_LISTEN"] = f"{host}:{port}"
    settings = settings.listening_on(f"{host}:{port}")
    logging.basicConfig(level=logging.INFO)
    if workers > 1:  # generate pygeoapi config + OpenAPI once, before the workers start
        from geoservice.app import prepare_generated

        console.print(f"generated configuration written to {prepare_generated(settings)}")
    uvicorn.run(
        "geoservice.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@app.command()
def layers(config: ConfigOpt = Path("config.yml")) -> None:
    """List layers: id, title, feature count, coverage, licence."""
    from geoservice.catalogue import load_catalogue
    from geoservice.store.gpkg import GpkgStore

    settings = _settings(config)
    specs = load_catalogue(settings.layers_dir, settings.enabled_layers)
    store = GpkgStore(settings.store.path) if settings.store.path.exists() else None
    built = set(store.collections()) if store else set()
    table = Table("id", "title", "features", "coverage", "licence", "synthetic")
    for lid, spec in specs.items():
        info = store.info(lid) if store and lid in built else None
        table.add_row(
            lid,
            spec.title,
            str(info.count) if info else "not built",
            spec.coverage.description,
            spec.licence.name,
            "yes" if spec.synthetic or (info and info.synthetic) else "no",
        )
    console.print(table)


@app.command()
def harvest(
    config: ConfigOpt = Path("config.yml"),
    feed: Annotated[list[str] | None, typer.Option(help="Only these feed ids")] = None,
) -> None:
    """Pull new and changed sightings from the neighbour feeds listed in config.yml."""
    from geoservice.errors import ServiceError
    from geoservice.sightings.events import open_bus
    from geoservice.sightings.harvest import harvest as run_harvest
    from geoservice.store import open_store

    settings = _settings(config)
    if not settings.feeds:
        console.print("no feeds configured (add `feeds:` to config.yml)")
        return
    store = open_store(settings)
    bus = open_bus(settings, store)
    try:
        reports = run_harvest(settings, store, bus, feed or None)
    except (ServiceError, OSError) as exc:
        console.print(f"[red]harvest failed[/red]: {exc}")
        raise typer.Exit(1) from None
    finally:
        bus.outbox.close()
        store.close()
    table = Table("feed", "fetched", "created", "updated", "unchanged", "skipped", "mode")
    for r in reports:
        mode = f"since {r.high_water}" if r.incremental else "full"
        table.add_row(
            r.feed,
            *(str(n) for n in (r.fetched, r.created, r.updated, r.unchanged, r.skipped)),
            mode,
        )
        for problem in r.problems[:5]:
            console.print(f"[yellow]{r.feed}[/yellow]: {problem}")
    console.print(table)


def _add_subcommands() -> None:
    """Sub-apps of other rooms (tokens, audit, sightings)."""
    from geoservice.auth.cli import audit_app, tokens_app
    from geoservice.city3d.cli import city3d_app
    from geoservice.hazards.cli import incidents_app
    from geoservice.reinfolib.cli import reinfolib_app
    from geoservice.sightings.cli import sightings_app

    app.add_typer(tokens_app, name="tokens")
    app.add_typer(city3d_app, name="city3d")
    app.add_typer(audit_app, name="audit")
    app.add_typer(sightings_app, name="sightings")
    app.add_typer(incidents_app, name="incidents")
    app.add_typer(reinfolib_app, name="reinfolib")


_add_subcommands()


def main() -> None:
    """Entry point of the ``geoservice`` script."""
    app()
