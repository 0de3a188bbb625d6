"""Loaders against the real open-data extracts in ``../shared/data`` (never copied here).

Figures come from the data README: 790 sightings, 1,688 special zones, 65 landslide
zones, 2,560 shelters, 63 admin boundaries, 22/12/4 urf features in mesh 533957, 55 lsld
zones, 353 parcels in the arbitrary-coordinate 地図XML.  The Hachioji CSV has 153 data
*lines* but 150 records: three shelter names contain a line break inside quotes.
"""

from __future__ import annotations

import collections
import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import shapely

from geoservice.catalogue import LayerSpec, load_catalogue
from geoservice.errors import SourceError
from geoservice.features import Feature
from geoservice.loaders import get_loader
from geoservice.loaders.common import coerce, is_lat_lon, normalise_crs

PROJECT = Path(__file__).resolve().parents[1]
DATA = PROJECT.parent / "shared" / "data"
PLATEAU = DATA / "plateau"

pytestmark = pytest.mark.usefixtures("shared_data")  # fails in CI when the data is missing

TOKYO_MAINLAND = (138.9, 35.4, 140.0, 35.9)  # lon/lat box for the Tama + 23-ward files
TOKYO_ALL = (136.0, 20.0, 154.0, 35.95)  # including the Izu and Ogasawara islands


def make_spec(fmt: str, paths: list[str], props: list[dict[str, Any]], **extra: Any) -> LayerSpec:
    """A minimal spec for reading a file directly (not through layers/)."""
    options = dict(extra.pop("options", {}))
    options.setdefault("_root", str(DATA))
    source = {"format": fmt, "paths": paths, "options": options, **extra.pop("source", {})}
    return LayerSpec.model_validate(
        {
            "id": "test",
            "title": "test",
            "licence": {"name": "test", "url": "https://example.org"},
            "attribution": "test",
            "coverage": {"description": "test"},
            "source": source,
            "properties": props,
            **extra,
        }
    )


def run(spec: LayerSpec, files: list[Path] | None = None) -> list[Feature]:
    files = files if files is not None else [DATA / p for p in spec.source.paths]
    return list(get_loader(spec.source.format)(spec, files))


@cache
def layer(layer_id: str) -> list[Feature]:
    spec = load_catalogue(PROJECT / "layers")[layer_id].model_copy(deep=True)
    spec.source.options["_root"] = str(DATA)
    return run(spec)


def within(features: list[Feature], box: tuple[float, float, float, float]) -> bool:
    minx, miny, maxx, maxy = shapely.total_bounds([f.geometry for f in features])
    return box[0] <= minx and box[1] <= miny and maxx <= box[2] and maxy <= box[3]


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize(
    ("layer_id", "count"),
    [
        ("wildlife-sightings", 790),
        ("sediment-special-zones", 1688),
        ("landslide-zones", 65),
        ("shelters", 2560),
        ("hachioji-shelters", 150),
        ("admin-boundaries", 63),
        ("sediment-warning-zones", 55),
        ("zoning-use-districts", 22 + 8),
        ("height-control-districts", 12 + 15),
        ("fire-prevention-districts", 4 + 6),
        ("parcels", 1),
    ],
)
def test_layer_counts_match_the_readme(layer_id: str, count: int) -> None:
    assert len(layer(layer_id)) == count


def test_hachioji_csv_has_153_data_lines_for_150_records() -> None:
    text = (DATA / "evacuation/hachioji_hinanjo.csv").read_text(encoding="utf-8-sig")
    assert len(text.strip().splitlines()) - 1 == 153
    assert len(layer("hachioji-shelters")) == 150


def test_urf_533957_kinds() -> None:
    spec = make_spec(
        "plateau-urf",
        ["plateau/nusamai_tokyo23-ku/533957_urf_6668_op.gml"],
        [
            {"name": "feature_type"},
            {"name": "function"},
            {"name": "floorAreaRate", "type": "number"},
        ],
        options={"codelists": "plateau/codelists"},
    )
    kinds = collections.Counter(f.properties["feature_type"] for f in run(spec))
    assert kinds == {"UseDistrict": 22, "HeightControlDistrict": 12, "FirePreventionDistrict": 4}


