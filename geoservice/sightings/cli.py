"""``geoservice sightings import FILE --token … --mode …`` (registered in ``geoservice.cli``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from geoservice.auth.cli import settings_of
from geoservice.auth.http import build_auth_services
from geoservice.errors import ServiceError
from geoservice.sightings import importer
from geoservice.sightings.events import open_bus
from geoservice.sightings.photos import open_photos
from geoservice.sightings.service import SightingsService
from geoservice.store import open_store

sightings_app = typer.Typer(
    help="Wildlife sightings: bulk import, Web Push keys.", no_args_is_help=True
)
console = Console(width=None if os.isatty(1) else 200, stderr=True)


@sightings_app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="UTF-8 CSV")],
    token: Annotated[
        str, typer.Option("--token", envvar="GEOSERVICE_TOKEN", help="Bearer token (or env)")
    ],
    mode: Annotated[str, typer.Option(help="all-or-nothing | per-row")] = "all-or-nothing",
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("config.yml"),
) -> None:
    """Import a CSV into the local store with the rights of ``--token``; print the report."""
    if mode not in importer.MODES:
        console.print(f"[red]--mode must be one of {', '.join(importer.MODES)}[/red]")
        raise typer.Exit(2)
    settings = settings_of(config)
    store = open_store(settings)
    bus = None
    try:
        specs = {c: store.spec(c) for c in store.collections()}
        auth = build_auth_services(settings, store, specs)
        photos = open_photos(settings, store)
        svc = SightingsService(auth, settings.work_dir, settings.sightings, photos)
        bus = open_bus(settings, store)  # the serving app delivers the alerts this import records
        svc.writer.listeners.append(bus.changed)
        who = auth.tokens.verify(token)
        if who is None:
            console.print("[red]the token is unknown or revoked[/red]")
            raise typer.Exit(1)
        text = file.read_text("utf-8-sig")
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar:
            task = bar.add_task(f"checking {file.name}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                rep = importer.import_csv(svc.writer, who, text, mode, progress)
            except ServiceError as exc:
                console.print(f"[red]import failed[/red]: {exc.description}")
                raise typer.Exit(1) from None
        typer.echo(json.dumps(rep.as_json(), ensure_ascii=False, indent=2))
        if rep.rejected:
            raise typer.Exit(1)
    finally:
        if bus is not None:
            bus.outbox.close()
        store.close()


@sightings_app.command("vapid-keys")
def vapid_keys(
    out: Annotated[
        Path | None,
        typer.Option(help="Write the private key to this file (mode 0600) instead of stdout"),
    ] = None,
) -> None:
    """Make a VAPID key pair for Web Push alerts (alerts.webpush in config.yml)."""
    from geoservice.sightings.push import generate_vapid_keys

    private, public = generate_vapid_keys()
    if out is not None:
        if out.exists():
            console.print(f"[red]{out} exists; not overwriting a key in use[/red]")
            raise typer.Exit(1)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(private + "\n")
        typer.echo(f"private key written to {out} (alerts.webpush.private_key_file)")
    else:
        typer.echo(f"GEOSERVICE_VAPID_PRIVATE_KEY={private}")
    typer.echo(f"vapid_public_key: {public}")
