"""A site query over the 不動産情報ライブラリ API, as the guide and the hazard card see it.

The rooms that answer for a site (guide, hazard card) fetch every API layer they need in ONE
call (so one budget covers the whole answer) and then read, per layer, either usable
features or the reason the layer cannot be used.  A missing key is such a reason
(``not-configured``), never an exception: the demo runs without a key.

The protocols below are what ``geoservice.reinfolib.source`` provides; the rooms depend on
them only, so their tests can hand in results of their own making.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.features import Feature

NOT_CONFIGURED = "not-configured"
NO_KEY = "not configured: the 不動産情報ライブラリ API needs a key (REINFOLIB_API_KEY)"


class Provenance(Protocol):
    """Where an API layer's features came from (``geoservice.reinfolib.Provenance``)."""

    api: str
    fetched_at: str

    def label(self, lang: str = "ja") -> str:
        """"不動産情報ライブラリ API XKT002, fetched 2026-12-06"."""
        ...


class ApiError(Protocol):
    """Why an API layer could not be used (``geoservice.reinfolib.ReinfolibError``)."""

    reason: str
    description: str


class ApiResult(Protocol):
    """What the API gave for one layer and site (``geoservice.reinfolib.LayerResult``)."""

    layer: str
    features: list[Feature]
    provenance: Provenance | None
    error: ApiError | None


class SiteSource(Protocol):
    """The API as the guide sees it (``geoservice.reinfolib.ReinfolibSource``)."""

    @property
    def configured(self) -> bool:
        """Whether a key is set."""
        ...

    @property
    def not_configured_reason(self) -> str | None:
        """Why the API is off (no key), as a sentence without the key."""
        ...

    async def site_layers(
        self, specs: Iterable[LayerSpec], area: BaseGeometry, *,
        budget_s: float | None = None, buffer_m: dict[str, float] | None = None,
    ) -> Mapping[str, ApiResult]:
        """Every layer's features for the tiles covering ``area``, within the budget."""
        ...


@dataclass(frozen=True, slots=True)
class Failure:
    """An API layer that gave nothing for this site: the reason code and sentence."""

    reason: str
    description: str



Results = dict[str, "ApiResult | Failure"]


def is_api_layer(spec: LayerSpec | None) -> bool:
    """Whether a layer is fetched from the 不動産情報ライブラリ API (``source.kind``)."""
    return spec is not None and getattr(spec.source, "kind", "file") == "reinfolib"


def outcome(result: ApiResult | Failure | None) -> tuple[ApiResult | None, Failure | None]:
    """Split a layer's result into usable features or the reason it cannot be used."""
    if result is None:
        return None, Failure("not-fetched", "the layer was not fetched for this site")
    if isinstance(result, Failure):
        return None, result
    if result.error is not None:
        return None, Failure(result.error.reason, result.error.description)
    return result, None



def not_configured(layer_ids: Iterable[str], why: str | None) -> Results:
    """Every layer failing with ``not-configured`` (no key, or no API source at all)."""
    return {lid: Failure(NOT_CONFIGURED, why or NO_KEY) for lid in layer_ids}


async def fetch_site(
    source: SiteSource | None, specs: list[LayerSpec], site: BaseGeometry,
    buffer_m: dict[str, float] | None = None,
) -> Results:
    """Every layer of ``specs`` for the site within the source's budget, or why not."""
    if not specs:
        return {}
    if source is None or not source.configured:
        why = source.not_configured_reason if source is not None else None
        return not_configured([s.id for s in specs], why)
    got = await source.site_layers(specs, site, buffer_m=buffer_m)
    return dict(got)


def fetch_site_blocking(
    source: SiteSource | None, specs: list[LayerSpec], site: BaseGeometry,
    buffer_m: dict[str, float] | None = None,
) -> Results:
    """``fetch_site`` for code running in a worker thread (async jobs, threadpool routes)."""
    if not specs:
        return {}
    if source is None or not source.configured:  # no loop needed to say "no key"
        return not_configured([s.id for s in specs], getattr(source, "not_configured_reason",
                                                              None))
    blocking = getattr(source, "site_layers_blocking", None)
    if blocking is not None:
        return dict(blocking(specs, site, buffer_m=buffer_m))
    return asyncio.run(fetch_site(source, specs, site, buffer_m))
