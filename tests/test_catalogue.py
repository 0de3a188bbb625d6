"""The layer specs in ``layers/``: they validate, point at real mirror files, carry licences,
and every property they declare is produced by their loader from the real extracts."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from geoservice.catalogue import LayerSpec, load_catalogue, load_layer
from geoservice.features import Feature
from geoservice.loaders import get_loader

PROJECT = Path(__file__).resolve().parents[1]
LAYERS = PROJECT / "layers"
DATA = PROJECT.parent / "shared" / "data"

EXPECTED_IDS = {
    "admin-boundaries",
    "sediment-special-zones",
    "landslide-zones",
    "shelters",
    "hachioji-shelters",
    "wildlife-sightings",
    "zoning-use-districts",
    "height-control-districts",
    "fire-prevention-districts",
    "sediment-warning-zones",
    "parcels",
}

needs_data = pytest.mark.usefixtures("shared_data")  # fails in CI when the data is missing


@cache
def catalogue() -> dict[str, LayerSpec]:
    return load_catalogue(LAYERS)


@cache
def loaded(layer_id: str) -> list[Feature]:
    spec = catalogue()[layer_id].model_copy(deep=True)
    spec.source.options["_root"] = str(DATA)
    files = [DATA / p for p in spec.source.paths]
    return list(get_loader(spec.source.format)(spec, files))


def test_catalogue_validates_and_has_the_fixed_ids() -> None:
    assert set(catalogue()) >= EXPECTED_IDS


@pytest.mark.parametrize("layer_id", sorted(EXPECTED_IDS))
def test_spec_metadata_is_complete(layer_id: str) -> None:
    spec = catalogue()[layer_id]
    assert (LAYERS / f"{layer_id}.yml").is_file(), "file name matches id"
    assert spec.title and spec.title_en and spec.description and spec.keywords
    assert spec.licence.name and spec.licence.url.startswith("https://")
    assert spec.attribution
    assert spec.synthetic is False
    assert spec.source.url and spec.source.url.startswith("https://")
    assert spec.coverage.bbox is not None or spec.coverage.extent_of_data
    get_loader(spec.source.format)  # the format is a registered loader
    names = [p.name for p in spec.properties]
    assert len(names) == len(set(names)), "property names are unique"
    if spec.temporal_property:
        assert spec.property(spec.temporal_property) is not None


@needs_data
@pytest.mark.parametrize("layer_id", sorted(EXPECTED_IDS))
def test_spec_paths_exist_in_mirror(layer_id: str) -> None:
    for rel in catalogue()[layer_id].source.paths:
        assert (DATA / rel).is_file(), rel


@needs_data
@pytest.mark.parametrize("layer_id", sorted(EXPECTED_IDS))
def test_every_declared_property_appears_in_loaded_features(layer_id: str) -> None:
    spec = catalogue()[layer_id]
    features = loaded(layer_id)
    assert features
    declared = [p.name for p in spec.properties]
    for feature in features:
        assert list(feature.properties) == declared
        assert feature.geometry is not None
    assert len({f.id for f in features}) == len(features), "ids are unique"
    # a property no feature fills is allowed only where the source lacks it everywhere
    always_empty = {n for n in declared if all(f.properties[n] is None for f in features)}
    allowed_empty = {
        "admin-boundaries": {"subprefecture"},
        "wildlife-sightings": {"description"},
        "zoning-use-districts": {"building_coverage_ratio", "valid_from"},
        "height-control-districts": {"valid_from"},
        "fire-prevention-districts": {"valid_from"},
        "parcels": {"chome", "koaza"},
    }.get(layer_id, set())
    assert always_empty <= allowed_empty, always_empty - allowed_empty


@needs_data
@pytest.mark.parametrize("layer_id", sorted(EXPECTED_IDS))
def test_geometry_type_matches_spec(layer_id: str) -> None:
    spec = catalogue()[layer_id]
    types = {f.geometry.geom_type for f in loaded(layer_id) if f.geometry is not None}
    assert types == {spec.geometry_type}


def test_index_on_unknown_property_is_a_load_error_naming_it(tmp_path: Path) -> None:
    spec = (LAYERS / "buildings.yml").read_text("utf-8")
    assert "indexes: [measured_height, storeys, usage]" in spec
    bad = tmp_path / "buildings.yml"
    bad.write_text(spec.replace("indexes: [measured_height,", "indexes: [heigth,"), "utf-8")
    with pytest.raises(ValueError, match=r"indexes: unknown properties \['heigth'\]"):
        load_layer(bad)
    assert load_layer(LAYERS / "buildings.yml").indexed_properties() == [
        "measured_height", "storeys", "usage"]
