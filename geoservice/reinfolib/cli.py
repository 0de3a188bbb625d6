"""``geoservice reinfolib``: prefetch the API layers of a municipality; show the cache."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import shapely
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from shapely.geometry.base import BaseGeometry

from geoservice.config import load_settings
from geoservice.reinfolib.source import PrefetchReport, ReinfolibSource
from geoservice.reinfolib.tiles import Tile, covering
from geoservice.store import Query, Store, open_store

reinfolib_app = typer.Typer(help="不動産情報ライブラリ API layers: prefetch and cache status.",
                            no_args_is_help=True)
console = Console(width=None if os.isatty(1) else 200)
ADMIN_LAYER = "admin-boundaries"
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="config.yml to use")]


def municipality_area(store: Store, code: str) -> BaseGeometry:
    """The area of a municipality (5-digit code) from the admin-boundaries collection."""
    if ADMIN_LAYER not in store.collections():
        raise typer.BadParameter(f"the store has no {ADMIN_LAYER} collection: build it first")
    page = store.query(ADMIN_LAYER, Query(properties={"municipality_code": code}, limit=10_000))
    geoms = [f.geometry for f in page.features if f.geometry is not None]
    if not geoms:
        raise typer.BadParameter(f"no municipality {code!r} in {ADMIN_LAYER} (5-digit code, "
                                 "e.g. 13111 for 大田区)", param_hint="--municipality")
    return shapely.union_all(geoms)


@reinfolib_app.command()
def prefetch(
    municipality: Annotated[str, typer.Option(help="5-digit municipality code, e.g. 13111")],
    layers: Annotated[list[str] | None, typer.Option(help="Only these layer ids")] = None,
    config: ConfigOpt = Path("config.yml"),
) -> None:
    """Fetch every tile of the API layers covering a municipality (resumable, within the
    request budget); fresh tiles in the cache are not fetched again."""
    settings = load_settings(config)
    store = open_store(settings)
    try:
        source = ReinfolibSource.open(settings, store)
        if not source.configured:
            console.print(f"[red]{source.not_configured_reason}[/red]")
            raise typer.Exit(2)
        unknown = sorted(set(layers or []) - set(source.layers))
        if unknown:
            raise typer.BadParameter(f"not API layers of this store: {unknown}; "
                                     f"known: {sorted(source.layers)}", param_hint="--layers")
        area = municipality_area(store, municipality)
        chosen = [source.layers[i] for i in (layers or sorted(source.layers))]
        reports = asyncio.run(_prefetch_all(source, chosen, area))
    finally:
        store.close()
    failed = _print_reports(reports)
    if failed:
        raise typer.Exit(1)


async def _prefetch_all(source: ReinfolibSource, specs: list, area: BaseGeometry
                        ) -> list[PrefetchReport]:
    total = sum(len(covering(area, s.source.zoom or 15)) for s in specs)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("tiles", total=total)

        def tick(layer: str, tile: Tile) -> None:
            bar.update(task, advance=1, description=f"{layer} {tile}")

        reports = []
        for spec in specs:
            report = await source.prefetch(spec, area, tick)
            bar.update(task, advance=report.cached)
            reports.append(report)
        await source.aclose()
    return reports


def _print_reports(reports: list[PrefetchReport]) -> int:
    table = Table("layer", "tiles", "cached", "fetched", "failed")
    failed = 0
    for r in reports:
        table.add_row(r.layer, *(str(n) for n in (r.tiles, r.cached, r.fetched, len(r.failed))))
        for tile, exc in r.failed[:3]:
            console.print(f"[yellow]{r.layer} {tile}[/yellow]: {exc.reason}: {exc.description}")
        failed += len(r.failed)
    console.print(table)
    if failed:
        console.print(f"[red]{failed} tile(s) failed[/red]; run the same command again to "
                      "fetch only what is missing")
    return failed


@reinfolib_app.command()
def status(config: ConfigOpt = Path("config.yml")) -> None:
    """Per API layer: tiles cached, features, fetch dates; and whether a key is set."""
    settings = load_settings(config)
    store = open_store(settings)
    try:
        source = ReinfolibSource.open(settings, store)
        console.print(source.not_configured_reason or "configured: the API key is set")
        table = Table("layer", "api", "zoom", "tiles", "features", "first fetch", "last fetch")
        for lid, spec in sorted(source.layers.items()):
            n, first, last = source.ledger.summary(lid)
            table.add_row(lid, spec.source.api or "", str(spec.source.zoom), str(n),
                          str(store.info(lid).count), first or "-", last or "-")
        console.print(table)
    finally:
        store.close()
