"""The rule engine: a pure function from site facts, works and rules to the guide's answer.

Three-valued logic: a condition is true, false or unknown (``None``).  A layer that does not
cover the site (or could not be used), a feature without the property a rule reads, a works
field that was not given, or a fact no layer of ours shows makes a condition unknown.  A rule
is ``undetermined`` when a case that would change its answer is unknown — a stronger status,
or the same status with an earlier deadline — even when a weaker case matched: missing data
is never a "not required", and a weaker match never hides an unknown.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from geoservice.errors import Unprocessable
from geoservice.guide.authority import AuthorityTable, default_authorities
from geoservice.guide.models import (
    MILESTONES,
    CaseReason,
    FieldReason,
    GuideAnswer,
    LayerReason,
    Municipality,
    ProcedureOut,
    Reason,
    SiteFeature,
    SiteLayer,
    SiteOut,
    Status,
    TimelineEntry,
    Timing,
    Works,
)
from geoservice.guide.rules import (
    ActivitiesCond,
    AllCond,
    AnyCond,
    Case,
    FieldCond,
    LayerCond,
    PropertyCompare,
    Rule,
    UnknownCond,
)

Coverage = Literal["full", "partial", "none"]
Tri = bool | None

DISCLAIMER = (
    "This guide is guidance, not a legal determination: confirm every procedure with the "
    "office named. The hazard overlays are not the municipal hazard maps required for "
    "重要事項説明, and 'not in a layer' does not mean 'safe'. Layers marked synthetic are "
    "demo data, not official layers."
)
HAZARD_LAYERS: dict[str, str] = {
    "sediment-special-zones": "土砂災害特別警戒区域 (sediment-disaster special warning zone)",
    "sediment-warning-zones": "土砂災害警戒区域 (sediment-disaster warning zone)",
    "landslide-zones": "地すべり 警戒区域 (landslide warning zone)",
}
UNCHECKED = "unchecked"  # the ``layer`` of reasons citing what no layer of ours can show
_SEVERITY: dict[str, int] = {"notice": 1, "required": 2, "prohibited": 3}
_ON_TIMELINE = frozenset({"required", "notice", "prohibited", "undetermined"})
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "in": lambda v, lim: v in lim,
    "not-in": lambda v, lim: v not in lim,
}


@dataclass(frozen=True, slots=True)
class FeatureHit:
    """A layer feature that intersects the site."""

    id: str
    properties: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LayerFacts:
    """What one layer says about the site: its coverage and the intersecting features.

    ``reason`` says why a layer with coverage ``"none"`` could not be used (for example an
    official API that failed); the answer cites it with the office to ask.
    """

    coverage: Coverage
    features: tuple[FeatureHit, ...] = ()
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SiteFacts:
    """Everything the engine needs to know about the land (built by ``guide.spatial``).

    ``area_m2`` is ``None`` for a point site; a layer absent from ``layers`` is treated as
    not covering the site.
    """

    area_m2: float | None
    municipality_code: str | None = None
    municipality_name: str | None = None
    layers: Mapping[str, LayerFacts] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """The three-valued result of a condition, with the reasons that explain it."""

    state: Tri
    reasons: list[Reason]
    needs_site_area: bool = False


@dataclass(frozen=True, slots=True)
class _Ctx:
    site: SiteFacts
    works: Works
    kind: str | None
    office: str

    def value(self, name: str) -> Any:
        if name == "site_area_m2":
            given = self.works.site_area_m2
            return given if given is not None else self.site.area_m2
        if name == "municipality_kind":
            return self.kind
        if name == "municipality_code":
            return self.site.municipality_code
        if name.startswith("earthwork."):
            ew = self.works.earthwork
            return None if ew is None else getattr(ew, name.split(".", 1)[1])
        return getattr(self.works, name)


_M = TypeVar("_M", bound=BaseModel)


def _built(cls: type[_M], **values: Any) -> _M:
    """``cls.model_construct(**values)`` with every field given, without its overhead.

    Engine-made models are valid by construction (hot path: ~30 per rule and site).
    """
    m = cls.__new__(cls)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", set(values))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


def _lr(layer: str, feature_id: str | None, detail: str) -> LayerReason:
    # Engine-made reasons are valid by construction: skip validation (hot path).
    return _built(LayerReason, layer=layer, feature_id=feature_id, detail=detail)


def _fr(name: str, value: Any, comparator: str, limit: Any) -> FieldReason:
    return _built(FieldReason, field=name, value=value, comparator=comparator, limit=limit)


def _compare(value: Any, comparator: str, limit: Any) -> bool:
    if value is None or limit is None:
        return False
    return _OPS[comparator](value, limit)


def _check_field(c: FieldCond, ctx: _Ctx) -> Outcome:
    name, value = c.field, ctx.value(c.field)
    if value is None and c.fallback is not None:
        name, value = c.fallback, ctx.value(c.fallback)
    comparator, limit = (
        (c.comparator, c.limit) if c.comparator is not None
        else ("in", c.in_) if c.in_ is not None
        else ("not-in", c.not_in) if c.not_in is not None
        else ("==", c.equals)
    )
    reason = _fr(name, value, comparator, limit)
    if value is None:
        return Outcome(None, [reason], needs_site_area=name == "site_area_m2")
    return Outcome(_compare(value, comparator, limit), [reason])


def _check_activities(c: ActivitiesCond, ctx: _Ctx) -> Outcome:
    return _any_activity(c.activities, ctx)


def _any_activity(wanted: list[str], ctx: _Ctx) -> Outcome:
    acts = ctx.works.activities
    reason = _fr("activities", acts, "any-of", wanted)
    return Outcome(any(a in wanted for a in acts), [reason])


def _feature_detail(c: LayerCond, hit: FeatureHit) -> str:
    if c.detail is not None:
        props = _Blank(hit.properties)
        return c.detail.format_map(props)
    keys = ("name", "function", "kubun", "genshoname", "koujinum")
    parts = [f"{k}={hit.properties[k]}" for k in keys if hit.properties.get(k) is not None]
    return f"in {c.layer}" + (f": {', '.join(parts)}" if parts else "")


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def _filter_text(c: LayerCond) -> str:
    if c.in_ is not None:
        return f" with {c.property} in {c.in_}"
    if c.not_in is not None:
        return f" with {c.property} not in {c.not_in}"
    return ""


def _check_layer(c: LayerCond, ctx: _Ctx) -> Outcome:
    facts = ctx.site.layers.get(c.layer)
    if facts is None or facts.coverage == "none":
        why = facts.reason if facts is not None and facts.reason else "does not cover this site"
        return Outcome(None, [_lr(c.layer, None, f"layer {c.layer} {why}: ask {ctx.office}")])
    judged = [_judge_hit(c, h, ctx) for h in facts.features]
    for state in (True, None):
        hits = [o for o in judged if o.state is state]
        if hits:
            reasons = [r for o in hits for r in o.reasons]
            return Outcome(state, reasons if state else reasons + _known_misses(judged))
    return _no_hit(c, judged, ctx, facts.coverage)


def _known_misses(judged: list[Outcome]) -> list[Reason]:
    return [r for o in judged if o.state is False for r in o.reasons]


def _judge_hit(c: LayerCond, hit: FeatureHit, ctx: _Ctx) -> Outcome:
    """Whether one intersecting feature satisfies the condition, saying what it holds."""
    detail = _feature_detail(c, hit)
    if c.property is not None and (c.in_ is not None or c.not_in is not None):
        value = hit.properties.get(c.property)
        if value is None:
            why = f"{detail}: the feature has no {c.property} value: ask {ctx.office}"
            return Outcome(None, [_lr(c.layer, hit.id, why)])
        test, wanted_values = ("in", c.in_) if c.in_ is not None else ("not-in", c.not_in)
        if not _compare(value, test, wanted_values):
            wanted = f"in {c.in_}" if c.in_ is not None else f"not in {c.not_in}"
            why = f"{detail}: {c.property}={value}, not {wanted}"
            return Outcome(False, [_lr(c.layer, hit.id, why)])
    if c.compare is not None:
        return _compare_hit(c, c.compare, hit, detail, ctx)
    return Outcome(True, [_lr(c.layer, hit.id, detail)])


def _compare_hit(
    c: LayerCond, cmp: PropertyCompare, hit: FeatureHit, detail: str, ctx: _Ctx
) -> Outcome:
    value, limit = ctx.value(cmp.field), hit.properties.get(cmp.property)
    if limit is None:
        why = f"{detail}: the feature has no {cmp.property} value to compare with: ask {ctx.office}"
        return Outcome(None, [_lr(c.layer, hit.id, why)])
    field_reason = _fr(cmp.field, value, cmp.comparator, limit)
    if value is None:
        return Outcome(None, [_lr(c.layer, hit.id, detail), field_reason],
                       needs_site_area=cmp.field == "site_area_m2")
    return Outcome(_compare(value, cmp.comparator, limit),
                   [_lr(c.layer, hit.id, detail), field_reason])


def _no_hit(c: LayerCond, judged: list[Outcome], ctx: _Ctx, coverage: Coverage) -> Outcome:
    """No feature satisfies the condition: false, unless part of the site is not covered."""
    misses = _known_misses(judged)
    if coverage == "partial":
        detail = (f"layer {c.layer} covers only part of this site and shows no feature"
                  f"{_filter_text(c)} there: ask {ctx.office}")
        return Outcome(None, [_lr(c.layer, None, detail)] + misses)
    if misses:
        return Outcome(False, misses)
    return Outcome(False, [_lr(c.layer, None, f"site is outside every {c.layer} feature")])


def _combine(outs: list[Outcome], need_all: bool) -> Outcome:
    """AND (``need_all``) or OR of three-valued outcomes, keeping the deciding reasons."""
    decisive = False if need_all else True
    deciding = [o for o in outs if o.state is decisive]
    if deciding:
        return Outcome(decisive, [r for o in deciding for r in o.reasons])
    unknown = [o for o in outs if o.state is None]
    if unknown:
        needs = any(o.needs_site_area for o in unknown)
        return Outcome(None, [r for o in unknown for r in o.reasons], needs)
    return Outcome(not decisive, [r for o in outs for r in o.reasons])


def check(cond: Any, ctx: _Ctx) -> Outcome:
    """Evaluate one condition (of any kind) in a context."""
    if isinstance(cond, AllCond):
        return _combine([check(c, ctx) for c in cond.all], need_all=True)
    if isinstance(cond, AnyCond):
        return _combine([check(c, ctx) for c in cond.any], need_all=False)
    if isinstance(cond, LayerCond):
        return _check_layer(cond, ctx)
    if isinstance(cond, ActivitiesCond):
        return _check_activities(cond, ctx)
    if isinstance(cond, UnknownCond):
        detail = f"not checked by this service: {cond.unknown}: ask {ctx.office}"
        return Outcome(None, [_lr(UNCHECKED, None, detail)])
    return _check_field(cond, ctx)


_SCALARS = (str, int, float, bool, type(None))


def _reason_key(r: Reason) -> tuple[Any, ...]:
    # Cheap identity of a reason (pydantic's repr was a third of the evaluation time).
    if isinstance(r, LayerReason):
        return (r.layer, r.feature_id, r.detail)
    if isinstance(r, CaseReason):
        return (r.case, r.status, r.applies)
    value, limit = r.value, r.limit
    return (r.field, r.comparator, value if isinstance(value, _SCALARS) else repr(value),
            limit if isinstance(limit, _SCALARS) else repr(limit))


def _dedupe(reasons: list[Reason]) -> list[Reason]:
    seen: dict[tuple[Any, ...], Reason] = {}
    for r in reasons:
        seen.setdefault(_reason_key(r), r)
    return list(seen.values())


def _decide(rule: Rule, ctx: _Ctx) -> tuple[Status, list[Reason], Timing, bool]:
    """Status, reasons, timing and whether the site area is missing but needed.

    The strongest matched case decides, unless a case that would change the answer (a
    stronger status, or the same status with an earlier deadline) is unknown: then the
    answer is ``undetermined`` on the earliest candidate date, citing what is known and
    what is missing.
    """
    pre: list[Reason] = []
    if rule.trigger.activities is not None:
        acts = _any_activity(rule.trigger.activities, ctx)
        if not acts.state:
            return "not-required", acts.reasons, rule.timing, False
        pre = acts.reasons
    outs = [(case, _combine([check(c, ctx) for c in case.when], need_all=True))
            for case in rule.trigger.cases]
    matched = [(case, o) for case, o in outs if o.state is True]
    best = min(matched, key=lambda m: _rank(rule, m[0]), default=None)
    open_ = [(case, o) for case, o in outs
             if o.state is None and (best is None or _rank(rule, case) < _rank(rule, best[0]))]
    if open_:
        return _undetermined(rule, best, open_, pre)
    if best is not None:
        reasons = _dedupe(pre + [r for _, o in matched for r in o.reasons])
        return best[0].status, reasons, _timing(rule, best[0]), False
    reasons = _dedupe(pre + [r for _, o in outs for r in o.reasons])
    return "not-required", reasons, rule.timing, False


def _timing(rule: Rule, case: Case) -> Timing:
    return case.timing or rule.timing


def _rank(rule: Rule, case: Case) -> tuple[int, int, int]:
    """Sort key: stronger status first, then the earlier deadline."""
    t = _timing(rule, case)
    return (-_SEVERITY[case.status], MILESTONES.index(t.milestone), t.offset_days or 0)


def _case_reason(rule: Rule, case: Case, applies: bool | None) -> CaseReason:
    label = case.label or _timing(rule, case).text
    return _built(CaseReason, case=label, status=case.status, applies=applies)


def _undetermined(
    rule: Rule, best: tuple[Case, Outcome] | None, open_: list[tuple[Case, Outcome]],
    pre: list[Reason],
) -> tuple[Status, list[Reason], Timing, bool]:
    known: list[Reason] = []
    if best is not None:
        known = [_case_reason(rule, best[0], True), *best[1].reasons]
    missing = [r for case, o in open_ for r in (_case_reason(rule, case, None), *o.reasons)]
    needs = any(o.needs_site_area for _, o in open_)
    timing = _earliest(rule, [c for c, _ in open_] + ([best[0]] if best else []))
    return "undetermined", _dedupe(pre + known + missing), timing, needs


def _earliest(rule: Rule, cases: list[Case]) -> Timing:
    """The earliest deadline among the candidate cases (the safe date while undecided);
    the rule's general timing when it falls on the same day, since no case is known."""
    first = min((_timing(rule, c) for c in cases),
                key=lambda t: (MILESTONES.index(t.milestone), t.offset_days or 0))
    same = (first.milestone, first.offset_days or 0) == (rule.timing.milestone,
                                                         rule.timing.offset_days or 0)
    return rule.timing if same else first


