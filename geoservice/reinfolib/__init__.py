"""MLIT's 不動産情報ライブラリ API as a first-class data source (shared plumbing).

Layers with ``source.kind: reinfolib`` are fetched per tile, cached in the store with
their fetch date and URL, merged into ordinary collections, prefetchable from the CLI
and used on demand by the guide and the hazard card.  See REINFOLIB in the README and
``docs`` for the contract; ``source.ReinfolibSource`` is the entry point.
"""

from __future__ import annotations

from geoservice.reinfolib.errors import ReinfolibError
from geoservice.reinfolib.settings import ReinfolibSettings

__all__ = ["ReinfolibError", "ReinfolibSettings"]
