"""The OGC CQL2 test suite (274 cases) against the running service, as text and as JSON.

The three test layers are built into a GeoPackage store and queried over HTTP through
``/ogc/collections/{id}/items`` with ``filter-lang=cql2-text`` and ``cql2-json``.
"""

from __future__ import annotations

import json
from typing import Any

import cql2 as cql2_oracle
import pytest
from fastapi.testclient import TestClient

from tests.conftest import CQL2
from tests.test_cql2_conformance_memory import ERRATA

CASES: list[dict[str, Any]] = json.loads((CQL2 / "cql2_ats_cases.json").read_text("utf-8"))
IDS = [f"{i:03d}-{c['conf_class']}" for i, c in enumerate(CASES)]


def expected(i: int) -> int:
    """The table's count, except the documented errata (see the in-memory suite)."""
    return ERRATA.get(i, CASES[i]["expected"])


def matched(client: TestClient, collection: str, params: dict[str, str]) -> int:
    r = client.get(f"/ogc/collections/{collection}/items", params={**params, "limit": "1000"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["numberMatched"] == len(doc["features"])
    return int(doc["numberMatched"])


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_case_as_cql2_text(cql2_client: TestClient, i: int) -> None:
    case = CASES[i]
    params = {"filter": case["filter"], "filter-lang": "cql2-text"}
    assert matched(cql2_client, case["collection"], params) == expected(i)


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_case_as_cql2_json(cql2_client: TestClient, i: int) -> None:
    case = CASES[i]
    as_json = json.dumps(cql2_oracle.parse_text(case["filter"]).to_json())
    params = {"filter": as_json, "filter-lang": "cql2-json"}
    assert matched(cql2_client, case["collection"], params) == expected(i)
