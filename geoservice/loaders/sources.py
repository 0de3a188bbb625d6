"""Where a layer's source files come from, and what a build reports.

Sources are resolved here, beside the loaders that read them: files bundled in ``data/``
(synthetic demo layers), a mirror directory laid out like ``../shared/data``
(``--mirror``), or the download cache filled from the layer's official URL.  The build and
any room's after-build step (e.g. the 3D Tiles of ``city3d``) resolve them the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from geoservice.catalogue import LayerSpec
from geoservice.config import Settings
from geoservice.errors import SourceError
from geoservice.features import Feature
from geoservice.loaders import get_loader


@dataclass
class BuildReport:
    """What a build did, per layer."""

    counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    store: Path | None = None
    #: PLATEAU code lists absent from the sources: their coded attributes keep raw codes
    raw_codelists: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Mirror:
    """A directory laid out like the official sources, and whether its content is synthetic."""

    root: Path
    synthetic: bool
    label: str

    @classmethod
    def open(cls, root: Path) -> Mirror:
        """Read ``MIRROR.yml`` if present: a demo mirror declares itself synthetic."""
        manifest = root / "MIRROR.yml"
        meta = yaml.safe_load(manifest.read_text(encoding="utf-8")) if manifest.exists() else {}
        return cls(
            root.resolve(),
            bool(meta.get("synthetic", False)),
            str(meta.get("label", f"mirror {root}")),
        )


def _download(spec: LayerSpec, rel: str, cache: Path) -> Path:
    """Fetch a source file from its official URL into the cache (once)."""
    target = cache / rel
    if target.exists():
        return target
    if not spec.source.url or len(spec.source.paths) != 1:
        raise SourceError(f"{spec.id}: no direct download URL; build with --mirror DIR")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with httpx.stream("GET", spec.source.url, follow_redirects=True, timeout=60) as r:
            r.raise_for_status()
            tmp = target.with_suffix(target.suffix + ".part")
            with tmp.open("wb") as fh:
                for chunk in r.iter_bytes():
                    fh.write(chunk)
            tmp.replace(target)
    except httpx.HTTPError as exc:
        raise SourceError(
            f"{spec.id}: could not download {spec.source.url} ({exc}); "
            "build from a local copy with --mirror DIR"
        ) from None
    return target


def resolve_sources(
    spec: LayerSpec, settings: Settings, mirror: Mirror | None
) -> tuple[list[Path], Path, str, bool]:
    """Files to load, the root they are relative to, a source label and the synthetic flag."""
    if spec.source.bundled:
        root = settings.data_dir
        return [root / p for p in spec.source.paths], root, "bundled", True
    if mirror is not None:
        files = [mirror.root / p for p in spec.source.paths]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise SourceError(f"{spec.id}: source file(s) not in the mirror: {missing}")
        return files, mirror.root, mirror.label, mirror.synthetic
    cache = settings.work_dir / "cache"
    files = [_download(spec, p, cache) for p in spec.source.paths]
    return files, cache, spec.source.url or "download", False


def rooted(spec: LayerSpec, root: Path) -> LayerSpec:
    """``spec`` with the root its source paths are relative to (option ``_root``, which
    loaders resolve auxiliary files such as code lists against)."""
    opts = {**spec.source.options, "_root": str(root)}
    return spec.model_copy(update={"source": spec.source.model_copy(update={"options": opts})})


def source_features(spec: LayerSpec, files: list[Path], root: Path) -> Iterator[Feature]:
    """The features of a layer from its resolved source files, through its loader."""
    yield from get_loader(spec.source.format)(rooted(spec, root), files)
