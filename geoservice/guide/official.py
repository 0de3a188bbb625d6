"""Official layers of the 不動産情報ライブラリ API in the guide: precedence, reasons, panel.

Per layer a rule names, the guide uses the best source that can answer for the site and says
which (``LayerSource``): the official API layer (``official_layers`` in ``guide.yml``, or the
rule layer itself when it is an API layer) > a local official file (PLATEAU urf, Tokyo
GeoJSON) > a synthetic demo layer.  Why not simply "whatever answers"?

* A key that is set means the operator wants official answers: when the API then fails for
  a site (timeout, 5xx, 401 …) a synthetic polygon must not decide a procedure, so the layer
  becomes unusable with the API's reason and the engine answers ``undetermined``.  A local
  *official* file that covers the site may still answer, and the answer says the API failed.
* Without a key the service is the demo: local layers answer as before, and every API layer
  reports "not configured" (rules that only an API layer can decide are ``undetermined``).
* Where the API and a local official file both answer and disagree (e.g. another 用途地域),
  the answer says so rather than silently preferring one.

Pure functions over what the API gave (``LayerResult`` per API layer): no I/O here.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.crs import to_6677
from geoservice.features import Feature
from geoservice.guide.engine import FeatureHit, LayerFacts, SiteFacts
from geoservice.guide.models import (
    LandPricePoint,
    LayerSource,
    RealEstate,
    TransactionSummary,
)
from geoservice.reinfolib.site import (
    ApiResult,
    Failure,
    is_api_layer,
    outcome,
)

REAL_ESTATE_DISCLAIMER = (
    "地価公示・地価調査 are official appraisals of standard lots (as of 1 January / 1 July); "
    "transaction prices are reported by the parties and rounded by MLIT. Neither is a "
    "valuation of this land."
)


@dataclass(frozen=True, slots=True)
class OfficialLayer:
    """A rule layer's official API counterpart (one entry of ``official_layers``)."""

    role: str
    layer: str
    where_absent: Mapping[str, Any]
    compare: tuple[str, ...]


def official_layers(
    conf: Mapping[str, Any], specs: Mapping[str, LayerSpec]
) -> dict[str, OfficialLayer]:
    """``guide.yml``'s ``official_layers`` whose API layer is in the catalogue."""
    out: dict[str, OfficialLayer] = {}
    for role, entry in (conf or {}).items():
        entry = {"layer": entry} if isinstance(entry, str) else dict(entry)
        if is_api_layer(specs.get(entry["layer"])):
            out[role] = OfficialLayer(role, entry["layer"], dict(entry.get("where_absent") or {}),
                                      tuple(entry.get("compare") or ()))
    return out


def api_layer_ids(
    rule_layers: Iterable[str], official: Mapping[str, OfficialLayer],
    specs: Mapping[str, LayerSpec], extra: Iterable[str] = (),
) -> list[str]:
    """The API layers a site query needs: the rules' own and their official counterparts."""
    ids = [official[r].layer if r in official else r for r in rule_layers]
    return [lid for lid in dict.fromkeys([*ids, *extra]) if is_api_layer(specs.get(lid))]


def _hits(features: Iterable[Feature], site: BaseGeometry) -> tuple[FeatureHit, ...]:
    return tuple(FeatureHit(f.id, dict(f.properties)) for f in features
                 if f.geometry is not None and shapely.intersects(f.geometry, site))


def _api_source(role: str, spec: LayerSpec, result: ApiResult) -> LayerSource:
    prov = result.provenance
    return LayerSource(
        layer=role, used=spec.id, kind="official-api",
        label=prov.label() if prov else f"不動産情報ライブラリ API {spec.source.api}",
        api=prov.api if prov else None, fetched_at=prov.fetched_at if prov else None,
        credit=spec.attribution,
    )


