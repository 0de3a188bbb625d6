/* Tokyo GeoTwin — planners' 3D viewer (/3d/), CesiumJS bundled from npm.
 *
 * No Cesium ion. The only outside requests are the configured basemap tiles (settings.basemaps:
 * 地理院タイル imagery and 標高タイル terrain, see terrain3d.js); without them the globe is the
 * plain ellipsoid at the geoid height. Buildings come from /3dtiles/buildings/tileset.json
 * (3D Tiles 1.1, per-feature properties from EXT_structural_metadata), overlays and credits
 * from the OGC API. Data is only ever put into the page with textContent (never innerHTML).
 *
 * Shareable state lives in the URL hash (also read from the query string):
 *   lang=ja|en  cam=lon,lat,height,heading,pitch,roll (degrees, metres)
 *   layers=id,id (overlays shown)  imagery=<basemap id>|none  terrain=0|1  buildings=0|1  colour=height|usage|flood  sel=<building_id>
 * Page hook for tests and demos: window.viewer3d.
 */
(function () {
  "use strict";

  var CFG = JSON.parse(document.getElementById("v3-config").textContent);
  var BM = JSON.parse(document.getElementById("basemaps-config").textContent);
  var P = CFG.properties || { id: "building_id", height: "measured_height", usage: "usage", flood: "flood_depth_m" };

  var T = {
    ja: {
      title: "3D都市ビューア", nav_data: "データ (OGC API)", nav_tiles: "3D Tiles", nav_guide: "手続きガイド",
      synthetic_title: "合成デモデータを含みます", synthetic_layers: "次のレイヤーは説明用の合成データで、公式の情報ではありません：",
      buildings: "建物（PLATEAU）", show_buildings: "建物を表示", colour_by: "色分け",
      by_height: "高さ", by_usage: "用途", by_flood: "浸水深",
      overlays: "重ね合わせ（OGC API）", tools: "計測・共有",
      basemap: "背景地図・地形", no_imagery: "なし", terrain: "地形（標高タイル）",
      basemap_unavailable: "背景地図・地形を利用できません（平らな地面で表示しています）",
      measure_height: "高さを測る", measure_area: "面積を測る", measure_clear: "計測を消す",
      share: "このビューを共有", copied: "リンクをコピーしました", info_title: "選択した建物", info_overlay: "選択した地物",
      disclaimer: "表示内容は参考情報です。重要事項説明等には各自治体の公式ハザードマップ・都市計画図を確認してください。",
      loading: "読み込み中…", tiles_ready: "建物 {n} 棟を読み込み済み", no_tileset: "3D Tiles がまだ作成されていません（geoservice build）。",
      tileset_error: "3D Tiles を読み込めませんでした：{e}", tile_failed: "{n} 個のタイルを読み込めませんでした",
      no_webgl: "WebGL が使えないため 3D 表示できません：{e}",
      overlay_error: "読み込み失敗", features: "{n} 件",
      m_height_msg: "地図上の2点をクリック（建物の屋上と地面など）", m_area_msg: "3点以上をクリックして範囲を指定（ダブルクリックで終了）",
      m_height: "高低差 {v} m・水平距離 {h} m・直線距離 {d} m", m_area: "面積 {a} m²（{ha} ha）・周長 {p} m（楕円体面上）",
      m_nopoint: "その位置は計測できません",
      unknown: "不明・データなし", link_item: "OGC API で見る", link_guide: "手続きガイドで調べる（敷地を地図で指定）",
      link_guide_note: "ガイドは敷地をURLで受け取れないため、地図で建物の敷地を指定してください。",
      h_lt: "{v} m 未満", h_ge: "{v} m 以上", h_range: "{a}–{b} m",
      credits_source: "出典", credits_licence: "ライセンス", synthetic_badge: "合成データ",
      lang_button: "English",
      f_: { building_id: "建物ID", measured_height: "計測高さ (m)", storeys: "地上階数", storeys_above_ground: "地上階数",
            storeys_below_ground: "地下階数", usage: "用途", "class": "建物分類", flood_depth_m: "想定浸水深 (m)",
            flood_rank: "浸水ランク", flood_duration_h: "浸水継続時間 (h)", flood_source: "浸水想定の出典", flood_scale: "想定規模",
            usage_code: "用途コード", class_code: "建物分類コード", district_zone: "用途地域", gml_id: "gml:id",
            year_of_construction: "建築年", name: "名称", address: "所在地", lod: "LOD", source_file: "元ファイル" }
    },
    en: {
      title: "3D city viewer", nav_data: "Data (OGC API)", nav_tiles: "3D Tiles", nav_guide: "Procedure guide",
      synthetic_title: "Contains synthetic demo data", synthetic_layers: "These layers were made up for demonstration and are not official:",
      buildings: "Buildings (PLATEAU)", show_buildings: "Show buildings", colour_by: "Colour by",
      by_height: "Height", by_usage: "Usage", by_flood: "Flood depth",
      overlays: "Overlays (OGC API)", tools: "Measure and share",
      basemap: "Basemap and terrain", no_imagery: "None", terrain: "Terrain (elevation tiles)",
      basemap_unavailable: "Basemap or terrain unavailable — showing flat ground.",
      measure_height: "Measure height", measure_area: "Measure area", measure_clear: "Clear",
      share: "Share this view", copied: "Link copied", info_title: "Selected building", info_overlay: "Selected feature",
      disclaimer: "For reference only. For property transactions check the municipalities' official hazard and planning maps.",
      loading: "Loading…", tiles_ready: "{n} buildings loaded", no_tileset: "The 3D Tiles have not been built yet (geoservice build).",
      tileset_error: "Could not load the 3D Tiles: {e}", tile_failed: "{n} tiles failed to load",
      no_webgl: "3D needs WebGL, which is not available: {e}",
      overlay_error: "failed to load", features: "{n} features",
      m_height_msg: "Click two points (a roof and the ground, for example)", m_area_msg: "Click three or more points (double-click to finish)",
      m_height: "Height difference {v} m · horizontal {h} m · straight {d} m", m_area: "Area {a} m² ({ha} ha) · perimeter {p} m (on the ellipsoid)",
      m_nopoint: "Cannot measure at that spot",
      unknown: "unknown / no data", link_item: "View in the OGC API", link_guide: "Check procedures in the guide (draw the site)",
      link_guide_note: "The guide does not take a site in its URL: draw the building's site on its map.",
      h_lt: "under {v} m", h_ge: "{v} m and over", h_range: "{a}–{b} m",
      credits_source: "Source", credits_licence: "Licence", synthetic_badge: "synthetic",
      lang_button: "日本語",
      f_: { building_id: "Building ID", measured_height: "Measured height (m)", storeys: "Storeys", storeys_above_ground: "Storeys above ground",
            storeys_below_ground: "Storeys below ground", usage: "Usage", "class": "Class", flood_depth_m: "Flood depth (m)",
            flood_rank: "Flood rank", flood_duration_h: "Flood duration (h)", flood_source: "Flood scenario source", flood_scale: "Scenario",
            usage_code: "Usage code", class_code: "Class code", district_zone: "Use district", gml_id: "gml:id",
            year_of_construction: "Year built", name: "Name", address: "Address", lod: "LOD", source_file: "Source file" }
    }
  };
  var FIRST = [P.id, P.height, "storeys", P.usage, "class", P.flood, "flood_rank", "flood_duration_h", "flood_scale", "flood_source", "district_zone"];

  // Height classes (m) and colours; flood depth classes follow MLIT's ranks (0.5, 3, 5, 10, 20 m).
  var HEIGHT_BREAKS = [10, 20, 31, 45, 60, 100];
  var HEIGHT_COLOURS = ["#fde725", "#90d743", "#35b779", "#21918c", "#31688e", "#443983", "#440154"];
  var FLOOD_BREAKS = [0.5, 3, 5, 10, 20];
  var FLOOD_COLOURS = ["#f7f5a9", "#ffd8c0", "#ffb7b7", "#ff9191", "#f285c9", "#dc7adc"];
  var NO_DATA = "#bfc5cc";
  var USAGE_COLOURS = {
    "業務施設": "#4e79a7", "商業施設": "#e15759", "宿泊施設": "#b07aa1", "商業系複合施設": "#ff9da7",
    "住宅": "#f1ce63", "共同住宅": "#f28e2b", "店舗等併用住宅": "#edc948", "店舗等併用共同住宅": "#d37295",
    "作業所併用住宅": "#9c755f", "官公庁施設": "#59a14f", "文教厚生施設": "#8cd17d", "運輸倉庫施設": "#86bcb6",
    "工場": "#79706e", "農林漁業用施設": "#b6992d", "供給処理施設": "#499894", "防衛施設": "#555555",
    "その他": "#d4a6c8", "不明": NO_DATA
  };
  var SPARE = ["#76b7b2", "#ff9d9a", "#a0cbe8", "#fabfd2", "#bab0ac", "#d7b5a6", "#8f6d31", "#6b6ecf"];

  // ---------------------------------------------------------------- state
  var state = readState();
  var viewer = null, tileset = null, failures = [], loadedOnce = false;
  var usageSeen = [];                 // usage values met in loaded tiles, in order
  var featuresById = {};              // building_id -> a loaded Cesium3DTileFeature
  var overlays = {};                  // id -> {cfg, source, count, loading, error}
  var meta = {};                      // collection id -> /ogc/collections/{id} document
  var selected = null, selectedColour = null, selectedProps = null;
  var measure = { mode: null, points: [], entities: [], result: null };
  var applyingHash = false;
  var busiest = null, userMoved = false, focused = false;
  var imageryLayer = null, imagery = {}, terrainProvider = null, basemapNote = false;

  function t(key, vars) {
    var s = T[state.lang][key];
    if (s === undefined) s = T.ja[key];
    if (s === undefined) return key;
    Object.keys(vars || {}).forEach(function (k) { s = s.split("{" + k + "}").join(String(vars[k])); });
    return s;
  }
  function $(sel) { return document.querySelector(sel); }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "className") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
  function fmt(n, digits) {
    return Number(n).toLocaleString(state.lang === "ja" ? "ja-JP" : "en-GB", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }

  // ---------------------------------------------------------------- URL state
  function readState() {
    var q = new URLSearchParams(location.search);
    var h = new URLSearchParams(location.hash.replace(/^#/, ""));
    function get(k) { return h.has(k) ? h.get(k) : q.get(k); }
    var ids = CFG.overlays.map(function (o) { return o.id; });
    var imageryIds = BM.sources.map(function (b) { return b.id; });
    var layers = get("layers");
    var cam = (get("cam") || "").split(",").map(Number);
    return {
      lang: get("lang") === "en" ? "en" : "ja",
      colour: ["height", "usage", "flood"].indexOf(get("colour")) >= 0 ? get("colour") : "height",
      buildings: get("buildings") !== "0",
      imagery: imageryIds.indexOf(get("imagery")) >= 0 ? get("imagery") : (get("imagery") === "none" ? "" : (imageryIds[0] || "")),
      terrain: !!BM.terrain && get("terrain") !== "0",
      layers: layers === null
        ? CFG.overlays.filter(function (o) { return o.on; }).map(function (o) { return o.id; })
        : layers.split(",").filter(function (id) { return ids.indexOf(id) >= 0; }),
      cam: cam.length === 6 && cam.every(isFinite) ? cam : null,
      sel: get("sel") || null
    };
  }
  function cameraState() {
    var c = viewer.camera, carto = c.positionCartographic, d = Cesium.Math.toDegrees;
    function angle(a) { var x = Number(d(a).toFixed(2)) % 360; return x > 180 ? x - 360 : x; }
    return [Number(d(carto.longitude).toFixed(6)), Number(d(carto.latitude).toFixed(6)), Number(carto.height.toFixed(1)),
      angle(c.heading), angle(c.pitch), angle(c.roll)];
  }
  function hashString() {
    var h = new URLSearchParams();
    h.set("lang", state.lang);
    if (viewer) h.set("cam", cameraState().join(","));
    h.set("layers", state.layers.join(","));
    h.set("buildings", state.buildings ? "1" : "0");
    h.set("colour", state.colour);
    h.set("imagery", state.imagery || "none");
    if (BM.terrain) h.set("terrain", state.terrain ? "1" : "0");
    if (selectedProps && selectedProps[P.id] !== undefined) h.set("sel", String(selectedProps[P.id]));
    return h.toString().replace(/%2C/g, ",");
  }
  function shareUrl() { return location.origin + location.pathname + "#" + hashString(); }
  function syncUrl() {
    if (applyingHash) return;
    history.replaceState(null, "", location.pathname + "#" + hashString());
  }
  function setCamera(cam) {
    viewer.camera.setView({
      destination: Cesium.Cartesian3.fromDegrees(cam[0], cam[1], cam[2]),
      orientation: { heading: Cesium.Math.toRadians(cam[3]), pitch: Cesium.Math.toRadians(cam[4]), roll: Cesium.Math.toRadians(cam[5]) }
    });
  }
  function applyHash() {
    var s = readState();
    applyingHash = true;
    state.lang = s.lang; state.colour = s.colour; state.buildings = s.buildings; state.layers = s.layers; state.sel = s.sel;
    var ground = s.terrain !== state.terrain;
    state.imagery = s.imagery; state.terrain = s.terrain;
    applyImagery();
    if (ground) applyTerrain();
    if (s.cam) setCamera(s.cam);
    renderControls();
    applyLang();
    applyBuildings();
    applyOverlays();
    applyingHash = false;
    syncUrl();
  }

  // ---------------------------------------------------------------- language
  function applyLang() {
    document.documentElement.lang = state.lang;
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n]"), function (e) {
      e.textContent = t(e.getAttribute("data-i18n"));
    });
    Array.prototype.forEach.call(document.querySelectorAll(".v3-bm-label"), function (e) {
      e.textContent = e.getAttribute("data-" + state.lang);
    });
    if (basemapNote) $("#v3-basemap-note").textContent = t("basemap_unavailable");
    $("#v3-lang").textContent = t("lang_button");
    $("#v3-lang").lang = state.lang === "ja" ? "en" : "ja";
    renderOverlayList();
    renderLegend();
    renderCredits();
    renderStatus();
    if (selectedProps) renderInfo(selectedProps, selected && selected.overlay);
    if (measure.mode) $("#v3-measure-msg").textContent = t(measure.mode === "height" ? "m_height_msg" : "m_area_msg");
    showMeasureResult();
  }

  // ---------------------------------------------------------------- controls
  function renderControls() {
    $("#v3-buildings").checked = state.buildings;
    Array.prototype.forEach.call(document.querySelectorAll("input[name=imagery]"), function (r) { r.checked = r.value === state.imagery; });
    if ($("#v3-terrain")) $("#v3-terrain").checked = state.terrain;
    Array.prototype.forEach.call(document.querySelectorAll("input[name=colour]"), function (r) { r.checked = r.value === state.colour; });
    renderOverlayList();
  }
  /** The overlay checkboxes, built once (rebuilding them would drop keyboard focus and
   *  swallow clicks); later calls only update their state, labels and counts. */
  function renderOverlayList() {
    var box = $("#v3-overlays");
    if (!box.childNodes.length) CFG.overlays.forEach(function (o) {
      var input = el("input", { type: "checkbox", "data-overlay": o.id });
      input.addEventListener("change", function () {
        state.layers = CFG.overlays.map(function (x) { return x.id; }).filter(function (id) {
          var box2 = document.querySelector("input[data-overlay='" + id + "']");
          return box2 && box2.checked;
        });
        applyOverlays();
        renderCredits();
        syncUrl();
      });
      var sw = el("span", { className: "sw" }); sw.style.background = o.colour;
      var badge = el("span", { className: "badge", text: "" }); badge.hidden = true;
      box.appendChild(el("label", { className: "v3-overlay", "data-overlay-row": o.id },
        [input, sw, el("span", { className: "name" }), badge, el("span", { className: "count" })]));
    });
    CFG.overlays.forEach(function (o) {
      var ov = overlays[o.id] || {}, row = box.querySelector("[data-overlay-row='" + o.id + "']"), m = meta[o.id];
      row.querySelector("input").checked = state.layers.indexOf(o.id) >= 0;
      row.querySelector(".name").textContent = o[state.lang] || o.ja;
      var badge = row.querySelector(".badge");
      badge.hidden = !(m && m.synthetic);
      badge.textContent = t("synthetic_badge");
      var count = row.querySelector(".count");
      if (ov.error) count.textContent = t("overlay_error");
      else if (ov.loading) count.textContent = t("loading");
      else if (ov.count !== undefined) count.textContent = t("features", { n: ov.count });
      else count.textContent = "";
    });
  }

  function renderLegend() {
    var box = clear($("#v3-legend"));
    legendEntries().forEach(function (e) {
      var sw = el("span", { className: "sw" }); sw.style.background = e[1];
      box.appendChild(el("span", {}, [sw, e[0]]));
    });
  }
  function legendEntries() {
    if (state.colour === "usage") {
      return usageSeen.map(function (u) { return [u, usageColour(u)]; }).concat([[t("unknown"), NO_DATA]]);
    }
    var breaks = state.colour === "flood" ? FLOOD_BREAKS : HEIGHT_BREAKS;
    var colours = state.colour === "flood" ? FLOOD_COLOURS : HEIGHT_COLOURS;
    var out = colours.map(function (c, i) {
      if (i === 0) return [t("h_lt", { v: breaks[0] }), c];
      if (i === breaks.length) return [t("h_ge", { v: breaks[i - 1] }), c];
      return [t("h_range", { a: breaks[i - 1], b: breaks[i] }), c];
    });
    return out.concat([[t("unknown"), NO_DATA]]);
  }
  function renderStatus() {
    var s;
    if (!CFG.tileset_built && !tileset) s = t("no_tileset");
    else if (state.tilesetError) s = t("tileset_error", { e: state.tilesetError });
    else if (!tileset || !loadedOnce) s = t("loading");
    else s = t("tiles_ready", { n: Object.keys(featuresById).length });
    if (failures.length) s += " · " + t("tile_failed", { n: failures.length });
    $("#v3-status").textContent = s;
  }

  // ---------------------------------------------------------------- building styles
  function quote(s) { return "'" + String(s).replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'"; }
  function usageColour(u) {
    if (USAGE_COLOURS[u]) return USAGE_COLOURS[u];
    var i = usageSeen.filter(function (x) { return !USAGE_COLOURS[x]; }).indexOf(u);
    return SPARE[(i < 0 ? 0 : i) % SPARE.length];
  }
  function missing(p) { return "${" + p + "} === undefined || ${" + p + "} === null"; }
  function classes(p, breaks, colours) {
    var c = [[missing(p), "color('" + NO_DATA + "')"]];
    breaks.forEach(function (b, i) { c.push(["${" + p + "} < " + b, "color('" + colours[i] + "')"]); });
    c.push(["true", "color('" + colours[colours.length - 1] + "')"]);
    return c;
  }
  /** The Cesium3DTileStyle JSON for a colouring mode (also exposed for tests). */
  function styleJson(mode) {
    var cond;
    if (mode === "usage") {
      cond = [[missing(P.usage), "color('" + NO_DATA + "')"]];
      usageSeen.forEach(function (u) { cond.push(["${" + P.usage + "} === " + quote(u), "color('" + usageColour(u) + "')"]); });
      cond.push(["true", "color('" + NO_DATA + "')"]);
    } else if (mode === "flood") {
      cond = classes(P.flood, FLOOD_BREAKS, FLOOD_COLOURS);
    } else {
      cond = classes(P.height, HEIGHT_BREAKS, HEIGHT_COLOURS);
    }
    return { color: { conditions: cond }, show: "true" };
  }
  function applyBuildings() {
    if (!tileset) return;
    tileset.show = state.buildings;
    tileset.style = new Cesium.Cesium3DTileStyle(styleJson(state.colour));
    state.styleVersion = (state.styleVersion || 0) + 1;
    renderLegend();
    if (selected && selected.feature) {
      // the new style repaints every feature; paint the selection again once it has run
      var f = selected.feature;
      var remove = viewer.scene.postRender.addEventListener(function () {
        remove();
        if (selected && selected.feature === f) { selectedColour = f.color.clone(); f.color = Cesium.Color.CYAN; }
      });
    }
  }
  function noteFeatures(content) {
    var changed = false;
    if (!content || !content.featuresLength) return;
    for (var i = 0; i < content.featuresLength; i += 1) {
      var f = content.getFeature(i);
      var id = f.getProperty(P.id);
      if (id !== undefined && id !== null) featuresById[String(id)] = f;
      var u = f.getProperty(P.usage);
      if (u !== undefined && u !== null && u !== "" && usageSeen.indexOf(String(u)) < 0) { usageSeen.push(String(u)); changed = true; }
      if (selectedProps && String(id) === String(selectedProps[P.id]) && selected && !selected.overlay) {
        selected.feature = f;
      }
    }
    if (changed && state.colour === "usage") applyBuildings();
    else if (changed) renderLegend();
  }

  // ---------------------------------------------------------------- tileset
  function loadTileset() {
    if (!CFG.tileset_built) { renderStatus(); return; }
    Cesium.Cesium3DTileset.fromUrl(CFG.tileset_url, { maximumScreenSpaceError: 8 }).then(function (ts) {
      tileset = ts;
      viewer.scene.primitives.add(ts);
      ts.tileFailed.addEventListener(function (e) {
        failures.push((e && e.url) + ": " + (e && e.message));
        renderStatus();
      });
      ts.tileLoad.addEventListener(function (tile) {
        noteFeatures(tile.content);
        var n = tile.content ? tile.content.featuresLength : 0;
        if (n && (!busiest || n > busiest.n)) busiest = { n: n, sphere: tile.boundingSphere.clone() };
      });
      ts.allTilesLoaded.addEventListener(function () {
        if (!focused && !state.cam && !userMoved && busiest) {
          focused = true;
          // first view: the tile with the most buildings, seen obliquely
          viewer.camera.viewBoundingSphere(busiest.sphere, new Cesium.HeadingPitchRange(Cesium.Math.toRadians(20), Cesium.Math.toRadians(-35), Math.max(busiest.sphere.radius * 3, 500)));
          viewer.camera.lookAtTransform(Cesium.Matrix4.IDENTITY);
          syncUrl();
        }
        loadedOnce = true;
        renderStatus();
        if (state.sel && !selectedProps) selectById(state.sel);
      });
      // allTilesLoaded does not fire when the view holds no tile at all (a shared link far away)
      var removeWatch = viewer.scene.postRender.addEventListener(function () {
        if (ts.tilesLoaded && !loadedOnce) { loadedOnce = true; renderStatus(); }
        if (loadedOnce) removeWatch();
      });
      applyBuildings();
      if (!state.cam) {
        var r = Math.max(ts.boundingSphere.radius, 150);
        viewer.camera.viewBoundingSphere(ts.boundingSphere, new Cesium.HeadingPitchRange(0, Cesium.Math.toRadians(-35), r * 2.6));
        viewer.camera.lookAtTransform(Cesium.Matrix4.IDENTITY);
      }
      renderStatus();
    }).catch(function (e) {
      state.tilesetError = String(e && e.message || e);
      renderStatus();
    });
  }

  // ---------------------------------------------------------------- overlays
  function sameOrigin(href) {
    var u = new URL(href, location.href);
    return location.origin + u.pathname + u.search;
  }
  function fetchAll(url) {
    var out = [], pages = 0;
    function step(u) {
      pages += 1;
      return fetch(u, { headers: { Accept: "application/geo+json, application/json" } }).then(function (r) {
        if (!r.ok) throw new Error(r.status + " " + r.statusText);
        return r.json();
      }).then(function (doc) {
        out = out.concat(doc.features || []);
        var next = (doc.links || []).filter(function (l) { return l.rel === "next"; })[0];
        if (next && (doc.features || []).length && out.length < CFG.max_features && pages < 50) return step(sameOrigin(next.href));
        return { type: "FeatureCollection", features: out };
      });
    }
    return step(url);
  }
  function loadOverlay(o) {
    var ov = overlays[o.id] = overlays[o.id] || { cfg: o };
    if (ov.source || ov.loading) return ov.promise;
    ov.loading = true;
    renderOverlayList();
    var colour = Cesium.Color.fromCssColorString(o.colour);
    ov.promise = fetchAll("/ogc/collections/" + encodeURIComponent(o.id) + "/items?f=json&limit=" + CFG.page_size).then(function (fc) {
      // On flat ground (ground_height_m) overlays are placed just above it (clamping thousands
      // of entities is slow and gains nothing there); on terrain they are clamped to it.
      var clamp = onTerrain();
      return Cesium.GeoJsonDataSource.load(fc, {
        clampToGround: clamp, fill: colour.withAlpha(0.4), stroke: colour, strokeWidth: 2, markerColor: colour
      }).then(function (ds) {
        var now = viewer.clock.currentTime, lift = (Number(CFG.ground_height_m) || 0) + 0.3;
        ds.clamped = clamp;
        var points = [];
        ds.name = o.id;
        ds.entities.values.forEach(function (e) {
          e.overlay = o.id;
          if (e.polygon) {
            if (!clamp) e.polygon.height = lift;
            e.polygon.outlineColor = colour;
          }
          if (e.polyline && !clamp) e.polyline.positions = lifted(e.polyline.positions.getValue(now), lift);
          if (e.billboard) {   // points: a plain dot instead of a pin (no marker images)
            e.billboard = undefined;
            points.push(e);
            e.point = new Cesium.PointGraphics({
              pixelSize: 8, color: colour, outlineColor: Cesium.Color.WHITE, outlineWidth: 1.5,
              disableDepthTestDistance: Number.POSITIVE_INFINITY
            });
          }
        });
        return placePoints(points, clamp, lift, now).then(function () { return ds; });
      }).then(function (ds) {
        ov.source = ds;
        ov.count = fc.features.length;
        ov.loading = false;
        ds.show = state.layers.indexOf(o.id) >= 0;
        return viewer.dataSources.add(ds);
      });
    }).catch(function (e) {
      ov.loading = false;
      ov.error = String(e && e.message || e);
    }).then(function () { renderOverlayList(); });
    return ov.promise;
  }
  /** Points go just above the ground: the flat ground's height, or the terrain's sampled
   *  once per point (cheaper than clamping each point to the globe every frame). */
  function placePoints(entities, clamp, lift, now) {
    var cartos = entities.map(function (e) { return Cesium.Cartographic.fromCartesian(e.position.getValue(now)); });
    var heights = clamp
      ? Cesium.sampleTerrain(terrainProvider, Math.min(11, BM.terrain.max_zoom), cartos).catch(function () { return null; })
      : Promise.resolve(null);
    return heights.then(function (sampled) {
      entities.forEach(function (e, i) {
        var c = cartos[i], h = sampled && isFinite(sampled[i].height) ? sampled[i].height + 0.3 : lift;
        e.position = Cesium.Cartesian3.fromRadians(c.longitude, c.latitude, h);
      });
    });
  }
  function lifted(positions, height) {
    return (positions || []).map(function (p) {
      var c = Cesium.Cartographic.fromCartesian(p);
      return Cesium.Cartesian3.fromRadians(c.longitude, c.latitude, height);
    });
  }
  function applyOverlays() {
    CFG.overlays.forEach(function (o) {
      var on = state.layers.indexOf(o.id) >= 0;
      var ov = overlays[o.id];
      if (on) loadOverlay(o);
      if (ov && ov.source) ov.source.show = on;
    });
    renderCredits();
  }

  // ---------------------------------------------------------------- credits
  function loadMeta() {
    var ids = (CFG.buildings ? [CFG.buildings] : []).concat(CFG.overlays.map(function (o) { return o.id; }));
    return Promise.all(ids.map(function (id) {
      return fetch("/ogc/collections/" + encodeURIComponent(id) + "?f=json").then(function (r) { return r.ok ? r.json() : null; })
        .then(function (doc) { if (doc) meta[id] = doc; }).catch(function () { /* credit stays out */ });
    })).then(function () { renderCredits(); renderOverlayList(); });
  }
  function visibleCollections() {
    var ids = [];
    if (CFG.buildings && state.buildings) ids.push(CFG.buildings);
    return ids.concat(state.layers);
  }
  function renderCredits() {
    var ul = clear($("#v3-credits"));
    var synthetic = [];
    visibleCollections().forEach(function (id) {
      var m = meta[id];
      if (!m) return;
      var li = el("li", { "data-collection": id }, [
        el("a", { href: "/ogc/collections/" + encodeURIComponent(id) + "?f=html", text: m.title || id }), " — ",
        el("span", { text: m.attribution || "" })
      ]);
      if (m.synthetic) { li.appendChild(el("span", { className: "badge", text: t("synthetic_badge") })); synthetic.push(m.title || id); }
      ul.appendChild(li);
    });
    var banner = $("#v3-synthetic");
    banner.hidden = synthetic.length === 0;
    $("#v3-synthetic-layers").textContent = synthetic.length ? t("synthetic_layers") + " " + synthetic.join("、") : "";
  }

  // ---------------------------------------------------------------- picking
  function propsOf(feature) {
    var out = {};
    feature.getPropertyIds().forEach(function (k) { out[k] = feature.getProperty(k); });
    return out;
  }
  function unselect() {
    if (selected && selected.feature && selectedColour) {
      try { selected.feature.color = selectedColour; } catch (e) { /* tile was unloaded */ }
    }
    selected = null; selectedColour = null; selectedProps = null;
    $("#v3-info").hidden = true;
  }
  function selectFeature(f) {
    unselect();
    selected = { feature: f };
    selectedColour = f.color.clone();
    f.color = Cesium.Color.CYAN;
    selectedProps = propsOf(f);
    renderInfo(selectedProps, null);
    syncUrl();
  }
  function selectEntity(e) {
    unselect();
    var props = {};
    if (e.properties) e.properties.propertyNames.forEach(function (k) { props[k] = e.properties[k].getValue(viewer.clock.currentTime); });
    selected = { entity: e, overlay: e.overlay };
    selectedProps = props;
    renderInfo(props, e.overlay);
  }
  function selectById(id) {
    var f = featuresById[String(id)];
    if (f) selectFeature(f);
    return !!f;
  }
  function onPick(position) {
    var picked = viewer.scene.pick(position);
    if (picked instanceof Cesium.Cesium3DTileFeature) selectFeature(picked);
    else if (picked && picked.id instanceof Cesium.Entity && picked.id.overlay) selectEntity(picked.id);
    else { unselect(); syncUrl(); }
  }
  function show(v) {
    if (v === null || v === undefined || v === "") return "—";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : fmt(v, 2);
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function renderInfo(props, overlayId) {
    var box = $("#v3-info");
    var labels = T[state.lang].f_;
    var tbody = clear($("#v3-info-table tbody"));
    var keys = FIRST.filter(function (k) { return k in props; });
    Object.keys(props).sort().forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); });
    keys.forEach(function (k) {
      tbody.appendChild(el("tr", { "data-key": k }, [el("th", { text: overlayId ? k : (labels[k] || k) }), el("td", { text: show(props[k]) })]));
    });
    var o = overlayId && CFG.overlays.filter(function (x) { return x.id === overlayId; })[0];
    $("#v3-info-title").textContent = o ? t("info_overlay") + "：" + (o[state.lang] || o.ja) : t("info_title");
    var links = clear($("#v3-info-links"));
    if (!overlayId && CFG.buildings && props[P.id] !== undefined) {
      // The OGC feature id is the gml:id; use it when the tiles carry it, else look it up by 建物ID.
      var a = el("a", { href: itemUrl(props.gml_id || props[P.id]), id: "v3-link-item", text: t("link_item") });
      links.appendChild(a);
      if (props.gml_id) a.setAttribute("data-fid", String(props.gml_id));
      else resolveItem(props[P.id], a);
      links.appendChild(el("a", { href: "/guide/", id: "v3-link-guide", text: t("link_guide") }));
      links.appendChild(el("span", { className: "v3-muted", text: t("link_guide_note") }));
    }
    box.hidden = false;
  }

  function itemUrl(fid) {
    return "/ogc/collections/" + encodeURIComponent(CFG.buildings) + "/items/" + encodeURIComponent(String(fid)) + "?f=html";
  }
  function resolveItem(buildingId, a) {
    var q = new URLSearchParams({ f: "json", limit: "1" });
    q.set(P.id, String(buildingId));
    fetch("/ogc/collections/" + encodeURIComponent(CFG.buildings) + "/items?" + q.toString()).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) {
        var f = doc && doc.features && doc.features[0];
        if (f && f.id !== undefined) { a.href = itemUrl(f.id); a.setAttribute("data-fid", String(f.id)); }
      }).catch(function () { /* the link keeps the 建物ID */ });
  }

  // ---------------------------------------------------------------- measurement
  var ELL = Cesium.Ellipsoid.WGS84;
  /** Area (m²) of a polygon given as [[lon, lat], ...] on the WGS84 ellipsoid surface.
   *  Vertices go onto the ellipsoid (height 0) and into the tangent plane at their centroid:
   *  for city-scale polygons the error is below 1e-6 relative. */
  function areaOf(lonlats) {
    if (lonlats.length < 3) return 0;
    var pts = lonlats.map(function (p) { return Cesium.Cartesian3.fromDegrees(p[0], p[1], 0, ELL); });
    var c = Cesium.BoundingSphere.fromPoints(pts).center;
    var frame = Cesium.Matrix4.inverseTransformation(Cesium.Transforms.eastNorthUpToFixedFrame(ELL.scaleToGeodeticSurface(c), ELL), new Cesium.Matrix4());
    var xy = pts.map(function (p) { return Cesium.Matrix4.multiplyByPoint(frame, p, new Cesium.Cartesian3()); });
    var s = 0;
    for (var i = 0; i < xy.length; i += 1) {
      var a = xy[i], b = xy[(i + 1) % xy.length];
      s += a.x * b.y - b.x * a.y;
    }
    return Math.abs(s) / 2;
  }
  /** Geodesic distance (m) along the ellipsoid between two [lon, lat] points. */
  function distanceOf(a, b) {
    var g = new Cesium.EllipsoidGeodesic(Cesium.Cartographic.fromDegrees(a[0], a[1]), Cesium.Cartographic.fromDegrees(b[0], b[1]), ELL);
    return g.surfaceDistance;
  }
  function pickPoint(position) {
    var p;
    if (viewer.scene.pickPositionSupported) {
      var picked = viewer.scene.pick(position);
      if (picked) p = viewer.scene.pickPosition(position);
    }
    if (!p) {
      var ray = viewer.camera.getPickRay(position);
      p = (ray && viewer.scene.globe.pick(ray, viewer.scene)) || viewer.camera.pickEllipsoid(position, ELL);
    }
    return p;
  }
  function clearMeasure() {
    measure.entities.forEach(function (e) { viewer.entities.remove(e); });
    measure.entities = []; measure.points = []; measure.result = null;
    showMeasureResult();
  }
  function setMeasureMode(mode) {
    clearMeasure();
    measure.mode = measure.mode === mode ? null : mode;
    $("#v3-measure-height").setAttribute("aria-pressed", String(measure.mode === "height"));
    $("#v3-measure-area").setAttribute("aria-pressed", String(measure.mode === "area"));
    $("#v3-measure-msg").textContent = measure.mode ? t(measure.mode === "height" ? "m_height_msg" : "m_area_msg") : "";
    var hint = $("#v3-hint");
    hint.hidden = !measure.mode;
    hint.textContent = $("#v3-measure-msg").textContent;
  }
  function addMeasurePoint(cart) {
    if (!cart) { $("#v3-measure-msg").textContent = t("m_nopoint"); return; }
    if (measure.mode === "height" && measure.points.length === 2) clearMeasure();
    measure.points.push(cart);
    measure.entities.push(viewer.entities.add({ position: cart, point: { pixelSize: 9, color: Cesium.Color.YELLOW, outlineColor: Cesium.Color.BLACK, outlineWidth: 1, disableDepthTestDistance: Number.POSITIVE_INFINITY } }));
    computeMeasure();
    drawMeasure();
  }
  function computeMeasure() {
    var pts = measure.points.map(function (p) { return Cesium.Cartographic.fromCartesian(p, ELL); });
    var deg = pts.map(function (c) { return [Cesium.Math.toDegrees(c.longitude), Cesium.Math.toDegrees(c.latitude)]; });
    measure.result = null;
    if (measure.mode === "height" && pts.length === 2) {
      measure.result = {
        kind: "height", vertical: Math.abs(pts[1].height - pts[0].height), horizontal: distanceOf(deg[0], deg[1]),
        straight: Cesium.Cartesian3.distance(measure.points[0], measure.points[1]), heights: [pts[0].height, pts[1].height]
      };
    } else if (measure.mode === "area" && pts.length >= 3) {
      var per = 0;
      deg.forEach(function (d, i) { per += distanceOf(d, deg[(i + 1) % deg.length]); });
      measure.result = { kind: "area", area: areaOf(deg), perimeter: per, vertices: deg };
    }
    showMeasureResult();
  }
  function showMeasureResult() {
    var r = measure.result, out = $("#v3-measure-result");
    if (!r) { out.textContent = ""; return; }
    if (r.kind === "height") out.textContent = t("m_height", { v: fmt(r.vertical, 1), h: fmt(r.horizontal, 1), d: fmt(r.straight, 1) });
    else out.textContent = t("m_area", { a: fmt(r.area, 1), ha: fmt(r.area / 10000, 3), p: fmt(r.perimeter, 1) });
  }
  function drawMeasure() {
    var pts = measure.points;
    if (pts.length < 2) return;
    if (measure.line) { viewer.entities.remove(measure.line); measure.entities.splice(measure.entities.indexOf(measure.line), 1); }
    var positions = measure.mode === "area" && pts.length >= 3 ? pts.concat([pts[0]]) : pts.slice();
    measure.line = viewer.entities.add({ polyline: { positions: positions, width: 3, material: Cesium.Color.YELLOW, depthFailMaterial: Cesium.Color.YELLOW.withAlpha(0.5) } });
    measure.entities.push(measure.line);
  }

  // ---------------------------------------------------------------- start
  /** A flat ground at the local geoid height (no terrain is downloaded): overlays clamp to it
   *  and buildings (ellipsoidal heights) stand on it instead of floating above the ellipsoid. */
  function groundProvider() {
    var h = Number(CFG.ground_height_m) || 0;
    if (!h || !Cesium.CustomHeightmapTerrainProvider) return new Cesium.EllipsoidTerrainProvider();
    var n = 16, heights = new Float32Array(n * n).fill(h);
    return new Cesium.CustomHeightmapTerrainProvider({ width: n, height: n, callback: function () { return heights; } });
  }
  function onTerrain() { return !!(state.terrain && terrainProvider && !terrainProvider.unavailable); }
  /** Basemap tiles could not be fetched: say so once, quietly; the page goes on without them. */
  function basemapUnavailable() {
    if (basemapNote) return;
    basemapNote = true;
    var note = $("#v3-basemap-note");
    if (note) { note.textContent = t("basemap_unavailable"); note.hidden = false; }
    if (imageryLayer && imageryLayer.imageryProvider && imageryLayer.imageryProvider.unavailable) {
      viewer.imageryLayers.remove(imageryLayer, false);
      imageryLayer = null;
    }
  }
  function applyImagery() {
    if (!viewer) return;
    if (imageryLayer) viewer.imageryLayers.remove(imageryLayer, false);
    imageryLayer = null;
    var src = BM.sources.filter(function (b) { return b.id === state.imagery; })[0];
    if (!src) return;
    var provider = imagery[src.id] = imagery[src.id] || GeoTerrain.imageryProvider(src, BM.bounds, basemapUnavailable);
    if (provider.unavailable) return;
    imageryLayer = viewer.imageryLayers.addImageryProvider(provider, 0);
  }
  function applyTerrain() {
    if (!viewer) return;
    if (state.terrain && BM.terrain) {
      terrainProvider = terrainProvider || new GeoTerrain.GsiDemTerrainProvider(BM.terrain, Number(CFG.ground_height_m) || 0, basemapUnavailable);
      viewer.terrainProvider = terrainProvider;
    } else {
      viewer.terrainProvider = groundProvider();
    }
    // overlays were placed for the other ground: load them again for this one
    Object.keys(overlays).forEach(function (id) {
      var ov = overlays[id];
      if (ov.source && ov.source.clamped !== onTerrain()) { viewer.dataSources.remove(ov.source, true); ov.source = null; }
    });
    applyOverlays();
  }
  function createViewer() {
    Cesium.Ion.defaultAccessToken = "";   // never used: no ion asset is requested
    var v = new Cesium.Viewer("v3-map", {
      baseLayer: false, baseLayerPicker: false, geocoder: false, homeButton: false, sceneModePicker: false,
      navigationHelpButton: false, animation: false, timeline: false, fullscreenButton: false,
      infoBox: false, selectionIndicator: false, terrainProvider: groundProvider(),
      contextOptions: { webgl: { preserveDrawingBuffer: true } }
    });
    v.scene.globe.baseColor = Cesium.Color.fromCssColorString("#dfe5ea");
    v.scene.globe.showGroundAtmosphere = false;
    v.scene.backgroundColor = Cesium.Color.fromCssColorString("#a9c6e0");
    v.scene.fog.enabled = false;
    v.cesiumWidget.screenSpaceEventHandler.removeInputAction(Cesium.ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
    v.scene.globe.depthTestAgainstTerrain = false;
    var h = CFG.home;
    v.camera.setView({ destination: Cesium.Cartesian3.fromDegrees(h.lon, h.lat, h.height) });
    return v;
  }
  function wire() {
    var handler = new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas);
    handler.setInputAction(function (e) {
      if (measure.mode) addMeasurePoint(pickPoint(e.position));
      else onPick(e.position);
    }, Cesium.ScreenSpaceEventType.LEFT_CLICK);
    handler.setInputAction(function () {
      if (measure.mode === "area" && measure.points.length >= 3) setMeasureModeKeep(null);
    }, Cesium.ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
    viewer.camera.moveEnd.addEventListener(syncUrl);
    ["LEFT_DOWN", "WHEEL", "RIGHT_DOWN", "MIDDLE_DOWN", "PINCH_START"].forEach(function (k) {
      handler.setInputAction(function () { userMoved = true; }, Cesium.ScreenSpaceEventType[k]);
    });
    $("#v3-lang").addEventListener("click", function () { state.lang = state.lang === "ja" ? "en" : "ja"; applyLang(); syncUrl(); });
    Array.prototype.forEach.call(document.querySelectorAll("input[name=imagery]"), function (r) {
      r.addEventListener("change", function () { if (r.checked) { state.imagery = r.value; applyImagery(); syncUrl(); } });
    });
    if ($("#v3-terrain")) $("#v3-terrain").addEventListener("change", function (e) { state.terrain = e.target.checked; applyTerrain(); syncUrl(); });
    $("#v3-buildings").addEventListener("change", function (e) { state.buildings = e.target.checked; applyBuildings(); renderCredits(); syncUrl(); });
    Array.prototype.forEach.call(document.querySelectorAll("input[name=colour]"), function (r) {
      r.addEventListener("change", function () { if (r.checked) { state.colour = r.value; applyBuildings(); syncUrl(); } });
    });
    $("#v3-measure-height").addEventListener("click", function () { setMeasureMode("height"); });
    $("#v3-measure-area").addEventListener("click", function () { setMeasureMode("area"); });
    $("#v3-measure-clear").addEventListener("click", clearMeasure);
    $("#v3-share").addEventListener("click", function () {
      var input = $("#v3-share-url");
      input.value = shareUrl();
      input.hidden = false;
      input.select();
      syncUrl();
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).catch(function () { /* selected for manual copy */ });
    });
    window.addEventListener("hashchange", function () { if (location.hash.replace(/^#/, "") !== hashString()) applyHash(); });
  }
  function setMeasureModeKeep(mode) {
    // finish a measurement: stop collecting clicks, keep the drawing and the result
    measure.mode = mode;
    $("#v3-measure-height").setAttribute("aria-pressed", "false");
    $("#v3-measure-area").setAttribute("aria-pressed", "false");
    $("#v3-measure-msg").textContent = "";
    $("#v3-hint").hidden = true;
  }

  function start() {
    try {
      viewer = createViewer();
    } catch (e) {
      $("#v3-status").textContent = t("no_webgl", { e: String(e && e.message || e) });
      applyLang();
      return;
    }
    if (state.cam) setCamera(state.cam);
    applyImagery();
    applyTerrain();
    renderControls();
    applyLang();
    wire();
    loadTileset();
    applyOverlays();
    loadMeta();
    syncUrl();
  }

  window.viewer3d = {
    get viewer() { return viewer; },
    get tileset() { return tileset; },
    get state() { return state; },
    get failures() { return failures.slice(); },
    get loaded() { return loadedOnce; },
    get tilesLoaded() { return !!(tileset && tileset.tilesLoaded); },
    get selected() { return selectedProps; },
    get measurement() { return measure.result; },
    basemap: function () {
      var prov = state.imagery && imagery[state.imagery];
      return {
        imagery: imageryLayer ? state.imagery : null, imageryStats: prov ? prov.stats : null,
        terrain: onTerrain(), terrainStats: terrainProvider ? terrainProvider.stats : null,
        note: basemapNote
      };
    },
    /** Terrain height (m above the ellipsoid) at lon/lat, from the terrain tiles at ``level``. */
    terrainHeight: function (lon, lat, level) {
      if (!terrainProvider) return Promise.resolve(null);
      return Cesium.sampleTerrain(terrainProvider, level || 12, [Cesium.Cartographic.fromDegrees(lon, lat)]).then(function (r) { return r[0].height; });
    },
    globeHeight: function (lon, lat) { return viewer.scene.globe.getHeight(Cesium.Cartographic.fromDegrees(lon, lat)); },
    decodeDem: function (r, g, b) { return GeoTerrain.decode(r, g, b); },
    overlayCount: function (id) { return overlays[id] && overlays[id].source ? overlays[id].source.entities.values.length : null; },
    overlayFeatures: function (id) { return overlays[id] && overlays[id].source ? overlays[id].count : null; },
    overlayShown: function (id) { return !!(overlays[id] && overlays[id].source && overlays[id].source.show); },
    overlayError: function (id) { return overlays[id] ? overlays[id].error || null : null; },
    styleJson: styleJson,
    buildingIds: function () { return Object.keys(featuresById); },
    featureColour: function (id) {
      var f = featuresById[String(id)];
      return f && tileset && tileset.style ? tileset.style.color.evaluateColor(f, new Cesium.Color()).toCssHexString() : null;
    },
    centre: function () {
      if (!tileset) return null;
      var c = Cesium.Cartographic.fromCartesian(tileset.boundingSphere.center);
      return { lon: Cesium.Math.toDegrees(c.longitude), lat: Cesium.Math.toDegrees(c.latitude), height: c.height, radius: tileset.boundingSphere.radius };
    },
    lookDown: function (lon, lat, height) {
      viewer.camera.setView({ destination: Cesium.Cartesian3.fromDegrees(lon, lat, height), orientation: { heading: 0, pitch: -Cesium.Math.PI_OVER_TWO, roll: 0 } });
    },
    screenOf: function (lon, lat, height) {
      var p = viewer.scene.cartesianToCanvasCoordinates(Cesium.Cartesian3.fromDegrees(lon, lat, height));
      var r = viewer.scene.canvas.getBoundingClientRect();
      return p ? { x: p.x, y: p.y, pageX: r.left + p.x, pageY: r.top + p.y } : null;
    },
    select: selectById,
    shareUrl: shareUrl,
    camera: function () { return viewer ? cameraState() : null; },
    areaOf: areaOf,
    distanceOf: distanceOf
  };

  start();
}());
