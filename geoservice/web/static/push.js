/* Push alerts on the bear map (/map/): the service worker, and the "プッシュ通知 / Push
 * alerts" panel (templates/_push_alerts.html).
 *
 * The panel subscribes this browser with the server's VAPID public key (CFG.push) and
 * posts the PushSubscription to POST /api/subscriptions as {area, species, push}; the
 * area is the point chosen in the map's distance filter (read from the page's URL, which
 * map.js keeps in step) with a radius, or a municipality.  The subscription id and its
 * management token stay in this browser (localStorage) so "stop" can DELETE it.
 */
(function () {
  "use strict";

  var CFG = JSON.parse(document.getElementById("bm-config").textContent || "{}");
  var P = CFG.push;
  var STORE_KEY = "geotwin.push.subscription";
  var canPush = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

  // The worker is registered on every visit (it makes the page installable and keeps the
  // notifications working after the page is closed); it caches nothing.
  var registration = null;
  if ("serviceWorker" in navigator) {
    registration = navigator.serviceWorker.register((P && P.worker) || "/map/sw.js", { scope: (P && P.scope) || "/map/" })
      .catch(function () { return null; });
  }

  var panel = document.getElementById("bm-push");
  if (!P || !panel) return;

  var T = {
    ja: {
      title: "プッシュ通知", intro: "選んだ地域で新しい出没情報が公開されると、この端末に通知します（登録は不要です）。",
      area: "通知する地域", area_point: "地点から半径", area_muni: "市区町村", radius: "半径", species: "動物",
      subscribe: "通知を受け取る", update: "条件を変えて受け取る", unsubscribe: "通知を止める",
      point_none: "地点が未指定です。上の「地点からの距離」で現在地か地図上の地点を指定してください。",
      point_set: "地点: 緯度 {lat}, 経度 {lon}", km: "{n} km", choose_muni: "市区町村を選んでください",
      unsupported: "このブラウザはプッシュ通知に対応していません（iPhone ではホーム画面に追加すると使えます）。",
      denied: "通知が許可されていません。ブラウザの設定で許可してください。",
      working: "登録しています…", done: "登録しました。この端末に通知が届きます。",
      stopped: "通知を止めました。", failed: "登録できませんでした: {why}", no_species: "動物を一つ以上選んでください。",
      active: "この端末は通知を受け取る設定です。", renewed: "ブラウザの通知の登録が変わったため、登録し直しました。"
    },
    en: {
      title: "Push alerts", intro: "Get a notification on this device when a new sighting in the area you choose is published (no account needed).",
      area: "Area", area_point: "Within a radius of the point", area_muni: "Municipality", radius: "Radius", species: "Animals",
      subscribe: "Get alerts", update: "Get alerts with these settings", unsubscribe: "Stop alerts",
      point_none: "No point yet: set one under \u201cDistance from a point\u201d (your location or a point on the map).",
      point_set: "Point: lat {lat}, lon {lon}", km: "{n} km", choose_muni: "Choose a municipality",
      unsupported: "This browser does not support push notifications (on an iPhone, add the page to the home screen first).",
      denied: "Notifications are blocked: allow them in the browser's settings.",
      working: "Subscribing\u2026", done: "Subscribed: alerts will arrive on this device.",
      stopped: "Alerts stopped.", failed: "Could not subscribe: {why}", no_species: "Choose at least one animal.",
      active: "This device receives alerts.", renewed: "The browser renewed its push subscription; alerts were re-registered."
    }
  };
  function lang() { return document.documentElement.lang === "en" ? "en" : "ja"; }
  function t(key, vars) {
    var s = T[lang()][key] || T.ja[key] || key;
    Object.keys(vars || {}).forEach(function (k) { s = s.split("{" + k + "}").join(String(vars[k])); });
    return s;
  }
  function $(id) { return document.getElementById(id); }

  var radius = $("bm-push-radius");
  var muni = $("bm-push-muni");
  var speciesBox = $("bm-push-species");
  var on = $("bm-push-on");
  var off = $("bm-push-off");
  var msgEl = $("bm-push-msg");
  var lastMsg = null;

  function say(key, vars) { lastMsg = [key, vars]; msgEl.textContent = key ? t(key, vars) : ""; }
  function stored() {
    try { return JSON.parse(localStorage.getItem(STORE_KEY) || "null"); } catch (e) { return null; }
  }
  function store(v) {
    try { if (v) localStorage.setItem(STORE_KEY, JSON.stringify(v)); else localStorage.removeItem(STORE_KEY); } catch (e) { /* private mode */ }
  }

  function urlPoint() {
    var q = new URLSearchParams(location.search);
    var lon = parseFloat(q.get("lon")), lat = parseFloat(q.get("lat"));
    return isFinite(lon) && isFinite(lat) ? [lon, lat] : null;
  }

  function fillRadius() {
    var kms = (CFG.radii_km || [1, 2, 5, 10]).filter(function (k) {
      return k * 1000 >= P.radius_min_m && k * 1000 <= P.radius_max_m;
    });
    var want = Number(new URLSearchParams(location.search).get("r")) || CFG.default_radius_km;
    var keep = radius.value;
    radius.textContent = "";
    kms.forEach(function (k) {
      var o = document.createElement("option");
      o.value = String(k);
      o.textContent = t("km", { n: k });
      radius.appendChild(o);
    });
    radius.value = keep || String(kms.indexOf(want) >= 0 ? want : kms[0]);
  }

  function fillMunis() {
    var src = $("bm-muni");
    var keep = muni.value || new URLSearchParams(location.search).get("muni") || "";
    muni.textContent = "";
    var first = document.createElement("option");
    first.value = "";
    first.textContent = t("choose_muni");
    muni.appendChild(first);
    if (src) {
      Array.prototype.forEach.call(src.options, function (o) {
        if (!o.value) return;
        var c = document.createElement("option");
        c.value = o.value;
        c.textContent = o.textContent;
        muni.appendChild(c);
      });
    }
    muni.value = keep;
    if (muni.value !== keep) muni.value = "";
  }

  function fillSpecies() {
    var chosen = new URLSearchParams(location.search).get("species");
    var only = chosen ? chosen.split(",") : null;
    speciesBox.textContent = "";
    P.species.forEach(function (s) {
      var label = document.createElement("label");
      var box = document.createElement("input");
      box.type = "checkbox";
      box.value = s[0];
      box.checked = !only || only.indexOf(s[0]) >= 0;
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + (lang() === "en" ? s[2] : s[1])));
      speciesBox.appendChild(label);
    });
  }

  function mode() {
    var r = panel.querySelector("input[name=bm-push-area]:checked");
    return r ? r.value : "point";
  }

  function render() {
    panel.querySelectorAll("[data-push-i18n]").forEach(function (n) { n.textContent = t(n.dataset.pushI18n); });
    var pt = urlPoint();
    $("bm-push-point").textContent = pt ? t("point_set", { lat: pt[1].toFixed(4), lon: pt[0].toFixed(4) }) : t("point_none");
    var mine = stored();
    off.hidden = !mine;
    on.textContent = t(mine ? "update" : "subscribe");
    on.disabled = !canPush;
    if (!canPush) say("unsupported");
    else if (lastMsg) say(lastMsg[0], lastMsg[1]);
    else if (mine) say("active");
  }

  function refresh() {
    fillRadius();
    fillMunis();
    var checked = {};
    speciesBox.querySelectorAll("input").forEach(function (b) { checked[b.value] = b.checked; });
    fillSpecies();
    if (Object.keys(checked).length) {
      speciesBox.querySelectorAll("input").forEach(function (b) { b.checked = checked[b.value]; });
    }
    if (!urlPoint() && muni.value) panel.querySelector("input[value=muni]").checked = true;
    render();
  }

  function area() {
    if (mode() === "muni") return muni.value ? { municipality: muni.value } : null;
    var pt = urlPoint();
    return pt ? { point: pt, radius_m: Number(radius.value) * 1000 } : null;
  }

  function b64ToBytes(s) {
    var raw = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function deleteStored() {
    var mine = stored();
    if (!mine) return Promise.resolve();
    return fetch(P.subscriptions + "/" + encodeURIComponent(mine.id), {
      method: "DELETE", headers: { Authorization: "Bearer " + mine.token }
    }).then(function (r) {
      if (r.ok || r.status === 404) store(null);  // 404: already gone (expired at the push service)
    }).catch(function () { /* offline: keep it, try again next time */ });
  }

  function browserSubscription(reg) {
    var key = b64ToBytes(P.public_key);
    return reg.pushManager.getSubscription().then(function (sub) {
      if (!sub) return null;
      var old = sub.options && sub.options.applicationServerKey;
      var same = old && new Uint8Array(old).join(",") === key.join(",");
      return same ? sub : sub.unsubscribe().then(function () { return null; });  // the server's key changed
    }).then(function (sub) {
      return sub || reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    });
  }

  /** Subscribe this browser and register it for (area, species), replacing the old one. */
  function register(a, species) {
    return Promise.resolve(registration).then(function (reg) {
      return reg || navigator.serviceWorker.register(P.worker, { scope: P.scope });
    }).then(function () {
      return navigator.serviceWorker.ready;
    }).then(browserSubscription).then(function (sub) {
      return deleteStored().then(function () {
        return fetch(P.subscriptions, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ area: a, species: species, push: sub.toJSON() })
        });
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (r.status !== 201) throw new Error(body.description || ("HTTP " + r.status));
          store({ id: body.id, token: body.management_token, endpoint: sub.endpoint, area: a, species: species });
        });
      });
    });
  }

  function subscribe() {
    var a = area();
    if (!a) { say(mode() === "muni" ? "choose_muni" : "point_none"); return; }
    var species = [];
    var boxes = speciesBox.querySelectorAll("input");
    boxes.forEach(function (b) { if (b.checked) species.push(b.value); });
    if (!species.length) { say("no_species"); return; }
    if (species.length === boxes.length) species = [];  // all animals, new ones included
    say("working");
    Notification.requestPermission().then(function (perm) {
      if (perm !== "granted") { say("denied"); return null; }
      return register(a, species).then(function () { say("done"); render(); });
    }).catch(function (e) { say("failed", { why: e && e.message ? e.message : String(e) }); });
  }

  /** On each visit: a browser that renewed (or lost) its push subscription since it was
   * registered is registered again for the same area; one whose permission was withdrawn
   * is unregistered, so the server does not keep pushing into the void. */
  function resync() {
    var mine = stored();
    if (!mine || !mine.area || !canPush) return;
    if (Notification.permission === "denied") { deleteStored().then(render); return; }
    if (Notification.permission !== "granted") return;
    navigator.serviceWorker.ready.then(function (reg) {
      return reg.pushManager.getSubscription();
    }).then(function (sub) {
      if (sub && sub.endpoint === mine.endpoint) return;
      return register(mine.area, mine.species || []).then(function () { say("renewed"); render(); });
    }).catch(function (e) { say("failed", { why: e && e.message ? e.message : String(e) }); });
  }

  function unsubscribe() {
    deleteStored().then(function () {
      if (!("serviceWorker" in navigator)) return null;
      return navigator.serviceWorker.getRegistration(P.scope).then(function (reg) {
        return reg ? reg.pushManager.getSubscription() : null;
      }).then(function (sub) { return sub ? sub.unsubscribe() : null; });
    }).then(function () {
      if (!stored()) say("stopped");
      render();
    }).catch(function (e) { say("failed", { why: e && e.message ? e.message : String(e) }); });
  }

  on.addEventListener("click", subscribe);
  off.addEventListener("click", unsubscribe);
  panel.addEventListener("toggle", function () { if (panel.open) refresh(); });
  muni.addEventListener("change", function () { if (muni.value) panel.querySelector("input[value=muni]").checked = true; });
  radius.addEventListener("change", function () { panel.querySelector("input[value=point]").checked = true; });
  new MutationObserver(function () { refresh(); }).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
  refresh();
  resync();
})();
