"""Headless Chromium (Debian's build) driven by Playwright; no browser download."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from tests.conftest import chromium_path, need

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
SHOTS = Path(__file__).resolve().parents[1] / "data" / "build" / "screenshots"


@contextmanager
def browser_page(viewport: tuple[int, int] = (1280, 900)) -> Iterator[Any]:
    """A fresh page in headless Chromium; skips (or fails in CI) without Chromium."""
    exe = os.environ.get("GEOSERVICE_CHROMIUM") or chromium_path()
    need(exe is not None and Path(exe).exists(), "Chromium (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.errors = errors  # type: ignore[attr-defined]
            violations = csp_violations(page)
            page.wait_for_function = partial(wait_until, page)  # see wait_until
            console: list[tuple[str, str]] = []
            page.on(
                "console",
                lambda m: console.append((m.text, m.location.get("url", "")))
                if m.type == "error"
                else None,
            )
            page.console_errors = console  # type: ignore[attr-defined]
            yield page
            assert violations == [], f"Content-Security-Policy violations: {violations}"
        finally:
            browser.close()


def csp_violations(page: Any) -> list[str]:
    """Console reports of the page's Content-Security-Policy refusing something (updating).

    Every ``browser_page`` test fails on one: each page must work under its CSP.
    """
    found: list[str] = []

    def console(msg: Any) -> None:
        if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text:
            found.append(msg.text)

    page.on("console", console)
    return found


def wait_until(page: Any, expression: str, arg: Any = None, timeout: float = 30000,
               polling: Any = None) -> Any:
    """``page.wait_for_function`` that works under the pages' CSP.

    Playwright's own version compiles the predicate with ``eval`` inside the page, which a
    CSP without ``'unsafe-eval'`` refuses; ``page.evaluate`` goes through the DevTools
    protocol, which the CSP does not govern.  ``browser_page`` installs this in its place.
    """
    deadline = time.monotonic() + timeout / 1000
    while True:
        value = page.evaluate(expression) if arg is None else page.evaluate(expression, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} ms waiting for {expression!r}")
        time.sleep(0.05 if polling in (None, "raf") else float(polling) / 1000)


def screenshot(page: Any, name: str) -> Path:
    """Save a screenshot under data/build/screenshots (git-ignored) for a person to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def get_json(url: str) -> Any:
    """GET a JSON document from the live test server."""
    with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310 - our own live server
        return json.loads(r.read().decode("utf-8"))


def record_requests(page: Any) -> list[str]:
    """Every URL the page requests from now on (the list keeps updating)."""
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    return requests


def assert_local_only(requests: list[str]) -> None:
    """No request left the machine (data:, blob: and about: URLs aside)."""
    outside = [
        u
        for u in requests
        if not u.startswith(("data:", "blob:", "about:"))
        and urllib.parse.urlsplit(u).hostname not in ("127.0.0.1", "localhost")
    ]
    assert outside == [], outside


def console_errors(page: Any, ignore_origin: str | None = None) -> list[tuple[str, str]]:
    """Console errors so far; ``ignore_origin``: leave out the browser's own "Failed to load
    resource" lines for that (deliberately unreachable) origin."""
    return [
        (text, url)
        for text, url in page.console_errors
        if not (ignore_origin and url.startswith(ignore_origin) and "Failed to load" in text)
    ]


AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations (every impact) on the page as it is now: id, impact, targets.

    axe is evaluated through the DevTools protocol (not a <script> tag), so a page's
    Content-Security-Policy does not have to allow it."""
    need(AXE.is_file(), "axe-core (npm ci)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text("utf-8") + "\n;true")
    result = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v =>"
        " ({id: v.id, impact: v.impact, help: v.help,"
        " targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))"
    )
    return list(result)
