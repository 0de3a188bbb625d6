"""City 3D: PLATEAU bldg reader, plateau-bldg loader, synthetic files, 3D Tiles and serving."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from geoservice.build import build
from geoservice.catalogue import load_layer
from geoservice.city3d.synthetic import SYNTHETIC_NOTE, write_synthetic
from geoservice.city3d.tiles3d import Geoid, ecef_to_geodetic, write_tiles
from geoservice.city3d.validate import run_gltf_validator, validate_all, validate_tileset
from geoservice.errors import SourceError
from geoservice.loaders import get_loader
from geoservice.loaders.citygml import ReadErrors, read_buildings, read_many
from geoservice.loaders.codelists import CodeLists
from tests.conftest import DATA, ROOT, need, need_data, settings_for

PLATEAU = DATA / "plateau"
CODELISTS = PLATEAU / "codelists"
OTA = PLATEAU / "libplateau_ota" / "53392642_bldg_6697_op2.gml"
UNITY = PLATEAU / "unity_TestDataTokyoMini"
SHINJUKU = UNITY / "53394525_bldg_6697_2_op.gml"
YOKOSUKA = PLATEAU / "other-cities" / "52397519_bldg_6697_op.gml"
HOKKAIDO = PLATEAU / "other-cities" / "64413325_bldg_6697_op.gml"
EXPECTED = {
    OTA: 8,
    UNITY / "53392546_bldg_6697_2_op.gml": 1,
    UNITY / "53392547_bldg_6697_2_op.gml": 1,
    SHINJUKU: 1,
    HOKKAIDO: 25,
    YOKOSUKA: 13,
}
TOKYO_FILES = [OTA, *sorted(UNITY.glob("*_bldg_*.gml"))]

@pytest.fixture(autouse=True)
def _plateau_data() -> None:
    need_data(PLATEAU)  # skips on a developer machine without it, fails in CI


def _codelists() -> CodeLists:
    return CodeLists(CODELISTS)


def _node_ready() -> bool:
    return shutil.which("node") is not None and (ROOT / "node_modules" / "gltf-validator").is_dir()


# --------------------------------------------------------------------------- reader


def test_every_shared_bldg_file_is_read() -> None:
    found = sorted(PLATEAU.rglob("*_bldg_*.gml"))
    assert set(found) == set(EXPECTED), "a new bldg file in shared/data: add it here"
    for path, count in EXPECTED.items():
        buildings = list(read_buildings(path, _codelists()))
        assert len(buildings) == count, path.name
        for b in buildings:
            assert b.lod is not None, f"{path.name}: {b.gml_id} without geometry"
            coords = np.concatenate(list(b.all_rings()))
            # axis order: lat/lon swapped into lon, lat
            assert ((coords[:, 0] > 129) & (coords[:, 0] < 146)).all(), path.name
            assert ((coords[:, 1] > 31) & (coords[:, 1] < 46)).all(), path.name


def test_lod2_building_of_47_2_m() -> None:
    (b,) = read_buildings(SHINJUKU, _codelists())
    assert b.measured_height == pytest.approx(47.2)
    assert b.lod == 2 and len(b.lod2) > 100
    assert {kind for kind, _ in b.lod2} >= {"RoofSurface", "WallSurface", "GroundSurface"}
    assert b.building_id == "13104-bldg-7305"
    assert b.district_zone == "商業地域" and b.district_zone_code == "10"


def test_flood_attributes_of_the_ota_file() -> None:
    buildings = list(read_buildings(OTA, _codelists()))
    flooded = [b for b in buildings if b.flood]
    assert flooded
    summary = flooded[0].flood_summary()
    assert "多摩川" in summary["source"] and summary["scale"] == "L2"
    assert summary["depth"] == pytest.approx(0.05) and summary["rank"] == "1"
    assert any(s.get("duration") is not None for b in buildings for s in b.flood)
    assert all(b.building_id and b.building_id.startswith("13111-bldg-") for b in buildings)
    assert {len(b.lod0) > 0 and len(b.lod1) > 0 for b in buildings} == {True}


def test_usage_and_class_are_decoded() -> None:
    buildings = list(read_buildings(YOKOSUKA, _codelists()))
    used = [b for b in buildings if b.usage_code]
    assert used and all(b.usage != b.usage_code for b in used)
    assert any(b.usage == "文教厚生施設" and b.usage_code == "422" for b in used)
    assert any(b.storeys for b in buildings)
    hokkaido = list(read_buildings(HOKKAIDO, _codelists()))
    assert "普通建物" in {b.class_ for b in hokkaido}
    assert all(b.class_ != b.class_code for b in hokkaido)
    assert any(b.flood_summary().get("depth") for b in hokkaido)  # i-UR 2.0 flood risk


def test_unknown_code_is_kept_raw_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = YOKOSUKA.read_text(encoding="utf-8")
    assert ">422</bldg:usage>" in text
    path = tmp_path / YOKOSUKA.name
    path.write_text(text.replace(">422</bldg:usage>", ">9999</bldg:usage>"), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="geoservice.loaders.citygml"):
        buildings = list(read_buildings(path, _codelists()))
    raw = [b for b in buildings if b.usage_code == "9999"]
    assert raw and all(b.usage == "9999" for b in raw)
    messages = [r.getMessage() for r in caplog.records]
    assert any("9999" in m and "Building_usage.xml" in m and "kept raw" in m for m in messages)


def test_truncated_file_is_a_source_error_and_others_still_read(tmp_path: Path) -> None:
    data = OTA.read_bytes()
    broken = tmp_path / "53392642_bldg_6697_op2.gml"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError) as info:
        list(read_buildings(broken))
    assert "53392642_bldg_6697_op2.gml: line " in info.value.description
    errors = ReadErrors()
    good = UNITY / "53392546_bldg_6697_2_op.gml"
    buildings = list(read_many([broken, good], _codelists(), errors))
    assert len(errors.errors) == 1 and "line" in errors.messages()[0]
    assert any(b.source_file == good.name for b in buildings)
    # the loader goes on with the other files too
    spec = load_layer(ROOT / "layers" / "buildings.yml")
    spec.source.options["_root"] = str(DATA)
    features = list(get_loader("plateau-bldg")(spec, [broken, good]))
    assert any(f.properties["source_file"] == good.name for f in features)


def test_malformed_xml_names_file_and_line(tmp_path: Path) -> None:
    text = SHINJUKU.read_text(encoding="utf-8").splitlines(keepends=True)
    text[40] = "<gml:posList>1 2 3</gml:pos>\n"
    bad = tmp_path / "bad_bldg.gml"
    bad.write_text("".join(text), encoding="utf-8")
    with pytest.raises(SourceError, match=r"bad_bldg\.gml: line 4\d"):
        list(read_buildings(bad))


# --------------------------------------------------------------------------- loader / layer


def test_buildings_layer_loads_footprints_in_crs84() -> None:
    spec = load_layer(ROOT / "layers" / "buildings.yml")
    assert spec.id == "buildings" and spec.domain == "city3d"
    spec.source.options["_root"] = str(DATA)
    features = list(get_loader("plateau-bldg")(spec, [DATA / p for p in spec.source.paths]))
    assert len(features) == 11
    names = {p.name for p in spec.properties}
    assert all(set(f.properties) == names for f in features)
    for f in features:
        assert f.geometry is not None and f.geometry.geom_type == "MultiPolygon"
        x0, y0, x1, y1 = f.geometry.bounds
        assert 139.6 < x0 < x1 < 139.8 and 35.5 < y0 < y1 < 35.7
    tall = next(f for f in features if f.properties["building_id"] == "13104-bldg-7305")
    assert tall.properties["measured_height"] == pytest.approx(47.2)
    assert tall.properties["lod"] == 2
    ota = [f for f in features if f.properties["source_file"] == OTA.name]
    assert any(f.properties["flood_depth_m"] for f in ota)
    assert all(f.properties["flood_scale"] in ("L2", None) for f in ota)


def test_build_writes_store_and_tiles(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ROOT / "layers").model_copy(
        update={"tiles_dir": tmp_path / "tiles"}
    )
    report = build(settings, mirror=DATA, layers=["buildings"])
    assert report.counts["buildings"] == 11
    assert "buildings-3dtiles" not in report.skipped, report.skipped
    tileset = tmp_path / "tiles" / "buildings" / "tileset.json"
    result = validate_tileset(tileset)
    assert result.ok, result.errors + result.warnings
    assert result.features == 11
    assert (
        "3D都市モデル" in json.loads(tileset.read_text("utf-8"))["asset"]["extras"]["attribution"]
    )


# --------------------------------------------------------------------------- synthetic


def test_synthetic_round_trip(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path / "syn.gml", 120, seed=7)
    again = write_synthetic(tmp_path / "syn2.gml", 120, seed=7)
    assert path.read_bytes() == again.read_bytes(), "deterministic for a seed"
    assert SYNTHETIC_NOTE in path.read_text("utf-8")[:2000]
    buildings = list(read_buildings(path, _codelists()))
    assert len(buildings) == 120
    assert len({b.gml_id for b in buildings}) == 120
    for b in buildings:
        assert b.lod == 1 and b.description == SYNTHETIC_NOTE
        assert b.attributes["synthetic"] == "true"
        assert b.measured_height and b.measured_height > 2 and b.storeys and b.storeys >= 1
        assert b.usage and b.usage != b.usage_code  # decoded
        lon, lat = b.centroid()
        assert 139.6 < lon < 139.9 and 35.6 < lat < 35.8
        zs = np.concatenate([r[:, 2] for rings in b.lod1 for r in rings])
        assert zs.max() - zs.min() == pytest.approx(b.measured_height, abs=0.01)
    assert any(b.flood for b in buildings)


def test_cli_synth(tmp_path: Path) -> None:
    from geoservice.cli import app

    out = tmp_path / "cli.gml"
    result = CliRunner().invoke(app, ["city3d", "synth", "--n", "30", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(list(read_buildings(out))) == 30


# --------------------------------------------------------------------------- 3D Tiles


def _leaves(tile: dict) -> list[dict]:
    kids = tile.get("children") or []
    return [tile] if not kids else [leaf for k in kids for leaf in _leaves(k)]


def _flat(tile: dict, base: Path, top: Path, parent: np.ndarray | None = None) -> dict:
    """The tile tree with external tilesets inlined, content uris relative to ``top`` (the
    tileset's directory) and every ``transform`` absolute (3D Tiles accumulate them)."""
    m = np.eye(4) if parent is None else parent
    out = dict(tile)
    if "transform" in tile:
        m = m @ np.array(tile["transform"]).reshape(4, 4).T
        out["transform"] = list(m.T.reshape(-1))
    uri = (tile.get("content") or {}).get("uri")
    if uri and uri.endswith(".json"):
        ext = json.loads((base / uri).read_text("utf-8"))
        del out["content"]
        out["children"] = [_flat(ext["root"], (base / uri).parent, top, m)]
        return out
    if uri:
        out["content"] = {"uri": str((base / uri).relative_to(top))}
    out["children"] = [_flat(c, base, top, m) for c in tile.get("children") or []]
    return out


def _check_tileset(tileset: Path, buildings: int) -> dict:
    report = validate_all(tileset, gltf=False)
    assert report.errors == [] and report.warnings == []
    assert report.leaf_features == buildings, "one metadata row per building at the leaves"
    need(_node_ready(), "node + npm gltf-validator (npm install)")
    results = run_gltf_validator(sorted(tileset.parent.rglob("*.glb")))
    assert results and all(r["errors"] == 0 and r["warnings"] == 0 for r in results), results
    doc = json.loads(tileset.read_text("utf-8"))
    assert doc["asset"]["version"] == "1.1"
    assert doc["root"]["geometricError"] > 0 and doc["root"]["refine"] in ("ADD", "REPLACE")
    doc["root"] = _flat(doc["root"], tileset.parent, tileset.parent)
    assert all(leaf["geometricError"] == 0 and "content" in leaf for leaf in _leaves(doc["root"]))
    return doc


def test_tiles_for_the_real_tokyo_buildings(tmp_path: Path) -> None:
    report = write_tiles(TOKYO_FILES, tmp_path / "buildings", _codelists())
    assert report.buildings == 11 and report.problems == []
    doc = _check_tileset(tmp_path / "buildings" / "tileset.json", 11)
    assert (
        "EGM96" in doc["asset"]["extras"]["heights"]
        or "constant" in doc["asset"]["extras"]["heights"]
    )
    for leaf in _leaves(doc["root"]):
        m = np.array(leaf["transform"]).reshape(4, 4).T
        lon, lat, h = ecef_to_geodetic(m[:3, 3])
        assert 139.5 < lon < 140.0 and 35.4 < lat < 35.9, (lon, lat)
        assert -100 < h < 500
        w, s, e, n, h0, h1 = leaf["boundingVolume"]["region"]
        assert w <= math.radians(lon) <= e and s <= math.radians(lat) <= n
        assert -100 < h0 < h1 < 600


def test_tiles_for_every_shared_bldg_file(tmp_path: Path) -> None:
    report = write_tiles(list(EXPECTED), tmp_path / "all", _codelists())
    assert report.buildings == sum(EXPECTED.values())
    doc = _check_tileset(tmp_path / "all" / "tileset.json", report.buildings)
    assert len(_leaves(doc["root"])) >= 3  # Tokyo, Yokosuka and Hokkaido apart


def test_tiles_for_2000_synthetic_buildings(tmp_path: Path) -> None:
    src = write_synthetic(tmp_path / "syn.gml", 2000, seed=3)
    report = write_tiles([src], tmp_path / "syn", _codelists(), max_per_leaf=500, synthetic=True)
    assert report.buildings == 2000 and report.leaves >= 4
    doc = _check_tileset(tmp_path / "syn" / "tileset.json", 2000)
    assert doc["asset"]["extras"]["synthetic"] is True


def test_geoid_undulation_in_tokyo() -> None:
    geoid = Geoid()
    n = geoid.undulation(139.76, 35.68)
    assert 34.0 < n < 40.0
    assert geoid.uses_grid == (geoid.grid_path is not None)
    assert ("EGM96" in geoid.description) == geoid.uses_grid
    fallback = Geoid(grid=Path("/nonexistent.gtx"))  # a named grid that is missing
    assert not fallback.uses_grid and "constant" in fallback.description
    assert fallback.undulation(139.76, 35.68) == 36.7


def test_validator_catches_broken_tilesets(tmp_path: Path) -> None:
    write_tiles(TOKYO_FILES[:1], tmp_path / "t", _codelists())
    path = tmp_path / "t" / "tileset.json"
    doc = json.loads(path.read_text("utf-8"))
    doc["asset"]["version"] = "1.0"
    doc["root"]["refine"] = "add"
    leaf = _leaves(doc["root"])[0]
    leaf["geometricError"] = doc["root"]["geometricError"] + 1
    leaf["boundingVolume"]["region"][5] = leaf["boundingVolume"]["region"][4] + 0.01
    path.write_text(json.dumps(doc), "utf-8")
    errors = " | ".join(validate_tileset(path).errors)
    for needle in ("asset.version", "refine", "exceeds its parent", "not inside boundingVolume"):
        assert needle in errors, errors
    glb = next((tmp_path / "t").rglob("*.glb"))
    data = bytearray(glb.read_bytes())
    data[8:12] = (len(data) + 4).to_bytes(4, "little")
    glb.write_bytes(bytes(data))
    assert any("header length" in e for e in validate_tileset(path).errors)


# --------------------------------------------------------------------------- serving


def test_tiles_are_served_and_linked(tmp_path: Path) -> None:
    from geoservice.app import create_app

    settings = settings_for(tmp_path, ROOT / "layers").model_copy(
        update={"tiles_dir": tmp_path / "tiles"}
    )
    build(settings, mirror=DATA, layers=["buildings"])
    with TestClient(create_app(settings)) as client:
        r = client.get("/3dtiles/buildings/tileset.json")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        tiles = settings.tiles_dir / "buildings"
        uri = _leaves(_flat(r.json()["root"], tiles, tiles))[0]["content"]["uri"]
        g = client.get(f"/3dtiles/buildings/{uri}")
        assert g.status_code == 200 and g.headers["content-type"] == "model/gltf-binary"
        assert g.content[:4] == b"glTF"
        assert client.get("/3dtiles/buildings/nope.json").status_code == 404
        coll = client.get("/ogc/collections/buildings?f=json").json()
        hrefs = [link["href"] for link in coll["links"]]
        assert any(h.endswith("/3dtiles/buildings/tileset.json") for h in hrefs)
        assert coll["itemCount"] == 11


def test_parallel_meshing_gives_the_same_tileset(tmp_path: Path) -> None:
    src = write_synthetic(tmp_path / "syn.gml", 600, seed=5)
    one = write_tiles([src], tmp_path / "one", _codelists(), max_per_leaf=200, workers=1)
    two = write_tiles([src], tmp_path / "two", _codelists(), max_per_leaf=200, workers=2)
    assert one.buildings == two.buildings == 600
    a = json.loads((tmp_path / "one" / "tileset.json").read_text("utf-8"))
    b = json.loads((tmp_path / "two" / "tileset.json").read_text("utf-8"))
    assert a == b
    for glb in (tmp_path / "one").rglob("*.glb"):
        assert (
            glb.read_bytes() == (tmp_path / "two" / glb.relative_to(tmp_path / "one")).read_bytes()
        )
