"""Builds are atomic and re-runnable; configuration is validated with ${ENV} substitution."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from geoservice.build import build, is_stale
from geoservice.config import ConfigError, load_settings, substitute_env
from geoservice.errors import SourceError
from geoservice.store.gpkg import GpkgStore
from tests.conftest import DATA, ROOT, settings_for


def _one_layer_dir(tmp: Path, source_path: str) -> Path:
    layers = tmp / "layers"
    layers.mkdir()
    spec = yaml.safe_load((ROOT / "layers" / "landslide-zones.yml").read_text("utf-8"))
    spec["source"]["paths"] = [source_path]
    (layers / "landslide-zones.yml").write_text(yaml.safe_dump(spec, allow_unicode=True), "utf-8")
    return layers


def test_build_then_failed_build_leaves_previous_store_untouched(tmp_path: Path) -> None:
    layers = _one_layer_dir(tmp_path, "hazard/tokyo_jisuberi.json")
    settings = settings_for(tmp_path, layers)
    report = build(settings, mirror=DATA)
    assert report.counts == {"landslide-zones": 65}
    before = settings.store.path.read_bytes()

    mirror = tmp_path / "broken"
    (mirror / "hazard").mkdir(parents=True)
    good = (DATA / "hazard" / "tokyo_jisuberi.json").read_text("utf-8")
    (mirror / "hazard" / "tokyo_jisuberi.json").write_text(good[: len(good) // 2], "utf-8")
    with pytest.raises(SourceError):
        build(settings, mirror=mirror)
    assert settings.store.path.read_bytes() == before
    assert not list(tmp_path.glob("*.building*"))
    assert GpkgStore(settings.store.path).info("landslide-zones").count == 65


def test_missing_source_names_the_file(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, _one_layer_dir(tmp_path, "hazard/nope.json"))
    with pytest.raises(SourceError, match="nope.json"):
        build(settings, mirror=DATA)
    assert not settings.store.path.exists()


def test_rebuild_is_idempotent_and_staleness_is_detected(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, _one_layer_dir(tmp_path, "hazard/tokyo_jisuberi.json"))
    assert is_stale(settings, DATA)
    first = build(settings, mirror=DATA).counts
    assert not is_stale(settings, DATA)
    assert build(settings, mirror=DATA).counts == first


def test_env_substitution_and_defaults() -> None:
    assert substitute_env("a: ${X:-1}", {}) == "a: 1"
    assert substitute_env("a: ${X:-1}", {"X": "2"}) == "a: 2"
    with pytest.raises(ValueError, match=r"\$\{SECRET\}"):
        substitute_env("token: ${SECRET}", {})


def test_config_is_validated(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("server:\n  port: ${PORT:-8000}\n", "utf-8")
    assert load_settings(cfg, {"PORT": "8123"}).server.port == 8123
    cfg.write_text("server:\n  port: 99999\n", "utf-8")
    with pytest.raises(ValueError, match="port"):
        load_settings(cfg, {})
    cfg.write_text("sever:\n  port: 1\n", "utf-8")
    with pytest.raises(ValueError, match="sever"):
        load_settings(cfg, {})


@pytest.mark.parametrize(
    ("text", "where", "accepted"),
    [
        ("guide:\n  pause_job: true\n", "guide.pause_job", "parcel_layers, pause_jobs"),
        ("sightings:\n  reports_per_min: 3\n", "sightings.reports_per_min", "max_photo"),
        ("auth:\n  peper: x\n", "auth.peper", "pepper"),
        ("transactions:\n  max_bytes: 9\n", "transactions.max_bytes", "max_body"),
        ("feeds:\n  - {id: a, url: u, collection: c, mapping: {}, maping: {}}\n",
         "feeds.0.maping", "mapping"),
        ("extra:\n  guide: {}\n", "extra", "accepted keys: alerts, auth, basemaps, contact"),
    ],
)
def test_an_unknown_key_is_named_with_the_accepted_ones(
    tmp_path: Path, text: str, where: str, accepted: str
) -> None:
    """A mistyped key in any section stops start-up, saying which key and what is accepted
    (it used to be ignored silently under ``extra``)."""
    cfg = tmp_path / "config.yml"
    cfg.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, {})
    key = where.rsplit(".", 1)[-1]
    assert f"{where}: unknown key {key!r}; accepted keys: " in str(err.value)
    assert accepted in str(err.value)


def test_config_sections_reach_the_rooms(tmp_path: Path) -> None:
    """The typed sections carry their values (and unset guide keys keep guide.yml's)."""
    from geoservice.guide.service import guide_config
    from geoservice.sightings.policy import SensitiveConfig

    cfg = tmp_path / "config.yml"
    cfg.write_text(
        "guide: {pause_jobs: true}\n"
        "sightings: {sensitive_species: {asiatic-black-bear: 500}, sensitive_cell: 2000}\n"
        "transactions: {max_body: 1024}\nauth: {pepper: p}\n",
        "utf-8",
    )
    s = load_settings(cfg, {})
    conf = guide_config(s.guide)
    assert conf.pause_jobs is True and conf.jobs_db == "guide-jobs.sqlite"
    assert conf.parcel_layers == ["parcels", "demo-parcels"]
    sens = SensitiveConfig.load(s.sightings)
    assert sens.species["asiatic-black-bear"] == 500 and sens.record_cell == 2000
    assert sens.species["japanese-serow"] == 1000  # from sensitive.yml
    assert s.transactions.max_body == 1024 and s.auth.pepper == "p"


def test_project_config_loads_and_resolves_paths() -> None:
    s = load_settings(ROOT / "config.yml", {})
    assert s.store.path.is_absolute() and s.layers_dir == ROOT / "layers"


def test_an_interrupted_3d_tiles_build_makes_the_store_stale(tmp_path: Path) -> None:
    """``make run`` builds with ``--if-stale``.  A build killed in its 3D Tiles step (after
    the store swap) leaves a staging directory beside the tileset: the next ``make run``
    must build again (and so resume the tiles), not find the store up to date forever."""
    from geoservice.city3d import resume

    settings = settings_for(tmp_path, _one_layer_dir(tmp_path, "hazard/tokyo_jisuberi.json"))
    build(settings, mirror=DATA)
    assert not is_stale(settings, DATA)
    out = settings.tiles_dir / "buildings"
    resume.open_staging(out, {"files": []})  # what the killed build left behind
    assert is_stale(settings, DATA)
    resume.discard(out)
    assert not is_stale(settings, DATA)
