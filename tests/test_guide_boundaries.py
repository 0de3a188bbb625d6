"""Boundary table: every threshold of every rule, just below, at and just above.

Written by hand from ``../shared/reference/procedures.md`` and the laws each rule cites —
NOT generated from the rules YAML — so a comparator flipped (以上 ``>=`` vs 超 ``>``) or a
threshold moved by one unit in the rules fails here.  ``make mutation`` checks that it does
(``tools/mutation.py``).  Each row isolates one case of a rule (the other cases are kept
clearly off), so a mutant of one case cannot hide behind another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from geoservice.guide import FeatureHit, LayerFacts, SiteFacts, Works, evaluate
from geoservice.guide.models import FieldReason, ProcedureOut
from tests.guide_rules import RULES, all_layers_full

WARD, HACHIOJI, OME, OSHIMA = "13122", "13201", "13205", "13361"  # ward, delegated, Tama, island
NO = "not-required"
GE, GT = ">=", ">"  # 以上, 超


@dataclass(frozen=True)
class Row:
    """One boundary case: a site and works, and what the law says the answer is."""

    rule: str
    what: str
    expected: str
    works: dict[str, Any]
    code: str = WARD
    area: float = 1000.0
    layers: dict[str, LayerFacts] = field(default_factory=dict)
    offset: int | None = None   # expected last day vs the milestone, from the law's counting
    text: str | None = None     # a fragment the timing text must hold (which case decided)


def one(layer: str, fid: str = "f1", **props: Any) -> dict[str, LayerFacts]:
    """The site lies in one feature of ``layer`` (keyword ``_`` for ``-``)."""
    return {layer: LayerFacts("full", (FeatureHit(fid, props),))}


def kubun(name: str, zone: str = "none") -> dict[str, LayerFacts]:
    return one("area_divisions", "ad", kubun=name, metropolitan_zone=zone)


def zoning(function: str) -> dict[str, LayerFacts]:
    return one("zoning_use_districts", "z", function=function)


def edge(
    rule: str, what: str, op: str, limit: float, make: Callable[[float], dict[str, Any]],
    yes: str, *, step: float = 0.01, offset: int | None = None, no: str = NO,
    no_offset: int | None = None, **common: Any,
) -> list[Row]:
    """Rows below, at and above ``limit`` for ``op`` (``>=``: at is yes; ``>``: at is no).

    ``make(value)`` gives the row's fields: ``works`` and optionally ``area``; ``no`` is the
    answer on the other side (a weaker case of the same rule, or ``not-required``).
    """
    rows = []
    for value in (limit - step, limit, limit + step):
        hit = value >= limit if op == GE else value > limit
        parts = {**common, **make(value)}
        rows.append(Row(rule, f"{what} {op} {limit}: {value:g}", yes if hit else no,
                        offset=offset if hit else no_offset, **parts))
    return rows


def area(acts: list[str], **fields: Any) -> Callable[[float], dict[str, Any]]:
    """The site area is the compared value."""
    return lambda v: {"area": v, "works": {"activities": acts, **fields}}


def works(name: str, acts: list[str], **fields: Any) -> Callable[[float], dict[str, Any]]:
    """A works field (``earthwork.x`` for the earthwork block) is the compared value."""
    def make(v: float) -> dict[str, Any]:
        w: dict[str, Any] = {"activities": acts, **fields}
        if name.startswith("earthwork."):
            w["earthwork"] = {**w.get("earthwork", {}), name.split(".", 1)[1]: v}
        else:
            w[name] = int(v) if name == "storeys" else v
        return {"works": w}
    return make


LAND, BUY, BUILD = ["land-development"], ["land-purchase"], ["new-building"]
LOW = "第一種低層住居専用地域"
SMALL = {"floor_area_m2": 300, "building_height_m": 9}

ROWS: list[Row] = [
    # 都市計画法29条, 施行令19条: 市街化区域 1,000 m2 以上;
    # 特別区・既成市街地・近郊整備地帯 500 m2 以上; 非線引き 3,000 m2 以上;
    # 都市計画区域外 1 ha 以上.
    *edge("development-permit", "ward 市街化区域", GE, 500, area(LAND), "required",
          layers=kubun("市街化区域")),
    *edge("development-permit", "近郊整備地帯", GE, 500, area(LAND), "required",
          code=HACHIOJI, layers=kubun("市街化区域", "近郊整備地帯")),
    *edge("development-permit", "市街化区域", GE, 1000, area(LAND), "required",
          code=OME, layers=kubun("市街化区域")),
    *edge("development-permit", "非線引き", GE, 3000, area(LAND), "required",
          code=OME, layers=kubun("非線引き都市計画区域")),
    *edge("development-permit", "都市計画区域外", GE, 10000, area(LAND), "required",
          code=OME, layers=kubun("都市計画区域外")),
    # 国土利用計画法23条2項: 2,000 / 5,000 / 10,000 m2 以上; last day = contract day + 13 (起算).
    *edge("land-transaction-notice", "市街化区域", GE, 2000, area(BUY), "notice", offset=13,
          layers=kubun("市街化区域")),
    *edge("land-transaction-notice", "市街化調整区域", GE, 5000, area(BUY), "notice",
          layers=kubun("市街化調整区域")),
    *edge("land-transaction-notice", "非線引き", GE, 5000, area(BUY), "notice",
          layers=kubun("非線引き都市計画区域")),
    *edge("land-transaction-notice", "都市計画区域外", GE, 10000, area(BUY), "notice",
          layers=kubun("都市計画区域外")),
    # 公拡法4条: 都市計画施設等 200 m2 以上; 市街化区域 5,000 m2 以上; その他 10,000 m2 以上.
    *edge("public-land-notice", "都市計画施設", GE, 200, area(BUY), "notice", offset=-21,
          layers={**one("urban_planning_facilities", name="道路"), **kubun("市街化区域")}),
    *edge("public-land-notice", "市街化区域", GE, 5000, area(BUY), "notice",
          layers=kubun("市街化区域")),
    *edge("public-land-notice", "市街化調整区域", GE, 10000, area(BUY), "notice",
          layers=kubun("市街化調整区域")),
    # 景観: ward 60 m / 30,000 m2 以上; Tama 45 m / 15,000 m2 以上; districts their own 以上.
    *edge("landscape-notice", "ward height", GE, 60, works("building_height_m", BUILD,
          floor_area_m2=100), "notice", offset=-31),
    *edge("landscape-notice", "ward floor area", GE, 30000, works("floor_area_m2", BUILD,
          building_height_m=10), "notice"),
    *edge("landscape-notice", "Tama height", GE, 45, works("building_height_m", BUILD,
          floor_area_m2=100), "notice", code=OME),
    *edge("landscape-notice", "Tama floor area", GE, 15000, works("floor_area_m2", BUILD,
          building_height_m=10), "notice", code=OME),
    *edge("landscape-notice", "axis height", GE, 15, works("building_height_m", BUILD,
          floor_area_m2=100), "notice",
          layers=one("landscape_districts", kind="景観基本軸", name="軸", height_threshold_m=15,
                     floor_area_threshold_m2=1000)),
    *edge("landscape-notice", "axis floor area", GE, 1000, works("floor_area_m2", BUILD,
          building_height_m=10), "notice",
          layers=one("landscape_districts", kind="景観基本軸", name="軸", height_threshold_m=15,
                     floor_area_threshold_m2=1000)),
    # 宅造法: 盛土 1 m 超, 切土 2 m 超, 500 m2 超 (in a regulation area).
    *edge("fill-cut-permit", "fill", GT, 1, works("earthwork.fill_height_m", ["earthwork"],
          earthwork={"cut_height_m": 0, "area_m2": 100}), "required",
          layers=one("earthwork_regulation_areas", name="丘陵")),
    *edge("fill-cut-permit", "cut", GT, 2, works("earthwork.cut_height_m", ["earthwork"],
          earthwork={"fill_height_m": 0, "area_m2": 100}), "required",
          layers=one("earthwork_regulation_areas", name="丘陵")),
    *edge("fill-cut-permit", "area", GT, 500, works("earthwork.area_m2", ["earthwork"],
          earthwork={"fill_height_m": 0, "cut_height_m": 0}), "required",
          layers=one("earthwork_regulation_areas", name="丘陵")),
    # 土壌汚染対策法4条1項: 3,000 m2 以上 (900 m2 以上 with a hazardous-substance facility).
    *edge("soil-alteration-notice", "area", GE, 3000, works("earthwork.area_m2", ["earthwork"],
          hazardous_substance_facility=False), "notice", offset=-31, area=10000),
    *edge("soil-alteration-notice", "hazardous facility", GE, 900,
          works("earthwork.area_m2", ["earthwork"], hazardous_substance_facility=True),
          "notice", area=10000),
    # 環境確保条例117条: 3,000 m2 以上. 自然保護条例14条 緑化計画: 1,000 m2 以上.
    *edge("tokyo-land-history-survey", "site", GE, 3000, area(BUILD), "notice"),
    *edge("greening-plan", "site", GE, 1000, area(BUILD), "notice"),
    # 自然保護条例47・48条: 乙地域 (風致地区, 市街化調整区域) 1,000 m2 以上; 甲地域 3,000 m2 以上.
    *edge("nature-protection-development-permit", "風致地区", GE, 1000, area(LAND), "required",
          layers={**one("scenic_districts", name="風致"), **kubun("市街化区域")}),
    *edge("nature-protection-development-permit", "市街化調整区域", GE, 1000, area(LAND),
          "required", layers=kubun("市街化調整区域")),
    *edge("nature-protection-development-permit", "甲地域", GE, 3000, area(LAND), "required",
          layers=kubun("市街化区域")),
    # 中高層条例2条: low-rise zones 3 storeys 以上 or eaves 7 m 超; elsewhere 10 m 超.
    # 5条: sign 30 clear days before when 延べ面積 > 1,000 m2 and 高さ > 15 m, else 15.
    *edge("mid-high-rise-notice", "low-rise storeys", GE, 3, works("storeys", BUILD,
          eaves_height_m=6, **SMALL), "notice", step=1, offset=-16, layers=zoning(LOW)),
    *edge("mid-high-rise-notice", "low-rise eaves", GT, 7, works("eaves_height_m", BUILD,
          storeys=2, **SMALL), "notice", offset=-16, layers=zoning(LOW)),
    *edge("mid-high-rise-notice", "low-rise large storeys", GE, 3, works("storeys", BUILD,
          eaves_height_m=6, floor_area_m2=2000, building_height_m=16), "notice", step=1,
          offset=-31, layers=zoning(LOW)),
    *edge("mid-high-rise-notice", "low-rise large eaves", GT, 7, works("eaves_height_m", BUILD,
          storeys=2, floor_area_m2=2000, building_height_m=16), "notice", offset=-31,
          layers=zoning(LOW)),
    *edge("mid-high-rise-notice", "height", GT, 10, works("building_height_m", BUILD,
          floor_area_m2=300), "notice", offset=-16, layers=zoning("商業地域")),
    *edge("mid-high-rise-notice", "large floor area", GT, 1000,
          works("floor_area_m2", BUILD, building_height_m=20), "notice", offset=-31,
          no="notice", no_offset=-16, layers=zoning("商業地域")),
    *edge("mid-high-rise-notice", "large height", GT, 15, works("building_height_m", BUILD,
          floor_area_m2=2000), "notice", offset=-31, no="notice", no_offset=-16,
          layers=zoning("商業地域")),
    *edge("mid-high-rise-notice", "low-rise large floor area", GT, 1000,
          works("floor_area_m2", BUILD, storeys=3, eaves_height_m=6, building_height_m=16),
          "notice", offset=-31, no="notice", no_offset=-16, layers=zoning(LOW)),
    *edge("mid-high-rise-notice", "low-rise large height", GT, 15,
          works("building_height_m", BUILD, storeys=3, eaves_height_m=6, floor_area_m2=2000),
          "notice", offset=-31, no="notice", no_offset=-16, layers=zoning(LOW)),
    # 建設リサイクル法 施行令2条: 解体 80 m2 以上, 新築 500 m2 以上, 土木 500万円 以上;
    # due 7 clear days before the works.
    *edge("construction-recycling-notice", "demolition", GE, 80,
          works("demolition_floor_area_m2", ["demolition"]), "notice", offset=-8),
    *edge("construction-recycling-notice", "new build", GE, 500,
          works("floor_area_m2", BUILD), "notice"),
    *edge("construction-recycling-notice", "civil works", GE, 5_000_000,
          works("contract_amount_yen", ["earthwork"]), "notice", step=1),
    # 建設業法 施行令1条の2: minor = 建築一式 1,500万円未満 or 木造住宅 150 m2 未満;
    # other work 500万円未満.
    *edge("construction-business-licence", "building work", GE, 15_000_000,
          works("contract_amount_yen", BUILD, structure="rc", use="office"), "required", step=1),
    *edge("construction-business-licence", "wooden house", GE, 150, works("floor_area_m2", BUILD,
          contract_amount_yen=20_000_000, structure="wood", use="detached-house"), "required"),
    *edge("construction-business-licence", "other work", GE, 5_000_000,
          works("contract_amount_yen", ["earthwork"]), "required", step=1),
    # 航空法51条: 60 m 以上 → obstruction lights; 49条: above the surface (超) → prohibited.
    *edge("aviation-height-check", "lights", GE, 60, works("building_height_m", BUILD),
          "notice"),
    *edge("aviation-height-check", "surface", GT, 45, works("building_height_m", BUILD),
          "prohibited", layers=one("airport_height_surfaces", name="羽田", limit_height_m=45)),
    # 森林法10条の2, 施行令2条の3: 1 ha 超 (太陽光 0.5 ha 超) → permit; else felling notice.
    *edge("forest-development-permit", "development", GT, 10000, area(LAND, use="other"),
          "required", offset=0, no="notice", no_offset=-30,
          layers=one("regional_forest_plan_forests", name="森")),
    *edge("forest-development-permit", "solar", GT, 5000, area(LAND, use="solar-power"),
          "required", offset=0, no="notice", no_offset=-30,
          layers=one("regional_forest_plan_forests", name="森")),
    # 緊急輸送道路沿道: taller than half the road width (超), built before June 1981.
    *edge("emergency-road-seismic-diagnosis", "height", GT, 15, works("building_height_m", BUY,
          built_before_1981_06=True), "required",
          layers=one("emergency_transport_roads", name="道", specified=True, half_width_m=15)),
    # 駐車場条例: 整備地区・商業地域 1,500 m2 超; elsewhere in 市街化区域 2,000 m2 超.
    *edge("parking-provision", "parking district", GT, 1500, works("floor_area_m2", BUILD,
          use="shop"), "required", layers={**one("parking_districts", name="駐車場整備地区"),
                                           **zoning(LOW)}),
    *edge("parking-provision", "commercial", GT, 1500, works("floor_area_m2", BUILD, use="shop"),
          "required", layers=zoning("近隣商業地域")),
    *edge("parking-provision", "elsewhere", GT, 2000, works("floor_area_m2", BUILD, use="shop"),
          "required", layers={**zoning(LOW), **kubun("市街化区域")}),
    # 福祉のまちづくり条例: shops/offices/housing from 1,000 m2 (the rule's unverified figure).
    *edge("welfare-town-notice", "floor area", GE, 1000, works("floor_area_m2", BUILD,
          use="shop"), "notice", offset=-31),
]


def _answer(row: Row) -> ProcedureOut:
    site = SiteFacts(area_m2=row.area, municipality_code=row.code,
                     layers=all_layers_full(**row.layers))
    return evaluate(site, Works(**row.works), RULES).procedure(row.rule)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.rule}: {r.what}")
def test_boundary(row: Row) -> None:
    p = _answer(row)
    assert p.status == row.expected, [r.model_dump() for r in p.reasons]
    if row.offset is not None:
        assert p.timing.offset_days == row.offset


# 建築基準法6条 (2025-04): wooden with 2 storeys 以上 or floor area 200 m2 超 → 新2号 (full review);
# wooden single storey of 200 m2 以下 → 新3号.  Both need confirmation: the review type shows in
# the timing, and a 新2号 answer must not also cite the 新3号 limits.
@pytest.mark.parametrize(
    ("storeys", "floor", "review"),
    [(1, 100, "新3号"), (2, 100, "新2号"), (1, 200, "新3号"), (1, 200.01, "新2号"),
     (1, 199.99, "新3号"), (3, 100, "新2号")],
)
def test_building_confirmation_review_type(storeys: int, floor: float, review: str) -> None:
    row = Row("building-confirmation", "review", "required",
              {"activities": BUILD, "structure": "wood", "storeys": storeys,
               "floor_area_m2": floor})
    p = _answer(row)
    assert p.status == "required" and p.timing.text.startswith(review)
    if review == "新2号":
        assert not any(isinstance(r, FieldReason) and r.comparator in ("<", "<=")
                       for r in p.reasons)


# Deadlines without a threshold, as each law counts them.
@pytest.mark.parametrize(
    ("rule", "layers", "acts", "milestone", "offset", "counting"),
    [
        ("buried-cultural-property-notice", one("buried_cultural_properties", name="遺跡"),
         ["earthwork"], "start-of-works", -61, "初日不算入"),
        ("district-plan-notice", one("district_plans", name="地区計画"), ["earthwork"],
         "start-of-works", -31, "初日不算入"),
        ("natural-park-permit", one("natural_parks", name="滝山", zone_type="普通地域"),
         ["earthwork"], "start-of-works", -30, "起算"),
        ("forest-development-permit", one("regional_forest_plan_forests", name="森"),
         ["tree-felling"], "felling", -30, "起算"),
    ],
)
def test_deadline_counting(rule: str, layers: dict[str, LayerFacts], acts: list[str],
                           milestone: str, offset: int, counting: str) -> None:
    p = _answer(Row(rule, "deadline", "", {"activities": acts}, layers=layers))
    assert p.status in ("notice", "required")
    assert (p.timing.milestone, p.timing.offset_days) == (milestone, offset)
    assert p.timing.period is not None and p.timing.period.counting == counting


def _compares(node: Any) -> bool:
    """Whether a rule (as plain data) holds a comparator anywhere."""
    if isinstance(node, dict):
        return node.get("comparator") is not None or any(_compares(v) for v in node.values())
    return isinstance(node, list) and any(_compares(v) for v in node)


def test_every_threshold_rule_has_rows() -> None:
    with_limits = {r.id for r in RULES if _compares(r.trigger.model_dump())}
    covered = {row.rule for row in ROWS} | {"building-confirmation"}
    assert with_limits - covered == set()
