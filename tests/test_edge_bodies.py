"""Issue 15.1: every write route reads its body through one parser with limits.

The hostile bodies and the routes they go to are DATA (``HOSTILE``, ``ROUTES``): a new
write route is covered by adding a line, and ``test_every_write_route_is_listed`` fails
until it is.  Each hostile body must get a 4xx OGC exception naming what was wrong (the
limit), never a 5xx, and nothing may be stored.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from geoservice.app import create_app
from geoservice.auth.db import AuthDB, auth_db_path
from geoservice.auth.tokens import TokenStore
from geoservice.config import BodyLimits, Settings, SightingsSettings
from geoservice.edge.bodies import parse_json
from geoservice.store.gpkg import GpkgStore
from tests.conftest import ROOT, build_layers, settings_for

LIMITS = BodyLimits()
LAYERS = ["admin-boundaries", "wildlife-sightings", "parcels"]


def _polygon(vertices: int) -> bytes:
    ring = ",".join("[0,0]" for _ in range(vertices))
    return b'{"type": "Polygon", "coordinates": [[' + ring.encode() + b"]]}"


def _rings(rings: int) -> bytes:
    ring = "[[0,0],[1,0],[1,1],[0,0]]"
    return b'{"type": "Polygon", "coordinates": [' + ",".join([ring] * rings).encode() + b"]}"


@dataclass(frozen=True)
class Hostile:
    """A body a hostile or careless client sends, and what the answer must say."""

    name: str
    body: bytes
    status: int
    says: str  # a fragment of the description (the limit or the fault named)


HOSTILE = [
    Hostile("deep-array", b"[" * 100_000 + b"]" * 100_000, 400, "nested deeper than 32"),
    Hostile("deep-object", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400,
            "nested deeper than 32"),
    Hostile("deep-but-parseable", b"[" * 200 + b"]" * 200, 400, "nested deeper than 32"),
    Hostile("huge-array", b"[" + b"0," * 600_000 + b"0]", 400, "more than 500000 values"),
    Hostile("huge-string", b'{"a": "' + b"x" * (5 * 1024 * 1024) + b'"}', 413,
            "limit of 4194304 bytes"),
    Hostile("invalid-utf8", b'{"site": "\xff\xfe\xfd"}', 400, "not valid UTF-8"),
    Hostile("lone-surrogate", b'{"site": "\\ud800"}', 400, "surrogate"),
    Hostile("duplicate-keys", b'{"site": 1, "site": 2}', 400, "duplicate member name 'site'"),
    Hostile("nan", b'{"count": NaN}', 400, "not a JSON number"),
    Hostile("huge-number", b'{"count": 1e999}', 400, "finite"),
    Hostile("not-json", b"{site:", 400, "not valid JSON"),
    Hostile("empty", b"", 0, ""),  # 400 from our parser, 422 from a pydantic route
    Hostile("vertices", _polygon(LIMITS.vertices + 1), 400, "more than 100000 vertices"),
    Hostile("rings", _rings(LIMITS.rings + 1), 400, "more than 10000 polygon rings"),
    # Well-formed JSON of the wrong shape: the route itself must answer a 4xx.
    Hostile("wrong-type-array", b"[1, 2, 3]", 0, ""),
    Hostile("wrong-type-string", b'"a string"', 0, ""),
    Hostile("wrong-type-null", b"null", 0, ""),
    Hostile("wrong-member-types", b'{"site": 5, "works": "x", "inputs": 7, "type": 3,'
            b' "geometry": "x", "properties": [], "point": {}, "area": 1, "webhook": 5}', 0, ""),
]


@dataclass(frozen=True)
class WriteRoute:
    """A write route, how to reach it, and the content type its clients send."""

    method: str
    path: str  # as declared by the app; {fid} is filled with a real id
    content_type: str
    token: bool = False


ROUTES = [
    WriteRoute("POST", "/api/guide", "application/json"),
    WriteRoute("POST", "/api/hazards", "application/json"),
    WriteRoute("POST", "/api/reports", "application/json"),
    WriteRoute("POST", "/api/subscriptions", "application/json"),
    WriteRoute("POST", "/ogc/processes/procedure-guide/execution", "application/json"),
    WriteRoute("POST", "/ogc/collections/{cid}/items", "application/geo+json", token=True),
    WriteRoute("PUT", "/ogc/collections/{cid}/items/{fid}", "application/geo+json", token=True),
    WriteRoute("PATCH", "/ogc/collections/{cid}/items/{fid}", "application/merge-patch+json",
               token=True),
    WriteRoute("POST", "/api/sightings/import", "text/csv", token=True),
]
#: Write routes that read no body (a DELETE, a moderation action), still size-limited.
BODILESS = {("POST", "/api/moderation/{fid}/{action}"),
            ("DELETE", "/ogc/collections/{cid}/items/{fid}"),
            ("DELETE", "/api/subscriptions/{sid}"), ("DELETE", "/ogc/jobs/{job_id}")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real store (boundaries, sightings, parcels) built once for the module."""
    return build_layers(settings_for(tmp_path_factory.mktemp("edge-built"), ROOT / "layers"),
                        LAYERS).store.path


