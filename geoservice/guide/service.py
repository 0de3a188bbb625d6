"""The guide service: indexes built once at start-up, one call per request."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from geoservice.catalogue import LayerSpec
from geoservice.errors import ServiceError
from geoservice.guide.authority import AuthorityTable, default_authorities
from geoservice.guide.engine import HAZARD_LAYERS, evaluate
from geoservice.guide.models import GuideAnswer, GuideRequest, SiteInput, parse_request
from geoservice.guide.rules import Rule, default_rules, required_layers
from geoservice.guide.spatial import FeatureSource, SpatialIndex

GUIDE_CONFIG = Path(__file__).with_name("guide.yml")


@lru_cache(maxsize=1)
def _packaged_config() -> dict[str, Any]:
    with GUIDE_CONFIG.open(encoding="utf-8") as fh:
        return dict(yaml.safe_load(fh) or {})


def guide_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The guide's configuration: packaged ``guide.yml`` updated with ``overrides``."""
    return {**_packaged_config(), **dict(overrides or {})}


class GuideService:
    """Answer guide requests against a store; build it once (app lifespan), share it.

    Parameters
    ----------
    store : Store (any object with ``iter_features``)
        Read once here (``iter_features`` per layer); never read again per request.
    catalogue_specs : mapping of layer id to LayerSpec
        Gives each layer's coverage; a layer absent from the store covers nothing.
    rules, authorities : optional
        Defaults to the packaged rule catalogue and authority table.
    parcel_layers : optional
        Layers searched for 地番; defaults to ``parcel_layers`` of ``guide.yml``.
    """

    def __init__(
        self,
        store: FeatureSource,
        catalogue_specs: Mapping[str, LayerSpec],
        *,
        rules: list[Rule] | tuple[Rule, ...] | None = None,
        authorities: AuthorityTable | None = None,
        parcel_layers: Iterable[str] | None = None,
    ) -> None:
        self.rules = tuple(rules if rules is not None else default_rules())
        self.authorities = authorities or default_authorities()
        self.layer_ids = required_layers(self.rules) + [
            lid for lid in HAZARD_LAYERS if lid not in required_layers(self.rules)
        ]
        self.parcel_layers = list(
            parcel_layers if parcel_layers is not None else guide_config()["parcel_layers"]
        )
        self.index = SpatialIndex.build(
            store, catalogue_specs, self.layer_ids, parcel_layers=self.parcel_layers
        )
        #: The hazards room's card (set at start-up when that room is present); the answer
        #: embeds it so a builder sees hazards where they decide.
        self.hazard_card: Callable[[Any], dict[str, Any] | None] | None = None

    def answer(self, request: GuideRequest | Mapping[str, Any]) -> GuideAnswer:
        """Answer one request (a model or a JSON body; a bad body raises ``Unprocessable``)."""
        req = request if isinstance(request, GuideRequest) else parse_request(request)
        return self.answer_site(req.site, req)

    def answer_site(self, site: SiteInput, request: GuideRequest) -> GuideAnswer:
        """Resolve the site geometry, build its facts and evaluate the rules."""
        geom, code = self.index.site_geometry(site)
        facts = self.index.facts(geom, code)
        answer = evaluate(facts, request.works, self.rules, authorities=self.authorities)
        return self._with_card(answer, geom)

    def _with_card(self, answer: GuideAnswer, geom: Any) -> GuideAnswer:
        """Embed the hazard card; a site too large for a card keeps the guide's own summary."""
        if self.hazard_card is None:
            return answer
        try:
            card = self.hazard_card(geom)
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
