"""The guide over HTTP: REST, the OGC process (sync, async, durable jobs), bad input,
and integration over the real layers (sediment zones, PLATEAU zoning) and the demo parcels."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import shape

from geoservice.app import create_app
from geoservice.config import GuideSettings, Settings
from geoservice.guide import default_rules
from geoservice.guide.jobs import JobStore
from geoservice.runtime import runtime_of_app
from tests.conftest import DATA

RULE_IDS = [r.id for r in default_rules()]
EXEC = "/ogc/processes/procedure-guide/execution"
ASYNC = {"Prefer": "respond-async"}
ALL_WORKS: dict[str, Any] = {
    "activities": ["new-building", "land-development", "earthwork", "land-purchase",
                   "outdoor-advertisement", "tree-felling", "road-occupation"],
    "site_area_m2": 5000, "floor_area_m2": 12000, "building_height_m": 70,
    "eaves_height_m": 65, "storeys": 20, "structure": "rc",
    "use": "apartment-for-sale-or-rent",
    "earthwork": {"cut_height_m": 3, "fill_height_m": 3, "area_m2": 5000},
    "demolition_floor_area_m2": 500, "contract_amount_yen": 2e9,
    "built_before_1981_06": True, "hazardous_substance_facility": True,
}
OFFICE = {"activities": ["new-building"], "use": "office", "site_area_m2": 300,
          "floor_area_m2": 600, "building_height_m": 12, "storeys": 4, "structure": "rc"}


def body(site: dict[str, Any], works: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"site": site, "works": works or OFFICE}


def square(lon: float, lat: float, d: float = 0.0002) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + d, lat], [lon + d, lat + d],
                                                [lon, lat + d], [lon, lat]]]}


def statuses(answer: dict[str, Any]) -> dict[str, str]:
    return {p["id"]: p["status"] for p in answer["procedures"]}


def procedure(answer: dict[str, Any], pid: str) -> dict[str, Any]:
    return next(p for p in answer["procedures"] if p["id"] == pid)


def post(client: TestClient, b: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/api/guide", json=b)
    assert r.status_code == 200, r.text
    ans = r.json()
    assert [p["id"] for p in ans["procedures"]] == RULE_IDS  # every catalogue id, in order
    return ans


@pytest.fixture(scope="module")
def special_zone() -> dict[str, Any]:
    """The largest real 土砂災害特別警戒区域 in 八王子市 (from the shared extract)."""
    data = json.loads((DATA / "hazard" / "tokyo_dosekiryu_tokubetsu.json").read_text("utf-8"))
    zones = [f for f in data["features"] if f["properties"].get("new_city") == "八王子市"]
    return max(zones, key=lambda f: shape(f["geometry"]).area)


# --------------------------------------------------------------------------- REST


def test_rest_answer_has_every_catalogue_id(client: TestClient) -> None:
    ans = post(client, body({"point": [139.703, 35.573]}))
    assert ans["site"]["municipality"]["code"] == "13111"
    assert ans["disclaimer"] and ans["timeline"] and ans["hazards"]["layers"]
    for p in ans["procedures"]:
        assert p["reasons"], p["id"]  # every status explains itself


def test_rules_catalogue(client: TestClient) -> None:
    r = client.get("/api/guide/rules")
    assert r.status_code == 200
    doc = r.json()
    assert [x["id"] for x in doc["rules"]] == RULE_IDS
    for x in doc["rules"]:
        assert x["confidence"] in ("sourced", "partial", "unverified")
        assert x["source"].startswith("http") and x["law"] and x["title_ja"]
    assert "apartment-for-sale-or-rent" in doc["uses"] and "new-building" in doc["activities"]
    assert doc["parcel_layers"] == ["parcels", "demo-parcels"]


def test_parcel_search_prefix_and_geometry(client: TestClient) -> None:
    r = client.get("/api/parcels", params={"municipality_code": "13111", "q": "101"})
    assert r.status_code == 200
    feats = r.json()["features"]
    assert [f["properties"]["chiban"] for f in feats][:6] == [f"101-{i}" for i in range(1, 7)]
    assert feats[0]["geometry"]["type"] == "Polygon"
    assert feats[0]["properties"]["layer"] == "demo-parcels"
    hachioji = client.get("/api/parcels", params={"municipality_code": "13201", "q": "3001"})
    chiban = [f["properties"]["chiban"] for f in hachioji.json()["features"]]
    assert chiban[:4] == ["3001-1", "3001-2", "3001-3", "3001-4"]  # prefix first, then close
    assert client.get("/api/parcels", params={"municipality_code": "x"}).status_code == 422


def test_demo_parcel_answers_with_its_geometry(client: TestClient) -> None:
    ans = post(client, body({"parcel": {"municipality_code": "13111", "chiban": "101-1"}}))
    assert ans["site"]["area_m2"] == pytest.approx(224, rel=0.1)  # 15 m x 15 m
    zoning = next(x for x in ans["site"]["layers"] if x["layer"] == "zoning-use-districts")
    assert [f["properties"]["function"] for f in zoning["features"]] == ["準住居地域"]  # real
    assert ans["site"]["municipality"]["code"] == "13111"


def test_demo_parcel_in_sediment_zone(client: TestClient) -> None:
    works = {"activities": ["new-building"], "use": "apartment-for-sale-or-rent",
             "site_area_m2": 300}
    ans = post(client, body({"parcel": {"municipality_code": "13201", "chiban": "3001-1"}},
                            works))
    p = procedure(ans, "sediment-specific-development-permit")
    assert p["status"] == "required" and "第296号" in json.dumps(p["reasons"], ensure_ascii=False)
    outside = post(client, body({"parcel": {"municipality_code": "13201", "chiban": "3002-1"}},
                                works))
    assert statuses(outside)["sediment-specific-development-permit"] == "not-required"


# --------------------------------------------------------------------------- bad input


def test_outside_service_area(client: TestClient) -> None:
    for site in ({"point": [135.5, 34.7]}, {"geometry": square(140.5, 35.0)}):
        r = client.post("/api/guide", json=body(site))
        assert r.status_code == 422 and r.json()["code"] == "outside-service-area", r.text


def test_invalid_geometry_says_why(client: TestClient) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[139.70, 35.57], [139.71, 35.58],
                                                  [139.71, 35.57], [139.70, 35.58],
                                                  [139.70, 35.57]]]}
    r = client.post("/api/guide", json=body({"geometry": bowtie}))
    assert r.status_code == 400 and "Self-intersection" in r.json()["description"]
    assert r.json()["code"] == "InvalidGeometry"  # as on every route (geoservice.geometry)
    broken = {"type": "Polygon", "coordinates": [[[139.70, 35.57], [139.71, 35.58]]]}
    r = client.post("/api/guide", json=body({"geometry": broken}))
    assert r.status_code == 400 and "Traceback" not in r.text


def test_unknown_chiban_404_with_close_matches(client: TestClient) -> None:
    r = client.post("/api/guide", json=body(
        {"parcel": {"municipality_code": "13111", "chiban": "101-9"}}))
    assert r.status_code == 404
    doc = r.json()
    assert doc["code"] == "parcel-not-found" and "101-1" in doc["matches"]
    assert all(m in doc["description"] for m in doc["matches"])


def test_missing_field_names_it(client: TestClient) -> None:
    r = client.post("/api/guide", json=body({"point": [139.703, 35.573]},
                                            {"activities": ["land-development"]}))
    assert r.status_code == 422 and "works.site_area_m2" in r.json()["description"]


@pytest.mark.parametrize(("works", "needle"), [
    ({"activities": ["dig"]}, "new-building"),
    ({"activities": ["new-building"], "use": "castle"}, "apartment-for-sale-or-rent"),
])
def test_unknown_activity_or_use_lists_accepted(
    client: TestClient, works: dict[str, Any], needle: str
) -> None:
    r = client.post("/api/guide", json=body({"point": [139.703, 35.573]}, works))
    assert r.status_code == 422 and needle in r.json()["description"]


def test_not_json_and_no_stack_traces(client: TestClient) -> None:
    r = client.post("/api/guide", content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameterValue"
    r = client.post("/api/guide", json={"site": {"point": [139.7, 35.5], "parcel": None}})
    assert r.status_code == 422 and "Traceback" not in r.text


# --------------------------------------------------------------------------- OGC process


def test_process_listed_and_described(client: TestClient) -> None:
    listing = client.get("/ogc/processes").json()
    assert [p["id"] for p in listing["processes"]] == ["procedure-guide"]
    desc = client.get("/ogc/processes/procedure-guide").json()
    assert set(desc["jobControlOptions"]) == {"sync-execute", "async-execute"}
    assert set(desc["inputs"]) == {"site", "works"} and "answer" in desc["outputs"]
    assert desc["inputs"]["works"]["schema"]["properties"]["activities"]
    conf = client.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss" in conf


def _poll(client: TestClient, url: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = client.get(url).json()
        if doc["status"] in ("successful", "failed", "dismissed"):
            return doc
        time.sleep(0.05)
    raise AssertionError(f"job at {url} did not finish: {doc}")


def _path(location: str) -> str:
    return "/" + location.split("/", 3)[3]


def test_process_sync_async_results_equal_and_dismiss(client: TestClient) -> None:
    b = body({"point": [139.703, 35.573]})
    rest = client.post("/api/guide", json=b).json()
    sync = client.post(EXEC, json={"inputs": b})
    assert sync.status_code == 200 and sync.json() == rest
    created = client.post(EXEC, json={"inputs": b}, headers=ASYNC)
    assert created.status_code == 201, created.text
    assert created.json()["status"] in ("accepted", "running", "successful")
    job_url = _path(created.headers["location"])
    assert job_url == f"/ogc/jobs/{created.json()['jobID']}"
    assert _poll(client, job_url)["status"] == "successful"
    results = client.get(f"{job_url}/results")
    assert results.status_code == 200 and results.json() == rest
    assert created.json()["jobID"] in [j["jobID"] for j in client.get("/ogc/jobs").json()["jobs"]]
    gone = client.delete(job_url)
    assert gone.status_code == 200 and gone.json()["status"] == "dismissed"
    assert client.get(job_url).status_code == 404
    assert client.get(f"{job_url}/results").status_code == 404
    assert client.delete(job_url).status_code == 404


def test_async_bad_input_is_refused_before_a_job(client: TestClient) -> None:
    r = client.post(EXEC, json={"inputs": body({"point": [135.5, 34.7]})}, headers=ASYNC)
    assert r.status_code == 422 and r.json()["code"] == "outside-service-area"
    r = client.post(EXEC, json={"inputs": body(
        {"parcel": {"municipality_code": "13111", "chiban": "999"}})}, headers=ASYNC)
    assert r.status_code == 404 and "matches" in r.json()
    assert client.post(EXEC, json={"site": {}}).status_code == 400


def test_async_job_that_fails_reports_why(client: TestClient) -> None:
    b = body({"point": [139.703, 35.573]}, {"activities": ["land-development"]})
    created = client.post(EXEC, json={"inputs": b}, headers=ASYNC)
    assert created.status_code == 201
    job_url = _path(created.headers["location"])
    assert _poll(client, job_url)["status"] == "failed"
    r = client.get(f"{job_url}/results")
    assert r.status_code == 422 and "works.site_area_m2" in r.json()["description"]
    assert client.delete(job_url).status_code == 200


@pytest.fixture
def paused_settings(real_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    yield real_settings.model_copy(
        update={"work_dir": tmp_path, "guide": GuideSettings(pause_jobs=True)}
    )


def test_async_job_survives_a_restart(paused_settings: Settings) -> None:
    b = body({"point": [139.703, 35.573]})
    with TestClient(create_app(paused_settings), raise_server_exceptions=False) as first:
        created = first.post(EXEC, json={"inputs": b}, headers=ASYNC)
        assert created.status_code == 201
        job_url = _path(created.headers["location"])
        time.sleep(0.3)
        assert first.get(job_url).json()["status"] == "accepted"  # the worker is paused
        expected = first.post("/api/guide", json=b).json()
        runtime_of_app(first.app).services.require(JobStore).stop()  # the server "dies"
    resumed = paused_settings.model_copy(update={"guide": GuideSettings()})
    with TestClient(create_app(resumed), raise_server_exceptions=False) as second:
        assert _poll(second, job_url)["status"] == "successful"
        assert second.get(f"{job_url}/results").json() == expected


def test_job_interrupted_while_running_is_rerun(paused_settings: Settings) -> None:
    from geoservice.guide.jobs import JobStore

    path = paused_settings.work_dir / "guide-jobs.sqlite"
    store = JobStore(path, run=lambda inputs: inputs, paused=True)
    job = store.submit("procedure-guide", {"x": 1})
    assert store._claim() == (job.id, {"x": 1})  # claimed, then the process dies
    assert store.get(job.id).status == "running"  # type: ignore[union-attr]
    again = JobStore(path, run=lambda inputs: {"ran": inputs})
    assert again.start() == 1 and again.wait_idle()
    done = again.get(job.id)
    assert done is not None and done.status == "successful" and done.result == {"ran": {"x": 1}}
    again.stop()


# --------------------------------------------------------------------------- real layers


def test_real_special_zone_permit_required_for_housing(
    client: TestClient, special_zone: dict[str, Any]
) -> None:
    pt = shape(special_zone["geometry"]).representative_point()
    works = {"activities": ["new-building"], "use": "apartment-for-sale-or-rent",
             "site_area_m2": 300}
    ans = post(client, body({"point": [pt.x, pt.y]}, works))
    assert ans["site"]["municipality"]["code"] == "13201"
    p = procedure(ans, "sediment-specific-development-permit")
    assert p["status"] == "required"
    koujinum = special_zone["properties"]["koujinum"]
    assert any(koujinum in r.get("detail", "") for r in p["reasons"]), p["reasons"]
    assert statuses(ans)["sediment-warning-zone-disclosure"] != "not-required"
    office = post(client, body({"point": [pt.x, pt.y]}, {**works, "use": "office"}))
    p = procedure(office, "sediment-specific-development-permit")
    assert p["status"] == "not-required" and p["reasons"]
    assert any(r.get("field") == "use" for r in p["reasons"]), p["reasons"]


def _zones_533957(client: TestClient) -> list[dict[str, Any]]:
    """The zones of the real PLATEAU urf file of mesh 533957 (葛飾区: lon > 139.8)."""
    r = client.get("/ogc/collections/zoning-use-districts/items",
                   params={"limit": 1000, "bbox": "139.80,35.70,139.95,35.80"})
    assert r.status_code == 200
    return r.json()["features"]


def test_real_plateau_zoning_drives_mid_high_rise_notice(client: TestClient) -> None:
    zones = _zones_533957(client)
    assert len(zones) >= 10
    low = {"activities": ["new-building"], "use": "detached-house", "site_area_m2": 200,
           "storeys": 3, "building_height_m": 9.5, "eaves_height_m": 9}
    for zone in zones:
        pt = shape(zone["geometry"]).representative_point()
        ans = post(client, body({"point": [pt.x, pt.y]}, low))
        layer = next(x for x in ans["site"]["layers"] if x["layer"] == "zoning-use-districts")
        assert zone["id"] in [f["id"] for f in layer["features"]]
        functions = {f["properties"]["function"] for f in layer["features"]}
        low_rise = sorted(f for f in functions if "低層住居専用" in f)
        p = procedure(ans, "mid-high-rise-notice")
        # low-rise zones: >= 3 storeys → notice; other zones: height 9.5 m is not > 10 m
        assert p["status"] == ("notice" if low_rise else "not-required"), (functions, p)
        text = json.dumps(p["reasons"], ensure_ascii=False)
        if low_rise:
            assert low_rise[0] in text and "storeys" in text
        else:
            assert "building_height_m" in text and "zoning-use-districts" in text


def test_far_outside_synthetic_coverage_is_undetermined(client: TestClient) -> None:
    """奥多摩町 is outside every synthetic layer: their rules are never 'not-required' because
    of the layer (only a works field can rule them out), and are undetermined once the works
    would trigger them."""
    specs = client.app.state.runtime.specs  # type: ignore[attr-defined]
    synthetic = {lid for lid, spec in specs.items() if spec.synthetic}
    seen: dict[str, set[str]] = {}
    for use in ("apartment-for-sale-or-rent", "shop"):
        ans = post(client, body({"point": [139.06, 35.81]}, {**ALL_WORKS, "use": use}))
        assert ans["site"]["municipality"]["name"] == "奥多摩町"
        for rule in default_rules():
            if not set(rule.layers) & synthetic:
                continue
            p = procedure(ans, rule.id)
            seen.setdefault(rule.id, set()).add(p["status"])
            for r in p["reasons"]:
                if r.get("layer") in synthetic:  # no synthetic layer ever says "outside"
                    assert "outside every" not in r["detail"], (rule.id, r)
    for rid, found in seen.items():
        assert found != {"not-required"}, (rid, found)
    assert seen["scenic-district-permit"] == {"undetermined"}


def test_catalogue_ids_in_every_answer_for_many_sites(client: TestClient) -> None:
    for site in ({"point": [139.703, 35.573]}, {"geometry": square(139.703, 35.566)},
                 {"point": [139.06, 35.81]},
                 {"parcel": {"municipality_code": "13201", "chiban": "3002-2"}}):
        post(client, body(site, {**OFFICE, "site_area_m2": 400}))



def test_answer_embeds_the_hazard_card(client: TestClient, special_zone: dict[str, Any]) -> None:
    """The answer carries the hazards room's card: the real zone is a hit, with coverage."""
    point = shape(special_zone["geometry"]).representative_point()
    card = post(client, body({"point": [point.x, point.y]}))["hazards"]
    by_layer = {lay["layer"]: lay for lay in card["layers"]}
    assert by_layer["sediment-special-zones"]["status"] == "hit"
    assert by_layer["sediment-special-zones"]["coverage"] == "inside"
    assert all(lay["status"] in {"hit", "clear", "clear-where-covered", "no-data"}
               for lay in card["layers"])
    assert card["disclaimer"]["ja"] and card["summary"]["status"] == "hazards-found"
    assert card["guide_layers"]  # the guide's own per-layer summary stays alongside
