"""``geoservice tokens …`` and ``geoservice audit …`` (registered in ``geoservice.cli``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from geoservice.auth.audit import AuditLog
from geoservice.auth.db import open_auth_db
from geoservice.auth.tokens import TokenStore
from geoservice.config import Settings, load_settings
from geoservice.state import StateDB
from geoservice.store import open_store

tokens_app = typer.Typer(
    help="Bearer tokens for writes (municipality-scoped or admin).", no_args_is_help=True
)
audit_app = typer.Typer(help="The audit journal of every write.", no_args_is_help=True)
console = Console(width=None if os.isatty(1) else 200)
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="config.yml to use")]


def settings_of(config: Path) -> Settings:
    """Load ``config.yml`` as the main CLI does."""
    os.environ.setdefault("GEOSERVICE_CONFIG", str(config))
    return load_settings(config)


def _db(config: Path) -> tuple[Settings, StateDB]:
    """The auth database the servers use (PostGIS: in the store's database)."""
    settings = settings_of(config)
    store = open_store(settings) if settings.store.backend == "postgis" else None
    return settings, open_auth_db(settings, store)


def _tokens(settings: Settings, db: StateDB) -> TokenStore:
    return TokenStore(db, settings.auth.pepper)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[
        str, typer.Option("--name", help="Who holds the token (e.g. 奥多摩町 環境整備課)")
    ],
    municipality: Annotated[
        str | None, typer.Option("--municipality", help="5-digit 全国地方公共団体コード")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Write anywhere, read the audit")] = False,
    config: ConfigOpt = Path("config.yml"),
) -> None:
    """Create a token and print it ONCE (only its hash is stored)."""
    settings, db = _db(config)
    try:
        token, info = _tokens(settings, db).create(name, municipality, admin)
    except ValueError as exc:
        console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(2) from None
    scope = "admin" if info.admin else f"municipality {info.municipality}"
    console.print(
        f"token {info.id} for {info.name} ({scope}) — store it now, it is not shown again:"
    )
    typer.echo(token)


@tokens_app.command("list")
def tokens_list(config: ConfigOpt = Path("config.yml")) -> None:
    """List tokens (never their secrets)."""
    settings, db = _db(config)
    table = Table("id", "name", "municipality", "admin", "created", "revoked")
    for t in _tokens(settings, db).list():
        table.add_row(
            t.id,
            t.name,
            t.municipality or "",
            "yes" if t.admin else "",
            t.created_at,
            t.revoked_at or "",
        )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (or name: revokes all of that name)")],
    config: ConfigOpt = Path("config.yml"),
) -> None:
    """Revoke a token (it stops working at once, in every server process)."""
    settings, db = _db(config)
    n = _tokens(settings, db).revoke(token_id)
    if n == 0:
        console.print(f"[red]no live token with id or name {token_id!r}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {n} token(s)")


@audit_app.command("list")
def audit_list(
    collection: Annotated[str | None, typer.Option()] = None,
    feature: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    all_states: Annotated[
        bool, typer.Option("--all", help="Include pending / aborted / unknown entries")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines")] = False,
    config: ConfigOpt = Path("config.yml"),
) -> None:
    """Show the audit journal, newest first."""
    _, db = _db(config)
    states = (
        ("pending", "committed", "aborted", "recovered", "unknown")
        if all_states
        else ("committed", "recovered")
    )
    entries = AuditLog(db).list(collection, feature, limit, states)
    if as_json:
        for e in entries:
            typer.echo(json.dumps(e.as_json(), ensure_ascii=False))
        return
    table = Table("seq", "at", "state", "who", "action", "collection", "feature")
    for e in entries:
        who = f"{e.actor} ({'admin' if e.admin else e.municipality or '-'})"
        table.add_row(str(e.seq), e.at, e.state, who, e.action, e.collection, e.feature or "")
    console.print(table)