# --------------------------------------------------------------------------- sightings


def test_bear_municipality_derivation() -> None:
    counts = collections.Counter(
        f.properties["municipality_code"] for f in layer("wildlife-sightings")
    )
    readme = {"13308": 317, "13228": 127, "13205": 118, "13307": 89, "13201": 73, "13305": 64}
    for code, expected in readme.items():
        assert abs(counts[code] - expected) <= 5, (code, counts[code])
    assert counts[None] == 0


def test_bear_vocabulary_and_ids() -> None:
    features = layer("wildlife-sightings")
    props = [f.properties for f in features]
    assert {p["species"] for p in props} == {"asian-black-bear"}
    assert {p["kind"] for p in props} <= {"witness", "trace", "photographing", "capture", "injury"}
    assert {p["reliability"] for p in props} == {"high", "middle", "low"}
    assert {p["status"] for p in props} == {"published"}
    assert {p["source"] for p in props} == {"TOKYOくまっぷ"}
    assert {p["count"] for p in props} == {1}
    first = next(f for f in features if f.properties["source_id"] == "1")
    assert first.id == "tokyo-kumap-1"
    assert first.properties["observed_at"] == "2023-04-01T00:00:00+09:00"
    days = [dt.datetime.fromisoformat(p["observed_at"]) for p in props]
    assert min(days).date() == dt.date(2023, 4, 1)
    assert max(days).date() == dt.date(2025, 11, 18)


# --------------------------------------------------------------------------- axis order


@pytest.mark.parametrize(
    ("layer_id", "box"),
    [
        ("wildlife-sightings", TOKYO_MAINLAND),
        ("hachioji-shelters", (139.15, 35.55, 139.45, 35.75)),
        ("zoning-use-districts", TOKYO_MAINLAND),
        ("height-control-districts", TOKYO_MAINLAND),
        ("fire-prevention-districts", TOKYO_MAINLAND),
        ("sediment-warning-zones", (139.65, 35.55, 139.75, 35.6)),
        ("sediment-special-zones", TOKYO_ALL),
        ("landslide-zones", TOKYO_ALL),
        ("shelters", TOKYO_ALL),
        ("admin-boundaries", TOKYO_ALL),
        ("parcels", (140.1, 35.6, 140.15, 35.65)),
    ],
)
def test_geometries_are_lon_lat_in_the_expected_box(layer_id: str, box: tuple) -> None:
    assert within(layer(layer_id), box)


def test_mainland_part_of_island_layers_is_in_tokyo() -> None:
    for layer_id in ("sediment-special-zones", "shelters"):
        mainland = [f for f in layer(layer_id) if f.geometry.centroid.y > 35.4]
        assert mainland and within(mainland, TOKYO_MAINLAND)


def test_latitude_first_crs_detection() -> None:
    assert is_lat_lon("http://www.opengis.net/def/crs/EPSG/0/6697")
    assert is_lat_lon("EPSG:6668")
    assert not is_lat_lon("EPSG:6677")
    assert normalise_crs("urn:ogc:def:crs:EPSG::6668") == "EPSG:6668"
    assert normalise_crs("urn:ogc:def:crs:OGC:1.3:CRS84") == "OGC:CRS84"


def test_other_city_urf_reads_coverage_ratio_and_city() -> None:
    spec = make_spec(
        "plateau-urf",
        ["plateau/other-cities/533915_urf_6668_yoto_op.gml"],
        [
            {"name": "function"},
            {"name": "building_coverage_ratio", "type": "number", "source": "buildingCoverageRate"},
            {"name": "city"},
            {"name": "city_code"},
        ],
        options={"codelists": "plateau/codelists", "feature_types": ["UseDistrict"]},
    )
    features = run(spec)
    assert len(features) == 4
    assert within(features, (139.5, 35.3, 139.9, 35.7))
    assert any(f.properties["building_coverage_ratio"] == 0.6 for f in features)
    assert all("川崎市" in f.properties["city"] for f in features)


# --------------------------------------------------------------------------- code lists