def _local_source(role: str, spec: LayerSpec | None, failure: Failure | None) -> LayerSource:
    synthetic = spec is None or spec.synthetic
    label = (f"synthetic demo layer {role} (not official)" if synthetic
             else f"local official file: {spec.attribution}" if spec else role)
    return LayerSource(
        layer=role, used=role, kind="synthetic" if synthetic else "official-file", label=label,
        reason_code=failure.reason if failure else None,
        reason=failure.description if failure else None,
        credit=None if spec is None else spec.attribution,
    )


def _unavailable(role: str, api_id: str | None, failure: Failure) -> LayerSource:
    label = f"不動産情報ライブラリ API {api_id}: {failure.reason}" if api_id else failure.reason
    return LayerSource(layer=role, used=None, kind="unavailable", label=label, api=api_id,
                       reason_code=failure.reason, reason=failure.description)


def _disagreement(
    official: OfficialLayer, api: tuple[FeatureHit, ...], local: LayerFacts | None,
    api_id: str | None,
) -> str | None:
    """A sentence when the API and the local official file name different values here."""
    if local is None or local.coverage == "none" or not local.features or not api:
        return None
    parts = []
    for prop in official.compare:
        a = sorted({str(h.properties.get(prop)) for h in api if h.properties.get(prop)})
        b = sorted({str(h.properties.get(prop)) for h in local.features
                    if h.properties.get(prop)})
        if a and b and a != b:
            parts.append(f"{prop}: API {api_id} says {', '.join(a)}; local file "
                         f"{official.role} says {', '.join(b)}")
    return "; ".join(parts) or None


@dataclass(frozen=True, slots=True)
class Resolver:
    """Chooses, per rule layer, the facts the engine sees and states their source."""

    specs: Mapping[str, LayerSpec]
    official: Mapping[str, OfficialLayer]
    configured: bool

    def resolve(
        self, site: BaseGeometry, local: SiteFacts, rule_layers: Iterable[str],
        results: Mapping[str, ApiResult | Failure],
    ) -> tuple[SiteFacts, list[LayerSource]]:
        """The site facts with API layers put in, and one ``LayerSource`` per rule layer."""
        layers = dict(local.layers)
        sources = []
        for role in dict.fromkeys(rule_layers):
            facts, source = self._one(site, role, local.layers.get(role), results)
            layers[role] = facts
            sources.append(source)
        return SiteFacts(local.area_m2, local.municipality_code, local.municipality_name,
                         layers), sources

    def _one(
        self, site: BaseGeometry, role: str, local: LayerFacts | None,
        results: Mapping[str, ApiResult | Failure],
    ) -> tuple[LayerFacts, LayerSource]:
        entry = self.official.get(role)
        api_id = entry.layer if entry else role if is_api_layer(self.specs.get(role)) else None
        if api_id is None:  # no official counterpart: the local layer as it is
            return local or LayerFacts("none"), _local_source(role, self.specs.get(role), None)
        spec = self.specs[api_id]
        result, failure = outcome(results.get(api_id))
        if result is not None:
            hits = _hits(result.features, site)
            if not hits and entry is not None and entry.where_absent:
                hits = (FeatureHit(f"{api_id}:absent", {**entry.where_absent,
                                                        "absent_from": spec.source.api}),)
            source = _api_source(role, spec, result)
            if entry is not None and entry.compare:
                source.disagreement = _disagreement(entry, hits, local, spec.source.api)
            return LayerFacts("full", hits), source
        assert failure is not None
        return self._fallback(role, api_id, local, failure)

    def _fallback(
        self, role: str, api_id: str, local: LayerFacts | None, failure: Failure
    ) -> tuple[LayerFacts, LayerSource]:
        """The API gave nothing: a local layer if precedence allows it, else unusable."""
        spec = self.specs.get(role) if role != api_id else None
        covered = local is not None and local.coverage != "none"
        official_file = spec is not None and not spec.synthetic
        if covered and (official_file or not self.configured):
            assert local is not None
            return local, _local_source(role, spec, failure)
        why = f"不動産情報ライブラリ API {self.specs[api_id].source.api}: {failure.description}"
        return LayerFacts("none", reason=why), _unavailable(
            role, self.specs[api_id].source.api, failure)


