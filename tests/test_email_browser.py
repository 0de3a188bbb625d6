"""The e-mail alert form of /map/ in headless Chromium, against a real SMTP server.

The form subscribes around the point chosen on the map or to a municipality; the answer is
announced (aria-live); a refused address says what is accepted; the confirmation mail
reaches the loopback SMTP server; axe-core finds nothing with the form open; no console
error and no CSP violation (the script is a static file).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from geoservice.config import Settings
from tests.browser import axe_violations, browser_page, console_errors, screenshot
from tests.conftest import ROOT, LiveServer, free_port, settings_for
from tests.test_email_alerts import OKUTAMA, Mailbox, bodies, email_settings
from tests.test_email_alerts import email_store as email_store  # the shared fixture

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           email_store: Path) -> Iterator[tuple[LiveServer, Mailbox]]:
    work = tmp_path_factory.mktemp("email_browser")
    with Mailbox() as box:
        base = settings_for(email_store, ROOT / "layers", free_port())
        settings: Settings = email_settings(base, work, box.port)
        with LiveServer(settings) as live:
            yield live, box


def test_map_form_subscribes_a_point_and_a_municipality(
    served: tuple[LiveServer, Mailbox],
) -> None:
    live, box = served
    with browser_page() as page:
        page.goto(f"{live.url}/map/?lon={OKUTAMA[0]}&lat={OKUTAMA[1]}&r=5")
        page.wait_for_function("window.bearmap && window.bearmap.idle", timeout=30000)
        page.locator("#ea summary").click()
        assert "35.8093, 139.0944" in page.locator("#ea-point").inner_text()
        # a refused address: the answer says what is accepted, in the live region
        page.fill("#ea-email", "not an address")
        page.click("#ea-submit")
        page.wait_for_function(
            "document.getElementById('ea-result').textContent.includes('name@example.jp')")
        assert "ea-error" in (page.get_attribute("#ea-result", "class") or "")
        assert page.get_attribute("#ea-result", "aria-live") == "polite"
        # around the map's point, both languages' words in the answer, nothing echoed
        page.fill("#ea-email", "hanako@example.jp")
        page.select_option("#ea-radius", "3")
        page.check("#ea-form input[name=species][value=wild-boar]")
        page.select_option("#ea-lang", "en")
        page.click("#ea-submit")
        page.wait_for_function(
            "document.getElementById('ea-result').textContent.includes('Check your mail')")
        assert "hanako@example.jp" not in page.locator("#ea-result").inner_text()
        (conf,) = box.wait(1)
        assert conf["To"] == "hanako@example.jp" and conf["Content-Language"] == "en"
        text, _ = bodies(conf)
        assert "35.8093, 139.0944 ± 3 km" in text and "as each sighting is published" in text
        assert "Asian black bear" in text and "Wild boar" in text, text
        # a municipality, chosen with the keyboard only
        page.locator("input[name=ea-area][value=municipality]").focus()
        page.keyboard.press("Space")
        page.locator("#ea-muni").focus()
        page.select_option("#ea-muni", "13308")
        page.fill("#ea-email", "taro@example.jp")
        page.select_option("#ea-lang", "ja")
        page.locator("#ea-submit").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("document.getElementById('ea-result').textContent"
                               ".includes('確認メールのリンク')")
        second = box.wait(2)[1]
        assert "奥多摩町" in bodies(second)[0]
        assert axe_violations(page) == []
        assert console_errors(page) == []
        assert page.errors == []  # type: ignore[attr-defined]
        screenshot(page, "map-email-alerts")
    body = json.dumps([str(m["Subject"]) for m in box.wait(2)], ensure_ascii=False)
    assert body.count("確認") == 1  # one Japanese, one English confirmation


def test_form_on_a_phone_is_axe_clean(served: tuple[LiveServer, Mailbox]) -> None:
    live, _ = served
    with browser_page((390, 844)) as page:
        page.goto(f"{live.url}/map/")
        page.wait_for_function("window.bearmap && window.bearmap.idle", timeout=30000)
        page.locator("#ea summary").click()
        page.locator("#ea-email").scroll_into_view_if_needed()
        assert page.locator("#ea-submit").is_visible()
        assert axe_violations(page) == []
        assert console_errors(page) == []
        screenshot(page, "map-email-alerts-phone")


def test_form_is_absent_without_smtp(email_store: Path, tmp_path: Path) -> None:
    settings = settings_for(email_store, ROOT / "layers", free_port())
    with LiveServer(settings) as live, browser_page() as page:
        page.goto(f"{live.url}/map/")
        assert page.locator("#ea-form").count() == 0
        assert page.locator("script[src='/static/email-alerts.js']").count() == 0
