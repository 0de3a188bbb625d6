"""Issue 15.6: schemathesis over every documented write operation, with a valid token.

Both OpenAPI documents (``/ogc/openapi`` and the ``/api`` one at ``/openapi.json``) are
read from the running service, so a newly documented POST/PUT/PATCH/DELETE is fuzzed
without touching this file.  Each operation gets schemathesis' generated cases (valid and
invalid bodies, parameters) plus the hostile bodies of ``test_edge_bodies.HOSTILE``, all
with an admin token.  Asserted per request: no 5xx, the status is documented for the
operation, and a rejected request (4xx) changed nothing (features, audit log, jobs,
subscriptions).  Examples per operation are few, to keep CI's run to about a minute.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from geoservice.auth.db import AuthDB, auth_db_path
from geoservice.auth.tokens import TokenStore
from geoservice.build import build
from geoservice.config import SightingsSettings
from geoservice.store.gpkg import GpkgStore
from tests.conftest import DATA, ROOT, LiveServer, free_port, settings_for
from tests.test_edge_bodies import HOSTILE

LAYERS = ["admin-boundaries", "wildlife-sightings", "parcels"]
DOCS = ["/ogc/openapi", "/openapi.json"]
WRITES = ("POST", "PUT", "PATCH", "DELETE")
EXAMPLES = 8


@dataclass
class Env:
    srv: LiveServer
    token: str
    store: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def state(self) -> tuple[Any, ...]:
        """Everything a rejected request must leave as it was."""
        st = GpkgStore(self.store)
        try:
            counts = tuple(st.info(c).count for c in st.collections())
        finally:
            st.close()
        get = lambda p, **q: httpx.get(self.srv.url + p, params=q, headers=self.auth,  # noqa: E731
                                       timeout=30).json()
        return (counts, len(get("/api/audit", limit=10000)["entries"]),
                len(get("/ogc/jobs", limit=1000)["jobs"]))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    built = tmp_path_factory.mktemp("fuzz-built")
    base = settings_for(built, ROOT / "layers").model_copy(update={"enabled_layers": LAYERS})
    build(base, mirror=DATA, layers=LAYERS)
    tmp = tmp_path_factory.mktemp("fuzz")
    shutil.copy(built / "store.gpkg", tmp / "store.gpkg")
    s = settings_for(tmp, ROOT / "layers", free_port()).model_copy(update={
        "enabled_layers": LAYERS, "sightings": SightingsSettings(reports_per_minute=100_000)})
    token, _ = TokenStore(AuthDB(auth_db_path(tmp))).create("fuzz admin", admin=True)
    with LiveServer(s) as srv:
        yield Env(srv, token, tmp / "store.gpkg")


def _write_operations(env: Env) -> list[tuple[str, Any]]:
    ops = []
    for doc in DOCS:
        schema = schemathesis.openapi.from_url(env.srv.url + doc)
        base = env.srv.url + ("/ogc" if doc.startswith("/ogc") else "")
        for result in schema.get_all_operations():
            op = result.ok()
            if op.method.upper() in WRITES:
                ops.append((base, op))
    return ops


def _check(env: Env, case: Any, response: Any, before: tuple[Any, ...]) -> None:
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, (where, response.status_code, response.text[:300])
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
    if response.status_code >= 400:
        assert env.state() == before, f"{where} answered {response.status_code} but wrote"


def test_write_operations_are_documented_and_fuzzed(env: Env) -> None:
    ops = _write_operations(env)
    paths = {f"{op.method.upper()} {op.path}" for _, op in ops}
    for must in ("POST /collections/wildlife-sightings/items", "POST /api/subscriptions",
                 "DELETE /collections/wildlife-sightings/items/{featureId}"):
        assert must in paths, sorted(paths)
    for base, op in ops:
        _fuzz(env, base, op)


def _fuzz(env: Env, base: str, op: Any) -> None:
    """schemathesis' cases for one operation, each checked by ``_check``."""

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def fuzz(case: Any) -> None:
        before = env.state()
        _check(env, case, case.call(base_url=base, headers=env.auth), before)

    fuzz()


def test_hostile_bodies_on_every_documented_write(env: Env) -> None:
    for base, op in _write_operations(env):
        if op.method.upper() == "DELETE":
            continue
        url = base + op.path.replace("{featureId}", "none").replace("{sid}", "none") \
            .replace("{fid}", "none").replace("{action}", "approve").replace("{jobId}", "none")
        for h in HOSTILE:
            before = env.state()
            r = httpx.request(op.method.upper(), url, content=h.body, timeout=60,
                              headers={**env.auth, "Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (op.path, h.name, r.status_code, r.text[:200])
            assert str(r.status_code) in op.definition.raw["responses"], (op.path, r.status_code)
            assert env.state() == before, (op.path, h.name)