def test_use_district_function_is_decoded() -> None:
    pairs = {
        (f.properties["function_code"], f.properties["function"])
        for f in layer("zoning-use-districts")
    }
    assert ("5", "第1種住居地域") in pairs
    assert ("2", "第2種低層住居専用地域") in pairs
    fire = {f.properties["function"] for f in layer("fire-prevention-districts")}
    assert fire == {"防火地域", "準防火地域"}


def test_absent_code_list_keeps_raw_code_and_records_it() -> None:
    spec = make_spec(
        "plateau-urf",
        ["plateau/unity_TestDataTokyoMini/533925_urf_6668_yoto_op.gml"],
        [{"name": "urbanPlanType"}, {"name": "urbanPlanType_code"}, {"name": "undecoded"}],
        options={"codelists": "plateau/codelists"},
    )
    for feature in run(spec):
        assert (
            feature.properties["urbanPlanType"] == feature.properties["urbanPlanType_code"] == "21"
        )
        assert "urbanPlanType" in feature.properties["undecoded"]


GML_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0"
  xmlns:gml="http://www.opengis.net/gml" xmlns:urf="https://www.geospatial.jp/iur/urf/2.0">
 <gml:boundedBy><gml:Envelope srsName="http://www.opengis.net/def/crs/EPSG/0/6697" srsDimension="3">
  <gml:lowerCorner>35.6 139.7 0</gml:lowerCorner><gml:upperCorner>35.7 139.8 0</gml:upperCorner>
 </gml:Envelope></gml:boundedBy>
"""
GML_ZONE = """ <core:cityObjectMember>
  <urf:UseDistrict gml:id="z{n}">
   <urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">{code}</urf:function>
   <urf:lod1MultiSurface><gml:MultiSurface><gml:surfaceMember><gml:Polygon><gml:exterior>
    <gml:LinearRing><gml:posList>35.60 139.70 0 35.60 139.71 0 35.61 139.71 0 35.60 139.70 0
    </gml:posList></gml:LinearRing>
   </gml:exterior></gml:Polygon></gml:surfaceMember></gml:MultiSurface></urf:lod1MultiSurface>
  </urf:UseDistrict>
 </core:cityObjectMember>
