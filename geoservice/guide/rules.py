"""The rule model: one YAML file per procedure under ``geoservice/guide/rules/``.

A rule says which activities it concerns, which layers it needs, and a list of *cases*;
each case is a list of conditions (all must hold) and the status it gives.  Conditions:

- ``{layer: L}`` — the site intersects a feature of layer ``L``; optionally
  ``property: P`` with ``in: [...]`` or ``not_in: [...]``, and
  ``compare: {field, comparator, property}`` (a works field against a feature property);
- ``{field: F, comparator: ">=", limit: 500}`` (``>=`` 以上, ``>`` 超, ``<=``, ``<``,
  ``==``), or ``{field: F, in: [...]}`` / ``not_in`` / ``equals``; ``fallback: G`` reads
  field ``G`` when ``F`` is not given;
- ``{activities: [...]}`` — any of the planned activities;
- ``{unknown: "..."}`` — something the service cannot check (no layer for it, no sourced
  threshold): always unknown, so a case that needs it can only make the answer
  ``undetermined``, never a silent "not required";
- ``{any: [...]}`` / ``{all: [...]}`` — nesting.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from geoservice.guide.models import ACTIVITIES, Confidence, Timing, Works

RULES_DIR = Path(__file__).with_name("rules")
Comparator = Literal[">=", ">", "<=", "<", "=="]
SITE_FIELDS: tuple[str, ...] = ("site_area_m2", "municipality_kind", "municipality_code")
FIELDS: frozenset[str] = frozenset(
    [f for f in Works.model_fields if f != "earthwork"]
    + [f"earthwork.{f}" for f in ("cut_height_m", "fill_height_m", "area_m2")]
    + list(SITE_FIELDS)
)


def _known_field(name: str) -> str:
    if name not in FIELDS:
        raise ValueError(f"unknown field {name!r}; known: {', '.join(sorted(FIELDS))}")
    return name


def _known_activities(values: list[str]) -> list[str]:
    bad = [a for a in values if a not in ACTIVITIES]
    if bad:
        raise ValueError(f"unknown activities {bad}; accepted: {', '.join(ACTIVITIES)}")
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PropertyCompare(_Strict):
    """Compare a works field with a property of the intersecting feature."""

    field: str
    comparator: Comparator
    property: str

    _field = field_validator("field")(classmethod(lambda cls, v: _known_field(v)))


class LayerCond(_Strict):
    """The site intersects a feature of ``layer`` (optionally filtered)."""

    layer: str
    intersects: Literal[True] = True
    property: str | None = None
    in_: list[Any] | None = Field(None, alias="in")
    not_in: list[Any] | None = None
    compare: PropertyCompare | None = None
    detail: str | None = Field(None, description="Template formatted with feature properties")

    @model_validator(mode="after")
    def _property_filter(self) -> LayerCond:
        if (self.in_ is not None or self.not_in is not None) and self.property is None:
            raise ValueError(f"layer condition on {self.layer}: 'in'/'not_in' need 'property'")
        return self


class FieldCond(_Strict):
    """A works (or site) field compared with a limit or a set of values."""

    field: str
    comparator: Comparator | None = None
    limit: int | float | None = None
    in_: list[Any] | None = Field(None, alias="in")
    not_in: list[Any] | None = None
    equals: bool | str | None = None
    fallback: str | None = None

    _field = field_validator("field", "fallback")(
        classmethod(lambda cls, v: v if v is None else _known_field(v))
    )

    @model_validator(mode="after")
    def _one_test(self) -> FieldCond:
        tests = [self.comparator is not None, self.in_ is not None, self.not_in is not None]
        tests.append(self.equals is not None)
        if sum(tests) != 1 or (self.comparator is not None) != (self.limit is not None):
            raise ValueError(
                f"field {self.field}: give one of comparator+limit, in, not_in, equals"
            )
        return self


class ActivitiesCond(_Strict):
    """Any of the planned activities is in the list."""

    activities: list[str]

    _acts = field_validator("activities")(classmethod(lambda cls, v: _known_activities(v)))


class UnknownCond(_Strict):
    """A fact the service cannot check; the text says what it is and why."""

    unknown: str = Field(..., min_length=1)


class AnyCond(_Strict):
    """At least one of the nested conditions holds."""

    any: list[Condition] = Field(..., min_length=1)


class AllCond(_Strict):
    """All of the nested conditions hold."""

    all: list[Condition] = Field(..., min_length=1)


def _cond_tag(value: Any) -> str | None:
    keys = ("any", "all", "layer", "activities", "unknown", "field")
    if isinstance(value, dict):
        return next((k for k in keys if k in value), None)
    tags: dict[type, str] = {
        AnyCond: "any", AllCond: "all", LayerCond: "layer", ActivitiesCond: "activities",
        UnknownCond: "unknown",
    }
    return tags.get(type(value), "field")


Condition = Annotated[
    Annotated[LayerCond, Tag("layer")]
    | Annotated[FieldCond, Tag("field")]
    | Annotated[ActivitiesCond, Tag("activities")]
    | Annotated[UnknownCond, Tag("unknown")]
    | Annotated[AnyCond, Tag("any")]
    | Annotated[AllCond, Tag("all")],
    Discriminator(_cond_tag),
]
AnyCond.model_rebuild()
AllCond.model_rebuild()


class Case(_Strict):
    """Conditions that, when all hold, give ``status`` (and optionally a specific timing)."""

    when: list[Condition] = Field(default_factory=list)
    status: Literal["required", "notice", "prohibited"]
    timing: Timing | None = None
    label: str | None = Field(None, description="What this case is, as the answer names it")


class Trigger(_Strict):
    """Activity gate plus the cases of a rule."""

    activities: list[str] | None = Field(None, description="Any of these; None = any works")
    cases: list[Case] = Field(..., min_length=1)

    _acts = field_validator("activities")(
        classmethod(lambda cls, v: v if v is None else _known_activities(v))
    )


class Rule(_Strict):
    """One catalogue procedure and when it applies."""

    id: str
    order: int = Field(1000, description="Position in the catalogue; answers follow it")
    title_ja: str
    title_en: str
    law: str
    article: str
    authority: str = Field(..., description="Key into authorities.yml 'offices'")
    layers: list[str] = Field(default_factory=list, description="Layers the rule needs")
    trigger: Trigger
    timing: Timing
    confidence: Confidence
    source: str
    last_verified: date
    notes: str = ""

    @model_validator(mode="after")
    def _layers_declared(self) -> Rule:
        used = {c.layer for case in self.trigger.cases for c in _leaves(case.when)
                if isinstance(c, LayerCond)}
        missing = used - set(self.layers)
        if missing:
            raise ValueError(f"rule {self.id}: layers used but not declared: {sorted(missing)}")
        return self


def _leaves(conds: list[Any]) -> list[Any]:
    out: list[Any] = []
    for c in conds:
        nested = c.any if isinstance(c, AnyCond) else c.all if isinstance(c, AllCond) else None
        out.extend(_leaves(nested) if nested is not None else [c])
    return out


def load_rule(path: Path) -> Rule:
    """Read and validate one rule file."""
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    try:
        rule = Rule.model_validate(data)
    except Exception as exc:
        raise ValueError(f"{path}: invalid rule: {exc}") from exc
    if rule.id != path.stem:
        raise ValueError(f"{path}: rule id {rule.id!r} does not match the file name")
    return rule


def load_rules(directory: Path = RULES_DIR) -> list[Rule]:
    """Every rule in ``directory``, in catalogue order (then by id)."""
    rules = [load_rule(p) for p in directory.glob("*.yml")]
    return sorted(rules, key=lambda r: (r.order, r.id))


@lru_cache(maxsize=1)
def default_rules() -> tuple[Rule, ...]:
    """The packaged rule catalogue, read once per process."""
    return tuple(load_rules())


def required_layers(rules: list[Rule] | tuple[Rule, ...]) -> list[str]:
    """The union of the layers the rules need, in first-use order."""
    return list(dict.fromkeys(layer for r in rules for layer in r.layers))
