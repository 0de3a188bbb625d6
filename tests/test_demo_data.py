"""The project's synthetic demo mirror ``data/demo`` (written by ``tools/make_demo_data.py``).

Checks that every non-bundled layer builds from it with features, that everything built
from it is labelled synthetic, and that the generator reproduces the committed files
byte for byte.
"""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from geoservice.build import build
from geoservice.catalogue import load_catalogue
from geoservice.config import Settings, load_settings
from geoservice.store.gpkg import GpkgStore

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / "data" / "demo"
GENERATOR = PROJECT / "tools" / "make_demo_data.py"


def _settings(tmp_path: Path) -> Settings:
    settings = load_settings(PROJECT / "config.yml")
    store = settings.store.model_copy(update={"path": tmp_path / "demo.gpkg", "backend": "gpkg"})
    return settings.model_copy(update={"store": store, "work_dir": tmp_path / "work"})


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[GpkgStore, dict[str, int]]:
    settings = _settings(tmp_path_factory.mktemp("demo-build"))
    report = build(settings, mirror=DEMO)
    return GpkgStore(settings.store.path), report.counts


def _mirrored_layers() -> list[str]:
    specs = load_catalogue(PROJECT / "layers")
    return sorted(lid for lid, spec in specs.items()
                  if not spec.source.bundled and spec.source.kind == "file")


def _api_layers() -> list[str]:
    specs = load_catalogue(PROJECT / "layers")
    return sorted(lid for lid, spec in specs.items() if spec.source.kind == "reinfolib")


def test_mirror_manifest_declares_synthetic() -> None:
    from geoservice.loaders.sources import Mirror

    mirror = Mirror.open(DEMO)
    assert mirror.synthetic is True
    assert mirror.label == "Tokyo GeoTwin demo data (synthetic)"


def test_every_mirrored_source_file_exists() -> None:
    specs = load_catalogue(PROJECT / "layers")
    missing = [
        f"{lid}: {p}"
        for lid, spec in specs.items()
        if not spec.source.bundled
        for p in spec.source.paths
        if not (DEMO / p).is_file()
    ]
    assert not missing, f"demo mirror lacks source files: {missing}"


@pytest.mark.parametrize("layer", _mirrored_layers())
def test_layer_builds_with_features(
    demo_store: tuple[GpkgStore, dict[str, int]], layer: str
) -> None:
    store, counts = demo_store
    assert counts.get(layer, 0) > 0, f"{layer}: no features from the demo mirror"
    info = store.info(layer)
    assert info.count == counts[layer]
    assert info.synthetic is True
    assert info.source == "Tokyo GeoTwin demo data (synthetic)"


def test_every_collection_is_synthetic(demo_store: tuple[GpkgStore, dict[str, int]]) -> None:
    """Everything with data in the demo store is synthetic; the only other collections are
    the (empty) 不動産情報ライブラリ API layers, tested below."""
    store, _ = demo_store
    assert store.collections()
    official = [c for c in store.collections() if not store.info(c).synthetic]
    assert sorted(official) == _api_layers()


def test_api_layers_are_empty_and_not_configured_in_the_demo(
    demo_store: tuple[GpkgStore, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo has no key and no network: the API layers exist as empty official
    collections, fetched per tile only once a key is set, and say "not configured"."""
    from geoservice.reinfolib.source import ReinfolibSource

    monkeypatch.delenv("REINFOLIB_API_KEY", raising=False)
    store, counts = demo_store
    assert len(_api_layers()) == 14
    source = ReinfolibSource.open(load_settings(PROJECT / "config.yml"), store)
    assert sorted(source.layers) == _api_layers()
    for lid in _api_layers():
        info = store.info(lid)
        assert counts[lid] == 0 and info.count == 0 and info.synthetic is False
        assert info.source is not None and info.source.startswith("不動産情報ライブラリ API X")
        assert str(source.describe(store.spec(lid))["status"]).startswith("not configured")


def test_bear_sightings_cover_recency_and_municipalities(
    demo_store: tuple[GpkgStore, dict[str, int]],
) -> None:
    store, counts = demo_store
    assert 50 <= counts["wildlife-sightings"] <= 200
    con = store._con()
    last_month, last_quarter, unassigned = con.execute(
        'SELECT SUM(observed_at >= "2026-10-27"), SUM(observed_at >= "2026-08-27"), '
        'SUM(municipality_code IS NULL) FROM "wildlife-sightings"'
    ).fetchone()
    assert last_month >= 5
    assert last_quarter > last_month
    assert unassigned == 0


def test_generator_is_deterministic(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], check=True,
                   capture_output=True)
    generated = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(DEMO) for p in DEMO.rglob("*") if p.is_file())
    assert generated == committed
    _, mismatch, errors = filecmp.cmpfiles(out, DEMO, [str(p) for p in generated], shallow=False)
    assert mismatch == [] and errors == [], f"regenerate data/demo: {mismatch or errors}"


def test_demo_is_small() -> None:
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert total < 1_000_000