# --------------------------------------------------------------------------- real estate

_QUARTER = re.compile(r"(\d{4})年第(\d)四半期")


def _quarter_key(text: str | None) -> tuple[int, int] | None:
    m = _QUARTER.search(text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def land_price_points(
    features: Iterable[Feature], site: BaseGeometry, nearest: int, radius_m: float
) -> list[LandPricePoint]:
    """The ``nearest`` land-price points within ``radius_m`` of the site, nearest first."""
    feats = [f for f in features if f.geometry is not None]
    if not feats:
        return []
    site_m = to_6677(site)
    dist = shapely.distance(site_m, to_6677(shapely.GeometryCollection(
        [f.geometry for f in feats])).geoms)
    ranked = sorted((float(d), i) for i, d in enumerate(dist) if d <= radius_m)
    out = []
    for d, i in ranked[:nearest]:
        p = feats[i].properties
        out.append(LandPricePoint(
            id=feats[i].id, price_type=p.get("price_type"), year=p.get("year"),
            price_per_m2=p.get("price_per_m2"), price_text=p.get("price_text"),
            change_rate_pct=p.get("change_rate"), distance_m=round(d, 1),
            place=p.get("place") or p.get("address"), use_category=p.get("use_category"),
        ))
    return out


def transaction_summary(
    features: Iterable[Feature], site: BaseGeometry, radius_m: float
) -> TransactionSummary:
    """Median price per m², count and quarter range of the transactions within the radius."""
    feats = [f for f in features if f.geometry is not None]
    near: list[Feature] = []
    if feats:
        dist = shapely.distance(to_6677(site), to_6677(shapely.GeometryCollection(
            [f.geometry for f in feats])).geoms)
        near = [f for f, d in zip(feats, dist, strict=True) if d <= radius_m]
    prices = [float(f.properties["price_per_m2"]) for f in near
              if f.properties.get("price_per_m2") is not None]
    quarters = sorted((k, f.properties.get("period")) for f in near
                      if (k := _quarter_key(f.properties.get("period"))) is not None)
    return TransactionSummary(
        count=len(near), count_with_price_per_m2=len(prices),
        median_price_per_m2=statistics.median(prices) if prices else None,
        first_quarter=quarters[0][1] if quarters else None,
        last_quarter=quarters[-1][1] if quarters else None, radius_m=radius_m,
    )


def real_estate(
    site: BaseGeometry, results: Mapping[str, ApiResult | Failure],
    specs: Mapping[str, LayerSpec], conf: Mapping[str, Any],
) -> RealEstate | None:
    """The land-price panel (``None`` when the catalogue has neither price layer)."""
    radius = float(conf.get("radius_m", 1000))
    ids = {k: conf.get(k) for k in ("land_prices", "transactions")}
    if not any(is_api_layer(specs.get(str(v))) for v in ids.values()):
        return None
    prices: list[LandPricePoint] | None = None
    deals: TransactionSummary | None = None
    sources = []
    for key, lid in ids.items():
        if not is_api_layer(specs.get(str(lid))):
            continue
        spec = specs[str(lid)]
        result, failure = outcome(results.get(spec.id))
        if result is None:
            assert failure is not None
            sources.append(_unavailable(spec.id, spec.source.api, failure))
            continue
        sources.append(_api_source(spec.id, spec, result))
        if key == "land_prices":
            prices = land_price_points(result.features, site, int(conf.get("nearest", 3)), radius)
        else:
            deals = transaction_summary(result.features, site, radius)
    return RealEstate(land_prices=prices, transactions=deals, sources=sources,
                      disclaimer=REAL_ESTATE_DISCLAIMER)
