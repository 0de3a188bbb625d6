"""The engine's decision logic: an unknown is never hidden, reasons say what was found.

Each test here pins one defect of issue 12 (an unknown stronger case hidden by a matched
weaker one, explanations of features that were found, missing compared values, timings
counted the way their law counts days, per-case lead times, rule scope).
"""

from __future__ import annotations

from typing import Any

import pytest

from geoservice.guide import FeatureHit, LayerFacts, SiteFacts, Works, evaluate
from geoservice.guide.models import CaseReason, FieldReason, LayerReason, ProcedureOut
from tests.guide_rules import RULES, all_layers_full

SURFACE = FeatureHit("h1", {"name": "羽田", "surface": "水平表面", "limit_height_m": 45})


def answer(layers: dict[str, LayerFacts], code: str = "13111", area: float = 1000.0,
           **fields: Any) -> Any:
    acts = fields.pop("activities", ["new-building"])
    site = SiteFacts(area_m2=area, municipality_code=code, layers=all_layers_full(**layers))
    return evaluate(site, Works(activities=acts, **fields), RULES)


def proc(layers: dict[str, LayerFacts], pid: str, **kw: Any) -> ProcedureOut:
    return answer(layers, **kw).procedure(pid)


def layer_details(p: ProcedureOut) -> list[str]:
    return [r.detail for r in p.reasons if isinstance(r, LayerReason)]


# ------------------------------------------------ 1. a weaker match never hides a stronger unknown


def test_tall_building_without_surface_coverage_is_undetermined_with_both_reasons() -> None:
    p = proc({"airport_height_surfaces": LayerFacts("none")}, "aviation-height-check",
             building_height_m=120)
    assert p.status == "undetermined"
    known = [r for r in p.reasons if isinstance(r, CaseReason) and r.applies is True]
    open_ = [r for r in p.reasons if isinstance(r, CaseReason) and r.applies is None]
    assert [r.status for r in known] == ["notice"]
    assert [r.status for r in open_] == ["prohibited"]
    assert FieldReason(field="building_height_m", value=120, comparator=">=", limit=60) in (
        p.reasons
    )
    assert any("does not cover" in d for d in layer_details(p))


def test_tall_building_under_a_known_surface_keeps_the_notice() -> None:
    p = proc({"airport_height_surfaces": LayerFacts("full", (SURFACE,))},
             "aviation-height-check", building_height_m=40)
    assert p.status == "not-required"
    p = proc({"airport_height_surfaces": LayerFacts("full")}, "aviation-height-check",
             building_height_m=120)
    assert p.status == "notice"


def test_outdoor_advertising_with_partial_zoning_is_undetermined() -> None:
    commercial = FeatureHit("z2", {"function": "商業地域"})
    p = proc({"zoning_use_districts": LayerFacts("partial", (commercial,))},
             "outdoor-advertising-permit", activities=["outdoor-advertisement"])
    assert p.status == "undetermined"
    assert any(isinstance(r, CaseReason) and r.applies is True and r.status == "required"
               for r in p.reasons)
    assert any("covers only part" in d for d in layer_details(p))


def test_a_layer_unusable_for_a_stated_reason_is_undetermined_with_that_reason() -> None:
    down = LayerFacts("none", reason="the official API could not be reached (HTTP 503)")
    p = proc({"area_divisions": down}, "development-permit", activities=["land-development"])
    assert p.status == "undetermined"
    assert any("HTTP 503" in d for d in layer_details(p))


# ------------------------------------------------ 2. reasons say what was actually found


def test_inside_a_surface_under_its_limit_says_so() -> None:
    p = proc({"airport_height_surfaces": LayerFacts("full", (SURFACE,))},
             "aviation-height-check", building_height_m=40)
    cited = [r for r in p.reasons if isinstance(r, LayerReason) and r.feature_id == "h1"]
    assert cited and "limit 45" in cited[0].detail
    assert not any("outside" in d for d in layer_details(p))
    assert FieldReason(field="building_height_m", value=40, comparator=">", limit=45) in (
        p.reasons
    )


def test_a_zone_that_does_not_match_the_filter_is_named() -> None:
    urban = FeatureHit("ad1", {"kubun": "市街化区域", "metropolitan_zone": "既成市街地"})
    p = proc({"area_divisions": LayerFacts("full", (urban,))}, "development-permit",
             activities=["land-development"], area=400, code="13122")
    assert p.status == "not-required"
    cited = [r for r in p.reasons if isinstance(r, LayerReason) and r.feature_id == "ad1"]
    assert cited and all("市街化区域" in r.detail for r in cited)
    assert not any("outside every" in d for d in layer_details(p))


# ------------------------------------------------ 3. a missing compared value is not a "no"


def test_feature_without_the_compared_property_is_undetermined() -> None:
    blank = FeatureHit("h2", {"name": "羽田", "surface": "円錐表面"})
    p = proc({"airport_height_surfaces": LayerFacts("full", (blank,))},
             "aviation-height-check", building_height_m=40)
    assert p.status == "undetermined"
    assert any(r.feature_id == "h2" and "limit_height_m" in r.detail
               for r in p.reasons if isinstance(r, LayerReason))


def test_feature_without_the_filtered_property_is_undetermined() -> None:
    blank = FeatureHit("ad3", {"name": "no kubun"})
    p = proc({"area_divisions": LayerFacts("full", (blank,))}, "land-transaction-notice",
             activities=["land-purchase"], area=20000)
    assert p.status == "undetermined"
    assert any(r.feature_id == "ad3" and "kubun" in r.detail
               for r in p.reasons if isinstance(r, LayerReason))