@dataclass
class Env:
    client: TestClient
    settings: Settings
    token: str
    fid: str


@pytest.fixture(scope="module")
def env(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("edge")
    shutil.copy(built, tmp / "store.gpkg")
    settings = settings_for(tmp, ROOT / "layers").model_copy(
        update={"enabled_layers": LAYERS,
                "sightings": SightingsSettings(reports_per_minute=100_000)})
    token, _ = TokenStore(AuthDB(auth_db_path(tmp))).create("admin", admin=True)
    store = GpkgStore(tmp / "store.gpkg")
    fid = next(iter(store.iter_features("wildlife-sightings"))).id
    store.close()
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield Env(c, settings, token, fid)


def _url(route: WriteRoute, fid: str) -> str:
    return route.path.format(cid="wildlife-sightings", fid=fid, action="approve")


def _state(env: Env) -> tuple[int, int, int]:
    """What a rejected request must not change: features, subscriptions, jobs."""
    store = GpkgStore(env.settings.store.path)
    try:
        features = store.info("wildlife-sightings").count
    finally:
        store.close()
    auth = {"Authorization": f"Bearer {env.token}"}
    audit = env.client.get("/api/audit", params={"limit": 10000}, headers=auth).json()
    jobs = env.client.get("/ogc/jobs", params={"limit": 1000}).json()["jobs"]
    return features, len(audit["entries"]), len(jobs)


def test_every_write_route_is_listed(env: Env) -> None:
    """A new write route must be added to ROUTES (fuzzed) or BODILESS (size-limited only)."""
    declared = {(m, r.path) for r in env.client.app.routes  # type: ignore[attr-defined]
                if isinstance(r, Route) for m in (r.methods or ())
                if m in ("POST", "PUT", "PATCH", "DELETE")}
    listed = {(r.method, r.path) for r in ROUTES} | BODILESS
    assert declared <= listed, f"write routes missing from ROUTES: {sorted(declared - listed)}"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_hostile_bodies_are_4xx_naming_the_limit_and_store_nothing(
    env: Env, route: WriteRoute
) -> None:
    before = _state(env)
    headers = {"Content-Type": route.content_type}
    if route.token:
        headers["Authorization"] = f"Bearer {env.token}"
    for h in HOSTILE:
        r = env.client.request(route.method, _url(route, env.fid), content=h.body,
                               headers=headers)
        assert 400 <= r.status_code < 500, (h.name, r.status_code, r.text[:300])
        doc = r.json()
        assert doc["code"] and doc["description"], (h.name, doc)
        if h.status and route.content_type != "text/csv":
            assert r.status_code == h.status, (h.name, r.status_code, doc)
            assert h.says in doc["description"], (h.name, doc["description"])
    assert _state(env) == before


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_declared_oversize_is_413_before_the_body_is_read(env: Env, method: str) -> None:
    """Content-Length past the limit: 413 on any write, whatever the route."""
    r = env.client.request(method, "/api/subscriptions/x", content=b"x" * (LIMITS.upload_bytes
                                                                           + 1),
                           headers={"Content-Type": "text/csv"})
    assert r.status_code == 413, r.text
    assert str(LIMITS.upload_bytes) in r.json()["description"]


def test_valid_body_still_reaches_a_pydantic_route(env: Env) -> None:
    """The guard replays the bytes it read: FastAPI's own body parsing still sees them."""
    r = env.client.post("/api/subscriptions", json={"area": {"bbox": [1, 2]},
                                                    "webhook": "x"})
    assert r.status_code == 422, r.text  # the model's own validation, not a parse error


def test_parse_json_accepts_what_limits_allow() -> None:
    doc = {"type": "Feature", "geometry": json.loads(_polygon(LIMITS.vertices)),
           "properties": {"名前": "熊", "nested": [[[[1]]]]}}
    assert parse_json(json.dumps(doc).encode(), LIMITS) == doc


@pytest.mark.parametrize("declared", [b"\xb2", b"1\xb9", b"12a", b"-1", b""])
def test_odd_content_length_is_no_500(declared: bytes) -> None:
    """A ``Content-Length`` that is not ASCII digits (``"²"`` passes ``str.isdigit`` and
    then fails ``int``) is treated as unknown: the body is read within the limit."""
    import asyncio

    from starlette.types import Message

    from geoservice.edge.bodies import BodyGuard

    seen: list[bytes] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        seen.append((await receive())["body"])  # type: ignore[operator]

    async def receive() -> Message:
        return {"type": "http.request", "body": b'{"a": 1}', "more_body": False}

    async def send(message: Message) -> None:
        raise AssertionError(f"the guard answered {message}")

    scope = {"type": "http", "method": "POST", "path": "/api/guide",
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", declared)]}
    asyncio.run(BodyGuard(app, LIMITS)(scope, receive, send))  # type: ignore[arg-type]
    assert seen == [b'{"a": 1}']
