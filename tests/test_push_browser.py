"""The bear map as a PWA in real headless Chromium: manifest, service worker, push panel.

Headless Chromium has no push service of its own (``PushManager.subscribe`` needs the
vendor's cloud), so the page's ``PushManager`` is given, by a DevTools init script, the
subscription a browser would make - an endpoint on the test's loopback push service and
keys the test holds.  Everything else is real: the page asks for permission, posts the
subscription, the server sends an encrypted, VAPID-signed push to that endpoint, the test
decrypts it; the service worker, fed a push message through DevTools, shows the
notification.  The crypto of a real browser is covered by tests/test_push.py.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from geoservice.auth.db import AuthDB, auth_db_path
from geoservice.auth.tokens import TokenStore
from tests.browser import (
    assert_local_only,
    axe_violations,
    browser_page,
    record_requests,
    screenshot,
)
from tests.conftest import ROOT, LiveServer, build_layers, free_port, settings_for
from tests.test_push import LAYERS, Browser, PushService, push_settings, verify_vapid

pytestmark = pytest.mark.browser

POINT = (139.10, 35.81)  # 奥多摩町


@pytest.fixture(scope="module")
def pwa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    """The app with push configured (a VAPID key file), served on loopback."""
    from geoservice.sightings.push import generate_vapid_keys

    tmp = tmp_path_factory.mktemp("pwa")
    private, public = generate_vapid_keys()
    (tmp / "vapid.key").write_text(private)
    base = build_layers(settings_for(tmp, ROOT / "layers", free_port()), LAYERS)
    with LiveServer(push_settings(base, tmp / "work", tmp / "vapid.key")) as srv:
        yield srv, public


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310 - our own live server
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()


def test_manifest_is_served_and_valid(pwa: tuple[LiveServer, str]) -> None:
    live, _ = pwa
    status, headers, body = fetch(f"{live.url}/map/manifest.webmanifest")
    assert status == 200 and headers["content-type"].startswith("application/manifest+json")
    m = json.loads(body)
    assert m["start_url"] == "/map/" and m["scope"] == "/map/" and m["display"] == "standalone"
    assert m["name"].startswith("クマ出没マップ") and m["translations"]["en"]["name"]
    sizes = set()
    for icon in m["icons"]:
        status, headers, png = fetch(f"{live.url}{icon['src']}")
        assert status == 200 and headers["content-type"] == "image/png"
        img = Image.open(io.BytesIO(png))
        assert f"{img.width}x{img.height}" == icon["sizes"]
        sizes.add((icon["sizes"], icon["purpose"]))
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes
    status, headers, _ = fetch(f"{live.url}/map/sw.js")
    assert headers["content-type"].startswith("text/javascript")
    assert headers["service-worker-allowed"] == "/map/" and headers["cache-control"] == "no-cache"
    key = json.loads(fetch(f"{live.url}/api/push/public-key")[2])
    assert key["public_key"] == pwa[1]


def fake_push_manager(sub: dict[str, Any]) -> str:
    """An init script giving PushManager the subscription ``sub`` (no vendor push cloud)."""
    return f"""
    (() => {{
      const sub = {json.dumps(sub)};
      let current = null;
      const make = (opts, s) => ({{
        endpoint: s.endpoint, options: opts, expirationTime: null,
        toJSON: () => s, unsubscribe: () => {{ current = null; return Promise.resolve(true); }}
      }});
      if (self.PushManager) {{
        PushManager.prototype.subscribe = function (opts) {{
          window.__subscribedWith = opts;
          current = make(opts, window.__renewedSub || sub); return Promise.resolve(current);
        }};
        PushManager.prototype.getSubscription = function () {{ return Promise.resolve(current); }};
      }}
    }})();
    """


def test_service_worker_manifest_and_push_panel_in_chromium(
    pwa: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, public = pwa
    browser = Browser()
    with PushService() as ps, browser_page() as page:
        requests = record_requests(page)
        page.context.grant_permissions(["notifications"], origin=live.url)
        sub = browser.subscription(ps.endpoint("chromium"))
        page.add_init_script(fake_push_manager(sub))
        page.goto(f"{live.url}/map/?lon={POINT[0]}&lat={POINT[1]}&r=5")
        page.wait_for_function("window.bearmap && window.bearmap.idle", timeout=30000)
        scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
        assert scope == f"{live.url}/map/"
        assert page.evaluate("navigator.serviceWorker.ready.then(r => !!r.active)")

        cdp = page.context.new_cdp_session(page)
        manifest = cdp.send("Page.getAppManifest")
        assert manifest["url"] == f"{live.url}/map/manifest.webmanifest"
        assert manifest["errors"] == [], manifest["errors"]
        # installable, but for Playwright's context being incognito (which no page can change)
        problems = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
        assert [p["errorId"] for p in problems if p["errorId"] != "in-incognito"] == []

        # the panel: point + radius from the distance filter, species, subscribe
        page.click("#bm-push > summary")
        assert "35.81" in page.locator("#bm-push-point").inner_text()
        page.select_option("#bm-push-radius", "10")
        page.locator("#bm-push-species input[value=wild-boar]").uncheck()
        assert axe_violations(page) == []
        page.click("#bm-push-on")
        page.wait_for_function("document.getElementById('bm-push-msg').textContent"
                               ".indexOf('登録しました') >= 0", timeout=15000)
        screenshot(page, "map-push-panel")
        key = page.evaluate("Array.from(new Uint8Array(window.__subscribedWith"
                            ".applicationServerKey))")
        assert base64.urlsafe_b64encode(bytes(key)).rstrip(b"=").decode() == public
        mine = json.loads(page.evaluate("localStorage.getItem('geotwin.push.subscription')"))
        req = urllib.request.Request(f"{live.url}/api/subscriptions/{mine['id']}",
                                     headers={"Authorization": f"Bearer {mine['token']}"})
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - live test server
            stored = json.loads(r.read())
        assert stored["kind"] == "push" and stored["push"]["endpoint"] == sub["endpoint"]
        assert stored["area"] == {"point": list(POINT), "radius_m": 10000}
        assert "wild-boar" not in stored["species"] and "asian-black-bear" in stored["species"]

        # a sighting published through the API reaches the push service, for this browser
        token, _ = TokenStore(AuthDB(auth_db_path(live.settings.work_dir))).create(
            "push-e2e", admin=True)
        feature = {"type": "Feature",
                   "geometry": {"type": "Point", "coordinates": [139.11, 35.80]},
                   "properties": {"species": "asian-black-bear", "kind": "witness",
                                  "observed_at": "2025-11-21T07:00:00Z",
                                  "municipality_code": "13308", "count": 1,
                                  "status": "published"}}
        post = urllib.request.Request(
            f"{live.url}/ogc/collections/wildlife-sightings/items",
            data=json.dumps(feature).encode(), method="POST",
            headers={"Content-Type": "application/geo+json", "Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(post, timeout=30) as r:  # noqa: S310 - live test server
            assert r.status == 201
        (pushed,) = ps.wait(1)
        verify_vapid(pushed["headers"]["Authorization"], ps.origin, public)
        alert = json.loads(browser.decrypt(pushed["body"]))
        assert alert["municipality"] == "奥多摩町"

        # the service worker shows it (the push message delivered through DevTools)
        script = page.evaluate("navigator.serviceWorker.ready.then(r => r.active.scriptURL)")
        assert script == f"{live.url}/map/sw.js"
        sw = page.context.new_cdp_session(page)
        regs: list[dict[str, Any]] = []
        sw.on("ServiceWorker.workerRegistrationUpdated", lambda e: regs.extend(e["registrations"]))
        sw.send("ServiceWorker.enable")
        page.wait_for_timeout(300)
        registration = next(r for r in regs if r["scopeURL"] == f"{live.url}/map/")
        sw.send("ServiceWorker.deliverPushMessage", {
            "origin": live.url, "registrationId": registration["registrationId"],
            "data": json.dumps(alert, ensure_ascii=False)})
        page.wait_for_function("navigator.serviceWorker.ready.then(r => r.getNotifications())"
                               ".then(n => n.length > 0)", timeout=10000)
        shown = page.evaluate("navigator.serviceWorker.ready.then(r => r.getNotifications())"
                              ".then(n => n.map(x => ({title: x.title, body: x.body, "
                              "data: x.data, tag: x.tag})))")
        assert shown[0]["title"] in (alert["title"]["en"], alert["title"]["ja"])  # browser's lang
        assert shown[0]["data"]["url"].endswith(f"/map/?id={alert['id']}")

        # the browser renews its push subscription (a new page load here has none): the
        # page registers the new one for the same area and removes the old
        renewed = browser.subscription(ps.endpoint("renewed"))
        page.add_init_script(f"window.__renewedSub = {json.dumps(renewed)};")
        page.reload()
        page.wait_for_function("document.getElementById('bm-push-msg').textContent"
                               ".indexOf('登録し直しました') >= 0", timeout=15000)
        with pytest.raises(urllib.error.HTTPError) as old:
            urllib.request.urlopen(req, timeout=30)  # noqa: S310 - live test server
        assert old.value.code == 404
        mine = json.loads(page.evaluate("localStorage.getItem('geotwin.push.subscription')"))
        req = urllib.request.Request(f"{live.url}/api/subscriptions/{mine['id']}",
                                     headers={"Authorization": f"Bearer {mine['token']}"})
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - live test server
            again = json.loads(r.read())
        assert again["push"]["endpoint"] == renewed["endpoint"]
        assert again["area"] == stored["area"] and again["species"] == stored["species"]

        # stop: the subscription is deleted on the server and in the browser
        page.click("#bm-push > summary")
        page.click("#bm-push-off")
        page.wait_for_function("document.getElementById('bm-push-msg').textContent"
                               ".indexOf('止めました') >= 0", timeout=15000)
        with pytest.raises(urllib.error.HTTPError) as gone:
            urllib.request.urlopen(req, timeout=30)  # noqa: S310 - live test server
        assert gone.value.code == 404
        assert page.errors == []
        assert page.console_errors == []
        assert_local_only(requests)


def test_push_panel_on_a_phone_in_english(pwa: tuple[LiveServer, str]) -> None:
    live, _ = pwa
    with browser_page(viewport=(390, 844)) as page:
        page.goto(f"{live.url}/map/?lang=en&lon={POINT[0]}&lat={POINT[1]}&r=5")
        page.wait_for_function("window.bearmap && window.bearmap.idle", timeout=30000)
        page.click("#bm-push > summary")
        panel = page.locator("#bm-push")
        assert panel.locator("summary").inner_text() == "Push alerts"
        assert "Within a radius of the point" in panel.inner_text()
        assert "Asian black bear" in page.locator("#bm-push-species").inner_text()
        page.locator("#bm-push-on").scroll_into_view_if_needed()
        box = page.locator("#bm-push-on").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert axe_violations(page) == []
        screenshot(page, "map-push-phone-en")
        page.click("#bm-lang")  # back to Japanese: the panel follows
        assert panel.locator("summary").inner_text() == "プッシュ通知"
        assert page.errors == [] and page.console_errors == []