def _procedure(rule: Rule, ctx: _Ctx) -> tuple[ProcedureOut, bool]:
    status, reasons, timing, needs = _decide(rule, ctx)
    out = _built(
        ProcedureOut, id=rule.id, status=status, title_ja=rule.title_ja, title_en=rule.title_en,
        law=rule.law, article=rule.article, authority=ctx.office, timing=timing,
        reasons=reasons, confidence=rule.confidence, source=rule.source,
    )
    return out, needs


def _site_out(site: SiteFacts, table: AuthorityTable) -> SiteOut:
    muni = None
    if site.municipality_code is not None:
        name = site.municipality_name or table.name(site.municipality_code)
        muni = Municipality(code=site.municipality_code, name=name)
    layers = [
        SiteLayer(layer=lid, features=[SiteFeature(id=h.id, properties=dict(h.properties))
                                       for h in facts.features])
        for lid, facts in site.layers.items()
    ]
    return SiteOut(area_m2=site.area_m2, municipality=muni, layers=layers)


def _timeline(procedures: list[ProcedureOut]) -> list[TimelineEntry]:
    entries = [
        TimelineEntry(procedure_id=p.id, status=p.status, milestone=p.timing.milestone,
                      offset_days=p.timing.offset_days, text=p.timing.text)
        for p in procedures if p.status in _ON_TIMELINE
    ]
    entries.sort(key=lambda e: (MILESTONES.index(e.milestone), e.offset_days or 0,
                                e.procedure_id))
    return entries


