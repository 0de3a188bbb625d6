"""The buildings tileset's level-of-detail hierarchy (geoservice.city3d.lod) at small N.

3,000 synthetic buildings with small leaves (100 buildings) and external tilesets every
level give a five-level quadtree - the shape of the 10^6-building tileset, fast.  Checked:
the tileset validates (external tilesets followed; containment, errors, glb layout,
metadata); inner tiles refine REPLACE with merged blocks, fewer and smaller than what they
replace, and geometric errors falling to 0 at the leaves; the root and level 1 fit the
first-view budget; every building is in exactly one leaf; two processes build the same
tileset as one.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from geoservice.city3d.synthetic import write_synthetic
from geoservice.city3d.tiles3d import TilesReport, write_tiles
from geoservice.city3d.validate import run_gltf_validator, validate_tileset
from tests.conftest import ROOT, need

N = 3000
#: bytes of the root and level-1 tiles a viewer loads first (the 10^6 tileset's too)
FIRST_VIEW_BUDGET = 512 * 1024


@pytest.fixture(scope="module")
def lod(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TilesReport]:
    tmp = tmp_path_factory.mktemp("lod")
    src = write_synthetic(tmp / "syn.gml", N, seed=7)
    return tmp / "t", _build(src, tmp / "t", workers=1)


def _build(src: Path, out: Path, workers: int) -> TilesReport:
    """Small leaves on small cells, an external tileset every level: five levels at 3k."""
    return write_tiles(
        [src],
        out,
        max_per_leaf=100,
        cell_deg=0.001,
        subtree_levels=1,
        workers=workers,
        synthetic=True,
    )


def _glb(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    (jlen,) = struct.unpack_from("<I", data, 12)
    doc = json.loads(data[20 : 20 + jlen])
    return doc, data[20 + jlen + 8 :]


def _strings(path: Path, column: str) -> list[str]:
    """A string column of the glb's property table."""
    doc, binary = _glb(path)
    table = doc["extensions"]["EXT_structural_metadata"]["propertyTables"][0]
    prop = table["properties"].get(column)
    if prop is None:
        return []
    views = doc["bufferViews"]

    def view(i: int) -> bytes:
        v = views[i]
        return binary[v["byteOffset"] : v["byteOffset"] + v["byteLength"]]

    values = view(prop["values"])
    offsets = np.frombuffer(view(prop["stringOffsets"]), dtype=np.uint32)
    return [values[a:b].decode() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def _features(path: Path) -> int:
    doc, _ = _glb(path)
    return int(doc["extensions"]["EXT_structural_metadata"]["propertyTables"][0]["count"])


def _walk(tile: dict[str, Any], base: Path, level: int = 0) -> dict[str, Any]:
    """The tile with external tilesets inlined: {level, content path, error, children}."""
    uri = (tile.get("content") or {}).get("uri")
    if uri and uri.endswith(".json"):
        doc = json.loads((base / uri).read_text("utf-8"))
        inner = _walk(doc["root"], (base / uri).parent, level)
        return {**inner, "error": tile["geometricError"], "external_error": inner["error"]}
    return {
        "level": level,
        "path": base / uri if uri else None,
        "error": tile["geometricError"],
        "refine": tile.get("refine"),
        "region": tile["boundingVolume"]["region"],
        "children": [_walk(c, base, level + 1) for c in tile.get("children", [])],
    }


def _all(t: dict[str, Any]) -> list[dict[str, Any]]:
    return [t, *(x for c in t["children"] for x in _all(c))]


def _subtree_bytes(t: dict[str, Any]) -> int:
    return t["path"].stat().st_size if t["path"] else 0


@pytest.fixture(scope="module")
def tree(lod: tuple[Path, TilesReport]) -> dict[str, Any]:
    out, _ = lod
    doc = json.loads((out / "tileset.json").read_text("utf-8"))
    return _walk(doc["root"], out)


def test_the_hierarchy_validates(lod: tuple[Path, TilesReport]) -> None:
    out, report = lod
    assert report.buildings == N and report.problems == [] and report.skipped == 0
    assert report.peak_rss_mb > 0 and report.seconds > 0
    result = validate_tileset(out / "tileset.json")
    assert result.errors == [] and result.warnings == []
    assert result.leaf_features == N
    assert result.features > N, "the inner tiles hold merged blocks too"
    assert list((out / "tiles").glob("*.json")), "external tilesets were written"
    need((ROOT / "node_modules" / "gltf-validator").is_dir(), "node + npm gltf-validator (npm ci)")
    inner = sorted(p for p in (out / "tiles").glob("*.glb") if p.stem.startswith(("0_", "1_")))
    results = run_gltf_validator(inner)
    assert results and all(r["errors"] == 0 and r["warnings"] == 0 for r in results), results


def test_parents_are_coarser_and_smaller(tree: dict[str, Any]) -> None:
    tiles = _all(tree)
    assert max(t["level"] for t in tiles) >= 3, "a real multi-level hierarchy"
    for t in tiles:
        if not t["children"]:
            assert t["error"] == 0 and t["path"] is not None
            continue
        assert t["refine"] == "REPLACE" and t["path"] is not None
        assert all(0 <= c["error"] < t["error"] for c in t["children"])
        kids = [c for c in t["children"] if c["path"]]
        assert _features(t["path"]) < sum(_features(c["path"]) for c in kids)
        assert t["path"].stat().st_size < sum(_subtree_bytes(c) for c in kids)
        assert _strings(t["path"], "building_id") == [], "blocks are not buildings"


def test_first_view_fits_the_budget(tree: dict[str, Any]) -> None:
    first = [tree, *tree["children"]]
    assert sum(_subtree_bytes(t) for t in first) < FIRST_VIEW_BUDGET
    assert all(_subtree_bytes(t) < 1 << 20 for t in _all(tree)), "every tile under 1 MB"


def test_every_building_is_in_exactly_one_leaf(tree: dict[str, Any]) -> None:
    ids: list[str] = []
    for t in _all(tree):
        if not t["children"]:
            ids.extend(_strings(t["path"], "building_id"))
    assert len(ids) == N and len(set(ids)) == N
    assert set(ids) == {f"SYN7-bldg-{i:07d}" for i in range(N)}


def test_two_processes_build_the_same_tileset(
    lod: tuple[Path, TilesReport], tmp_path: Path
) -> None:
    out, _ = lod
    src = out.parent / "syn.gml"
    two = _build(src, tmp_path / "t", workers=2)
    assert two.buildings == N
    one_files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    two_files = sorted(
        p.relative_to(tmp_path / "t") for p in (tmp_path / "t").rglob("*") if p.is_file()
    )
    assert one_files == two_files
    for rel in one_files:
        assert (out / rel).read_bytes() == (tmp_path / "t" / rel).read_bytes(), rel
