"""The OGC feed pager shared by the harvest and the incidents ingest (geoservice.feeds)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from geoservice.errors import SourceError
from geoservice.feeds import items_url, pages
from geoservice.runs import RunReport
from tests.conftest import free_port


def _remote(asked: list[str]) -> httpx.MockTransport:
    """Three pages of two features, linked by relative ``next`` hrefs."""

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        page = int(request.url.params.get("page", "1"))
        feats = [{"type": "Feature", "id": f"{page}-{i}", "properties": {}, "geometry": None}
                 for i in range(2)]
        links = [{"rel": "next", "href": f"items?page={page + 1}"}] if page < 3 else []
        return httpx.Response(200, json={"type": "FeatureCollection", "features": feats,
                                         "links": links})

    return httpx.MockTransport(handler)


def test_pages_are_fetched_one_at_a_time_following_next() -> None:
    asked: list[str] = []
    with httpx.Client(transport=_remote(asked)) as client:
        walk = pages(client, items_url("http://remote.invalid/ogc/", "c"), {"limit": 2}, "r")
        first = next(walk)
        assert [f["id"] for f in first] == ["1-0", "1-1"] and len(asked) == 1  # not read ahead
        rest = list(walk)
    assert [f["id"] for page in rest for f in page] == ["2-0", "2-1", "3-0", "3-1"]
    assert asked[0] == "http://remote.invalid/ogc/collections/c/items?limit=2"
    assert asked[1] == "http://remote.invalid/ogc/collections/c/items?page=2"


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (httpx.Response(503), "HTTP 503"),
        (httpx.Response(200, text="<html>"), "did not return JSON"),
        (httpx.Response(200, json=[1, 2]), "did not return a FeatureCollection"),
    ],
)
def test_a_bad_answer_is_a_source_error(answer: httpx.Response, needle: str) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda _r: answer))
    with client, pytest.raises(SourceError, match=needle) as err:
        list(pages(client, "http://remote.invalid/items", None, "neighbour"))
    assert err.value.description.startswith("feed neighbour: ")


def test_an_unreachable_feed_is_a_source_error_not_a_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}/ogc/collections/c/items"  # nothing listens
    with httpx.Client(timeout=5) as client, pytest.raises(SourceError) as err:
        list(pages(client, url, None, "neighbour"))
    assert "feed neighbour: GET" in err.value.description and "failed" in err.value.description


def test_run_report_counts_writes_and_skips() -> None:
    rep = RunReport()
    rep.wrote(None)
    rep.wrote(object())
    rep.skip("line 3: bad", keep=1)
    rep.skip("line 4: bad", keep=1)
    doc: dict[str, Any] = rep.as_json()
    assert (doc["created"], doc["updated"], doc["skipped"]) == (1, 1, 2)
    assert doc["problems"] == ["line 3: bad"]
