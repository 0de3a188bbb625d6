"""``geoservice city3d``: synthetic CityGML, 3D Tiles from CityGML, tileset validation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

city3d_app = typer.Typer(
    help="3D city model: synthetic PLATEAU files, 3D Tiles, validation.", no_args_is_help=True
)
console = Console(width=None if os.isatty(1) else 200)


@city3d_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", help="CityGML file to write")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of buildings")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file)")] = 1,
) -> None:
    """Write a SYNTHETIC PLATEAU-format LOD1 CityGML file of N buildings in central Tokyo."""
    from geoservice.city3d.synthetic import write_synthetic

    write_synthetic(out, n, seed=seed)
    console.print(f"wrote {n} synthetic buildings to {out}")


@city3d_app.command("tiles")
def tiles(
    files: Annotated[
        list[Path] | None, typer.Argument(help="CityGML files (default: the buildings layer)")
    ] = None,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("config.yml"),
    mirror: Annotated[
        Path | None, typer.Option(help="Mirror for the buildings layer's source paths")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default: <tiles_dir>/buildings)")
    ] = None,
    codelists: Annotated[Path | None, typer.Option(help="PLATEAU code-list directory")] = None,
    max_per_leaf: Annotated[
        int, typer.Option(min=1, help="Buildings per leaf tile (~1.5 KB each)")
    ] = 600,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes (default: 2-4 for big inputs)")
    ] = None,
    synthetic: Annotated[bool, typer.Option(help="Label the tileset as synthetic")] = False,
    cell_deg: Annotated[
        float, typer.Option(min=1e-5, help="Spill cell size (degrees; the smallest leaf)")
    ] = 0.004,
    spill_mb: Annotated[
        float, typer.Option(min=0.01, help="Spill buffer (MB): memory and checkpoint spacing")
    ] = 32.0,
    fresh: Annotated[
        bool, typer.Option(help="Discard an interrupted build instead of resuming it")
    ] = False,
) -> None:
    """Write buildings as a 3D Tiles 1.1 tileset (glb + EXT_structural_metadata).

    Interrupted (killed, machine stopped)? Run the same command again: the build goes on
    from its last checkpoint (unless an input, option or the code changed - then it starts
    over and says so).  The served tileset switches only when the new one is complete.
    """
    import logging

    from geoservice.city3d.tiles3d import write_tiles
    from geoservice.config import load_settings
    from geoservice.errors import ServiceError
    from geoservice.loaders.codelists import CodeLists

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = load_settings(config)
    target = out or settings.tiles_dir / "buildings"
    attribution = None
    if not files:
        from geoservice.catalogue import load_catalogue
        from geoservice.loaders.sources import Mirror, resolve_sources

        spec = load_catalogue(settings.layers_dir)["buildings"]
        mir = Mirror.open(mirror) if mirror else None
        files, root, _, is_synth = resolve_sources(spec, settings, mir)
        synthetic = synthetic or is_synth or spec.synthetic
        attribution = spec.attribution
        if codelists is None and spec.source.options.get("codelists"):
            codelists = root / str(spec.source.options["codelists"])
    try:
        report = write_tiles(
            list(files),
            target,
            CodeLists(codelists),
            max_per_leaf=max_per_leaf,
            cell_deg=cell_deg,
            workers=workers,
            spill_bytes=int(spill_mb * 2**20),
            resume=not fresh,
            synthetic=synthetic,
            attribution=attribution,
            progress=lambda k: console.print(f"{k} buildings meshed", end="\r"),
        )
    except (ServiceError, ValueError, OSError) as exc:
        console.print(f"[red]3D Tiles failed[/red]: {exc}")
        raise typer.Exit(1) from None
    rate = report.buildings / report.seconds if report.seconds else 0.0
    if report.resume_note:
        console.print(report.resume_note)
    console.print(
        f"wrote {report.tileset}: {report.buildings} buildings in {report.leaves} leaf tiles, "
        f"{report.blocks} blocks in the coarser ones, {report.tiles} tiles in "
        f"{report.seconds:.1f} s ({rate:.0f} buildings/s), peak RSS {report.peak_rss_mb} MB"
    )
    for err in report.problems:
        console.print(f"[yellow]skipped[/yellow]: {err}")


@city3d_app.command("validate")
def validate(
    tileset: Annotated[Path, typer.Argument(help="tileset.json")],
    gltf: Annotated[bool, typer.Option(help="Also run gltf-validator (node)")] = True,
) -> None:
    """Check a tileset (JSON rules, glb layout, metadata, bounds) and its glb files."""
    from geoservice.city3d.validate import validate_all

    report = validate_all(tileset, gltf=gltf)
    console.print(
        json.dumps(
            {
                "tiles": report.tiles,
                "contents": report.contents,
                "features": report.features,
                "errors": report.errors,
                "warnings": report.warnings,
            },
            ensure_ascii=False,
            indent=1,
        )
    )
    if not report.ok:
        raise typer.Exit(1)
