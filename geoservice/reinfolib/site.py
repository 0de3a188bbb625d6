"""A site query over the 不動産情報ライブラリ API, as the guide and the hazard card see it.

The rooms that answer for a site (guide, hazard card) fetch every API layer they need in ONE
call (so one budget covers the whole answer) and then read, per layer, either usable
features or the reason the layer cannot be used.  A missing key is such a reason
(``not-configured``), never an exception: the demo runs without a key.

The rooms read ``LayerResult`` (features + provenance, or an error) and ``Failure`` (the
same reason without a fetch) alike through :func:`outcome`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.reinfolib.source import LayerResult, ReinfolibSource

NOT_CONFIGURED = "not-configured"
NO_KEY = "not configured: the 不動産情報ライブラリ API needs a key (REINFOLIB_API_KEY)"


#: What the API gave for one layer and site, and the source that answers site queries.
ApiResult = LayerResult
SiteSource = ReinfolibSource


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
    buffer_m: dict[str, float] | None = None, loop: asyncio.AbstractEventLoop | None = None,
) -> Results:
    """``fetch_site`` for code running in a worker thread (async jobs, threadpool routes).

    With ``loop`` (the app's, captured at start-up) the fetch runs there, sharing the
    app's HTTP connections and concurrency cap; without it, on a loop of its own.
    """
    if not specs:
        return {}
    if source is None or not source.configured:  # no loop needed to say "no key"
        return not_configured([s.id for s in specs], getattr(source, "not_configured_reason",
                                                              None))
    coro = fetch_site(source, specs, site, buffer_m)
    if loop is not None and loop.is_running() and not _on(loop):
        return asyncio.run_coroutine_threadsafe(coro, loop).result()
    return asyncio.run(coro)


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether this thread is running ``loop`` (waiting on it from it would deadlock)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
