"""Issue 15.2 follow-up: the API docs pages work under the CSP, offline.

``/docs`` (the /api routes) and ``/ogc/openapi?f=html`` (the OGC API) show their OpenAPI
document with the vendored Swagger UI, started by a static script: the page must render
operations, with no console error (``browser_page`` also fails on a CSP violation) and no
request leaving the machine (FastAPI's and pygeoapi's own pages loaded it from a CDN).
"""

from __future__ import annotations

import pytest

from tests.browser import assert_local_only, browser_page, record_requests, screenshot
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

PAGES = [
    ("/docs", "apidocs-rest", "/api/guide"),
    ("/ogc/openapi?f=html", "apidocs-ogc", "/collections"),
]


@pytest.mark.parametrize(("path", "shot", "operation"), PAGES)
def test_swagger_ui_renders_operations_offline(
    live: LiveServer, path: str, shot: str, operation: str
) -> None:
    with browser_page() as page:
        requests = record_requests(page)
        page.goto(live.url + path)
        page.wait_for_function("document.querySelectorAll('.opblock').length > 0")
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert any(p.startswith(operation) for p in paths), paths[:10]
        assert page.locator(".information-container .title").inner_text().strip()
        screenshot(page, shot)
        assert page.errors == [] and page.console_errors == []
        assert_local_only(requests)
