"""``ReinfolibSource``: the API layers as the app, the CLI and the domains use them.

Built once per process (``ReinfolibSource.open``).  A site query works out the tiles that
cover the site at the layer's zoom, takes fresh ones from the store's ledger, fetches the
rest before a deadline, merges them into the layer's collection and answers from that
collection — with the provenance of the tiles used, or the typed reason the layer could
not be used.  A tile whose refetch fails but which is cached (older than the TTL) is
still used, and the provenance says it is stale.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.concurrency import in_thread
from geoservice.features import Feature
from geoservice.reinfolib.cache import Ledger, TileRecord, write_merged
from geoservice.reinfolib.client import ReinfolibClient, TileAnswer
from geoservice.reinfolib.errors import ReinfolibError
from geoservice.reinfolib.merge import pieces
from geoservice.reinfolib.settings import ReinfolibSettings
from geoservice.reinfolib.tiles import Tile, TooManyTiles, covering
from geoservice.store.base import Query, Store

if TYPE_CHECKING:
    from geoservice.config import Settings

log = logging.getLogger("geoservice.reinfolib")
MAX_FEATURES = 100_000
#: The most tiles of one layer a site query may need (a parcel needs 1-4; the per-minute
#: budget could not fetch more in one answer, and a huge site must not build a huge grid)
MAX_SITE_TILES = 256


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a layer's facts came from."""

    api: str
    source_urls: list[str]
    fetched_at: str  # the oldest fetch of the tiles used (ISO 8601, UTC)
    fetched_latest: str
    from_cache: bool  # no tile had to be fetched for this answer
    stale: bool  # a refetch failed and data older than the TTL was used

    def label(self, lang: str = "ja") -> str:
        """"不動産情報ライブラリ API XKT002, fetched 2026-12-06" (oldest fetch date)."""
        day = self.fetched_at[:10]
        stale = ""
        if self.stale:
            stale = " (期限切れのキャッシュ)" if lang == "ja" else " (stale cache)"
        name = "不動産情報ライブラリ API" if lang == "ja" else "Real Estate Information Library API"
        return f"{name} {self.api}, fetched {day}{stale}"

    def as_dict(self) -> dict[str, object]:
        """JSON form for answers."""
        return {"api": self.api, "source_urls": self.source_urls, "fetched_at": self.fetched_at,
                "fetched_latest": self.fetched_latest, "from_cache": self.from_cache,
                "stale": self.stale, "label": self.label()}


@dataclass(frozen=True, slots=True)
class LayerResult:
    """A layer at a site: its features and provenance, or why it could not be used."""

    layer: str
    features: list[Feature]
    provenance: Provenance | None
    error: ReinfolibError | None = None

    @property
    def ok(self) -> bool:
        """Every tile covering the site was available."""
        return self.error is None


@dataclass
class PrefetchReport:
    """What a prefetch of one layer did."""

    layer: str
    tiles: int = 0
    cached: int = 0
    fetched: int = 0
    failed: list[tuple[Tile, ReinfolibError]] = field(default_factory=list)


TileProgress = Callable[[str, Tile], None]


def api_layers(specs: Iterable[LayerSpec]) -> dict[str, LayerSpec]:
    """The ``source.kind: reinfolib`` specs among ``specs``."""
    return {s.id: s for s in specs if s.source.kind == "reinfolib"}


