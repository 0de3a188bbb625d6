"""OGC API Features behaviour over the real extracts: paging, filters, CRS, errors, HTML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import shape

from tests.conftest import DATA

ITEMS = "/ogc/collections/wildlife-sightings/items"
ZONES = "/ogc/collections/sediment-special-zones/items"


def bears() -> list[dict]:
    path = DATA / "bear" / "tokyo_bear_sightings_2023-2025.geojson"
    return json.loads(Path(path).read_text("utf-8"))["features"]


def test_landing_page_links_to_api_and_collections(client: TestClient) -> None:
    doc = client.get("/ogc/", params={"f": "json"}).json()
    rels = {link["rel"] for link in doc["links"]}
    assert {"service-desc", "conformance", "data"} <= rels


def test_conformance_declares_what_is_implemented(client: TestClient) -> None:
    classes = client.get("/ogc/conformance").json()["conformsTo"]
    for suffix in (
        "ogcapi-features-1/1.0/conf/core",
        "ogcapi-features-2/1.0/conf/crs",
        "ogcapi-features-3/1.0/conf/filter",
        "cql2/1.0/conf/cql2-text",
        "cql2/1.0/conf/cql2-json",
    ):
        assert any(c.endswith(suffix) for c in classes), suffix


def test_every_collection_carries_licence_and_attribution(client: TestClient) -> None:
    cols = client.get("/ogc/collections").json()["collections"]
    assert {"wildlife-sightings", "sediment-special-zones", "admin-boundaries"} <= {
        c["id"] for c in cols
    }
    for c in cols:
        assert c["license"] and c["attribution"], c["id"]
        assert any(link["rel"] == "license" for link in c["links"]), c["id"]
    bear = next(c for c in cols if c["id"] == "wildlife-sightings")
    assert "CC BY 4.0" in bear["license"] and "東京都環境局" in bear["attribution"]
    assert bear["synthetic"] is False


def test_paging_is_stable_and_complete(client: TestClient) -> None:
    seen: list[str] = []
    url, params = ITEMS, {"limit": "100"}
    while True:
        doc = client.get(url, params=params).json()
        assert doc["numberMatched"] == len(bears())
        seen += [f["id"] for f in doc["features"]]
        nxt = [link["href"] for link in doc["links"] if link["rel"] == "next"]
        if not nxt:
            break
        url, params = nxt[0].split("8000", 1)[1], {}
    assert len(seen) == len(set(seen)) == len(bears())


def test_a_limit_above_the_maximum_is_clamped_and_the_links_say_so(
    client: TestClient,
) -> None:
    top = client.app.state.runtime.limit_max  # type: ignore[attr-defined]
    doc = client.get(ITEMS, params={"limit": str(top + 5), "skipGeometry": "true"}).json()
    assert doc["numberReturned"] == min(top, len(bears()))
    self_link = next(link for link in doc["links"] if link["rel"] == "self")
    assert f"limit={top}&" in self_link["href"] + "&"
    assert f"clamped to the maximum {top}" in self_link["title"]
    plain = client.get(ITEMS, params={"limit": "5"}).json()
    assert "clamped" not in next(k for k in plain["links"] if k["rel"] == "self")["title"]


def test_bbox_matches_an_independent_count(client: TestClient) -> None:
    box = (139.0, 35.75, 139.2, 35.85)
    expected = sum(1 for f in bears() if shapely.box(*box).intersects(shape(f["geometry"])))
    doc = client.get(ITEMS, params={"bbox": ",".join(map(str, box)), "limit": "1000"}).json()
    assert doc["numberMatched"] == expected == len(doc["features"]) > 0


def test_polygon_bbox_uses_exact_geometry_not_envelopes(client: TestClient) -> None:
    box = shapely.box(139.25, 35.64, 139.30, 35.68)
    feats = json.loads((DATA / "hazard" / "tokyo_dosekiryu_tokubetsu.json").read_text("utf-8"))
    expected = sum(1 for f in feats["features"] if box.intersects(shape(f["geometry"])))
    envelope_hits = sum(
        1 for f in feats["features"] if box.intersects(shapely.box(*shape(f["geometry"]).bounds))
    )
    doc = client.get(ZONES, params={"bbox": "139.25,35.64,139.30,35.68", "limit": "1"}).json()
    assert doc["numberMatched"] == expected
    assert envelope_hits >= expected


def test_cql2_text_and_json_agree_with_the_derived_municipality(client: TestClient) -> None:
    text = client.get(ITEMS, params={"filter": "municipality_code = '13308'", "limit": "1"}).json()
    as_json = json.dumps({"op": "=", "args": [{"property": "municipality_code"}, "13308"]})
    js = client.get(ITEMS, params={"filter": as_json, "filter-lang": "cql2-json"}).json()
    eq = client.get(ITEMS, params={"municipality_code": "13308"}).json()
    assert text["numberMatched"] == js["numberMatched"] == eq["numberMatched"] == 317


def test_datetime_interval_and_sortby(client: TestClient) -> None:
    doc = client.get(
        ITEMS,
        params={"datetime": "2025-01-01T00:00:00Z/..", "limit": "1000", "sortby": "-observed_at"},
    ).json()
    expected = sum(
        1
        for f in bears()
        if f["properties"]["date"] >= "2025/01/01" or f["properties"]["date"][:4] == "2025"
    )
    times = [f["properties"]["observed_at"] for f in doc["features"]]
    assert times == sorted(times, reverse=True)
    assert all(t >= "2025-01-01" for t in times)
    assert abs(doc["numberMatched"] - expected) <= 1  # the first JST day straddles UTC midnight


@pytest.mark.parametrize(
    ("crs", "first_axis_range"),
    [
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", (138.9, 140.0)),
        ("http://www.opengis.net/def/crs/EPSG/0/4326", (35.4, 35.95)),
        ("http://www.opengis.net/def/crs/EPSG/0/6668", (35.4, 35.95)),
        ("http://www.opengis.net/def/crs/EPSG/0/6677", (-80000, 20000)),
    ],
)
def test_crs_output_uses_authority_axis_order(
    client: TestClient, crs: str, first_axis_range: tuple[float, float]
) -> None:
    r = client.get(ITEMS, params={"crs": crs, "limit": "5"})
    assert r.headers["content-crs"] == f"<{crs}>"
    for f in r.json()["features"]:
        x = f["geometry"]["coordinates"][0]
        assert first_axis_range[0] <= x <= first_axis_range[1], (crs, x)


def test_bbox_crs_selects_the_same_features(client: TestClient) -> None:
    plain = client.get(ITEMS, params={"bbox": "139.0,35.75,139.2,35.85"}).json()
    latlon = client.get(
        ITEMS,
        params={
            "bbox": "35.75,139.0,35.85,139.2",
            "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4326",
        },
    ).json()
    assert plain["numberMatched"] == latlon["numberMatched"] > 0


def test_feature_by_id_and_html(client: TestClient) -> None:
    first = client.get(ITEMS, params={"limit": "1"}).json()["features"][0]
    one = client.get(f"{ITEMS}/{first['id']}").json()
    assert one["id"] == first["id"] and one["properties"] == first["properties"]
    page = client.get(f"{ITEMS}/{first['id']}", params={"f": "html"})
    assert page.status_code == 200 and "東京都環境局" in page.text


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": "unlimited"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "139,36,140,35"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"datetime": "yesterday"}, "datetime"),
        ({"datetime": "2025-01-02/2025-01-01"}, "datetime"),
        ({"filter": "species = "}, "filter"),
        ({"filter": "nosuch = 1"}, "nosuch"),
        ({"filter": "{bad json", "filter-lang": "cql2-json"}, "JSON"),
        ({"filter-lang": "ecql", "filter": "a=1"}, "filter-lang"),
        ({"crs": "EPSG:9999"}, "crs"),
        ({"bbox": "1,2,3,4", "bbox-crs": "urn:x"}, "bbox-crs"),
        ({"sortby": "-nosuch"}, "sortby"),
        ({"ooga": "booga"}, "ooga"),
        ({"f": "xml"}, "f="),
        ({"count": "many"}, "integer"),
    ],
)
def test_bad_input_is_a_400_that_says_what_is_accepted(
    client: TestClient, params: dict[str, str], fragment: str
) -> None:
    r = client.get(ITEMS, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "InvalidParameterValue"
    assert fragment.lower() in body["description"].lower()
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    "path",
    [
        "/ogc/collections/nope",
        "/ogc/collections/nope/items",
        "/ogc/collections/wildlife-sightings/items/nope",
        "/ogc/collections/nope/queryables",
    ],
)
def test_unknown_collection_or_item_is_a_404_exception(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.json()["code"] == "NotFound"


def test_queryables_list_typed_properties(client: TestClient) -> None:
    q = client.get("/ogc/collections/wildlife-sightings/queryables").json()
    assert q["properties"]["observed_at"]["format"] == "date-time"
    assert "witness" in q["properties"]["kind"]["enum"]
    assert q["properties"]["geometry"]["format"] == "geometry-any"


def test_portal_lists_layers_with_credits(client: TestClient) -> None:
    page = client.get("/").text
    assert "/ogc/" in page and "CC BY 4.0" in page and "国土数値情報" in page


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
