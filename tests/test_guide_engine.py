"""Tests of the procedure guide: rules at every threshold, coverage, zones, authorities."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from shapely.geometry import box, shape

from geoservice.catalogue import LayerSpec, load_layer
from geoservice.errors import NotFound, Unprocessable
from geoservice.features import Feature
from geoservice.guide import (
    FeatureHit,
    GuideService,
    LayerFacts,
    LayerIndex,
    SiteFacts,
    SpatialIndex,
    Works,
    area_m2,
    default_authorities,
    evaluate,
    parse_request,
    required_layers,
)
from geoservice.guide.models import MILESTONES, FieldReason, LayerReason
from tests.guide_rules import RULES, all_layers_full

ROOT = Path(__file__).resolve().parents[1]

# The catalogue of shared/reference/procedures.md: id -> confidence.
CATALOGUE = {
    "building-confirmation": "partial",
    "development-permit": "sourced",
    "land-transaction-notice": "sourced",
    "public-land-notice": "partial",
    "buried-cultural-property-notice": "sourced",
    "landscape-notice": "partial",
    "scenic-district-permit": "partial",
    "fill-cut-permit": "sourced",
    "sediment-specific-development-permit": "sourced",
    "sediment-warning-zone-disclosure": "sourced",
    "soil-alteration-notice": "sourced",
    "tokyo-land-history-survey": "sourced",
    "greening-plan": "sourced",
    "nature-protection-development-permit": "sourced",
    "mid-high-rise-notice": "sourced",
    "construction-recycling-notice": "sourced",
    "outdoor-advertising-permit": "sourced",
    "construction-business-licence": "sourced",
    "road-occupancy-permit": "sourced",
    "aviation-height-check": "sourced",
    "river-conservation-permit": "sourced",
    "natural-park-permit": "sourced",
    "farmland-conversion": "sourced",
    "forest-development-permit": "sourced",
    "emergency-road-seismic-diagnosis": "sourced",
    "urban-facility-building-permit": "unverified",
    "district-plan-notice": "unverified",
    "parking-provision": "sourced",
    "welfare-town-notice": "partial",
    "steep-slope-permit": "partial",
    "landslide-prevention-permit": "partial",
    "disaster-risk-area-building": "partial",
}
FOUNDATION_LAYERS = {
    "admin-boundaries", "sediment-special-zones", "sediment-warning-zones", "landslide-zones",
    "zoning-use-districts", "height-control-districts", "fire-prevention-districts", "parcels",
}
LOW_RISE = "第一種低層住居専用地域"


def hit(fid: str, **props: Any) -> FeatureHit:
    return FeatureHit(fid, props)


def full(*hits: FeatureHit) -> LayerFacts:
    return LayerFacts("full", hits)


URBAN = hit("ad1", kubun="市街化区域", metropolitan_zone="既成市街地")
CONTROL = hit("ad2", kubun="市街化調整区域", metropolitan_zone="近郊整備地帯")


def site(
    area: float | None = 1000.0, code: str | None = "13122", **layers: LayerFacts
) -> SiteFacts:
    return SiteFacts(area_m2=area, municipality_code=code, layers=all_layers_full(**layers))


def works(*activities: str, **fields: Any) -> Works:
    return Works(activities=list(activities), **fields)


def status(s: SiteFacts, w: Works, pid: str) -> str:
    return evaluate(s, w, RULES).procedure(pid).status


# --------------------------------------------------------------- catalogue completeness


def test_rule_ids_are_exactly_the_catalogue_in_its_order() -> None:
    assert [r.id for r in RULES] == list(CATALOGUE)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_metadata(rule: Any) -> None:
    assert rule.confidence == CATALOGUE[rule.id]
    assert rule.source.startswith("https://")
    assert rule.last_verified.year >= 2024
    assert rule.timing.milestone in MILESTONES


@pytest.mark.parametrize(
    ("s", "w"),
    [
        (site(), works("new-building")),
        (SiteFacts(area_m2=None), works("road-occupation")),
        (site(area_divisions=full(URBAN)), works("land-purchase", "demolition")),
    ],
)
def test_every_catalogue_id_in_every_answer(s: SiteFacts, w: Works) -> None:
    answer = evaluate(s, w, RULES)
    assert [p.id for p in answer.procedures] == [r.id for r in RULES]
    assert {p.id for p in answer.procedures} == set(CATALOGUE)
    for p in answer.procedures:
        assert p.reasons, f"{p.id} gives no reason for {p.status}"
        assert p.authority and p.source and p.confidence
    assert "not a legal determination" in answer.disclaimer


def test_not_required_says_why() -> None:
    p = evaluate(site(), works("new-building"), RULES).procedure("road-occupancy-permit")
    assert p.status == "not-required"
    assert p.reasons == [FieldReason(field="activities", value=["new-building"],
                                     comparator="any-of", limit=["road-occupation"])]


def test_answer_serialises_to_the_fixed_vocabulary() -> None:
    answer = evaluate(site(), works("new-building", floor_area_m2=600), RULES)
    body = json.loads(answer.model_dump_json())
    assert set(body) == {"site", "procedures", "timeline", "hazards", "disclaimer", "sources",
                         "real_estate", "credits"}
    assert set(body["site"]) == {"area_m2", "municipality", "layers"}
    assert body["site"]["municipality"] == {"code": "13122", "name": "葛飾区"}
    assert set(body["procedures"][0]) == {
        "id", "status", "title_ja", "title_en", "law", "article", "authority", "timing",
        "reasons", "confidence", "source",
    }
    assert set(body["procedures"][0]["timing"]) == {"milestone", "offset_days", "text", "period"}


# --------------------------------------------------------------- thresholds and comparators


@pytest.mark.parametrize(("area", "expected"), [(499.99, "not-required"), (500, "required")])
def test_development_permit_in_a_ward_at_500(area: float, expected: str) -> None:
    s = site(area, "13122", area_divisions=full(URBAN))
    p = evaluate(s, works("land-development"), RULES).procedure("development-permit")
    assert p.status == expected
    assert FieldReason(field="site_area_m2", value=area, comparator=">=", limit=500) in p.reasons


@pytest.mark.parametrize(("area", "expected"), [(999.99, "not-required"), (1000, "required")])
def test_development_permit_outside_metropolitan_zones_at_1000(area: float, expected: str) -> None:
    plain = hit("ad9", kubun="市街化区域", metropolitan_zone="none")
    s = site(area, "13205", area_divisions=full(plain))
    assert status(s, works("land-development"), "development-permit") == expected


def test_development_permit_in_control_area_any_size_even_for_a_point() -> None:
    s = SiteFacts(None, "13201", layers=all_layers_full(area_divisions=full(CONTROL)))
    w = works("land-development", use="detached-house")
    dev = [r for r in RULES if r.id == "development-permit"]
    assert evaluate(s, w, dev).procedure("development-permit").status == "required"
    with pytest.raises(Unprocessable, match="nature-protection-development-permit"):
        evaluate(s, w, RULES)  # other triggered rules do compare the site area


@pytest.mark.parametrize(
    ("kubun", "area", "expected"),
    [
        ("市街化区域", 1999, "not-required"),
        ("市街化区域", 2000, "notice"),
        ("市街化調整区域", 4999, "not-required"),
        ("市街化調整区域", 5000, "notice"),
        ("都市計画区域外", 9999, "not-required"),
        ("都市計画区域外", 10000, "notice"),
    ],
)
def test_land_transaction_notice(kubun: str, area: float, expected: str) -> None:
    s = site(area, area_divisions=full(hit("a", kubun=kubun)))
    p = evaluate(s, works("land-purchase"), RULES).procedure("land-transaction-notice")
    assert p.status == expected
    assert p.timing.milestone == "contract" and p.timing.offset_days == 13


@pytest.mark.parametrize(
    ("earthwork", "expected"),
    [
        ({"fill_height_m": 1.0, "cut_height_m": 0, "area_m2": 100}, "not-required"),
        ({"fill_height_m": 1.01, "cut_height_m": 0, "area_m2": 100}, "required"),
        ({"fill_height_m": 0, "cut_height_m": 2.0, "area_m2": 100}, "not-required"),
        ({"fill_height_m": 0, "cut_height_m": 2.01, "area_m2": 100}, "required"),
        ({"fill_height_m": 0, "cut_height_m": 0, "area_m2": 500}, "not-required"),
        ({"fill_height_m": 0, "cut_height_m": 0, "area_m2": 500.01}, "required"),
        ({"fill_height_m": 0.5}, "undetermined"),
    ],
)
def test_fill_cut_permit_boundaries(earthwork: dict[str, float], expected: str) -> None:
    s = site(earthwork_regulation_areas=full(hit("e1", name="丘陵", koujinum="告示1")))
    assert status(s, works("earthwork", earthwork=earthwork), "fill-cut-permit") == expected


def test_fill_cut_permit_outside_regulation_area() -> None:
    w = works("earthwork", earthwork={"fill_height_m": 5, "cut_height_m": 5, "area_m2": 5000})
    assert status(site(), w, "fill-cut-permit") == "not-required"


@pytest.mark.parametrize(("floor", "expected"), [(79, "not-required"), (80, "notice")])
def test_demolition_recycling_notice(floor: float, expected: str) -> None:
    w = works("demolition", demolition_floor_area_m2=floor)
    assert status(site(), w, "construction-recycling-notice") == expected


@pytest.mark.parametrize(("floor", "expected"), [(499.9, "not-required"), (500, "notice")])
def test_new_building_recycling_notice(floor: float, expected: str) -> None:
    w = works("new-building", floor_area_m2=floor)
    assert status(site(), w, "construction-recycling-notice") == expected


@pytest.mark.parametrize(
    ("area", "hazardous", "expected"),
    [(2999, False, "not-required"), (3000, False, "notice"),
     (899, True, "not-required"), (900, True, "notice")],
)
def test_soil_alteration_notice(area: float, hazardous: bool, expected: str) -> None:
    w = works("earthwork", earthwork={"area_m2": area}, hazardous_substance_facility=hazardous)
    assert status(site(10000), w, "soil-alteration-notice") == expected


@pytest.mark.parametrize(
    ("pid", "area", "expected"),
    [("greening-plan", 999.99, "not-required"), ("greening-plan", 1000, "notice"),
     ("tokyo-land-history-survey", 2999, "not-required"),
     ("tokyo-land-history-survey", 3000, "notice")],
)
def test_site_area_rules(pid: str, area: float, expected: str) -> None:
    assert status(site(area), works("new-building"), pid) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"storeys": 2, "eaves_height_m": 7}, "not-required"),
        ({"storeys": 3, "eaves_height_m": 6, "floor_area_m2": 300}, "notice"),
        ({"storeys": 2, "eaves_height_m": 7.01, "floor_area_m2": 300}, "notice"),
    ],
)
def test_mid_high_rise_in_low_rise_zone(fields: dict[str, float], expected: str) -> None:
    s = site(zoning_use_districts=full(hit("z1", function=LOW_RISE)))
    assert status(s, works("new-building", **fields), "mid-high-rise-notice") == expected


@pytest.mark.parametrize(("height", "expected"), [(10, "not-required"), (10.01, "notice")])
def test_mid_high_rise_elsewhere(height: float, expected: str) -> None:
    s = site(zoning_use_districts=full(hit("z2", function="商業地域")))
    w = works("new-building", building_height_m=height, storeys=5)
    assert status(s, w, "mid-high-rise-notice") == expected


@pytest.mark.parametrize(("floor", "expected"), [(1500, "not-required"), (1500.01, "required")])
def test_parking_provision_commercial_more_than_1500(floor: float, expected: str) -> None:
    s = site(zoning_use_districts=full(hit("z2", function="商業地域")))
    w = works("new-building", use="shop", floor_area_m2=floor)
    assert status(s, w, "parking-provision") == expected


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"structure": "wood", "storeys": 2, "floor_area_m2": 100}, "新2号"),
        ({"structure": "wood", "storeys": 1, "floor_area_m2": 200}, "新3号"),
        ({"structure": "wood", "storeys": 1, "floor_area_m2": 200.01}, "新2号"),
    ],
)
def test_building_confirmation_review_type(fields: dict[str, Any], text: str) -> None:
    p = evaluate(site(), works("new-building", **fields), RULES).procedure(
        "building-confirmation"
    )
    assert p.status == "required" and text in p.timing.text


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"contract_amount_yen": 14_999_999, "structure": "rc", "use": "office"}, "not-required"),
        ({"contract_amount_yen": 15_000_000, "structure": "rc", "use": "office"}, "required"),
        ({"contract_amount_yen": 20_000_000, "structure": "wood", "use": "detached-house",
          "floor_area_m2": 149}, "not-required"),
        ({"contract_amount_yen": 20_000_000, "structure": "wood", "use": "detached-house",
          "floor_area_m2": 150}, "required"),
    ],
)
def test_construction_business_licence(fields: dict[str, Any], expected: str) -> None:
    assert status(site(), works("new-building", **fields), "construction-business-licence") == (
        expected
    )


@pytest.mark.parametrize(
    ("height", "expected"), [(45, "not-required"), (45.01, "prohibited"), (60, "prohibited")]
)
def test_aviation_surface_comparator(height: float, expected: str) -> None:
    surface = full(hit("h1", name="羽田", surface="水平表面", limit_height_m=45))
    s = site(code="13111", airport_height_surfaces=surface)
    assert status(s, works("new-building", building_height_m=height), "aviation-height-check") == (
        expected
    )


def test_aviation_obstruction_lights_from_60m_outside_surfaces() -> None:
    assert status(site(), works("new-building", building_height_m=59.99),
                  "aviation-height-check") == "not-required"
    assert status(site(), works("new-building", building_height_m=60),
                  "aviation-height-check") == "notice"


@pytest.mark.parametrize(
    ("height", "before", "expected"),
    [(15, True, "not-required"), (15.5, True, "required"), (30, False, "not-required"),
     (30, None, "undetermined")],
)
def test_emergency_road_diagnosis(height: float, before: bool | None, expected: str) -> None:
    road = full(hit("r1", name="水戸街道", specified=True, half_width_m=15))
    w = works("land-purchase", building_height_m=height, built_before_1981_06=before)
    s = site(emergency_transport_roads=road)
    assert status(s, w, "emergency-road-seismic-diagnosis") == expected


# --------------------------------------------------------------- sediment nuance


SPECIAL = full(hit("s1", genshoname="土石流", koujinum="東京都告示第1号"))


@pytest.mark.parametrize(
    ("activity", "use", "expected"),
    [
        ("new-building", "apartment-for-sale-or-rent", "required"),
        ("land-development", "welfare-facility", "required"),
        ("new-building", "school", "required"),
        ("new-building", "hospital", "required"),
        ("new-building", "detached-house", "not-required"),
        ("new-building", "office", "not-required"),
        ("extension", "hospital", "not-required"),
        ("new-building", None, "undetermined"),
    ],
)
def test_sediment_special_zone_only_for_restricted_uses(
    activity: str, use: str | None, expected: str
) -> None:
    s = site(code="13201", sediment_special_zones=SPECIAL)
    p = evaluate(s, works(activity, use=use), RULES).procedure(
        "sediment-specific-development-permit"
    )
    assert p.status == expected
    if expected == "required":
        assert LayerReason(layer="sediment-special-zones", feature_id="s1",
                           detail="土砂災害特別警戒区域 土石流 (告示 東京都告示第1号)") in p.reasons


def test_sediment_zone_disclosure_applies_to_any_works() -> None:
    s = site(code="13201", sediment_special_zones=SPECIAL)
    answer = evaluate(s, works("land-purchase"), RULES)
    assert answer.procedure("sediment-warning-zone-disclosure").status == "notice"
    special = next(h for h in answer.hazards["layers"] if h["layer"] == "sediment-special-zones")
    assert special["status"] == "inside" and special["feature_ids"] == ["s1"]


def test_sediment_permit_outside_zone_is_not_required() -> None:
    w = works("new-building", use="hospital")
    assert status(site(), w, "sediment-specific-development-permit") == "not-required"


# --------------------------------------------------------------- coverage


def test_layer_not_covering_is_undetermined_with_office() -> None:
    s = site(500, "13201", area_divisions=LayerFacts("none"))
    p = evaluate(s, works("land-development"), RULES).procedure("development-permit")
    assert p.status == "undetermined"
    assert p.authority == "八王子市長 (開発許可担当)"
    assert any(isinstance(r, LayerReason) and "does not cover" in r.detail
               and "八王子市長" in r.detail for r in p.reasons)


def test_layer_absent_from_the_facts_is_undetermined() -> None:
    s = SiteFacts(area_m2=800, municipality_code="13122")
    assert status(s, works("earthwork", earthwork={"fill_height_m": 3}),
                  "fill-cut-permit") == "undetermined"


def test_partial_coverage_without_features_is_undetermined() -> None:
    s = site(earthwork_regulation_areas=LayerFacts("partial"))
    w = works("earthwork", earthwork={"fill_height_m": 3})
    assert status(s, w, "fill-cut-permit") == "undetermined"


def test_partial_coverage_with_a_feature_decides() -> None:
    s = site(earthwork_regulation_areas=LayerFacts("partial", (hit("e", name="x"),)))
    w = works("earthwork", earthwork={"fill_height_m": 3})
    assert status(s, w, "fill-cut-permit") == "required"


def test_missing_works_field_is_undetermined_not_no() -> None:
    s = site(zoning_use_districts=full(hit("z2", function="商業地域")))
    p = evaluate(s, works("new-building"), RULES).procedure("mid-high-rise-notice")
    assert p.status == "undetermined"
    assert FieldReason(field="building_height_m", value=None, comparator=">", limit=10) in (
        p.reasons
    )


# --------------------------------------------------------------- straddling zones


def test_site_across_two_zones_gets_both_zones_rules() -> None:
    zones = full(hit("z1", function=LOW_RISE), hit("z2", function="商業地域"))
    s = site(zoning_use_districts=zones)
    w = works("new-building", storeys=3, eaves_height_m=6, building_height_m=9)
    p = evaluate(s, w, RULES).procedure("mid-high-rise-notice")
    assert p.status == "notice"  # from the low-rise zone; 9 m alone would not trigger
    ad = evaluate(s, works("outdoor-advertisement"), RULES).procedure("outdoor-advertising-permit")
    assert ad.status == "prohibited"
    cited = {r.feature_id for r in ad.reasons if isinstance(r, LayerReason)}
    assert cited == {"z1", "z2"}


def test_site_across_area_division_boundary() -> None:
    s = site(400, "13201", area_divisions=full(URBAN, CONTROL))
    p = evaluate(s, works("land-development"), RULES).procedure("development-permit")
    assert p.status == "required"
    assert any(isinstance(r, LayerReason) and r.feature_id == "ad2" for r in p.reasons)
    farm = full(hit("f1", name="畑", category="生産緑地"))
    s2 = site(400, "13201", area_divisions=full(URBAN, CONTROL), farmland=farm)
    assert status(s2, works("new-building"), "farmland-conversion") == "required"


# --------------------------------------------------------------- authorities


@pytest.mark.parametrize(
    ("code", "office"),
    [
        ("13101", "千代田区長"),
        ("13201", "八王子市長"),
        ("13209", "町田市長"),
        ("13305", "東京都知事"),
        ("13361", "東京都知事 (via 大島支庁)"),
    ],
)
def test_authority_by_municipality(code: str, office: str) -> None:
    s = site(code=code, earthwork_regulation_areas=full(hit("e", name="x")))
    p = evaluate(s, works("earthwork", earthwork={"fill_height_m": 3}), RULES).procedure(
        "fill-cut-permit"
    )
    assert p.authority.startswith(office)


def test_authority_kinds_and_building_official() -> None:
    table = default_authorities()
    assert [table.kind(c) for c in ("13101", "13123", "13201", "13305", "13361", "13421")] == [
        "special-ward", "special-ward", "delegated-city", "town-village", "island", "island",
    ]
    assert "多摩建築指導事務所" in table.office("building-official", "13305")
    assert "八丈支庁" in table.office("building-official", "13401")
    assert table.office("building-official", "13101").startswith("千代田区 建築主事")
    assert "ask" in table.office("development", None)
    assert len(table.municipalities) == 62
    assert all(table.kind(c) for c in table.municipalities)


def test_every_rule_authority_key_resolves() -> None:
    table = default_authorities()
    for rule in RULES:
        for code in ("13101", "13201", "13202", "13305", "13361", None):
            assert table.office(rule.authority, code)


# --------------------------------------------------------------- timeline, site area


def test_timeline_is_ordered_by_milestone_then_offset() -> None:
    s = site(3000, buried_cultural_properties=full(hit("b", name="遺跡", site_no="1")))
    w = works("new-building", "land-purchase", "demolition", floor_area_m2=800,
              demolition_floor_area_m2=100, building_height_m=12, storeys=4, use="office",
              structure="rc", contract_amount_yen=1e8)
    answer = evaluate(s, w, RULES)
    keys = [(MILESTONES.index(e.milestone), e.offset_days or 0) for e in answer.timeline]
    assert keys == sorted(keys)
    ids = [e.procedure_id for e in answer.timeline]
    assert ids.index("buried-cultural-property-notice") < ids.index("building-confirmation")
    assert ids.index("construction-recycling-notice") < ids.index("building-confirmation")
    assert "road-occupancy-permit" not in ids  # not-required stays off the timeline


def test_point_without_site_area_names_the_field() -> None:
    s = SiteFacts(None, "13122", layers=all_layers_full(area_divisions=full(URBAN)))
    with pytest.raises(Unprocessable) as err:
        evaluate(s, works("land-development"), RULES)
    assert "works.site_area_m2" in err.value.description
    assert "development-permit" in err.value.description
    assert err.value.status == 422


def test_point_with_given_site_area_is_answered() -> None:
    s = SiteFacts(None, "13122", layers=all_layers_full(area_divisions=full(URBAN)))
    answer = evaluate(s, works("land-development", site_area_m2=600), RULES)
    assert answer.procedure("development-permit").status == "required"


def test_point_without_site_area_when_no_rule_needs_it() -> None:
    s = SiteFacts(None, "13122", layers=all_layers_full())
    answer = evaluate(s, works("road-occupation"), RULES)
    assert answer.procedure("road-occupancy-permit").status == "required"


# --------------------------------------------------------------- request model


@pytest.mark.parametrize(
    ("works_body", "needle"),
    [
        ({"activities": ["dig"]}, "accepted values: new-building, extension"),
        ({"activities": ["new-building"], "use": "castle"}, "accepted values: detached-house"),
        ({"activities": ["new-building"], "structure": "straw"}, "wood, steel, rc, other"),
        ({"activities": ["new-building"], "colour": "red"}, "colour"),
        ({"activities": []}, "activities"),
    ],
)
def test_request_rejects_unknown_values(works_body: dict[str, Any], needle: str) -> None:
    with pytest.raises(Unprocessable) as err:
        parse_request({"site": {"point": [139.3, 35.65]}, "works": works_body})
    assert needle in err.value.description


def test_request_needs_exactly_one_site_form() -> None:
    body = {"site": {"point": [139.3, 35.65], "parcel": {"municipality_code": "13201",
                                                        "chiban": "1-1"}},
            "works": {"activities": ["new-building"]}}
    with pytest.raises(Unprocessable, match="exactly one"):
        parse_request(body)


# --------------------------------------------------------------- spatial pass


class FakeStore:
    """Just ``iter_features``, like the store, over in-memory features."""

    def __init__(self, layers: dict[str, list[Feature]]) -> None:
        self.layers = layers

    def iter_features(self, collection: str) -> Iterator[Feature]:
        if collection not in self.layers:
            raise NotFound(f"collection {collection!r} does not exist")
        yield from self.layers[collection]


def spec(lid: str, coverage: dict[str, Any]) -> LayerSpec:
    return LayerSpec.model_validate({
        "id": lid, "title": lid, "attribution": "test",
        "licence": {"name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
        "source": {"format": "geojson", "paths": [f"{lid}.geojson"]}, "coverage": coverage,
    })


HACHIOJI = box(139.20, 35.60, 139.40, 35.70)
STORE = FakeStore({
    "admin-boundaries": [
        Feature("m1", {"name": "八王子市", "municipality_code": "13201"}, HACHIOJI),
        Feature("m2", {"name": "日野市", "municipality_code": "13212"},
                box(139.40, 35.60, 139.45, 35.70)),
    ],
    "area-divisions": [
        Feature("u", {"kubun": "市街化区域", "metropolitan_zone": "近郊整備地帯"},
                box(139.30, 35.60, 139.40, 35.70)),
        Feature("c", {"kubun": "市街化調整区域"}, box(139.20, 35.60, 139.30, 35.70)),
    ],
    "earthwork-regulation-areas": [
        Feature("e", {"name": "丘陵"}, box(139.20, 35.60, 139.25, 35.65))
    ],
    "parcels": [Feature("p1", {"municipality_code": "13201", "chiban": "100-1"},
                        box(139.331, 35.655, 139.332, 35.656))],
})
SPECS = {
    "admin-boundaries": spec("admin-boundaries", {"description": "Tokyo"}),
    "area-divisions": spec("area-divisions", {"description": "demo", "extent_of_data": True}),
    "earthwork-regulation-areas": spec(
        "earthwork-regulation-areas", {"description": "八王子 only", "municipalities": ["13201"]}
    ),
}


def test_layer_index_coverage_full_partial_none() -> None:
    idx = LayerIndex.from_store(STORE, "earthwork-regulation-areas",
                                SPECS["earthwork-regulation-areas"],
                                LayerIndex.from_store(STORE, "admin-boundaries", None))
    assert idx.facts(box(139.21, 35.61, 139.22, 35.62)).features[0].id == "e"
    assert idx.facts(box(139.31, 35.61, 139.32, 35.62)) == LayerFacts("full")
    assert idx.facts(box(139.39, 35.61, 139.41, 35.62)).coverage == "partial"
    assert idx.facts(box(139.41, 35.61, 139.42, 35.62)).coverage == "none"
    absent = LayerIndex.from_store(STORE, "scenic-districts", None)
    assert absent.facts(box(139.21, 35.61, 139.22, 35.62)).coverage == "none"


def test_spatial_index_builds_site_facts() -> None:
    index = SpatialIndex.build(STORE, SPECS, ["area-divisions", "earthwork-regulation-areas"])
    straddle = box(139.299, 35.64, 139.301, 35.641)
    facts = index.facts(straddle)
    assert facts.municipality_code == "13201" and facts.municipality_name == "八王子市"
    assert {h.id for h in facts.layers["area-divisions"].features} == {"u", "c"}
    assert facts.area_m2 == pytest.approx(area_m2(straddle)) and 1.5e4 < facts.area_m2 < 2.2e4
    point = index.facts(shape({"type": "Point", "coordinates": [139.35, 35.65]}))
    assert point.area_m2 is None and point.layers["area-divisions"].features[0].id == "u"


def test_guide_service_end_to_end_with_parcel_and_polygon() -> None:
    service = GuideService(STORE, SPECS)
    parcel = {"parcel": {"municipality_code": "13201", "chiban": "100-1"}}
    answer = service.answer({"site": parcel, "works": {"activities": ["land-development"]}})
    assert answer.site.municipality is not None and answer.site.municipality.code == "13201"
    assert answer.site.area_m2 is not None and answer.site.area_m2 > 8000  # defaults from parcel
    assert answer.procedure("development-permit").status == "required"
    assert answer.procedure("scenic-district-permit").status == "undetermined"
    geometry = {"type": "Polygon", "coordinates": [[[139.21, 35.61], [139.22, 35.61],
                                                    [139.22, 35.62], [139.21, 35.61]]]}
    body = {"site": {"geometry": geometry},
            "works": {"activities": ["earthwork"], "earthwork": {"cut_height_m": 3}}}
    assert service.answer(body).procedure("fill-cut-permit").status == "required"
    with pytest.raises(NotFound):
        service.answer({"site": {"parcel": {"municipality_code": "13201", "chiban": "9"}},
                        "works": {"activities": ["land-purchase"]}})
    with pytest.raises(Unprocessable, match="site_area_m2"):
        service.answer({"site": {"point": [139.35, 35.65]},
                        "works": {"activities": ["land-development"]}})
    assert service.rule_layers()["development-permit"] == ["area-divisions"]


# --------------------------------------------------------------- synthetic layers


def test_every_rule_layer_has_a_spec() -> None:
    layers_dir = ROOT / "layers"
    for lid in required_layers(RULES):
        if lid in FOUNDATION_LAYERS:
            continue
        layer = load_layer(layers_dir / f"{lid}.yml")
        if layer.source.kind == "reinfolib":  # official API layer: fetched per site
            assert not layer.synthetic and "不動産情報ライブラリ" in layer.attribution
            continue
        assert layer.synthetic and layer.domain == "guide"
        assert layer.coverage.bbox is not None
        bbox = box(*layer.coverage.bbox)
        assert bbox.area < box(138.9, 35.4, 139.95, 35.9).area  # smaller than mainland Tokyo
        data = json.loads((ROOT / "data" / layer.source.paths[0]).read_text(encoding="utf-8"))
        assert data["features"]
        for feat in data["features"]:
            assert bbox.covers(shape(feat["geometry"])), (lid, feat["id"])
            assert {p.name for p in layer.properties} >= set(feat["properties"]) - {"id"}


def test_rule_files_are_valid_yaml_with_matching_ids() -> None:
    for path in (ROOT / "geoservice" / "guide" / "rules").glob("*.yml"):
        assert yaml.safe_load(path.read_text(encoding="utf-8"))["id"] == path.stem
