"""Headless Chromium (Debian's build) driven by Playwright; no browser download."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
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
            yield page
        finally:
            browser.close()


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
