/* Tokyo GeoTwin — bear / wildlife sightings map (/map/).
 *
 * Everything comes from this service's OGC API; no tiles, fonts or sprites from the network.
 * Data is only ever put into the page with textContent / attributes (never innerHTML).
 * Query string (all optional, kept in sync so a view can be shared):
 *   lang=ja|en  now=YYYY-MM-DD  red=1m  yellow=3m  (thresholds: <n>m months, <n>d days)
 *   muni=13308  from=YYYY-MM-DD  to=YYYY-MM-DD  species=a,b  lon=..&lat=..&r=km  id=<feature>
 * Page hook for tests and demos: window.bearmap (count, ids, recency, select, ...).
 */
(function () {
  "use strict";

  var CFG = JSON.parse(document.getElementById("bm-config").textContent);
  var TZ_OFFSET_MS = 9 * 3600 * 1000; // Japan has no DST
  var SPECIES = ["asian-black-bear", "brown-bear", "wild-boar", "sika-deer", "japanese-macaque", "japanese-serow", "other"];
  var KINDS = ["witness", "trace", "photographing", "capture", "injury"];
  var RELIABILITY = ["high", "middle", "low"];
  var RECENCY = ["red", "yellow", "blue"];
  var COLOURS = { red: "#d7191c", yellow: "#f4c20d", blue: "#2c7bb6" };

  var T = {
    ja: {
      title: "クマ出没マップ（東京都）", nav_data: "データ (OGC API)", nav_geojson: "GeoJSON",
      synthetic_title: "合成デモデータ", synthetic_text: "この地図のデータは説明用に作成したもので、実際の出没情報ではありません。",
      municipality: "市区町村", all: "すべて", species: "動物", period: "期間", from: "開始日", to: "終了日",
      q1m: "1か月", q3m: "3か月", q12m: "1年", qall: "全期間",
      distance: "地点からの距離", locate: "現在地", pick: "地図で地点を指定", radius: "半径", clear: "解除",
      pick_msg: "地図をクリックして地点を指定してください（キーボード：地図で矢印キーで動かし Enter で中心を指定）", filters: "絞り込み", point_msg: "地点 {lat}, {lon} から半径 {r} km",
      locating: "現在地を取得中…", geo_fail: "現在地を取得できませんでした。「地図で地点を指定」を使ってください。",
      feed: "出没情報のフィード（Atom）", legend: "凡例", recency: "経過（色）", kind: "種別", reliability: "確度",
      date: "日付", time: "時刻", place: "場所", dist: "距離", list_caption: "出没情報の一覧（新しい順）",
      count: "{n} 件", loading: "読み込み中…", error: "データを読み込めませんでした：{e}", asof: "基準日 {d}",
      within: "{p}以内", older: "{p}より前", months: "{n}か月", days: "{n}日",
      more: "ほか {n} 件は地図上で確認できます（一覧は先頭 {m} 件）",
      none: "条件に合う情報はありません。",
      no_time: "—", no_time_title: "時刻の記録なし（日付のみ）", date_only: "（日付のみ・時刻の記録なし）",
      boundaries_credit: "市区町村境界：国土数値情報（行政区域データ）（国土交通省）を加工して作成",
      disclaimer: "この地図は報告された情報を示すもので、表示のない場所が安全というわけではありません。クマに出会ったら落ち着いて離れ、自治体・警察に連絡してください。",
      source_label: "出典", licence_label: "ライセンス",
      f_species: "動物", f_kind: "種別", f_reliability: "確度", f_observed: "日時", f_age: "経過",
      f_place: "市区町村", f_count: "頭数", f_description: "詳細", f_source: "情報源", f_status: "公開状態",
      f_id: "ID", f_position: "位置", f_link: "OGC API で見る", days_ago: "{n}日前", today: "当日", future: "基準日より後",
      status_published: "公開", status_pending: "確認中", status_rejected: "非公開",
      sp_: { "asian-black-bear": "ツキノワグマ", "brown-bear": "ヒグマ", "wild-boar": "イノシシ", "sika-deer": "ニホンジカ", "japanese-macaque": "ニホンザル", "japanese-serow": "カモシカ", other: "その他" },
      kind_: { witness: "目撃", trace: "痕跡", photographing: "撮影", capture: "捕獲", injury: "人身被害" },
      rel_: { high: "高", middle: "中", low: "低" },
      lang_button: "English", map_label: "地図", unknown_place: "不明"
    },
    en: {
      title: "Bear sightings map (Tokyo)", nav_data: "Data (OGC API)", nav_geojson: "GeoJSON",
      synthetic_title: "Synthetic demo data", synthetic_text: "The data on this map was made up for demonstration; these are not real sightings.",
      municipality: "Municipality", all: "All", species: "Animal", period: "Period", from: "From", to: "To",
      q1m: "1 month", q3m: "3 months", q12m: "1 year", qall: "All time",
      distance: "Distance from a point", locate: "My location", pick: "Pick a point on the map", radius: "Radius", clear: "Clear",
      pick_msg: "Click the map to set the point (keyboard: arrow keys on the map, Enter takes its centre)", filters: "Filters", point_msg: "Within {r} km of {lat}, {lon}",
      locating: "Finding your location…", geo_fail: "Could not get your location. Use “Pick a point on the map”.",
      feed: "Sightings feed (Atom)", legend: "Legend", recency: "Recency (colour)", kind: "Type", reliability: "Reliability",
      date: "Date", time: "Time", place: "Place", dist: "Distance", list_caption: "Sightings, newest first",
      count: "{n} records", loading: "Loading…", error: "Could not load the data: {e}", asof: "as of {d}",
      within: "within {p}", older: "older than {p}", months: "{n} month(s)", days: "{n} day(s)",
      more: "{n} more are on the map (the list shows the first {m})",
      none: "Nothing matches these filters.",
      no_time: "—", no_time_title: "no time recorded (date only)", date_only: "(date only, no time recorded)",
      boundaries_credit: "Municipal boundaries: MLIT National Land Numerical Information (N03), processed",
      disclaimer: "This map shows reported information only; a place without reports is not necessarily safe. If you meet a bear, move away calmly and contact the municipality or police.",
      source_label: "Source", licence_label: "Licence",
      f_species: "Animal", f_kind: "Type", f_reliability: "Reliability", f_observed: "Date / time", f_age: "Age",
      f_place: "Municipality", f_count: "Count", f_description: "Details", f_source: "Source", f_status: "Status",
      f_id: "ID", f_position: "Position", f_link: "View in the OGC API", days_ago: "{n} days ago", today: "same day", future: "after the reference date",
      status_published: "published", status_pending: "pending", status_rejected: "rejected",
      sp_: { "asian-black-bear": "Asian black bear", "brown-bear": "Brown bear", "wild-boar": "Wild boar", "sika-deer": "Sika deer", "japanese-macaque": "Japanese macaque", "japanese-serow": "Japanese serow", other: "Other" },
      kind_: { witness: "Sighting", trace: "Trace", photographing: "Camera photo", capture: "Capture", injury: "Injury" },
      rel_: { high: "High", middle: "Medium", low: "Low" },
      lang_button: "日本語", map_label: "Sightings map", unknown_place: "unknown"
    }
  };

  // ---------------------------------------------------------------- state
  var params = new URLSearchParams(location.search);
  var state = {
    lang: params.get("lang") === "en" ? "en" : "ja",
    now: parseNow(params.get("now")),
    red: parsePeriod(params.get("red") || (CFG.recency && CFG.recency.red) || "1m"),
    yellow: parsePeriod(params.get("yellow") || (CFG.recency && CFG.recency.yellow) || "3m"),
    muni: params.get("muni") || "",
    from: validDate(params.get("from")),
    to: validDate(params.get("to")),
    species: params.get("species") ? params.get("species").split(",").filter(function (s) { return SPECIES.indexOf(s) >= 0; }) : SPECIES.slice(),
    point: null,
    radius: Number(params.get("r")) || CFG.default_radius_km || 5,
    selected: params.get("id") || null,
    picking: false
  };
  if (isFinite(parseFloat(params.get("lon"))) && isFinite(parseFloat(params.get("lat")))) {
    state.point = [parseFloat(params.get("lon")), parseFloat(params.get("lat"))];
  }

  var munis = {};          // code -> name
  var muniBounds = {};     // code -> [[w,s],[e,n]]
  var loaded = [];         // features from the server (server-side filters applied)
  var shown = [];          // after the client-side (distance) filter, newest first
  var byId = {};
  var idle = false;
  var loads = 0;
  var lastQuery = null;
  var aborter = null;
  var popup = null;
  var map = null;
  var basemap = null;
  var mapReady = null;
  var LIST_MAX = 2000;
  var lastFC = null;
  var quietClose = false;
  var lastError = null;

  function t(key, vars) {
    var s = T[state.lang][key];
    if (s === undefined) s = T.ja[key];
    if (s === undefined) return key;
    if (vars) Object.keys(vars).forEach(function (k) { s = s.split("{" + k + "}").join(String(vars[k])); });
    return s;
  }
  function label(group, value) {
    var g = T[state.lang][group] || {};
    return g[value] || value || "";
  }

  // ---------------------------------------------------------------- time helpers
  function validDate(s) { return s && /^\d{4}-\d{2}-\d{2}$/.test(s) ? s : ""; }
  function parseNow(s) {
    if (!s) return Date.now();
    var ms = /^\d{4}-\d{2}-\d{2}$/.test(s) ? Date.parse(s + "T00:00:00+09:00") : Date.parse(s);
    return isFinite(ms) ? ms : Date.now();
  }
  function parsePeriod(s) {
    var m = /^(\d+(?:\.\d+)?)\s*([dmw]?)$/.exec(String(s).trim());
    if (!m) return { n: 1, unit: "m" };
    var n = parseFloat(m[1]);
    if (m[2] === "w") return { n: n * 7, unit: "d" };
    return { n: n, unit: m[2] || "m" };
  }
  function subtract(ms, p) {
    if (p.unit === "d") return ms - p.n * 86400000;
    var d = new Date(ms + TZ_OFFSET_MS); // calendar months in Japan time
    var day = d.getUTCDate();
    d.setUTCDate(1);
    d.setUTCMonth(d.getUTCMonth() - Math.round(p.n));
    var last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
    d.setUTCDate(Math.min(day, last));
    return d.getTime() - TZ_OFFSET_MS;
  }
  function periodText(p) { return p.unit === "d" ? t("days", { n: p.n }) : t("months", { n: p.n }); }
  function jst(ms) { // -> {date: "YYYY-MM-DD", time: "HH:MM", midnight: bool}
    var d = new Date(ms + TZ_OFFSET_MS);
    var iso = d.toISOString();
    return { date: iso.slice(0, 10), time: iso.slice(11, 16), midnight: iso.slice(11, 19) === "00:00:00" };
  }
  function jstDayStartUtc(date) { return new Date(Date.parse(date + "T00:00:00+09:00")).toISOString().replace(".000Z", "Z"); }
  function jstDayEndUtc(date) { return new Date(Date.parse(date + "T23:59:59+09:00")).toISOString().replace(".000Z", "Z"); }
  function recencyOf(ms) {
    if (ms >= subtract(state.now, state.red)) return "red";
    if (ms >= subtract(state.now, state.yellow)) return "yellow";
    return "blue";
  }

  // ---------------------------------------------------------------- geometry helpers
  function haversineKm(a, b) {
    var R = 6371.0088, rad = Math.PI / 180;
    var dLat = (b[1] - a[1]) * rad, dLon = (b[0] - a[0]) * rad;
    var h = Math.sin(dLat / 2) * Math.sin(dLat / 2) + Math.cos(a[1] * rad) * Math.cos(b[1] * rad) * Math.sin(dLon / 2) * Math.sin(dLon / 2);
    return 2 * R * Math.asin(Math.min(1, Math.sqrt(h)));
  }
  function circle(center, km, steps) {
    var coords = [], rad = Math.PI / 180, R = 6371.0088;
    var lat1 = center[1] * rad, lon1 = center[0] * rad, d = km / R;
    for (var i = 0; i <= steps; i++) {
      var brg = (i / steps) * 2 * Math.PI;
      var lat2 = Math.asin(Math.sin(lat1) * Math.cos(d) + Math.cos(lat1) * Math.sin(d) * Math.cos(brg));
      var lon2 = lon1 + Math.atan2(Math.sin(brg) * Math.sin(d) * Math.cos(lat1), Math.cos(d) - Math.sin(lat1) * Math.sin(lat2));
      coords.push([lon2 / rad, lat2 / rad]);
    }
    return { type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: [coords] } };
  }
  function extendBounds(b, c) {
    if (typeof c[0] === "number") {
      b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]); b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]);
    } else c.forEach(function (x) { extendBounds(b, x); });
    return b;
  }

  // ---------------------------------------------------------------- icons (canvas, no sprites)
  var ICON_PX = 24, DPR = 2;
  function drawShape(ctx, kind, s) {
    var c = s / 2, r = s * 0.36;
    ctx.beginPath();
    if (kind === "trace") { // triangle
      ctx.moveTo(c, c - r * 1.1); ctx.lineTo(c + r * 1.05, c + r * 0.8); ctx.lineTo(c - r * 1.05, c + r * 0.8); ctx.closePath();
    } else if (kind === "photographing") { // square
      ctx.rect(c - r * 0.85, c - r * 0.85, r * 1.7, r * 1.7);
    } else if (kind === "capture") { // diamond
      ctx.moveTo(c, c - r * 1.15); ctx.lineTo(c + r * 1.15, c); ctx.lineTo(c, c + r * 1.15); ctx.lineTo(c - r * 1.15, c); ctx.closePath();
    } else if (kind === "injury") { // star
      for (var i = 0; i < 10; i++) {
        var a = -Math.PI / 2 + (i * Math.PI) / 5, rr = i % 2 ? r * 0.5 : r * 1.2;
        var x = c + rr * Math.cos(a), y = c + rr * Math.sin(a);
        if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      }
      ctx.closePath();
    } else { // witness / unknown: circle
      ctx.arc(c, c, r, 0, 2 * Math.PI);
    }
  }
  function iconCanvas(kind, recency, reliability, px) {
    var s = (px || ICON_PX) * DPR;
    var cv = document.createElement("canvas");
    cv.width = cv.height = s;
    var ctx = cv.getContext("2d");
    var col = COLOURS[recency] || "#777";
    ctx.lineJoin = "round";
    drawShape(ctx, kind, s);
    if (reliability === "low") { // hollow: white fill, dashed coloured ring
      ctx.fillStyle = "rgba(255,255,255,0.9)"; ctx.fill();
      ctx.setLineDash([s * 0.12, s * 0.08]); ctx.lineWidth = s * 0.11; ctx.strokeStyle = col; ctx.stroke();
      ctx.setLineDash([]);
    } else if (reliability === "middle") { // lighter fill, thin outline
      ctx.globalAlpha = 0.55; ctx.fillStyle = col; ctx.fill(); ctx.globalAlpha = 1;
      ctx.lineWidth = s * 0.07; ctx.strokeStyle = col; ctx.stroke();
      ctx.lineWidth = s * 0.03; ctx.strokeStyle = "#1d2733"; ctx.stroke();
    } else { // high (or unknown): solid fill, dark outline
      ctx.fillStyle = col; ctx.fill();
      ctx.lineWidth = s * 0.07; ctx.strokeStyle = "#1d2733"; ctx.stroke();
    }
    return cv;
  }
  function iconName(kind, recency, reliability) { return "bm-" + kind + "-" + recency + "-" + reliability; }
  function addIcons() {
    KINDS.concat(["other"]).forEach(function (k) {
      RECENCY.forEach(function (rc) {
        RELIABILITY.concat(["unknown"]).forEach(function (rl) {
          var cv = iconCanvas(k, rc, rl);
          var img = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height);
          map.addImage(iconName(k, rc, rl), { width: cv.width, height: cv.height, data: new Uint8Array(img.data.buffer) }, { pixelRatio: DPR });
        });
      });
    });
  }
  function iconImg(kind, recency, reliability, px) {
    var img = document.createElement("img");
    img.src = iconCanvas(kind, recency, reliability, px || 18).toDataURL("image/png");
    img.width = img.height = px || 18;
    img.alt = "";
    img.className = "bm-icon";
    return img;
  }

  // ---------------------------------------------------------------- DOM helpers (text only)
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      if (k === "className") e.className = attrs[k];
      else if (k === "dataset") Object.keys(attrs.dataset).forEach(function (d) { e.dataset[d] = attrs.dataset[d]; });
      else e.setAttribute(k, attrs[k]);
    });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function $(id) { return document.getElementById(id); }

  // ---------------------------------------------------------------- i18n
  function applyLanguage() {
    document.documentElement.lang = state.lang;
    document.title = t("title") + " — Tokyo GeoTwin";
    document.querySelectorAll("[data-i18n]").forEach(function (n) { n.textContent = t(n.dataset.i18n); });
    var btn = $("bm-lang");
    btn.textContent = t("lang_button");
    btn.lang = state.lang === "ja" ? "en" : "ja";
    // not plain "Map": MapLibre names its canvas region that, and two landmarks may not share a name
    $("bm-map").setAttribute("aria-label", t("map_label"));
    buildSpeciesControls();
    buildMuniOptions();
    buildLegend();
    updateCountText();
    updatePointMsg();
    renderList();
    if (popup && popup.isOpen() && state.selected && byId[state.selected]) showPopup(byId[state.selected], false);
  }

  // ---------------------------------------------------------------- controls
  function buildSpeciesControls() {
    var box = $("bm-species");
    box.textContent = "";
    SPECIES.forEach(function (sp) {
      var lab = el("label", { className: "bm-check" });
      var cb = el("input", { type: "checkbox", name: "species", value: sp });
      cb.checked = state.species.indexOf(sp) >= 0;
      cb.addEventListener("change", function () {
        state.species = Array.prototype.map.call(box.querySelectorAll("input:checked"), function (x) { return x.value; });
        reload();
      });
      lab.appendChild(cb);
      lab.appendChild(el("span", null, label("sp_", sp)));
      box.appendChild(lab);
    });
  }
  function buildMuniOptions() {
    var sel = $("bm-muni");
    var keep = state.muni;
    while (sel.options.length > 1) sel.remove(1);
    sel.options[0].textContent = t("all");
    Object.keys(munis).sort().forEach(function (code) {
      var o = el("option", { value: code }, munis[code]);
      sel.appendChild(o);
    });
    sel.value = keep;
  }
  function buildRadius() {
    var sel = $("bm-radius");
    (CFG.radii_km || [1, 2, 5, 10, 20, 50, 100]).forEach(function (km) { sel.appendChild(el("option", { value: String(km) }, km + " km")); });
    if (!Array.prototype.some.call(sel.options, function (o) { return Number(o.value) === state.radius; })) {
      sel.appendChild(el("option", { value: String(state.radius) }, state.radius + " km"));
    }
    sel.value = String(state.radius);
  }
  function buildLegend() {
    var box = $("bm-legend");
    box.textContent = "";
    var g1 = el("div", { className: "bm-legend-group" });
    g1.appendChild(el("h2", null, t("recency")));
    [["red", t("within", { p: periodText(state.red) })], ["yellow", t("within", { p: periodText(state.yellow) })], ["blue", t("older", { p: periodText(state.yellow) })]].forEach(function (r) {
      var row = el("span", { className: "bm-legend-item", dataset: { recency: r[0] } });
      row.appendChild(iconImg("witness", r[0], "high"));
      row.appendChild(el("span", null, r[1]));
      g1.appendChild(row);
    });
    var g2 = el("div", { className: "bm-legend-group" });
    g2.appendChild(el("h2", null, t("kind")));
    KINDS.forEach(function (k) {
      var row = el("span", { className: "bm-legend-item" });
      row.appendChild(iconImg(k, "blue", "high"));
      row.appendChild(el("span", null, label("kind_", k)));
      g2.appendChild(row);
    });
    var g3 = el("div", { className: "bm-legend-group" });
    g3.appendChild(el("h2", null, t("reliability")));
    RELIABILITY.forEach(function (rl) {
      var row = el("span", { className: "bm-legend-item" });
      row.appendChild(iconImg("witness", "red", rl));
      row.appendChild(el("span", null, label("rel_", rl)));
      g3.appendChild(row);
    });
    box.appendChild(g1); box.appendChild(g2); box.appendChild(g3);
    $("bm-asof").textContent = "(" + t("asof", { d: jst(state.now).date }) + ")";
  }
  function updateCountText() {
    var c = $("bm-count");
    if (!idle && !lastError) c.textContent = t("loading");
    else if (lastError) c.textContent = t("error", { e: lastError });
    else c.textContent = t("count", { n: shown.length.toLocaleString(state.lang === "ja" ? "ja-JP" : "en-GB") });
  }
  function updatePointMsg() {
    var msg = $("bm-point-msg");
    if (state.picking) msg.textContent = t("pick_msg");
    else if (state.point) msg.textContent = t("point_msg", { lat: state.point[1].toFixed(4), lon: state.point[0].toFixed(4), r: state.radius });
    else if (msg.dataset.geo === "fail") msg.textContent = t("geo_fail");
    else msg.textContent = "";
    $("bm-clear-point").hidden = !state.point;
    $("bm-pick").setAttribute("aria-pressed", state.picking ? "true" : "false");
    $("bm-map-hint").hidden = !state.picking;
    $("bm-map-hint").textContent = t("pick_msg");
    document.querySelectorAll(".bm-dist-col").forEach(function (n) { n.hidden = !state.point; });
  }

  // ---------------------------------------------------------------- URL state
  function syncUrl() {
    var q = new URLSearchParams();
    if (state.lang !== "ja") q.set("lang", state.lang);
    ["now", "red", "yellow"].forEach(function (k) { if (params.get(k)) q.set(k, params.get(k)); });
    if (state.muni) q.set("muni", state.muni);
    if (state.from) q.set("from", state.from);
    if (state.to) q.set("to", state.to);
    if (state.species.length !== SPECIES.length) q.set("species", state.species.join(","));
    if (state.point) { q.set("lon", state.point[0].toFixed(5)); q.set("lat", state.point[1].toFixed(5)); q.set("r", String(state.radius)); }
    if (state.selected) q.set("id", state.selected);
    var s = q.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
  }

  // ---------------------------------------------------------------- data loading
  function itemsQuery() {
    var q = new URLSearchParams();
    q.set("f", "json");
    q.set("limit", String(CFG.page_size || 1000));
    if (state.muni) q.set("municipality_code", state.muni);
    if (state.from || state.to) {
      q.set("datetime", (state.from ? jstDayStartUtc(state.from) : "..") + "/" + (state.to ? jstDayEndUtc(state.to) : ".."));
    }
    if (state.species.length === 1) q.set("species", state.species[0]);
    else if (state.species.length > 1 && state.species.length < SPECIES.length) {
      q.set("filter-lang", "cql2-text");
      q.set("filter", "species IN (" + state.species.map(function (s) { return "'" + s.replace(/'/g, "''") + "'"; }).join(",") + ")");
    }
    return q;
  }
  function sameOrigin(href) {
    var u = new URL(href, location.href);
    return location.origin + u.pathname + u.search;
  }
  function fetchAll(url, signal) {
    var out = [], seen = {}, pages = 0, matched = null;
    function step(u) {
      pages += 1;
      return fetch(u, { headers: { Accept: "application/geo+json, application/json" }, signal: signal }).then(function (r) {
        if (!r.ok) return r.json().catch(function () { return {}; }).then(function (j) { throw new Error(r.status + " " + (j.description || r.statusText)); });
        return r.json();
      }).then(function (doc) {
        if (matched === null && typeof doc.numberMatched === "number") matched = doc.numberMatched;
        (doc.features || []).forEach(function (f) { var k = String(f.id); if (!seen[k]) { seen[k] = 1; out.push(f); } });
        var next = (doc.links || []).filter(function (l) { return l.rel === "next"; })[0];
        if (next && (doc.features || []).length && pages < 100) return step(sameOrigin(next.href));
        return { features: out, numberMatched: matched, pages: pages };
      });
    }
    return step(url);
  }
  function reload() {
    idle = false;
    lastError = null;
    updateCountText();
    syncUrl();
    if (aborter) aborter.abort();
    aborter = new AbortController();
    var mine = aborter;
    var q = itemsQuery();
    lastQuery = q.toString();
    if (state.species.length === 0) { // nothing selected: nothing to ask
      return Promise.resolve().then(function () { loaded = []; afterLoad(); });
    }
    var url = "/ogc/collections/" + encodeURIComponent(CFG.collection) + "/items?" + lastQuery;
    return fetchAll(url, mine.signal).then(function (res) {
      if (mine !== aborter) return;
      loaded = res.features;
      afterLoad();
    }).catch(function (e) {
      if (e && e.name === "AbortError") return;
      if (mine !== aborter) return;
      loaded = [];
      lastError = String(e && e.message ? e.message : e);
      afterLoad();
    });
  }
  var fitted = false;
  function afterLoad() {
    applyClientFilters();
    if (!fitted && map && shown.length && !state.muni && !state.point && !state.selected) {
      fitted = true;
      var b = [180, 90, -180, -90];
      shown.forEach(function (it) { extendBounds(b, it.f.geometry.coordinates); });
      map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 40, duration: 0, maxZoom: 13 });
    }
    loads += 1;
    idle = true;
    updateCountText();
  }
  function applyClientFilters() {
    byId = {};
    shown = [];
    loaded.forEach(function (f) {
      if (!f.geometry || f.geometry.type !== "Point") return;
      var p = f.properties || {};
      var ms = Date.parse(p.observed_at);
      var d = state.point ? haversineKm(state.point, f.geometry.coordinates) : null;
      if (d !== null && d > state.radius) return;
      var rec = isFinite(ms) ? recencyOf(ms) : "blue";
      var kind = KINDS.indexOf(p.kind) >= 0 ? p.kind : "other";
      var rel = RELIABILITY.indexOf(p.reliability) >= 0 ? p.reliability : "unknown";
      var item = { id: String(f.id), f: f, ms: isFinite(ms) ? ms : 0, recency: rec, kind: kind, rel: rel, dist: d };
      shown.push(item);
      byId[item.id] = item;
    });
    // newest first; with a point, nearest first ("near me" on a phone)
    shown.sort(function (a, b) {
      if (state.point && a.dist !== b.dist) return a.dist - b.dist;
      return b.ms - a.ms || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    });
    if (state.selected && !byId[state.selected]) { state.selected = null; if (popup) popup.remove(); syncUrl(); }
    renderMap();
    renderList();
    updatePointMsg();
  }

  // ---------------------------------------------------------------- map
  function featureCollection() {
    return {
      type: "FeatureCollection",
      features: shown.map(function (it) {
        return {
          type: "Feature",
          geometry: it.f.geometry,
          properties: { fid: it.id, icon: iconName(it.kind, it.recency, it.rel), recency: it.recency, kind: it.kind, reliability: it.rel, t: it.ms / 86400000 }
        };
      })
    };
  }
  function renderMap() {
    if (!map || !map.getSource("sightings")) return;
    lastFC = featureCollection();
    map.getSource("sightings").setData(lastFC);
    updateSelectionLayer();
    var pt = { type: "FeatureCollection", features: [] };
    var ring = { type: "FeatureCollection", features: [] };
    if (state.point) {
      pt.features.push({ type: "Feature", properties: {}, geometry: { type: "Point", coordinates: state.point } });
      ring.features.push(circle(state.point, state.radius, 96));
    }
    map.getSource("point").setData(pt);
    map.getSource("radius").setData(ring);
  }
  function updateSelectionLayer() {
    if (!map || !map.getLayer("selected")) return;
    map.setFilter("selected", ["==", ["get", "fid"], state.selected || ""]);
  }
  function initMap() {
    var b = CFG.coverage_bbox;
    map = new maplibregl.Map({
      container: "bm-map",
      style: GeoBasemaps.style("#e9efe6"),
      center: CFG.center || [139.2, 35.75],
      zoom: CFG.zoom || 9,
      bounds: b ? [[b[0], b[1]], [b[2], b[3]]] : undefined,
      fitBoundsOptions: { padding: 20 },
      attributionControl: false,
      maxZoom: 16,
      dragRotate: false,
      pitchWithRotate: false
    });
    map.touchZoomRotate.disableRotation();
    basemap = GeoBasemaps.attach(map);
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
    map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
    mapReady = new Promise(function (resolve) {
      map.on("load", function () {
        addIcons();
        map.addSource("munis", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
        map.addLayer({ id: "munis-fill", type: "fill", source: "munis", paint: { "fill-color": "#fbfcf8", "fill-opacity": GeoBasemaps.config.sources.length ? 0.2 : 0.9 } });
        map.addLayer({ id: "munis-focus", type: "fill", source: "munis", filter: ["==", ["get", "municipality_code"], ""], paint: { "fill-color": "#fff6d8", "fill-opacity": GeoBasemaps.config.sources.length ? 0.35 : 0.9 } });
        map.addLayer({ id: "munis-line", type: "line", source: "munis", paint: { "line-color": "#8795a3", "line-width": 1 } });
        map.addLayer({ id: "munis-focus-line", type: "line", source: "munis", filter: ["==", ["get", "municipality_code"], ""], paint: { "line-color": "#1d2733", "line-width": 2.5 } });
        map.addSource("radius", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
        map.addLayer({ id: "radius-fill", type: "fill", source: "radius", paint: { "fill-color": "#0b5fa5", "fill-opacity": 0.06 } });
        map.addLayer({ id: "radius-line", type: "line", source: "radius", paint: { "line-color": "#0b5fa5", "line-width": 2, "line-dasharray": [3, 2] } });
        map.addSource("sightings", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
        map.addLayer({
          id: "selected", type: "circle", source: "sightings", filter: ["==", ["get", "fid"], ""],
          paint: { "circle-radius": 17, "circle-color": "rgba(255,255,255,0.5)", "circle-stroke-color": "#111", "circle-stroke-width": 3 }
        });
        map.addLayer({
          id: "sightings", type: "symbol", source: "sightings",
          layout: {
            "icon-image": ["get", "icon"], "icon-allow-overlap": true, "icon-ignore-placement": true,
            "symbol-sort-key": ["get", "t"],
            "icon-size": ["interpolate", ["linear"], ["zoom"], 8, 0.7, 12, 1, 15, 1.25]
          }
        });
        map.addSource("point", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
        map.addLayer({ id: "point-halo", type: "circle", source: "point", paint: { "circle-radius": 14, "circle-color": "rgba(11,95,165,0.18)", "circle-stroke-color": "#0b5fa5", "circle-stroke-width": 1.5 } });
        map.addLayer({ id: "point", type: "circle", source: "point", paint: { "circle-radius": 6, "circle-color": "#0b5fa5", "circle-stroke-color": "#fff", "circle-stroke-width": 2.5 } });
        map.on("click", "sightings", function (e) {
          if (state.picking || !e.features || !e.features.length) return;
          var id = e.features[0].properties.fid;
          select(id, { fromMap: true });
        });
        map.on("mouseenter", "sightings", function () { if (!state.picking) map.getCanvas().style.cursor = "pointer"; });
        map.on("mouseleave", "sightings", function () { map.getCanvas().style.cursor = state.picking ? "crosshair" : ""; });
        map.on("click", function (e) {
          if (!state.picking) return;
          state.picking = false;
          map.getCanvas().style.cursor = "";
          setPoint([e.lngLat.lng, e.lngLat.lat]);
        });
        resolve();
      });
    });
    return mapReady;
  }
  /** The Atom feed link follows the municipality filter (one feed per municipality). */
  function updateFeedLink() {
    var a = $("bm-feed");
    if (a) a.href = "/api/sightings/feed.atom" + (state.muni ? "?municipality=" + encodeURIComponent(state.muni) : "");
  }
  function focusMuni() {
    updateFeedLink();
    if (!map || !map.getLayer("munis-focus")) return;
    var f = ["==", ["get", "municipality_code"], state.muni || ""];
    map.setFilter("munis-focus", f);
    map.setFilter("munis-focus-line", f);
    if (state.muni && muniBounds[state.muni]) map.fitBounds(muniBounds[state.muni], { padding: 30, duration: 600 });
  }

  // ---------------------------------------------------------------- list
  function placeName(p) {
    var code = p.municipality_code;
    if (!code) return t("unknown_place");
    return munis[code] || code;
  }
  function renderList() {
    var body = $("bm-list").tBodies[0];
    body.textContent = "";
    var frag = document.createDocumentFragment();
    var n = Math.min(shown.length, LIST_MAX);
    for (var i = 0; i < n; i++) {
      var it = shown[i], p = it.f.properties || {};
      var when = it.ms ? jst(it.ms) : { date: "", time: "", midnight: true };
      var tr = el("tr", { tabindex: "0", dataset: { id: it.id, recency: it.recency } });
      var tdDate = el("td", { className: "bm-date" });
      tdDate.appendChild(el("span", { className: "bm-dot bm-" + it.recency, "aria-hidden": "true" }));
      tdDate.appendChild(document.createTextNode(when.date));
      tr.appendChild(tdDate);
      tr.appendChild(when.midnight ? el("td", { className: "bm-time", title: t("no_time_title") }, t("no_time")) : el("td", { className: "bm-time" }, when.time));
      tr.appendChild(el("td", { className: "bm-place" }, placeName(p)));
      var tdKind = el("td", { className: "bm-kind" });
      tdKind.appendChild(iconImg(it.kind, it.recency, it.rel, 14));
      tdKind.appendChild(document.createTextNode(" " + label("kind_", p.kind)));
      tr.appendChild(tdKind);
      tr.appendChild(el("td", { className: "bm-rel" }, label("rel_", p.reliability)));
      var tdD = el("td", { className: "bm-dist-col num" }, it.dist !== null ? it.dist.toFixed(1) + " km" : "");
      tdD.hidden = !state.point;
      tr.appendChild(tdD);
      if (it.id === state.selected) { tr.classList.add("is-selected"); tr.setAttribute("aria-selected", "true"); }
      frag.appendChild(tr);
    }
    body.appendChild(frag);
    var more = $("bm-more");
    if (!shown.length && idle) more.textContent = t("none");
    else if (shown.length > n) more.textContent = t("more", { n: shown.length - n, m: n });
    else more.textContent = "";
  }
  function highlightRow(scroll) {
    var body = $("bm-list").tBodies[0];
    Array.prototype.forEach.call(body.querySelectorAll("tr.is-selected"), function (r) { r.classList.remove("is-selected"); r.removeAttribute("aria-selected"); });
    if (!state.selected) return;
    var row = null;
    Array.prototype.some.call(body.rows, function (r) { if (r.dataset.id === state.selected) { row = r; return true; } return false; });
    if (row) {
      row.classList.add("is-selected");
      row.setAttribute("aria-selected", "true");
      if (scroll) row.scrollIntoView({ block: "nearest" });
    }
  }

  // ---------------------------------------------------------------- popup
  function popupContent(it) {
    var p = it.f.properties || {};
    var box = el("div", { className: "bm-popup", dataset: { id: it.id } });
    var head = el("div", { className: "bm-popup-head" });
    head.appendChild(iconImg(it.kind, it.recency, it.rel, 20));
    head.appendChild(el("strong", null, label("sp_", p.species) + " — " + label("kind_", p.kind)));
    box.appendChild(head);
    var dl = el("dl");
    function row(k, v, cls) {
      if (v === undefined || v === null || v === "") return;
      dl.appendChild(el("dt", null, t(k)));
      dl.appendChild(el("dd", cls ? { className: cls } : null, v));
    }
    var when = it.ms ? jst(it.ms) : null;
    row("f_observed", when ? when.date + (when.midnight ? " " + t("date_only") : " " + when.time + " JST") : p.observed_at);
    if (it.ms) {
      var days = Math.floor((state.now - it.ms) / 86400000);
      row("f_age", days < 0 ? t("future") : days === 0 ? t("today") : t("days_ago", { n: days }), "bm-age bm-" + it.recency);
    }
    row("f_place", p.municipality_code ? placeName(p) + " (" + p.municipality_code + ")" : t("unknown_place"));
    row("f_reliability", label("rel_", p.reliability));
    row("f_count", p.count);
    row("f_description", p.description, "bm-desc");
    row("f_source", p.source ? p.source + (p.source_id ? " #" + p.source_id : "") : p.source_id);
    row("f_status", p.status ? t("status_" + p.status) : "");
    var c = it.f.geometry.coordinates;
    row("f_position", c[1].toFixed(5) + ", " + c[0].toFixed(5) + (it.dist !== null ? " (" + it.dist.toFixed(1) + " km)" : ""));
    row("f_id", it.id);
    var known = ["species", "kind", "reliability", "observed_at", "municipality_code", "count", "description", "source", "source_id", "status"];
    Object.keys(p).forEach(function (k) { // anything else the layer carries, shown as is
      if (known.indexOf(k) >= 0 || p[k] === null || p[k] === undefined || p[k] === "") return;
      dl.appendChild(el("dt", null, k));
      dl.appendChild(el("dd", null, typeof p[k] === "object" ? JSON.stringify(p[k]) : p[k]));
    });
    box.appendChild(dl);
    var a = el("a", null, t("f_link"));
    a.href = "/ogc/collections/" + encodeURIComponent(CFG.collection) + "/items/" + encodeURIComponent(it.id) + "?f=html";
    box.appendChild(a);
    return box;
  }
  function showPopup(it, fly) {
    if (!map) return;
    if (popup) { quietClose = true; popup.remove(); quietClose = false; }
    popup = new maplibregl.Popup({ closeButton: true, maxWidth: "340px", focusAfterOpen: false, offset: 14 })
      .setLngLat(it.f.geometry.coordinates)
      .setDOMContent(popupContent(it))
      .addTo(map);
    popup.on("close", function () {
      if (!quietClose && state.selected === it.id) { state.selected = null; updateSelectionLayer(); highlightRow(false); syncUrl(); }
    });
    if (fly) map.flyTo({ center: it.f.geometry.coordinates, zoom: Math.max(map.getZoom(), 12), duration: 700 });
  }
  function select(id, opts) {
    opts = opts || {};
    var it = byId[String(id)];
    if (!it) return false;
    state.selected = it.id;
    updateSelectionLayer();
    highlightRow(!!opts.fromMap);
    showPopup(it, !opts.fromMap);
    syncUrl();
    return true;
  }

  // ---------------------------------------------------------------- distance
  function setPoint(pt) {
    state.point = pt;
    applyClientFilters();
    updateCountText();
    syncUrl();
  }

  // ---------------------------------------------------------------- metadata, boundaries
  function loadMeta() {
    return fetch("/ogc/collections/" + encodeURIComponent(CFG.collection), { headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(function (m) {
        var credit = $("bm-credit");
        credit.textContent = "";
        credit.appendChild(document.createTextNode(m.attribution || ""));
        if (m.license) { // the attribution usually names the licence already: then only link to it
          var named = (m.attribution || "").indexOf(m.license) >= 0;
          var lic = el("a", named ? { className: "bm-licence", "data-i18n": "licence_label" } : { className: "bm-licence" }, named ? t("licence_label") : m.license);
          var ll = (m.links || []).filter(function (l) { return l.rel === "license"; })[0];
          if (ll && /^https?:/.test(ll.href)) lic.href = ll.href;
          else if (CFG.licence_url && /^https?:/.test(CFG.licence_url)) lic.href = CFG.licence_url;
          credit.appendChild(document.createTextNode(" ("));
          credit.appendChild(lic);
          credit.appendChild(document.createTextNode(")"));
        }
        $("bm-synthetic").hidden = !m.synthetic;
        $("bm-map-credit").textContent = (m.synthetic ? "【synthetic / 合成】 " : "") + (m.attribution || "").replace(/^【[^】]*】\s*/, "");
        return m;
      })
      .catch(function () { return null; });
  }
  function loadBoundaries() {
    if (!CFG.boundaries_served) return Promise.resolve();
    return fetchAll("/ogc/collections/" + encodeURIComponent(CFG.boundaries) + "/items?f=json&limit=1000").then(function (res) {
      res.features.forEach(function (f) {
        var p = f.properties || {};
        if (!p.municipality_code) return;
        munis[p.municipality_code] = p.name || p.municipality_code;
        if (f.geometry) {
          var b = extendBounds([180, 90, -180, -90], f.geometry.coordinates);
          muniBounds[p.municipality_code] = [[b[0], b[1]], [b[2], b[3]]];
        }
      });
      buildMuniOptions();
      return res;
    }).catch(function () { return null; });
  }

  // ---------------------------------------------------------------- wiring
  function wire() {
    $("bm-lang").addEventListener("click", function () {
      state.lang = state.lang === "ja" ? "en" : "ja";
      try { localStorage.setItem("bearmap.lang", state.lang); } catch (e) { /* private mode */ }
      applyLanguage();
      syncUrl();
    });
    $("bm-muni").addEventListener("change", function (e) { state.muni = e.target.value; focusMuni(); reload(); });
    $("bm-from").addEventListener("change", function (e) { state.from = validDate(e.target.value); reload(); });
    $("bm-to").addEventListener("change", function (e) { state.to = validDate(e.target.value); reload(); });
    document.querySelectorAll("[data-quick]").forEach(function (b) {
      b.addEventListener("click", function () {
        var q = b.dataset.quick;
        state.from = q ? jst(subtract(state.now, parsePeriod(q))).date : "";
        state.to = "";
        $("bm-from").value = state.from;
        $("bm-to").value = "";
        reload();
      });
    });
    $("bm-radius").addEventListener("change", function (e) {
      state.radius = Number(e.target.value);
      if (state.point) setPoint(state.point); else updatePointMsg();
    });
    $("bm-pick").addEventListener("click", function () {
      state.picking = !state.picking;
      if (map) map.getCanvas().style.cursor = state.picking ? "crosshair" : "";
      updatePointMsg();
    });
    $("bm-clear-point").addEventListener("click", function () { state.picking = false; $("bm-point-msg").dataset.geo = ""; setPoint(null); });
    $("bm-locate").addEventListener("click", function () {
      var msg = $("bm-point-msg");
      if (!navigator.geolocation) { msg.dataset.geo = "fail"; updatePointMsg(); return; }
      msg.dataset.geo = "";
      msg.textContent = t("locating");
      navigator.geolocation.getCurrentPosition(function (pos) {
        var pt = [pos.coords.longitude, pos.coords.latitude];
        setPoint(pt);
        if (map) map.fitBounds(extendBounds([180, 90, -180, -90], circle(pt, state.radius, 32).geometry.coordinates), { padding: 30, duration: 600 });
      }, function () { msg.dataset.geo = "fail"; updatePointMsg(); }, { enableHighAccuracy: false, timeout: 10000, maximumAge: 60000 });
    });
    var body = $("bm-list").tBodies[0];
    body.addEventListener("click", function (e) {
      var tr = e.target.closest("tr");
      if (tr && tr.dataset.id) select(tr.dataset.id);
    });
    body.addEventListener("keydown", function (e) {
      if (e.key !== "Enter" && e.key !== " ") return;
      var tr = e.target.closest("tr");
      if (tr && tr.dataset.id) { e.preventDefault(); select(tr.dataset.id); }
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && state.picking) { state.picking = false; if (map) map.getCanvas().style.cursor = ""; updatePointMsg(); }
      // keyboard picking: the focused map moves with the arrow keys; Enter takes its centre
      if (e.key === "Enter" && state.picking && map && document.activeElement === map.getCanvas()) {
        e.preventDefault();
        state.picking = false;
        map.getCanvas().style.cursor = "";
        var c = map.getCenter();
        setPoint([c.lng, c.lat]);
      }
    });
  }

  // ---------------------------------------------------------------- page hook
  window.bearmap = {
    get idle() { return idle; },
    get loads() { return loads; },
    count: function () { return lastFC ? lastFC.features.length : shown.length; },
    sourceCount: function () { // what the map's GeoJSON source holds (asks the source itself)
      var src = map && map.getSource("sightings");
      return src && src.getData ? Promise.resolve(src.getData()).then(function (d) { return d.features.length; }) : Promise.resolve(null);
    },
    renderedCount: function () { return map && map.getLayer("sightings") ? map.queryRenderedFeatures({ layers: ["sightings"] }).length : 0; },
    ids: function () { return shown.map(function (it) { return it.id; }); },
    recency: function (id) { var it = byId[String(id)]; return it ? it.recency : null; },
    icon: function (id) { var it = byId[String(id)]; return it ? iconName(it.kind, it.recency, it.rel) : null; },
    colour: function (id) { var it = byId[String(id)]; return it ? COLOURS[it.recency] : null; },
    select: function (id) { return select(id); },
    selected: function () { return state.selected; },
    setPoint: function (lon, lat, km) { if (km) { state.radius = km; $("bm-radius").value = String(km); } setPoint(lon === null ? null : [lon, lat]); },
    query: function () { return lastQuery; },
    now: function () { return new Date(state.now).toISOString(); },
    lang: function () { return state.lang; },
    map: function () { return map; },
    basemap: function () { return basemap; }
  };

  // ---------------------------------------------------------------- start
  function start() {
    if (!params.get("lang")) {
      try { var l = localStorage.getItem("bearmap.lang"); if (l === "en" || l === "ja") state.lang = l; } catch (e) { /* private mode */ }
    }
    // a phone shows the map and the list first: the filters wait in their drawer
    if (window.matchMedia && window.matchMedia("(max-width: 800px)").matches) {
      $("bm-drawer").open = false;
      var legend = document.querySelector(".bm-legend");
      if (legend) legend.open = false;
    }
    $("bm-from").value = state.from;
    $("bm-to").value = state.to;
    buildRadius();
    wire();
    applyLanguage();
    if (!CFG.served) { lastError = "collection not served"; idle = true; updateCountText(); return; }
    try {
      if (typeof maplibregl === "undefined") throw new Error("MapLibre GL JS did not load");
      initMap();
    } catch (e) {
      map = null;
      mapReady = null;
      $("bm-map").textContent = "WebGL is not available: the list still works. / WebGL が使えないため地図を表示できません（一覧は使えます）。";
    }
    var boundaries = loadBoundaries();
    loadMeta();
    Promise.all([boundaries, mapReady || Promise.resolve()]).then(function (r) {
      var res = r[0];
      if (map && res) map.getSource("munis").setData({ type: "FeatureCollection", features: res.features });
      focusMuni();
      $("bm-muni").value = state.muni;
      return reload();
    }).then(function () {
      if (state.selected && byId[state.selected]) select(state.selected);
      else renderList();
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