"""
ZONE_PROPS = [{"name": "function"}, {"name": "function_code"}, {"name": "undecoded"}]


def test_unknown_code_in_present_list_is_kept_raw(tmp_path: Path) -> None:
    path = tmp_path / "zones.gml"
    path.write_text(GML_HEAD + GML_ZONE.format(n=1, code="99") + "</core:CityModel>\n", "utf-8")
    spec = make_spec(
        "plateau-urf", ["zones.gml"], ZONE_PROPS, options={"codelists": str(PLATEAU / "codelists")}
    )
    (feature,) = run(spec, [path])
    assert feature.properties["function"] == feature.properties["function_code"] == "99"
    assert feature.id == "z1"
    # lat,lon in the file -> lon,lat in the feature
    minx, miny, maxx, maxy = feature.geometry.bounds
    assert (minx, miny, maxx, maxy) == pytest.approx((139.70, 35.60, 139.71, 35.61))


def test_truncated_gml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken_urf.gml"
    text = GML_HEAD + GML_ZONE.format(n=1, code="5") + GML_ZONE.format(n=2, code="5")
    path.write_text(text[: len(text) - 200], "utf-8")
    spec = make_spec("plateau-urf", ["broken_urf.gml"], ZONE_PROPS)
    with pytest.raises(SourceError) as info:
        run(spec, [path])
    message = str(info.value)
    assert "broken_urf.gml" in message and "line " in message


# --------------------------------------------------------------------------- 地図XML


def test_arbitrary_coordinate_mojxml_is_refused() -> None:
    spec = make_spec("mojxml", ["mojxml/13113-0110-1.xml"], [{"name": "chiban"}])
    with pytest.raises(SourceError) as info:
        run(spec)
    message = str(info.value)
    assert "13113-0110-1.xml" in message
    assert "arbitrary coordinate system" in message and "control points" in message


def test_arbitrary_file_holds_353_parcels() -> None:
    from mojxml.parse import ParseOptions, parse_raw

    content = (DATA / "mojxml/13113-0110-1.xml").read_bytes()
    assert len(parse_raw(content, ParseOptions(include_arbitrary_crs=True))) == 353


def test_parcel_properties() -> None:
    (parcel,) = layer("parcels")
    assert parcel.properties["chiban"] == "194-1"
    assert parcel.properties["municipality_code"] == "12103"
    assert parcel.properties["coordinate_system"] == "公共座標9系"
    assert parcel.geometry.centroid.x == pytest.approx(140.12, abs=0.02)
    assert parcel.geometry.centroid.y == pytest.approx(35.62, abs=0.02)


# --------------------------------------------------------------------------- CSV


CSV_PROPS = [{"name": "name"}, {"name": "flood", "type": "boolean"}]


def test_csv_flags_bom_and_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "sites.csv"
    path.write_text(
        "\ufeffname,lat,lon,flood\nA,35.6,139.3,○\nB,35.6,139.3,\nC,north,139.3,1\n", "utf-8"
    )
    spec = make_spec("csv-points", ["sites.csv"], CSV_PROPS)
    loader = get_loader("csv-points")(spec, [path])
    first, second = next(loader), next(loader)
    assert first.properties == {"name": "A", "flood": True}
    assert second.properties["flood"] is None
    assert first.geometry.x == 139.3 and first.geometry.y == 35.6
    with pytest.raises(SourceError) as info:
        next(loader)
    assert "sites.csv" in str(info.value) and "line 4" in str(info.value)


def test_csv_unknown_flag_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "flags.csv"
    path.write_text("name,lat,lon,flood\nA,35.6,139.3,maybe\n", "utf-8")
    with pytest.raises(SourceError, match=r"flags.csv: line 2: property 'flood'"):
        run(make_spec("csv-points", ["flags.csv"], CSV_PROPS), [path])


def test_hachioji_hazard_flags() -> None:
    features = layer("hachioji-shelters")
    assert all(isinstance(f.properties["earthquake"], bool) for f in features)
    assert sum(f.properties["sediment"] for f in features) > 0
    assert features[0].id == "hachioji-1320100001"


# --------------------------------------------------------------------------- GeoJSON


def test_geojson_crs_mismatch_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "pts.geojson"
    path.write_text(
        '{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"EPSG:6677"}},'
        '"features":[]}',
        "utf-8",
    )
    with pytest.raises(SourceError, match="pts.geojson: file CRS"):
        run(make_spec("geojson", ["pts.geojson"], []), [path])


def test_geojson_projected_source_is_transformed(tmp_path: Path) -> None:
    path = tmp_path / "pts.geojson"
    path.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},'
        '"geometry":{"type":"Point","coordinates":[-5000.0,-35000.0]}}]}',
        "utf-8",
    )
    spec = make_spec("geojson", ["pts.geojson"], [], source={"crs": "EPSG:6677"})
    (feature,) = run(spec, [path])
    assert feature.id == "pts-0"
    assert feature.geometry.x == pytest.approx(139.78, abs=0.05)  # 9系 origin 139°50'
    assert feature.geometry.y == pytest.approx(35.68, abs=0.05)


# --------------------------------------------------------------------------- coercion


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        ("○", "boolean", True),
        ("◯", "boolean", True),
        ("TRUE", "boolean", True),
        ("False", "boolean", False),
        ("", "boolean", None),
        ("12", "integer", 12),
        ("1,200", "integer", 1200),
        ("0.6", "number", 0.6),
        ("2023/4/1", "date", "2023-04-01"),
        ("2023/4/1", "datetime", "2023-04-01T00:00:00+09:00"),
        ("2024-06-01T10:30:00Z", "datetime", "2024-06-01T10:30:00+00:00"),
        (13308, "string", "13308"),
    ],
)
def test_coerce(value: Any, type_: str, expected: Any) -> None:
    assert coerce(value, type_) == expected


def test_coerce_rejects_non_integers() -> None:
    with pytest.raises(ValueError):
        coerce("1.5", "integer")
