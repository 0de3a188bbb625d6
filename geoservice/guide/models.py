"""Request and response models of the procedure guide (the fixed API vocabulary)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from geoservice.errors import Unprocessable

ACTIVITIES: tuple[str, ...] = (
    "new-building",
    "extension",
    "demolition",
    "land-development",
    "earthwork",
    "outdoor-advertisement",
    "tree-felling",
    "land-purchase",
    "road-occupation",
)
USES: tuple[str, ...] = (
    "detached-house",
    "apartment-for-sale-or-rent",
    "shop",
    "office",
    "welfare-facility",
    "school",
    "hospital",
    "factory",
    "warehouse",
    "solar-power",
    "other",
)
STRUCTURES: tuple[str, ...] = ("wood", "steel", "rc", "other")
STATUSES: tuple[str, ...] = ("required", "notice", "prohibited", "not-required", "undetermined")

Status = Literal["required", "notice", "prohibited", "not-required", "undetermined"]
Confidence = Literal["sourced", "partial", "unverified"]
Milestone = Literal[
    "design",
    "contract",
    "confirmation-application",
    "start-of-works",
    "felling",
    "display",
    "completion",
]
MILESTONES: tuple[str, ...] = Milestone.__args__  # type: ignore[attr-defined]


def _accepted(value: Any, accepted: tuple[str, ...], what: str) -> str:
    """Return ``value`` if it is one of ``accepted``; else raise naming the accepted values."""
    if value not in accepted:
        raise ValueError(f"unknown {what} {value!r}; accepted values: {', '.join(accepted)}")
    return str(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Parcel(_Strict):
    """A land parcel by municipality code and 地番."""

    municipality_code: str = Field(..., pattern=r"^13\d{3}$", examples=["13201"])
    chiban: str = Field(..., min_length=1)


class SiteInput(_Strict):
    """The land: exactly one of a parcel, a point (lon, lat) or a CRS84 polygon."""

    parcel: Parcel | None = None
    point: tuple[float, float] | None = None
    geometry: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SiteInput:
        given = [k for k in ("parcel", "point", "geometry") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("site needs exactly one of: parcel, point, geometry")
        if self.geometry is not None and self.geometry.get("type") not in (
            "Polygon",
            "MultiPolygon",
        ):
            raise ValueError("site.geometry must be a GeoJSON Polygon or MultiPolygon (CRS84)")
        return self


class Earthwork(_Strict):
    """Cut and fill of the planned earthwork (heights of the resulting cliffs)."""

    cut_height_m: float | None = Field(None, ge=0)
    fill_height_m: float | None = Field(None, ge=0)
    area_m2: float | None = Field(None, ge=0)


class Works(_Strict):
    """The planned works."""

    activities: list[str] = Field(..., min_length=1)
    site_area_m2: float | None = Field(None, ge=0)
    floor_area_m2: float | None = Field(None, ge=0)
    building_height_m: float | None = Field(None, ge=0)
    eaves_height_m: float | None = Field(None, ge=0)
    storeys: int | None = Field(None, ge=0)
    structure: str | None = None
    use: str | None = None
    earthwork: Earthwork | None = None
    demolition_floor_area_m2: float | None = Field(None, ge=0)
    contract_amount_yen: float | None = Field(None, ge=0)
    built_before_1981_06: bool | None = None
    hazardous_substance_facility: bool | None = None

    @field_validator("activities")
    @classmethod
    def _activities(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(_accepted(a, ACTIVITIES, "activity") for a in v))

    @field_validator("use")
    @classmethod
    def _use(cls, v: str | None) -> str | None:
        return None if v is None else _accepted(v, USES, "use")

    @field_validator("structure")
    @classmethod
    def _structure(cls, v: str | None) -> str | None:
        return None if v is None else _accepted(v, STRUCTURES, "structure")


class GuideRequest(_Strict):
    """A guide request: the land and the planned works."""

    site: SiteInput
    works: Works


def parse_request(data: Any) -> GuideRequest:
    """Validate a request body, turning validation errors into ``Unprocessable`` (422).

    Examples
    --------
    >>> body = {"site": {"point": [139.3, 35.65]}, "works": {"activities": ["dig"]}}
    >>> parse_request(body)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    geoservice.errors.Unprocessable: works.activities: ... accepted values: new-building, ...
    """
    try:
        return GuideRequest.model_validate(data)
    except ValidationError as exc:
        parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise Unprocessable("; ".join(parts)) from None


class Municipality(_Strict):
    """A municipality by code and name."""

    code: str
    name: str | None = None


class SiteFeature(_Strict):
    """A layer feature that intersects the site."""

    id: str
    properties: dict[str, Any]


class SiteLayer(_Strict):
    """The features of one layer that intersect the site."""

    layer: str
    features: list[SiteFeature]


class SiteOut(_Strict):
    """What the guide found about the land."""

    area_m2: float | None
    municipality: Municipality | None
    layers: list[SiteLayer]


class LayerReason(_Strict):
    """A reason citing a layer (and the feature that triggered, if any)."""

    layer: str
    feature_id: str | None
    detail: str


class FieldReason(_Strict):
    """A reason citing a works field compared with a limit."""

    field: str
    value: Any
    comparator: str
    limit: Any


class CaseReason(_Strict):
    """A reason citing one case of the rule: it applies (``True``) or is not known (``None``).

    An answer is ``undetermined`` when a case that would change it (a stronger status, or
    the same status with an earlier deadline) could not be decided; the reasons then list
    both what is known and what is missing, so a weaker match never hides an unknown.
    """

    case: str
    status: str
    applies: bool | None


Reason = LayerReason | FieldReason | CaseReason


class Period(_Strict):
    """A period the law states, and how it counts days: the exact deadline follows from it.

    ``起算``: the milestone day is day 1 (「…の日から起算して二週間以内」, 「起算して三十日前」).
    ``初日不算入``: the milestone day is not counted (民法140条, the default), so
    「着手する日の三十日前までに」 leaves 30 full days between the act and the milestone.

    Examples
    --------
    >>> Period(days=14, direction="after", counting="起算", wording="…").offset_days()
    13
    >>> Period(days=30, direction="before", counting="初日不算入", wording="…").offset_days()
    -31
    """

    days: int = Field(..., ge=1)
    direction: Literal["before", "after"]
    counting: Literal["起算", "初日不算入"]
    wording: str = Field(..., min_length=1, description="The statute's words, quoted")

    def offset_days(self) -> int:
        """The last day on time, relative to the milestone day (negative = before)."""
        if self.direction == "after":
            return self.days - 1 if self.counting == "起算" else self.days
        return -self.days if self.counting == "起算" else -(self.days + 1)


class Timing(_Strict):
    """When a procedure is due: the last day on time relative to a milestone.

    ``offset_days`` is that last day (negative = days before, 0 = by the milestone day);
    with a ``period`` it is derived from the law's counting rule and must agree with it.
    """

    milestone: Milestone
    offset_days: int | None = None
    text: str
    period: Period | None = None

    @model_validator(mode="after")
    def _offset_from_period(self) -> Timing:
        if self.period is None:
            return self
        derived = self.period.offset_days()
        if self.offset_days is None:
            self.offset_days = derived
        elif self.offset_days != derived:
            raise ValueError(
                f"offset_days {self.offset_days} disagrees with the period "
                f"({self.period.days} days {self.period.direction}, {self.period.counting}): "
                f"{derived}"
            )
        return self


class ProcedureOut(_Strict):
    """One catalogue procedure with its status for this land and these works."""

    id: str
    status: Status
    title_ja: str
    title_en: str
    law: str
    article: str
    authority: str
    timing: Timing
    reasons: list[Reason]
    confidence: Confidence
    source: str


class TimelineEntry(_Strict):
    """One procedure placed on the project timeline."""

    procedure_id: str
    status: Status
    milestone: Milestone
    offset_days: int | None
    text: str


SourceKind = Literal["official-api", "official-file", "synthetic", "unavailable"]


class LayerSource(_Strict):
    """Where one layer's facts for this site came from, or why the official API was not used.

    ``reason`` is set whenever the 不動産情報ライブラリ API could not be used for the layer
    (not configured, timeout, HTTP 5xx, …), also when a local file answered instead.
    """

    layer: str = Field(..., description="The layer the rules (or the panel) name")
    used: str | None = Field(..., description="The collection whose features were used")
    kind: SourceKind
    label: str = Field(..., examples=["不動産情報ライブラリ API XKT002, fetched 2026-12-06"])
    api: str | None = None
    fetched_at: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    credit: str | None = None
    disagreement: str | None = Field(None, description="API and local official file differ")


class LandPricePoint(_Strict):
    """A 地価公示 / 地価調査 point near the site."""

    id: str
    price_type: str | None
    year: str | None
    price_per_m2: float | None
    price_text: str | None
    change_rate_pct: float | None
    distance_m: float
    place: str | None
    use_category: str | None


class TransactionSummary(_Strict):
    """Transactions around the site: median price per m², count and quarter range."""

    count: int
    count_with_price_per_m2: int
    median_price_per_m2: float | None
    first_quarter: str | None
    last_quarter: str | None
    radius_m: float


class RealEstate(_Strict):
    """The land-price panel: nearest official land prices and a transaction summary."""

    land_prices: list[LandPricePoint] | None
    transactions: TransactionSummary | None
    sources: list[LayerSource]
    disclaimer: str


class GuideAnswer(_Strict):
    """The guide's answer: every catalogue procedure with a status, a timeline, hazards."""

    site: SiteOut
    procedures: list[ProcedureOut]
    timeline: list[TimelineEntry]
    hazards: dict[str, Any]
    disclaimer: str
    # Plain defaults, not default_factory: evaluate() builds answers with model_construct,
    # which inspects a factory's signature on every call (a tenth of an answer's time).
    sources: list[LayerSource] = []
    real_estate: RealEstate | None = None
    credits: list[str] = Field([], description="Credits the data's terms require")

    def procedure(self, pid: str) -> ProcedureOut:
        """The answer for procedure ``pid`` (``KeyError`` if absent)."""
        for p in self.procedures:
            if p.id == pid:
                return p
        raise KeyError(pid)