class ReinfolibSource:
    """The API layers of one store, and the client that fills them."""

    def __init__(self, settings: ReinfolibSettings, store: Store, layers: dict[str, LayerSpec],
                 client: ReinfolibClient) -> None:
        self.settings = settings
        self.store = store
        self.layers = layers
        self.client = client
        self._ledger: Ledger | None = None
        self._ledger_lock = threading.Lock()  # first use may come from several threads
        #: fresh ledger records seen by this process: a fresh tile stays fresh (a refetch
        #: only renews it) until its TTL ends, so the warm path needs no ledger query
        self._fresh: dict[tuple[str, Tile], TileRecord] = {}
        # the per-minute budget is counted in the store, across processes and hosts
        client.budget.shared = self._take_request_slot

    def _take_request_slot(self, per_minute: int) -> float:
        """The client's budget check, against the ledger shared by every process."""
        return self.ledger.take_request_slot(per_minute)

    @classmethod
    def open(cls, settings: Settings, store: Store,
             specs: Iterable[LayerSpec] | None = None) -> ReinfolibSource:
        """The source for ``store`` (its API layers: those built into it unless ``specs``).

        Never fails for a missing key: the layers then answer ``not-configured``."""
        rs: ReinfolibSettings = settings.reinfolib
        if specs is None:
            specs = [store.spec(c) for c in store.collections()]
        return cls(rs, store, api_layers(specs), ReinfolibClient(rs, rs.api_key()))

    @property
    def configured(self) -> bool:
        """The key is set: the official layers are on."""
        return self.client.configured

    @property
    def not_configured_reason(self) -> str | None:
        """Why the layers are off, or ``None`` when they are on."""
        return None if self.configured else self.settings.not_configured

    def unfillable(self, specs: Iterable[LayerSpec]) -> dict[str, str]:
        """The API layers among ``specs`` that are empty and cannot be filled (no key), with
        why: OGC API does not list them.

        Why not list them empty: an OGC client (QGIS, GDAL's OAPIF driver) offers every
        listed collection as a layer, and these would open with no features and no fields,
        on every client of the server, with nothing to say why.  The guide and the hazard
        card still know them (they answer "not configured" for the layer), and a layer
        that holds features fetched earlier is listed, stale or not."""
        if self.configured:
            return {}
        why = (f"an empty 不動産情報ライブラリ API layer that this server cannot fill (the API"
               f" key is not set: environment variable {self.settings.key_env})")
        return {s.id: why for s in specs
                if s.id in self.layers and self.store.info(s.id).count == 0}

    @property
    def ledger(self) -> Ledger:
        """The cache tables (created on first use)."""
        with self._ledger_lock:  # two at once would race on CREATE TABLE IF NOT EXISTS
            if self._ledger is None:
                self._ledger = Ledger.of(self.store)
            return self._ledger

    def describe(self, spec: LayerSpec) -> dict[str, object]:
        """The ``source`` block of the collection's metadata: the API, the fetch dates and
        whether the layer is on (the credit is the spec's ``attribution``)."""
        tiles, first, last = self.ledger.summary(spec.id)
        return {
            "name": "不動産情報ライブラリ API (国土交通省)",
            "api": spec.source.api,
            "zoom": spec.source.zoom,
            "url": f"{self.settings.base_url.rstrip('/')}/{spec.source.api}",
            "tiles_cached": tiles,
            "first_fetched": first,
            "last_fetched": last,
            "status": self.not_configured_reason or "configured",
        }

    async def site_layers(self, specs: Iterable[LayerSpec], area: BaseGeometry, *,
                          budget_s: float | None = None,
                          buffer_m: dict[str, float] | None = None) -> dict[str, LayerResult]:
        """Every layer at a site, concurrently, within one budget (default ``site_budget_s``)."""
        deadline = time.monotonic() + (budget_s or self.settings.site_budget_s)
        todo = list(specs)
        results = await asyncio.gather(*(
            self.site_features(s, area, deadline=deadline,
                               buffer_m=(buffer_m or {}).get(s.id, 0.0)) for s in todo))
        return {r.layer: r for r in results}

    def site_layers_blocking(self, specs: Iterable[LayerSpec], area: BaseGeometry, *,
                             budget_s: float | None = None,
                             buffer_m: dict[str, float] | None = None
                             ) -> dict[str, LayerResult]:
        """``site_layers`` for callers on plain threads (guide jobs, thread-pool routes);
        it runs on the client's loop, so it shares the process's cap and budget."""
        return self.client.run(self.site_layers(specs, area, budget_s=budget_s,
                                                buffer_m=buffer_m))

    async def site_features(self, spec: LayerSpec, area: BaseGeometry, *, deadline: float,
                            buffer_m: float = 0.0) -> LayerResult:
        """Features of ``spec`` around ``area`` (CRS84), from the cache or fetched before
        ``deadline`` (``time.monotonic()``)."""
        if not self.configured:
            return LayerResult(spec.id, [], None, ReinfolibError(
                "not-configured", self.settings.not_configured, api=spec.source.api))
        region = _widen(area, buffer_m)
        zoom = spec.source.zoom or 15
        try:
            tiles = covering(region, zoom, limit=MAX_SITE_TILES)
        except TooManyTiles:
            return LayerResult(spec.id, [], None, ReinfolibError(
                "site-too-large", f"{spec.source.api}: the site spans more than "
                f"{MAX_SITE_TILES} tiles at zoom {zoom}; ask for a smaller site",
                api=spec.source.api))
        records, memoised = await self._records(spec.id, tiles)
        fresh = {t: r for t, r in records.items() if r.fresh(self.settings.cache_ttl_days)}
        todo = [t for t in tiles if t not in fresh]
        answers, errors = await self._fetch(spec, todo, deadline)
        if not memoised and not answers:
            # A tile in the ledger may belong to another answer still merging it: merge
            # what is dirty before reading, or that tile would read as "nothing here".
            await in_thread(write_merged, self.store, spec, self.ledger)
        self._fresh.update(((spec.id, t), r) for t, r in fresh.items())
        self._fresh.update(((spec.id, a.tile), TileRecord(a.tile, a.fetched_at, a.url))
                           for a in answers)
        stale = {t: records[t] for t, _ in errors if t in records}
        failed = [e for t, e in errors if t not in records]
        used = [*fresh.values(), *stale.values(),
                *(TileRecord(a.tile, a.fetched_at, a.url) for a in answers)]
        page = await in_thread(self.store.query, spec.id,
                               Query(bbox=region.bounds, limit=MAX_FEATURES))
        provenance = _provenance(spec, used, from_cache=not todo, stale=bool(stale))
        return LayerResult(spec.id, page.features, provenance, failed[0] if failed else None)

    async def _records(self, layer: str, tiles: list[Tile]
                       ) -> tuple[dict[Tile, TileRecord], bool]:
        """Ledger records of ``tiles``, and whether they all came from this process's memo
        (filled only once a tile's features are merged into the collection)."""
        ttl = self.settings.cache_ttl_days
        known = {t: self._fresh.get((layer, t)) for t in tiles}
        if all(r is not None and r.fresh(ttl) for r in known.values()):
            return {t: r for t, r in known.items() if r is not None}, True
        return await in_thread(self.ledger.records, layer, tiles), False

    async def _fetch(self, spec: LayerSpec, tiles: list[Tile], deadline: float | None
                     ) -> tuple[list[TileAnswer], list[tuple[Tile, ReinfolibError]]]:
        """Fetch ``tiles``, write each arrival to the ledger, merge into the collection."""
        if not tiles:
            return [], []
        outcomes = await asyncio.gather(*(self._one(spec, t, deadline) for t in tiles))
        answers = [o for o in outcomes if isinstance(o, TileAnswer)]
        errors = [(t, o) for t, o in zip(tiles, outcomes, strict=True)
                  if isinstance(o, ReinfolibError)]
        if answers:
            await in_thread(write_merged, self.store, spec, self.ledger)
        for tile, exc in errors:
            log.warning("reinfolib %s tile %s not used: %s (%s)", spec.source.api, tile,
                        exc.reason, exc.description)
        return answers, errors

    async def _one(self, spec: LayerSpec, tile: Tile, deadline: float | None
                   ) -> TileAnswer | ReinfolibError:
        api = spec.source.api or ""
        try:
            call = self.client.tile(api, tile, dict(spec.source.params), deadline=deadline)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            answer = await asyncio.wait_for(call, left)
            await in_thread(self.ledger.put, spec, tile, answer.fetched_at, answer.url,
                            pieces(spec, answer.features))
            return answer
        except ReinfolibError as exc:
            return exc
        except TimeoutError:
            return ReinfolibError("timeout", f"{api}: tile {tile} did not arrive within the "
                                  "time budget of this answer", api=api)

    async def prefetch(self, spec: LayerSpec, area: BaseGeometry,
                       progress: TileProgress | None = None) -> PrefetchReport:
        """Fetch every tile of ``spec`` covering ``area`` that is not fresh in the cache.

        Resumable: identities left dirty by an interrupted run are merged first, and tiles
        already in the ledger are not fetched again."""
        report = PrefetchReport(spec.id)
        await in_thread(write_merged, self.store, spec, self.ledger)
        tiles = covering(area, spec.source.zoom or 15)
        records = await in_thread(self.ledger.records, spec.id, tiles)
        todo = [t for t in tiles if not (t in records
                                         and records[t].fresh(self.settings.cache_ttl_days))]
        report.tiles, report.cached = len(tiles), len(tiles) - len(todo)

        async def one(tile: Tile) -> None:
            outcome = await self._one(spec, tile, None)
            if isinstance(outcome, ReinfolibError):
                report.failed.append((tile, outcome))
            else:
                report.fetched += 1
            if progress is not None:
                progress(spec.id, tile)

        await asyncio.gather(*(one(t) for t in todo))
        await in_thread(write_merged, self.store, spec, self.ledger)
        return report

    async def aclose(self) -> None:
        """Close the HTTP connections of the running event loop."""
        await self.client.aclose()


def _widen(area: BaseGeometry, metres: float) -> BaseGeometry:
    """``area`` grown by about ``metres`` (degrees scaled at its latitude)."""
    if metres <= 0:
        return area
    lat = area.centroid.y
    return area.buffer(metres / (111_320.0 * max(math.cos(math.radians(lat)), 0.1)))


def _provenance(spec: LayerSpec, used: list[TileRecord], *, from_cache: bool,
                stale: bool) -> Provenance | None:
    if not used:
        return None
    dates = sorted(r.fetched_at for r in used)
    urls = sorted({r.url for r in used})
    return Provenance(spec.source.api or "", urls, dates[0], dates[-1], from_cache, stale)
