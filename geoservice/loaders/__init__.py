"""Loaders: one per source format, each turning source files into ``Feature`` objects.

A loader is a function ``(spec, files) -> Iterator[Feature]``: ``files`` are the layer's
source files already resolved on disk (mirror directory, bundled demo data or download
cache).  Loaders map source attributes to the spec's properties, coerce their types and
transform geometries to CRS84.  They raise ``SourceError`` naming the file (and line where
the format has lines) on bad input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from geoservice.catalogue import LayerSpec
from geoservice.features import Feature

Loader = Callable[[LayerSpec, list[Path]], Iterator[Feature]]

_REGISTRY: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Decorator: register a loader under the format name used in layer specs."""

    def deco(fn: Loader) -> Loader:
        _REGISTRY[name] = fn
        return fn

    return deco


def get_loader(name: str) -> Loader:
    """Return the loader for a format name, importing the built-in loaders on first use."""
    _import_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown source format {name!r}; known: {sorted(_REGISTRY)}") from None


def _import_builtin() -> None:
    """Import the modules that register the built-in loaders (kept lazy: lxml, mojxml)."""
    from geoservice.loaders import builtin  # noqa: F401
