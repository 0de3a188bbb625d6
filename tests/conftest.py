"""Shared fixtures: stores built from the real extracts, apps, and live servers.

Tests that need an outside service (PostGIS, Chromium) call ``need(...)``: they skip on a
developer machine without it, and FAIL when ``GEOSERVICE_REQUIRE_ALL=1`` (set by CI), so
nothing CI is meant to run is silently skipped there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient

from geoservice.app import create_app
from geoservice.build import build
from geoservice.config import BasemapSettings, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
CQL2 = SHARED / "conformance" / "cql2"
CQL2_COLLECTIONS = (
    "ne_110m_admin_0_countries",
    "ne_110m_populated_places_simple",
    "ne_110m_rivers_lake_centerlines",
)


def need(available: bool, what: str) -> None:
    """Skip (developer machine) or fail (CI) when an outside service is missing."""
    if available:
        return
    if os.environ.get("GEOSERVICE_REQUIRE_ALL") == "1":
        pytest.fail(f"{what} is required in CI but not available")
    pytest.skip(f"{what} not available (set GEOSERVICE_REQUIRE_ALL=1 to make this an error)")


def need_data(path: Path) -> None:
    """Skip (developer machine) or fail (CI) when shared reference data is missing."""
    need(path.exists(), f"shared data at {path}")


@pytest.fixture
def shared_data() -> None:
    """Tests reading the real extracts in ../shared/data (``need`` semantics)."""
    need_data(DATA)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(tmp: Path, layers_dir: Path, port: int | None = None) -> Settings:
    """Project settings with the store, work dir and tiles under ``tmp``."""
    base = load_settings(ROOT / "config.yml", env={})
    server = base.server.model_copy(update={"port": port or 8000, "url": None})
    store = base.store.model_copy(update={"path": tmp / "store.gpkg"})
    return base.model_copy(
        update={"server": server, "store": store, "work_dir": tmp, "layers_dir": layers_dir,
                "tiles_dir": tmp / "tiles", "basemaps": local_basemaps()}
    )


def build_layers(settings: Settings, layers: list[str], **update: Any) -> Settings:
    """``settings`` limited to ``layers`` (plus ``update``), with those layers built from the
    real extracts into its store: the small store most room tests start from."""
    settings = settings.model_copy(update={"enabled_layers": layers, **update})
    build(settings, mirror=DATA, layers=layers)
    return settings


def local_basemaps() -> BasemapSettings:
    """The default basemaps served by the tests' own tile server (never the network)."""
    from tests.tileserver import basemaps_at, shared_tile_server

    return basemaps_at(shared_tile_server().origin)


def _schema_type(prop: dict[str, Any]) -> str | None:
    if "$ref" in prop:
        return None
    fmt = {"date": "date", "date-time": "datetime"}.get(prop.get("format", ""))
    return fmt or prop.get("type", "string")


def write_cql2_specs(directory: Path) -> None:
    """Layer specs for the OGC CQL2 test dataset, derived from its queryables JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in CQL2_COLLECTIONS:
        q = json.loads((CQL2 / f"{name}.json").read_text("utf-8"))
        props = [
            {"name": k, "type": t}
            for k, v in q["properties"].items()
            if (t := _schema_type(v)) is not None
        ]
        gtype = q["properties"]["geom"]["$ref"].rsplit("/", 1)[-1].removesuffix(".json")
        spec = {
            "id": name,
            "title": name,
            "licence": {
                "name": "Public domain (Natural Earth)",
                "url": "https://www.naturalearthdata.com/about/terms-of-use/",
            },
            "attribution": "Natural Earth, via the OGC CQL2 test suite",
            "source": {
                "format": "geojson",
                "paths": [f"{name}.geojson"],
                "crs": "OGC:CRS84",
                "options": {"timezone": "UTC"},
            },
            "coverage": {"description": "world", "bbox": [-180, -90, 180, 90]},
            "geometry_type": gtype,
            "geometry_name": "geom",
            "properties": props,
        }
        (directory / f"{name}.yml").write_text(yaml.safe_dump(spec, allow_unicode=True), "utf-8")


class ThreadedServer:
    """uvicorn serving an ASGI app in a background thread on 127.0.0.1."""

    def __init__(self, app: Any, port: int, lifespan: str = "on") -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan=lifespan)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class LiveServer(ThreadedServer):
    """The service app, served in a background thread on 127.0.0.1."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__(create_app(settings), settings.server.port)


@pytest.fixture(scope="session")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store built once from the real extracts in ../shared/data (plus bundled layers)."""
    tmp = tmp_path_factory.mktemp("real")
    build(settings_for(tmp, ROOT / "layers"), mirror=DATA)
    return tmp


def _settings_over(store_dir: Path, layers_dir: Path, port: int | None = None) -> Settings:
    return settings_for(store_dir, layers_dir, port)


@pytest.fixture(scope="session")
def real_settings(real_store: Path) -> Settings:
    """Settings over the real store (port 8000 in links; for in-process clients)."""
    return _settings_over(real_store, ROOT / "layers")


@pytest.fixture(scope="session", params=["gpkg", "postgis"])
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend a ``client`` test runs against (every such test runs on both)."""
    return str(request.param)