def _hazards(site: SiteFacts) -> dict[str, Any]:
    layers = []
    for lid, title in HAZARD_LAYERS.items():
        facts = site.layers.get(lid)
        ids = [h.id for h in facts.features] if facts else []
        status = ("inside" if ids else "outside" if facts and facts.coverage == "full"
                  else "unknown")
        layers.append({"layer": lid, "title": title, "status": status, "feature_ids": ids})
    note = ("Overlays from open data; not the municipal hazard maps required for "
            "重要事項説明 (flood, storm-surge and inland-water maps are not included).")
    return {"layers": layers, "note": note}


def evaluate(
    site: SiteFacts,
    works: Works,
    rules: list[Rule] | tuple[Rule, ...],
    *,
    authorities: AuthorityTable | None = None,
) -> GuideAnswer:
    """Answer the guide for one site: every rule with a status, a timeline and hazards.

    Pure: no I/O besides reading the packaged authority table once per process when
    ``authorities`` is not given.

    Parameters
    ----------
    site : SiteFacts
        The land as seen through the layers (see ``guide.spatial.SpatialIndex``).
    works : Works
        The planned works.
    rules : list of Rule
        The catalogue (``guide.rules.default_rules()``).
    authorities : AuthorityTable, optional
        Office table; defaults to the packaged ``authorities.yml``.

    Returns
    -------
    GuideAnswer
        One ``ProcedureOut`` per rule, in rule order.

    Raises
    ------
    Unprocessable
        A rule that would otherwise apply needs ``works.site_area_m2`` and the site is a
        point with no area.

    Examples
    --------
    >>> from geoservice.guide.rules import default_rules
    >>> ward = {"area-divisions": LayerFacts("full", (FeatureHit("a1", {"kubun": "市街化区域"}),))}
    >>> site = SiteFacts(area_m2=500.0, municipality_code="13122", layers=ward)
    >>> works = Works(activities=["land-development"])
    >>> answer = evaluate(site, works, default_rules())
    >>> p = answer.procedure("development-permit")
    >>> p.status, p.authority
    ('required', '葛飾区長 (開発許可担当)')
    >>> [r.comparator for r in p.reasons if isinstance(r, FieldReason)]
    ['any-of', 'in', '>=']
    """
    table = authorities or default_authorities()
    code = site.municipality_code
    kind = table.kind(code)
    results = [_procedure(r, _Ctx(site, works, kind, table.office(r.authority, code)))
               for r in rules]
    missing = [p.id for p, needs in results if needs]
    if missing:
        raise Unprocessable(
            "works.site_area_m2 is required for a point site: the rules "
            f"{', '.join(missing)} compare the site area with a threshold"
        )
    procedures = [p for p, _ in results]
    return GuideAnswer.model_construct(
        site=_site_out(site, table), procedures=procedures, timeline=_timeline(procedures),
        hazards=_hazards(site), disclaimer=DISCLAIMER,
    )
