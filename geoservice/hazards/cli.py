"""``geoservice incidents ingest --csv FILE | --geojson FILE | --feed URL --collection ID``.

Registered in ``geoservice.cli`` as the ``incidents`` sub-app.  Writes into the local store
(the serving app sees the records at once with the GeoPackage and PostGIS backends),
journalled in the audit log; re-running an ingest is idempotent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from geoservice.auth.audit import AuditLog
from geoservice.auth.cli import settings_of
from geoservice.auth.db import open_auth_db
from geoservice.errors import ServiceError
from geoservice.hazards.incidents import Ingester
from geoservice.store import open_store

incidents_app = typer.Typer(help="Incidents: ingest from CSV, GeoJSON or an OGC API feed.",
                            no_args_is_help=True)
console = Console(width=None if os.isatty(1) else 200, stderr=True)


@incidents_app.command("ingest")
def ingest(
    csv_file: Annotated[Path | None, typer.Option("--csv", exists=True, dir_okay=False)] = None,
    geojson_file: Annotated[
        Path | None, typer.Option("--geojson", exists=True, dir_okay=False)
    ] = None,
    feed: Annotated[str | None, typer.Option("--feed", help="OGC API landing page URL")] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", help="Collection id in the feed")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Provenance label (default from the input)")
    ] = None,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("config.yml"),
) -> None:
    """Ingest one source into the ``incidents`` collection; print the report as JSON."""
    given = [x for x in (csv_file, geojson_file, feed) if x is not None]
    if len(given) != 1:
        console.print("[red]give exactly one of --csv, --geojson or --feed[/red]")
        raise typer.Exit(2)
    if feed is not None and not collection:
        console.print("[red]--feed needs --collection ID[/red]")
        raise typer.Exit(2)
    settings = settings_of(config)
    store = open_store(settings)
    try:
        ingester = Ingester(store, AuditLog(open_auth_db(settings, store)))
        if csv_file is not None:
            report = ingester.ingest_csv(csv_file, source)
        elif geojson_file is not None:
            report = ingester.ingest_geojson(geojson_file, source)
        else:
            assert feed is not None and collection is not None
            report = ingester.ingest_feed(feed, collection, source)
    except ServiceError as exc:
        console.print(f"[red]ingest failed[/red]: {exc.description}")
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=1))
    if report.skipped:
        raise typer.Exit(3 if report.created + report.updated + report.unchanged == 0 else 0)