# ------------------------------------------------ 4. deadlines counted the way the law counts


def test_land_transaction_notice_is_due_on_contract_day_plus_13() -> None:
    urban = FeatureHit("ad1", {"kubun": "市街化区域"})
    a = answer({"area_divisions": LayerFacts("full", (urban,))}, area=2000,
               activities=["land-purchase"])
    p = a.procedure("land-transaction-notice")
    assert p.status == "notice"
    assert p.timing.offset_days == 13
    assert p.timing.period is not None and p.timing.period.counting == "起算"
    entry = next(e for e in a.timeline if e.procedure_id == "land-transaction-notice")
    assert entry.offset_days == 13


def test_every_period_in_the_rules_states_how_it_counts() -> None:
    for rule in RULES:
        timings = [rule.timing] + [c.timing for c in rule.trigger.cases if c.timing]
        for t in timings:
            if t.period is not None:
                assert t.period.counting in ("起算", "初日不算入"), rule.id
                assert t.period.wording, rule.id


# ------------------------------------------------ 5. mid-high-rise lead time per case


COMMERCIAL = {
    "zoning_use_districts": LayerFacts("full", (FeatureHit("z2", {"function": "商業地域"}),)),
}


@pytest.mark.parametrize(
    ("floor", "height", "offset"),
    [(1000, 20, -16), (1000.01, 15, -16), (1000.01, 15.01, -31), (5000, 40, -31)],
)
def test_mid_high_rise_lead_time_by_size(floor: float, height: float, offset: int) -> None:
    p = proc(COMMERCIAL, "mid-high-rise-notice", floor_area_m2=floor, building_height_m=height)
    assert p.status == "notice"
    assert p.timing.offset_days == offset


def test_mid_high_rise_unknown_floor_area_is_undetermined_on_the_early_date() -> None:
    p = proc(COMMERCIAL, "mid-high-rise-notice", building_height_m=20)
    assert p.status == "undetermined"
    assert p.timing.offset_days == -31
    assert FieldReason(field="floor_area_m2", value=None, comparator=">", limit=1000) in (
        p.reasons
    )


# ------------------------------------------------ 6. rule scope


@pytest.mark.parametrize(
    ("layer", "hit"),
    [
        ("natural_parks", FeatureHit("np1", {"name": "高尾", "zone_type": "特別地域"})),
        ("scenic_districts", FeatureHit("sd1", {"name": "高尾風致地区"})),
        ("landscape_districts", FeatureHit("ld1", {"name": "高尾駅前", "kind": "景観地区"})),
    ],
)
def test_outdoor_advertising_prohibited_where_we_have_a_layer(layer: str, hit: FeatureHit) -> None:
    commercial = FeatureHit("z2", {"function": "商業地域"})
    p = proc({"zoning_use_districts": LayerFacts("full", (commercial,)),
              layer: LayerFacts("full", (hit,))},
             "outdoor-advertising-permit", activities=["outdoor-advertisement"])
    assert p.status == "prohibited"
    assert any(isinstance(r, LayerReason) and r.feature_id == hit.id for r in p.reasons)


def test_outdoor_advertising_without_a_prohibited_area_layer_is_undetermined() -> None:
    commercial = FeatureHit("z2", {"function": "商業地域"})
    ordinary = FeatureHit("np2", {"name": "滝山", "zone_type": "普通地域"})
    p = proc({"zoning_use_districts": LayerFacts("full", (commercial,)),
              "natural_parks": LayerFacts("full", (ordinary,))},
             "outdoor-advertising-permit", activities=["outdoor-advertisement"])
    assert p.status == "undetermined"
    assert any(isinstance(r, CaseReason) and r.applies is True and r.status == "required"
               for r in p.reasons)
    unchecked = [r for r in p.reasons if isinstance(r, LayerReason) and r.layer == "unchecked"]
    assert unchecked and "保安林" in unchecked[0].detail


def test_landscape_notice_does_not_apply_tama_thresholds_to_the_islands() -> None:
    p = proc({}, "landscape-notice", code="13361", building_height_m=50, floor_area_m2=100)
    assert p.status == "undetermined"
    tama = proc({}, "landscape-notice", code="13201", building_height_m=50, floor_area_m2=100)
    assert tama.status == "notice"


@pytest.mark.parametrize(
    ("area", "solar", "expected"),
    [(5000, True, "notice"), (5000.01, True, "required"), (5000.01, False, "notice"),
     (10000.01, False, "required")],
)
def test_forest_development_solar_case(area: float, solar: bool, expected: str) -> None:
    woods = LayerFacts("full", (FeatureHit("f1", {"name": "森"}),))
    forest = {"regional_forest_plan_forests": woods}
    p = proc(forest, "forest-development-permit", activities=["land-development"],
             area=area, use="solar-power" if solar else "other")
    assert p.status == expected


def test_undetermined_keeps_the_general_timing_when_no_case_is_known() -> None:
    p = proc({"area_divisions": LayerFacts("none")}, "development-permit",
             activities=["land-development"])
    assert p.status == "undetermined"
    assert not p.timing.text.startswith("市街化調整区域")  # no case's own text: none is known
    parks = proc({"natural_parks": LayerFacts("none")}, "natural-park-permit",
                 activities=["earthwork"])
    assert parks.status == "undetermined"
    assert parks.timing.offset_days == -30  # the ordinary-zone notice is the earlier date