@pytest.fixture(scope="session")
def client(backend: str, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """An in-process client of the app over the real store, on each backend."""
    name = "real_settings" if backend == "gpkg" else "pg_real_settings"
    settings: Settings = request.getfixturevalue(name)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def live(real_store: Path) -> Iterator[LiveServer]:
    """The app over the real store, served on a free port."""
    with LiveServer(_settings_over(real_store, ROOT / "layers", free_port())) as srv:
        yield srv


@pytest.fixture(scope="session")
def cql2_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store holding the three OGC CQL2 test layers."""
    tmp = tmp_path_factory.mktemp("cql2")
    layers = tmp / "layers"
    write_cql2_specs(layers)
    build(settings_for(tmp, layers), mirror=CQL2)
    return tmp, layers


@pytest.fixture(scope="session")
def cql2_client(cql2_store: tuple[Path, Path]) -> Iterator[TestClient]:
    """In-process client over the CQL2 test layers."""
    with TestClient(create_app(_settings_over(*cql2_store))) as c:
        yield c


@pytest.fixture(scope="session")
def cql2_live(cql2_store: tuple[Path, Path]) -> Iterator[LiveServer]:
    """The CQL2 test layers served on a free port."""
    with LiveServer(_settings_over(*cql2_store, free_port())) as srv:
        yield srv


def chromium_path() -> str | None:
    """Debian's Chromium, if installed."""
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )


# -- PostgreSQL + PostGIS ----------------------------------------------------------------------
LOCAL_ROLE = "geoservice_test"


def _local_cluster_url() -> str | None:
    """Start Debian's first PostgreSQL cluster (as root) and make a test role; its URL.

    Used only when ``GEOSERVICE_TEST_DATABASE_URL`` is unset, so a developer machine
    with ``postgresql-15-postgis-3`` installed runs the PostGIS half without set-up.
    """
    if shutil.which("pg_lsclusters") is None or not hasattr(os, "geteuid") or os.geteuid():
        return None
    try:
        out = subprocess.run(
            ["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=30
        ).stdout.split()
        if len(out) < 3:
            return None
        version, cluster, port = out[0], out[1], out[2]
        subprocess.run(
            ["pg_ctlcluster", version, cluster, "start"], capture_output=True, timeout=120
        )
        role = (
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{LOCAL_ROLE}') THEN "
            f"CREATE ROLE {LOCAL_ROLE} LOGIN SUPERUSER PASSWORD '{LOCAL_ROLE}'; END IF; END $$"
        )
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "psql", "-p", port, "-qXc", role],
            capture_output=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return f"postgresql://{LOCAL_ROLE}:{LOCAL_ROLE}@127.0.0.1:{port}/postgres"


def _postgis_ready(url: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=10) as con:
            row = con.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'"
            ).fetchone()
            return row is not None
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A URL of a PostgreSQL server with PostGIS, allowed to create databases."""
    url = os.environ.get("GEOSERVICE_TEST_DATABASE_URL") or _local_cluster_url()
    need(url is not None and _postgis_ready(url), "PostgreSQL + PostGIS")
    assert url is not None
    return url


@pytest.fixture(scope="session")
def pg_database(pg_admin_url: str) -> Iterator[Callable[[str], str]]:
    """Factory of fresh databases (with PostGIS) for this session; all dropped at the end."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    token = uuid.uuid4().hex[:8]
    made: list[str] = []

    def make(purpose: str) -> str:
        name = f"geoservice_test_{token}_{purpose}"
        with psycopg.connect(pg_admin_url, autocommit=True) as con:
            con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        url = make_conninfo(pg_admin_url, dbname=name)
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        return url

    yield make
    from geoservice.store import postgis

    for url in list(postgis._POOLS):
        postgis._POOLS.pop(url)[0].close()
    with psycopg.connect(pg_admin_url, autocommit=True) as con:
        for name in made:
            con.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def pg_settings_for(tmp: Path, layers_dir: Path, url: str, port: int | None = None) -> Settings:
    """Like ``settings_for`` but with the PostGIS backend at ``url``."""
    base = settings_for(tmp, layers_dir, port)
    store = base.store.model_copy(update={"backend": "postgis", "database_url": url})
    return base.model_copy(update={"store": store})


def pg_built(tmp: Path, url: str, layers: list[str] | None = None, **update: Any) -> Settings:
    """The real extracts (only ``layers`` when given) built into the PostGIS database at
    ``url``, with the settings over it (``update`` applied)."""
    settings = pg_settings_for(tmp, ROOT / "layers", url)
    if layers is not None:
        return build_layers(settings, layers, **update)
    settings = settings.model_copy(update=update)
    build(settings, mirror=DATA)
    return settings


@pytest.fixture(scope="session")
def pg_real_settings(
    tmp_path_factory: pytest.TempPathFactory, pg_database: Callable[[str], str]
) -> Settings:
    """The real extracts built into a fresh PostGIS database."""
    return pg_built(tmp_path_factory.mktemp("pg_real"), pg_database("real"))


@pytest.fixture(scope="session")
def pg_cql2_settings(
    tmp_path_factory: pytest.TempPathFactory, pg_database: Callable[[str], str]
) -> Settings:
    """The three OGC CQL2 test layers built into a fresh PostGIS database."""
    tmp = tmp_path_factory.mktemp("pg_cql2")
    layers = tmp / "layers"
    write_cql2_specs(layers)
    settings = pg_settings_for(tmp, layers, pg_database("cql2"))
    build(settings, mirror=CQL2)
    return settings


@pytest.fixture
def reinfolib_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The local 不動産情報ライブラリ API contract server (tests/reinfolib_server.py), with
    its key in ``REINFOLIB_API_KEY``; point settings at it with ``use_server``."""
    from tests.reinfolib_server import ReinfolibServer

    with ReinfolibServer() as srv:
        monkeypatch.setenv("REINFOLIB_API_KEY", srv.key)
        yield srv
