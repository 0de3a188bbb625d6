"""The guide service: indexes built once at start-up, one call per request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.config import GuideSettings
from geoservice.errors import ServiceError
from geoservice.guide.authority import AuthorityTable, default_authorities
from geoservice.guide.engine import HAZARD_LAYERS, evaluate
from geoservice.guide.models import GuideAnswer, GuideRequest, parse_request
from geoservice.guide.official import Resolver, api_layer_ids, official_layers, real_estate
from geoservice.guide.rules import Rule, default_rules, required_layers
from geoservice.guide.spatial import FeatureSource, SpatialIndex
from geoservice.reinfolib.site import (
    Results,
    SiteSource,
    fetch_site,
    fetch_site_blocking,
    is_api_layer,
)

GUIDE_CONFIG = Path(__file__).with_name("guide.yml")


@lru_cache(maxsize=1)
def _packaged_config() -> GuideSettings:
    with GUIDE_CONFIG.open(encoding="utf-8") as fh:
        return GuideSettings.model_validate(yaml.safe_load(fh) or {})


def guide_config(overrides: GuideSettings | None = None) -> GuideSettings:
    """The guide's configuration: packaged ``guide.yml`` updated with the keys set in
    ``overrides`` (the ``guide`` section of ``config.yml``)."""
    over = overrides.model_dump(exclude_none=True) if overrides is not None else {}
    return _packaged_config().model_copy(update=over)


class GuideService:
    """Answer guide requests against a store; build it once (app lifespan), share it.

    Parameters
    ----------
    store : Store (any object with ``iter_features``)
        Read once here (``iter_features`` per local layer); never read again per request.
    catalogue_specs : mapping of layer id to LayerSpec
        Gives each layer's coverage; a layer absent from the store covers nothing.  Layers
        of ``source.kind: reinfolib`` are never indexed: they are fetched per site from the
        不動産情報ライブラリ API (``source``), cached in the store by that source.
    rules, authorities : optional
        Defaults to the packaged rule catalogue and authority table.
    parcel_layers : optional
        Layers searched for 地番; defaults to ``parcel_layers`` of ``guide.yml``.
    conf : optional
        The guide configuration (``guide_config()``): ``official_layers``, ``real_estate``.
    """

    def __init__(
        self,
        store: FeatureSource,
        catalogue_specs: Mapping[str, LayerSpec],
        *,
        rules: list[Rule] | tuple[Rule, ...] | None = None,
        authorities: AuthorityTable | None = None,
        parcel_layers: Iterable[str] | None = None,
        conf: GuideSettings | None = None,
    ) -> None:
        conf = guide_config() if conf is None else conf
        self.rules = tuple(rules if rules is not None else default_rules())
        self.authorities = authorities or default_authorities()
        self.specs = dict(catalogue_specs)
        #: The rules' layers, then the layers shown as site facts only (``shown_layers``).
        self.needed_layers = list(dict.fromkeys(
            required_layers(self.rules) + list(conf.shown_layers or [])))
        self.layer_ids = self.needed_layers + [
            lid for lid in HAZARD_LAYERS if lid not in self.needed_layers
        ]
        self.parcel_layers = list(
            parcel_layers if parcel_layers is not None else conf.parcel_layers or ()
        )
        roles = {k: v.model_dump() for k, v in (conf.official_layers or {}).items()}
        official = official_layers(roles, self.specs)
        self.resolver = Resolver(self.specs, official, configured=False)
        self.real_estate_conf: dict[str, Any] = (
            conf.real_estate.model_dump() if conf.real_estate is not None else {}
        )
        estate = [str(self.real_estate_conf.get(k)) for k in ("land_prices", "transactions")]
        self.api_layers = api_layer_ids(self.needed_layers, official, self.specs, estate)
        local = [lid for lid in self.layer_ids if not is_api_layer(self.specs.get(lid))]
        self.index = SpatialIndex.build(
            store, catalogue_specs, local, parcel_layers=self.parcel_layers
        )
        #: The 不動産情報ライブラリ API (set at start-up when configured in the app).
        self.source: SiteSource | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        #: The hazards room's card (set at start-up when that room is present); the answer
        #: embeds it so a builder sees hazards where they decide.  It receives the API
        #: results fetched for the guide, so one site query serves both.
        self.hazard_card: Callable[[Any, Results], dict[str, Any] | None] | None = None
        #: The API layers the hazard card needs (fetched together with the guide's).
        self.card_layers: Callable[[], list[str]] = list

    def use_source(
        self, source: SiteSource | None, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        """Plug in the API source (start-up); without a key its layers say "not configured".

        ``loop`` is the app's event loop: synchronous answers (async jobs, in their worker
        thread) fetch on it, sharing its HTTP connections and concurrency cap.
        """
        self.source = source
        self.loop = loop
        configured = source is not None and source.configured
        self.resolver = Resolver(self.specs, self.resolver.official, configured=configured)

    def wanted(self) -> list[str]:
        """Every API layer one site query fetches (guide, land-price panel, hazard card)."""
        extra = [lid for lid in self.card_layers() if is_api_layer(self.specs.get(lid))]
        return list(dict.fromkeys([*self.api_layers, *extra]))

    def _buffers(self) -> dict[str, float]:
        radius = float(self.real_estate_conf.get("radius_m", 1000))
        return {str(self.real_estate_conf.get(k)): radius for k in ("land_prices", "transactions")}

    async def fetch(self, geom: BaseGeometry) -> Results:
        """The API layers for a site, within the source's site budget, or why not."""
        specs = [self.specs[lid] for lid in self.wanted()]
        return await fetch_site(self.source, specs, geom, self._buffers())

    def fetch_blocking(self, geom: BaseGeometry) -> Results:
        """``fetch`` for synchronous callers (async jobs in their worker thread)."""
        specs = [self.specs[lid] for lid in self.wanted()]
        return fetch_site_blocking(self.source, specs, geom, self._buffers(), self.loop)

    def answer(self, request: GuideRequest | Mapping[str, Any]) -> GuideAnswer:
        """Answer one request synchronously (a model or a JSON body; bad input raises)."""
        req = request if isinstance(request, GuideRequest) else parse_request(request)
        geom, code = self.index.site_geometry(req.site)
        return self.answer_geometry(geom, code, req, self.fetch_blocking(geom))

    async def answer_async(self, request: GuideRequest | Mapping[str, Any]) -> GuideAnswer:
        """Answer one request, fetching the API layers without blocking the event loop."""
        req = request if isinstance(request, GuideRequest) else parse_request(request)
        geom, code = self.index.site_geometry(req.site)
        return self.answer_geometry(geom, code, req, await self.fetch(geom))

    def answer_geometry(
        self, geom: BaseGeometry, code: str | None, request: GuideRequest, results: Results
    ) -> GuideAnswer:
        """Build the site facts (local indexes + API layers) and evaluate the rules."""
        local = self.index.facts(geom, code)
        facts, sources = self.resolver.resolve(geom, local, self.needed_layers, results)
        answer = evaluate(facts, request.works, self.rules, authorities=self.authorities)
        estate = real_estate(geom, results, self.specs, self.real_estate_conf)
        used = sources + (estate.sources if estate else [])
        credits = sorted({s.credit for s in used if s.kind == "official-api" and s.credit})
        answer = answer.model_copy(
            update={"sources": sources, "real_estate": estate, "credits": credits})
        return self._with_card(answer, geom, results)

    def _with_card(self, answer: GuideAnswer, geom: Any, results: Results) -> GuideAnswer:
        """Embed the hazard card; a site too large for a card keeps the guide's own summary."""
        if self.hazard_card is None:
            return answer
        try:
            card = self.hazard_card(geom, results)
        except ServiceError as exc:
            card = {"card": None, "note": exc.description}
        if card is None:
            return answer
        return answer.model_copy(
            update={"hazards": {**card, "guide_layers": answer.hazards.get("layers", [])}}
        )

    def rule_layers(self) -> dict[str, list[str]]:
        """Which layers each rule needs (from the rule files)."""
        return {r.id: list(r.layers) for r in self.rules}
