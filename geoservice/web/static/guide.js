/* The procedure-guide page (/guide/): site by 地番 / point / polygon, works form, report.
 *
 * Talks only to this server: POST /api/guide, GET /api/parcels, the OGC API (overlays as
 * GeoJSON, collection metadata for credits and synthetic flags).  Every piece of data is
 * put in the page with textContent / createElement — never innerHTML.
 * window.guide exposes hooks for tests and power users (setPoint, setPolygon, submit...).
 */
(function () {
  "use strict";

  var STATUS_ORDER = ["required", "notice", "prohibited", "undetermined", "not-required"];
  var L = {
    status: {
      "required": ["必要", "Required"],
      "notice": ["届出・注意", "Notice"],
      "prohibited": ["禁止", "Prohibited"],
      "undetermined": ["判定できない（窓口に確認）", "Undetermined (ask the office)"],
      "not-required": ["不要", "Not required"]
    },
    milestone: {
      "design": ["設計時", "Design"],
      "contract": ["契約時", "Contract"],
      "confirmation-application": ["確認申請時", "Confirmation application"],
      "start-of-works": ["着工時", "Start of works"],
      "felling": ["伐採時", "Felling"],
      "display": ["表示時", "Display"],
      "completion": ["完了時", "Completion"]
    },
    confidence: {
      "sourced": ["出典確認済", "sourced"],
      "partial": ["一部確認", "partial"],
      "unverified": ["未確認", "unverified"]
    },
    field: {
      "activities": ["工事の種類", "Activities"],
      "site_area_m2": ["敷地面積 (m²)", "Site area (m²)"],
      "floor_area_m2": ["延べ面積 (m²)", "Floor area (m²)"],
      "building_height_m": ["高さ (m)", "Building height (m)"],
      "eaves_height_m": ["軒の高さ (m)", "Eaves height (m)"],
      "storeys": ["階数", "Storeys"],
      "structure": ["構造", "Structure"],
      "use": ["用途", "Use"],
      "earthwork.cut_height_m": ["切土の高さ (m)", "Cut height (m)"],
      "earthwork.fill_height_m": ["盛土の高さ (m)", "Fill height (m)"],
      "earthwork.area_m2": ["盛土・切土の面積 (m²)", "Earthwork area (m²)"],
      "demolition_floor_area_m2": ["解体する床面積 (m²)", "Demolition floor area (m²)"],
      "contract_amount_yen": ["請負金額 (円)", "Contract amount (yen)"],
      "built_before_1981_06": ["1981年6月より前の建築", "Built before June 1981"],
      "hazardous_substance_facility": ["有害物質使用特定施設", "Hazardous-substance facility"]
    },
    hazard: {
      "inside": ["区域内", "inside"],
      "outside": ["区域外", "outside"],
      "partial": ["一部", "partly inside"],
      "unknown": ["データなし（不明）", "no data (unknown)"],
      "hit": ["該当あり", "in a zone"],
      "clear": ["該当なし", "not in a zone"],
      "clear-where-covered": ["対象範囲内は該当なし", "not in a zone where covered"],
      "no-data": ["データなし（安全とは限りません）", "no data (not the same as safe)"]
    }
  };
  var NUMBER_FIELDS = ["site_area_m2", "floor_area_m2", "building_height_m", "eaves_height_m",
    "storeys", "demolition_floor_area_m2", "contract_amount_yen"];
  var EARTHWORK_FIELDS = { cut_height_m: "cut_height_m", fill_height_m: "fill_height_m",
    earthwork_area_m2: "area_m2" };
  var SYNTHETIC = ["合成", "synthetic"];

  var state = {
    mode: "parcel", site: null, siteGeometry: null, vertices: [], drawing: false,
    collections: {}, answer: null, hits: { type: "FeatureCollection", features: [] },
    overlays: {}, lastError: null
  };

  // ------------------------------------------------------------------ DOM helpers
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") node.textContent = String(v);
        else if (k === "className") node.className = v;
        else node.setAttribute(k, v === true ? "" : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  /** Append children (nested arrays, nodes, or strings as text nodes) to ``node``. */
  function append(node) {
    for (var i = 1; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); continue; }
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
  }
  /** Both language versions of a label; CSS shows the one of html[lang]. */
  function bi(pair, en) {
    var ja = Array.isArray(pair) ? pair[0] : pair;
    var e = Array.isArray(pair) ? pair[1] : (en === undefined ? pair : en);
    var frag = document.createDocumentFragment();
    frag.appendChild(el("span", { className: "t-ja", lang: "ja", text: ja }));
    frag.appendChild(el("span", { className: "t-en", lang: "en", text: e }));
    return frag;
  }
  function label(table, key) { return L[table][key] || [String(key), String(key)]; }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function lang() { return document.documentElement.lang === "en" ? "en" : "ja"; }
  function pick(pair) { return lang() === "en" ? pair[1] : pair[0]; }
  function safeHref(url) { return /^(https?:\/\/|\/)/i.test(String(url || "")) ? String(url) : null; }
  function fmt(v) {
    if (v === null || v === undefined) return pick(["未入力", "not given"]);
    if (Array.isArray(v)) return v.map(fmt).join(", ");
    if (typeof v === "boolean") return v ? pick(["はい", "yes"]) : pick(["いいえ", "no"]);
    if (typeof v === "number") return v.toLocaleString("ja-JP", { maximumFractionDigits: 2 });
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }

  // ------------------------------------------------------------------ HTTP
  function ApiError(status, code, description, doc) {
    this.status = status; this.code = code; this.description = description; this.doc = doc || {};
  }
  function request(url, options) {
    return fetch(url, options).then(function (res) {
      return res.text().then(function (body) {
        var doc = null;
        try { doc = body ? JSON.parse(body) : null; } catch (e) { doc = null; }
        if (!res.ok) {
          var code = (doc && doc.code) || ("HTTP " + res.status);
          var desc = (doc && doc.description) || res.statusText || "request failed";
          throw new ApiError(res.status, code, desc, doc);
        }
        if (doc === null) throw new ApiError(res.status, "BadResponse", "the server did not answer JSON");
        return doc;
      });
    });
  }
  function getJSON(url, signal) { return request(url, { headers: { Accept: "application/json" }, signal: signal }); }

  function showError(err) {
    var box = $("#guide-error");
    clear(box);
    state.lastError = err;
    if (!err) { box.hidden = true; return; }
    if (err instanceof ApiError) {
      append(box, el("strong", { text: err.code }), ": ", err.description);
      var matches = err.doc && err.doc.matches;
      if (Array.isArray(matches) && matches.length) {
        append(box, "\n", bi("候補: ", "Close matches: "),
          matches.map(function (m) { return typeof m === "object" && m ? (m.chiban || m.id || JSON.stringify(m)) : String(m); }).join(", "));
      }
    } else if (Array.isArray(err)) {
      append(box, bi(err));
    } else {
      append(box, String(err && err.message ? err.message : err));
    }
    box.hidden = false;
  }

  // ------------------------------------------------------------------ collections (credits)
  function loadCollections() {
    return getJSON("/ogc/collections?f=json").then(function (doc) {
      (doc.collections || []).forEach(function (c) { state.collections[c.id] = c; });
      renderCredits();
    }).catch(function () { /* credits stay empty; the page still works */ });
  }
  function collectionTitle(id) {
    var c = state.collections[id];
    return c && c.title ? c.title : id;
  }
  function isSynthetic(id) { var c = state.collections[id]; return !!(c && c.synthetic); }
  function syntheticBadge(id) {
    return isSynthetic(id) ? el("span", { className: "badge", title: "synthetic demo data / 合成デモデータ" }, bi(SYNTHETIC)) : null;
  }
  function renderCredits() {
    var ul = clear($("#credits"));
    Object.keys(state.collections).sort().forEach(function (id) {
      var c = state.collections[id];
      var lic = (c.links || []).filter(function (l) { return l.rel === "license"; })[0];
      var li = el("li", { "data-layer": id, className: c.synthetic ? "is-synthetic" : null },
        el("span", { text: c.title || id }), " — ", c.attribution || "",
        lic && safeHref(lic.href) ? [" (", el("a", { href: lic.href, text: lic.title || "licence" }), ")"] : null,
        c.synthetic ? [" ", el("span", { className: "badge" }, bi(["合成デモデータ", "synthetic demo data"]))] : null);
      ul.appendChild(li);
    });
  }

  // ------------------------------------------------------------------ map
  var EMPTY = { type: "FeatureCollection", features: [] };
  var map = new maplibregl.Map({
    container: "map",
    style: GeoBasemaps.style("#eef2ea"),
    center: [139.42, 35.68],
    zoom: 9,
    maxZoom: 19,
    attributionControl: false,
    preserveDrawingBuffer: true
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  var basemap = GeoBasemaps.attach(map);

  function setData(source, data) {
    var s = map.getSource(source);
    if (s) s.setData(data);
  }

  var mapLoaded = new Promise(function (resolve) {
    map.on("load", function () {
      var src = function (id) { map.addSource(id, { type: "geojson", data: EMPTY }); };
      ["admin", "zoning", "sediment", "hits", "site", "draw"].forEach(src);
      map.addLayer({ id: "admin-fill", type: "fill", source: "admin", paint: { "fill-color": "#fbfbf6", "fill-opacity": GeoBasemaps.config.sources.length ? 0.25 : 1 } });
      map.addLayer({ id: "zoning-fill", type: "fill", source: "zoning", paint: { "fill-color": "#27ae60", "fill-opacity": 0.12 } });
      map.addLayer({ id: "zoning-line", type: "line", source: "zoning", paint: { "line-color": "#7fb58f", "line-width": 0.6 } });
      map.addLayer({ id: "admin-line", type: "line", source: "admin", paint: { "line-color": "#8795a1", "line-width": 1.2 } });
      map.addLayer({ id: "sediment-fill", type: "fill", source: "sediment", paint: { "fill-color": "#c0392b", "fill-opacity": 0.3 } });
      map.addLayer({ id: "sediment-line", type: "line", source: "sediment", paint: { "line-color": "#c0392b", "line-width": 1 } });
      map.addLayer({ id: "hits-fill", type: "fill", source: "hits", filter: ["!=", ["geometry-type"], "LineString"],
        paint: { "fill-color": "#e67e22", "fill-opacity": 0.35 } });
      map.addLayer({ id: "hits-line", type: "line", source: "hits", filter: ["!", ["get", "synthetic"]],
        paint: { "line-color": "#d35400", "line-width": 2.5 } });
      map.addLayer({ id: "hits-line-synthetic", type: "line", source: "hits", filter: ["get", "synthetic"],
        paint: { "line-color": "#d35400", "line-width": 2.5, "line-dasharray": [2, 1] } });
      map.addLayer({ id: "site-fill", type: "fill", source: "site", filter: ["!=", ["geometry-type"], "Point"],
        paint: { "fill-color": "#0b5fa5", "fill-opacity": 0.2 } });
      map.addLayer({ id: "site-line", type: "line", source: "site", filter: ["!=", ["geometry-type"], "Point"],
        paint: { "line-color": "#0b5fa5", "line-width": 3 } });
      map.addLayer({ id: "site-point", type: "circle", source: "site", filter: ["==", ["geometry-type"], "Point"],
        paint: { "circle-radius": 7, "circle-color": "#0b5fa5", "circle-stroke-color": "#fff", "circle-stroke-width": 2 } });
      map.addLayer({ id: "draw-line", type: "line", source: "draw", filter: ["==", ["geometry-type"], "LineString"],
        paint: { "line-color": "#0b5fa5", "line-width": 2, "line-dasharray": [2, 1] } });
      map.addLayer({ id: "draw-vertex", type: "circle", source: "draw", filter: ["==", ["geometry-type"], "Point"],
        paint: { "circle-radius": 4, "circle-color": "#fff", "circle-stroke-color": "#0b5fa5", "circle-stroke-width": 2 } });
      resolve();
    });
  });

  function loadAdmin() {
    return getJSON("/ogc/collections/admin-boundaries/items?f=json&limit=100").then(function (fc) {
      setData("admin", fc);
      var seen = {};
      var munis = [];
      (fc.features || []).forEach(function (f) {
        var p = f.properties || {};
        var code = p.municipality_code;
        if (code && !seen[code]) { seen[code] = true; munis.push({ code: String(code), name: String(p.name || code) }); }
      });
      munis.sort(function (a, b) { return a.code < b.code ? -1 : 1; });
      var sel = clear($("#municipality"));
      sel.appendChild(el("option", { value: "", text: "— 全域 / any —" }));
      munis.forEach(function (m) { sel.appendChild(el("option", { value: m.code, text: m.name + " (" + m.code + ")" })); });
      state.municipalities = munis;
    });
  }

  var overlayCtl = null;
  function bboxParam() {
    var b = map.getBounds();
    return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(6); }).join(",");
  }
  function refreshOverlays() {
    if (overlayCtl) overlayCtl.abort();
    overlayCtl = new AbortController();
    var signal = overlayCtl.signal;
    var z = map.getZoom();
    var jobs = [
      { source: "sediment", layer: "sediment-special-zones", minZoom: 11, limit: 1000 },
      { source: "zoning", layer: "zoning-use-districts", minZoom: 13, limit: 1000 }
    ];
    var status = [];
    return Promise.all(jobs.map(function (j) {
      if (z < j.minZoom) { setData(j.source, EMPTY); return null; }
      var url = "/ogc/collections/" + encodeURIComponent(j.layer) + "/items?f=json&limit=" + j.limit + "&bbox=" + bboxParam();
      return getJSON(url, signal).then(function (fc) {
        setData(j.source, fc);
        state.overlays[j.source] = (fc.features || []).length;
        status.push(collectionTitle(j.layer) + ": " + (fc.features || []).length);
      }).catch(function (e) { if (!(e && e.name === "AbortError")) status.push(j.layer + ": error"); });
    })).then(function () {
      if (signal.aborted) return;
      var ms = $("#map-status");
      clear(ms);
      if (z < 11) append(ms, bi("拡大すると土砂災害特別警戒区域・用途地域を表示します。", "Zoom in to show sediment special warning zones and use districts."));
      else append(ms, status.join(" · "));
    });
  }

  // ------------------------------------------------------------------ site
  function bboxOf(geom) {
    var b = [Infinity, Infinity, -Infinity, -Infinity];
    (function walk(c) {
      if (typeof c[0] === "number") {
        b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]);
        b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]);
      } else c.forEach(walk);
    })(geom.coordinates);
    return b;
  }
  function fitTo(geom, maxZoom) {
    if (!geom) return;
    var b = bboxOf(geom);
    if (!isFinite(b[0])) return;
    map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 60, maxZoom: maxZoom || 18, duration: 0 });
  }
  function setSite(site, geometry, summary) {
    state.site = site;
    state.siteGeometry = geometry;
    setData("site", geometry ? { type: "Feature", properties: {}, geometry: geometry } : EMPTY);
    var out = clear($("#site-summary"));
    if (summary) append(out, summary);
    updateAreaHint();
  }
  function updateAreaHint() {
    var input = $("input[name=site_area_m2]");
    input.required = !!(state.site && state.site.point);
  }

  function setPoint(lon, lat) {
    lon = Number(lon); lat = Number(lat);
    setSite({ point: [lon, lat] }, { type: "Point", coordinates: [lon, lat] },
      [bi("地点: ", "Point: "), lon.toFixed(6) + ", " + lat.toFixed(6)]);
    return state.site;
  }
  function setPolygon(ring) {
    var pts = ring.map(function (p) { return [Number(p[0]), Number(p[1])]; });
    var first = pts[0], last = pts[pts.length - 1];
    if (first[0] !== last[0] || first[1] !== last[1]) pts.push([first[0], first[1]]);
    var geom = { type: "Polygon", coordinates: [pts] };
    state.vertices = [];
    state.drawing = false;
    renderDraw();
    setSite({ geometry: geom }, geom, [bi("区域: ", "Area: "), (pts.length - 1) + " ", bi("頂点", "vertices")]);
    return state.site;
  }
  function setParcel(feature) {
    var p = feature.properties || {};
    var code = String(p.municipality_code || "");
    var chiban = String(p.chiban || "");
    var name = p.municipality || (state.municipalities || []).filter(function (m) { return m.code === code; }).map(function (m) { return m.name; })[0] || code;
    setSite({ parcel: { municipality_code: code, chiban: chiban } }, feature.geometry || null,
      [bi("地番: ", "Parcel: "), name + " " + [p.oaza, p.chome].filter(Boolean).join("") + " " + chiban + " (" + code + ")"]);
    if (feature.geometry) fitTo(feature.geometry, 18);
    markParcelLayer(feature);
    return state.site;
  }

  /** Which parcel layer holds the parcel; a synthetic one is marked next to the site. */
  function markParcelLayer(feature) {
    var layers = (state.parcelLayers || []).slice();
    var site = state.site;
    function next() {
      var layer = layers.shift();
      if (!layer || feature.id === undefined || feature.id === null) return Promise.resolve(null);
      return getJSON("/ogc/collections/" + encodeURIComponent(layer) + "/items/" + encodeURIComponent(feature.id) + "?f=json")
        .then(function () { return layer; }, next);
    }
    return next().then(function (layer) {
      if (!layer || state.site !== site) return;
      state.parcelLayer = layer;
      var badge = syntheticBadge(layer);
      if (badge) append($("#site-summary"), " ", badge);
    });
  }

  // polygon drawing
  function renderDraw() {
    var feats = state.vertices.map(function (v) { return { type: "Feature", properties: {}, geometry: { type: "Point", coordinates: v } }; });
    if (state.vertices.length > 1) {
      var line = state.vertices.concat(state.vertices.length > 2 ? [state.vertices[0]] : []);
      feats.push({ type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: line } });
    }
    setData("draw", { type: "FeatureCollection", features: feats });
    var count = clear($("#poly-count"));
    if (state.vertices.length) append(count, state.vertices.length + " ", bi("頂点", "vertices"));
  }
  function dedupe(vertices) {
    var out = [];
    vertices.forEach(function (v) {
      var prev = out[out.length - 1];
      if (prev) {
        var a = map.project(prev), b = map.project(v);
        if (Math.abs(a.x - b.x) < 4 && Math.abs(a.y - b.y) < 4) return;
      }
      out.push(v);
    });
    return out;
  }
  function finishPolygon() {
    var v = dedupe(state.vertices);
    if (v.length < 3) {
      showError(["区域には3点以上が必要です。", "An area needs at least 3 vertices."]);
      return null;
    }
    showError(null);
    return setPolygon(v);
  }

  function setMode(mode) {
    state.mode = mode;
    $all("input[name=site-mode]").forEach(function (r) { r.checked = r.value === mode; });
    $all(".mode-panel").forEach(function (p) { p.hidden = p.getAttribute("data-mode") !== mode; });
    state.drawing = mode === "polygon";
    state.vertices = [];
    renderDraw();
    if (state.drawing) map.doubleClickZoom.disable(); else map.doubleClickZoom.enable();
    $("#map").classList.toggle("drawing", mode !== "parcel");
  }

  map.on("click", function (e) {
    if (state.mode === "point") setPoint(e.lngLat.lng, e.lngLat.lat);
    else if (state.mode === "polygon") {
      if (!state.drawing) { state.drawing = true; state.vertices = []; }
      state.vertices.push([e.lngLat.lng, e.lngLat.lat]);
      renderDraw();
    }
  });
  map.on("dblclick", function (e) {
    if (state.mode === "polygon" && state.drawing) { e.preventDefault(); finishPolygon(); }
  });

  // parcel search
  function searchParcels() {
    var code = $("#municipality").value;
    var q = $("#chiban").value.trim();
    var params = new URLSearchParams();
    if (code) params.set("municipality_code", code);
    params.set("q", q);
    params.set("limit", "20");
    var list = clear($("#parcel-results"));
    showError(null);
    return getJSON("/api/parcels?" + params.toString()).then(function (fc) {
      var feats = fc.features || [];
      state.parcels = feats;
      if (!feats.length) { list.appendChild(el("li", { className: "hint" }, bi("見つかりませんでした。", "No parcel found."))); return feats; }
      feats.forEach(function (f, i) {
        var p = f.properties || {};
        var btn = el("button", { type: "button", "data-index": i, "data-chiban": p.chiban, "aria-pressed": "false" },
          el("strong", { text: String(p.chiban) }), " ",
          [p.municipality, p.oaza, p.chome, p.koaza].filter(Boolean).join(" "),
          p.municipality_code ? " (" + p.municipality_code + ")" : "");
        btn.addEventListener("click", function () {
          $all("#parcel-results button").forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
          btn.setAttribute("aria-pressed", "true");
          setParcel(f);
        });
        list.appendChild(el("li", null, btn));
      });
      return feats;
    }).catch(function (e) { showError(e); return []; });
  }

  // ------------------------------------------------------------------ works
  function readWorks() {
    var form = $("#guide-form");
    var works = { activities: $all("input[name=activities]:checked", form).map(function (c) { return c.value; }) };
    NUMBER_FIELDS.forEach(function (name) {
      var v = form.elements[name].value.trim();
      if (v !== "") works[name] = name === "storeys" ? parseInt(v, 10) : Number(v);
    });
    ["structure", "use"].forEach(function (name) {
      var v = form.elements[name].value;
      if (v) works[name] = v;
    });
    ["built_before_1981_06", "hazardous_substance_facility"].forEach(function (name) {
      var v = form.elements[name].value;
      if (v) works[name] = v === "true";
    });
    var ew = {};
    Object.keys(EARTHWORK_FIELDS).forEach(function (name) {
      var v = form.elements[name].value.trim();
      if (v !== "") ew[EARTHWORK_FIELDS[name]] = Number(v);
    });
    if (Object.keys(ew).length) works.earthwork = ew;
    return works;
  }

  function submit() {
    showError(null);
    if (state.mode === "polygon" && state.vertices.length >= 3) finishPolygon();
    if (!state.site) { showError(["土地を指定してください（地番・地点・区域）。", "Set the land first (parcel, point or area)."]); return Promise.resolve(null); }
    var works = readWorks();
    if (!works.activities.length) { showError(["工事の種類を1つ以上選んでください。", "Choose at least one activity."]); return Promise.resolve(null); }
    var body = { site: state.site, works: works };
    var btn = $("#guide-submit");
    btn.disabled = true;
    document.body.classList.add("busy");
    return request("/api/guide", {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body)
    }).then(function (answer) {
      state.answer = answer;
      state.request = body;
      renderAnswer(answer, body);
      return drawHits(answer).then(function () { return answer; });
    }).catch(function (e) {
      showError(e);
      return null;
    }).then(function (answer) {
      btn.disabled = false;
      document.body.classList.remove("busy");
      return answer;
    });
  }

  // ------------------------------------------------------------------ report
  function pill(status) { return el("span", { className: "pill " + status, "data-status": status }, bi(label("status", status))); }

  function timingText(t) {
    var parts = [bi(label("milestone", t.milestone))];
    if (t.offset_days !== null && t.offset_days !== undefined) parts.push(" (", offsetText(t.offset_days), ")");
    parts.push(" — ", t.text || "");
    if (t.period) {  // how the law counts the days (起算: the milestone day is day 1)
      parts.push(" ", el("span", { className: "period", lang: "ja", title: t.period.counting,
        text: "〔" + t.period.counting + ": " + t.period.wording + "〕" }));
    }
    return parts;
  }
  function offsetText(d) {
    if (d === 0) return bi("当日まで", "by the day");
    if (d < 0) return bi(-d + "日前まで", -d + " days before");
    return bi(d + "日後まで", d + " days after");
  }

  function caseText(r) {
    var state = r.applies === true ? bi("該当", "applies") : bi("未確認", "not known");
    return [state, " — ", bi(label("status", r.status)), ": ", r.case || ""];
  }

  function reasonNode(r) {
    if (r && "case" in r) {
      return el("li", { className: "reason reason-case", "data-applies": String(r.applies) }, caseText(r));
    }
    if (r && "layer" in r) {
      var parts = [el("span", { className: "layer", text: collectionTitle(r.layer) })];
      var badge = syntheticBadge(r.layer);
      if (badge) parts.push(" ", badge);
      parts.push(": ", r.detail || "");
      if (r.feature_id) {
        parts.push(" [", bi("区域ID ", "feature "),
          el("a", { href: "/ogc/collections/" + encodeURIComponent(r.layer) + "/items/" + encodeURIComponent(r.feature_id) + "?f=html",
            text: r.feature_id, "data-feature-id": r.feature_id }), "]");
      }
      return el("li", { className: "reason reason-layer", "data-layer": r.layer }, parts);
    }
    return el("li", { className: "reason reason-field", "data-field": r.field },
      bi(label("field", r.field)), ": ", el("code", { text: fmt(r.value) }), " ", el("span", { className: "cmp", text: r.comparator }), " ",
      el("code", { text: fmt(r.limit) }));
  }
  function reasonText(r) {
    if (r && "case" in r) {
      return (r.applies === true ? pick(["該当", "applies"]) : pick(["未確認", "not known"])) + " — " + pick(label("status", r.status)) + ": " + (r.case || "");
    }
    if (r && "layer" in r) {
      return collectionTitle(r.layer) + (isSynthetic(r.layer) ? " (" + pick(SYNTHETIC) + ")" : "") + ": " + (r.detail || "") +
        (r.feature_id ? " [" + r.feature_id + "]" : "");
    }
    return pick(label("field", r.field)) + ": " + fmt(r.value) + " " + r.comparator + " " + fmt(r.limit);
  }

  function procedureCard(p) {
    var src = safeHref(p.source);
    return el("article", { className: "procedure status-" + p.status, "data-procedure": p.id, "data-status": p.status },
      el("h4", null, el("span", { className: "title-ja", lang: "ja", text: p.title_ja }), el("span", { className: "title-en", lang: "en", text: p.title_en }), " ", pill(p.status)),
      el("dl", { className: "meta" },
        el("dt", null, bi("根拠法令", "Law")), el("dd", { className: "law" }, p.law + " " + p.article),
        el("dt", null, bi("窓口", "Office")), el("dd", { className: "authority", text: p.authority }),
        el("dt", null, bi("時期", "Timing")), el("dd", { className: "timing" }, timingText(p.timing)),
        el("dt", null, bi("確度", "Confidence")), el("dd", null, el("span", { className: "conf conf-" + p.confidence }, bi(label("confidence", p.confidence)))),
        el("dt", null, bi("出典", "Source")), el("dd", null, src ? el("a", { href: src, rel: "noopener", target: "_blank", text: src }) : (p.source || ""))),
      el("div", { className: "reasons-head" }, bi("理由", "Reasons")),
      el("ul", { className: "reasons" }, (p.reasons || []).map(reasonNode)));
  }

  function dlRows(dl, rows) {
    clear(dl);
    rows.forEach(function (r) { dl.appendChild(el("dt", null, r[0])); dl.appendChild(el("dd", null, r[1])); });
  }

  function optionLabel(name, value) {
    var opt = $("#guide-form").elements[name].querySelector("option[value='" + CSS.escape(value) + "']");
    return opt ? bi(opt.getAttribute("data-ja") || value, opt.getAttribute("data-en") || value) : value;
  }
  function activityLabel(value) {
    var input = $("input[name=activities][value='" + CSS.escape(value) + "']");
    var spans = input ? input.parentNode.querySelectorAll("span") : [];
    return spans.length === 2 ? bi(spans[0].textContent, spans[1].textContent) : value;
  }

  // The report's time in Japan time, whatever zone the browser is in: the report goes to a
  // Tokyo counter, and a bare local time printed abroad would read as the wrong hour.
  function japanTime(d) {
    return d.toLocaleString("ja-JP", { timeZone: "Asia/Tokyo" }) + " JST";
  }

  function renderAnswer(a, req) {
    var site = a.site || {};
    var s = req.site;
    var rows = [];
    if (s.parcel) rows.push([bi("地番", "Parcel"), s.parcel.chiban + " (" + s.parcel.municipality_code + ")"]);
    if (s.point) rows.push([bi("地点", "Point"), s.point[0].toFixed(6) + ", " + s.point[1].toFixed(6)]);
    if (s.geometry) rows.push([bi("区域", "Area"), [(s.geometry.coordinates[0].length - 1) + " ", bi("頂点の多角形", "vertex polygon")]]);
    if (site.municipality) rows.push([bi("市区町村", "Municipality"), (site.municipality.name || "") + " (" + site.municipality.code + ")"]);
    var area = site.area_m2 !== null && site.area_m2 !== undefined ? site.area_m2 : req.works.site_area_m2;
    if (area !== undefined && area !== null) rows.push([bi("面積", "Area"), fmt(area) + " m²" + (site.area_m2 === null ? " (" + pick(["入力値", "as entered"]) + ")" : "")]);
    dlRows($("#report-site"), rows);

    var w = req.works;
    var wrows = [[bi(label("field", "activities")), w.activities.map(function (v, i) { return [i ? "、" : "", activityLabel(v)]; })]];
    Object.keys(w).forEach(function (k) {
      if (k === "activities") return;
      if (k === "earthwork") {
        Object.keys(w.earthwork).forEach(function (ek) { wrows.push([bi(label("field", "earthwork." + ek)), fmt(w.earthwork[ek])]); });
        return;
      }
      var v = (k === "structure" || k === "use") ? optionLabel(k, w[k]) : fmt(w[k]);
      wrows.push([bi(label("field", k)), v]);
    });
    dlRows($("#report-works"), wrows);

    // zones at the site
    var zones = clear($("#report-zones"));
    var withFeatures = (site.layers || []).filter(function (l) { return (l.features || []).length; });
    if (withFeatures.length) {
      zones.appendChild(el("h3", null, bi("土地にかかる区域", "Zones at the site")));
      zones.appendChild(el("ul", { className: "zones" }, withFeatures.map(function (l) {
        return l.features.map(function (f) {
          var pr = f.properties || {};
          var name = pr.name || pr.genshoname || pr["function"] || pr.kubun || "";
          return el("li", { "data-layer": l.layer, "data-feature-id": f.id, className: isSynthetic(l.layer) ? "is-synthetic" : null },
            collectionTitle(l.layer), " ", syntheticBadge(l.layer), ": ",
            el("a", { href: "/ogc/collections/" + encodeURIComponent(usedCollection(a, l.layer)) + "/items/" + encodeURIComponent(f.id) + "?f=html", text: f.id }),
            name ? " — " + name : "", pr.koujinum ? " (告示 " + pr.koujinum + ")" : "",
            pr.floor_area_ratio_text ? " " + pick(["容積率 ", "floor-area ratio "]) + pr.floor_area_ratio_text : "",
            pr.building_coverage_ratio_text ? " / " + pick(["建蔽率 ", "coverage "]) + pr.building_coverage_ratio_text : "");
        });
      })));
    }
    renderSources(a);
    renderEstate(a.real_estate);
    // hazards: the hazards room's card (layers with coverage; "no data" is not "safe")
    var hz = clear($("#report-hazards"));
    var card = a.hazards || {};
    var en = lang() === "en";
    var hl = card.layers || [];
    if (hl.length) {
      hz.appendChild(el("h3", null, bi("災害区域（参考）", "Hazard overlays (for reference)")));
      if (card.summary && card.summary.message) {
        hz.appendChild(el("p", { className: "hint", text: en ? card.summary.message.en : card.summary.message.ja }));
      }
      hz.appendChild(el("ul", { className: "zones" }, hl.map(function (h) {
        return el("li", { "data-layer": h.layer, "data-status": h.status }, h.title || collectionTitle(h.layer), ": ",
          el("strong", null, bi(label("hazard", h.status))), h.hits ? " (" + h.hits + ")" : "");
      })));
      var depth = card.flood && card.flood.depth;
      if (depth && depth.max_m != null) {
        hz.appendChild(el("p", { text: (en ? "Flood depth (max / mean): " : "想定浸水深（最大／平均）: ") + depth.max_m + " m / " + depth.mean_m + " m" + (depth.synthetic ? " [synthetic]" : "") }));
      }
      var near = (card.shelters && card.shelters.nearest) || [];
      if (near.length) {
        hz.appendChild(el("p", { text: (en ? "Nearest shelters: " : "最寄りの避難所: ") + near.map(function (n) { return n.name + " (" + Math.round(n.distance_m) + " m)"; }).join(", ") }));
      }
      var hm = card.hazard_map && card.hazard_map.municipal;
      if (hm && hm.url) hz.appendChild(el("p", null, el("a", { href: hm.url, text: (en ? "Municipal hazard map: " : "市区町村のハザードマップ: ") + hm.name })));
      (card.official || []).forEach(function (o) {
        hz.appendChild(el("p", { className: "official-hazard", "data-layer": o.layer, "data-status": o.status },
          el("strong", { text: o.title }), ": ", bi(label("hazard", o.status)),
          (o.zones || []).length ? " — " + o.zones.map(zoneSummary).join("; ") : "",
          " (", o.source || (pick(["利用できません: ", "not available: "]) + (o.reason || "")), ")"));
      });
      if ((card.credits || []).length) hz.appendChild(el("p", { className: "api-credit", text: card.credits.join(" / ") }));
      if (card.disclaimer) hz.appendChild(el("p", { className: "hint", text: en ? card.disclaimer.en : card.disclaimer.ja }));
      if (card.note) hz.appendChild(el("p", { className: "hint", text: card.note }));
    }

    // procedures grouped by status
    var results = clear($("#results"));
    var tbody = clear($("#print-table tbody"));
    var byStatus = {};
    (a.procedures || []).forEach(function (p) { (byStatus[p.status] = byStatus[p.status] || []).push(p); });
    var order = STATUS_ORDER.concat(Object.keys(byStatus).filter(function (k) { return STATUS_ORDER.indexOf(k) < 0; }));
    order.forEach(function (status) {
      var list = byStatus[status] || [];
      if (!list.length) return;
      var heading = [pill(status), " ", bi(label("status", status)), el("span", { className: "count", text: "(" + list.length + ")" })];
      var cards = list.map(procedureCard);
      var group = el("section", { className: "status-group status-" + status, id: "group-" + status, "data-status": status });
      if (status === "not-required") group.appendChild(el("details", null, el("summary", null, heading), cards));
      else { group.appendChild(el("h3", null, heading)); append(group, cards); }
      results.appendChild(group);
      list.forEach(function (p) {
        var reasons = status === "not-required" ? "" : (p.reasons || []).map(reasonText).join("; ");
        tbody.appendChild(el("tr", { className: "status-" + p.status, "data-procedure": p.id },
          el("td", null, pill(p.status)),
          el("td", null, el("strong", { text: p.title_ja }), el("br"), el("small", { text: p.title_en })),
          el("td", { text: p.law + " " + p.article }),
          el("td", { text: p.authority }),
          el("td", null, timingText(p.timing)),
          el("td", { text: reasons })));
      });
    });

    // timeline
    var titles = {};
    (a.procedures || []).forEach(function (p) { titles[p.id] = p; });
    var tl = clear($("#timeline"));
    (a.timeline || []).forEach(function (t) {
      var p = titles[t.procedure_id];
      tl.appendChild(el("li", { "data-procedure": t.procedure_id, "data-status": t.status },
        el("span", { className: "milestone" }, bi(label("milestone", t.milestone))),
        t.offset_days !== null && t.offset_days !== undefined ? el("span", { className: "offset" }, "(", offsetText(t.offset_days), ")") : null,
        " ", pill(t.status), " ",
        p ? el("span", null, bi(p.title_ja, p.title_en)) : t.procedure_id,
        " — ", t.text || ""));
    });

    var disc = $("#disclaimer-answer");
    disc.textContent = a.disclaimer || "";
    disc.hidden = !a.disclaimer;
    clear($("#report-date"));
    append($("#report-date"), bi("作成日時: ", "Generated: "), japanTime(new Date()), " — ", location.origin + location.pathname);
    $("#report").hidden = false;
    $("#print-button").disabled = false;
  }

  // ------------------------------------------------------------------ sources, land prices
  var KIND = {
    "official-api": ["公式 (API)", "official (API)"], "official-file": ["公式 (ファイル)", "official (file)"],
    "synthetic": ["デモ (架空)", "demo (synthetic)"], "unavailable": ["利用できません", "not available"]
  };
  function zoneSummary(z) {
    var parts = [z.name || z["function"] || z.landform || z.embankment_class || ""];
    if (z.tendency_level !== undefined && z.tendency_level !== null) parts.push(pick(["液状化の発生傾向 ", "liquefaction tendency "]) + z.tendency_level);
    if (z.ordinance) parts.push(z.ordinance);
    return parts.filter(Boolean).join(", ");
  }
  function usedCollection(a, layer) {
    var s = (a.sources || []).filter(function (x) { return x.layer === layer; })[0];
    return s && s.used ? s.used : layer;
  }
  function yen(v) { return v === null || v === undefined ? "—" : Math.round(v).toLocaleString("ja-JP") + " 円/㎡"; }
  function renderSources(a) {
    var box = clear($("#report-sources"));
    var rows = a.sources || [];
    if (!rows.length) return;
    box.appendChild(el("h3", null, bi("データの出所（レイヤーごと）", "Where each layer's facts came from")));
    box.appendChild(el("table", { className: "sources" },
      el("thead", null, el("tr", null, el("th", null, bi("レイヤー", "Layer")), el("th", null, bi("種類", "Kind")),
        el("th", null, bi("出所・取得日", "Source, fetched")), el("th", null, bi("備考", "Notes")))),
      el("tbody", null, rows.map(function (s) {
        var notes = [s.reason ? pick(["API を使えなかった理由: ", "API not used: "]) + s.reason : "", s.disagreement ? pick(["不一致: ", "disagreement: "]) + s.disagreement : ""].filter(Boolean).join(" / ");
        return el("tr", { "data-layer": s.layer, "data-kind": s.kind, "data-reason": s.reason_code || "" },
          el("td", { text: collectionTitle(s.layer) }), el("td", null, bi(KIND[s.kind] || [s.kind, s.kind])),
          el("td", { className: "source-label", text: s.label }), el("td", { className: "source-notes", text: notes }));
      }))));
    if ((a.credits || []).length) box.appendChild(el("p", { className: "api-credit", id: "api-credit", text: a.credits.join(" / ") }));
  }
  function renderEstate(re) {
    var box = clear($("#report-estate"));
    if (!re) return;
    box.appendChild(el("h3", null, bi("地価・取引価格（参考）", "Land prices and transactions (for reference)")));
    (re.sources || []).forEach(function (s) {
      box.appendChild(el("p", { className: "estate-source", "data-kind": s.kind }, s.label, s.reason ? " — " + s.reason : ""));
    });
    if (re.land_prices && re.land_prices.length) {
      box.appendChild(el("table", { className: "land-prices", id: "land-prices" },
        el("thead", null, el("tr", null, el("th", null, bi("地点", "Point")), el("th", null, bi("価格", "Price")),
          el("th", null, bi("年", "Year")), el("th", null, bi("対前年", "Change")), el("th", null, bi("距離", "Distance")))),
        el("tbody", null, re.land_prices.map(function (p) {
          return el("tr", { "data-point": p.id },
            el("td", { text: [p.price_type, p.place, p.use_category].filter(Boolean).join(" ") }),
            el("td", { className: "price", text: yen(p.price_per_m2) }), el("td", { text: p.year || "" }),
            el("td", { text: p.change_rate_pct === null ? "—" : p.change_rate_pct + " %" }),
            el("td", { text: Math.round(p.distance_m) + " m" }));
        }))));
    }
    var t = re.transactions;
    if (t) {
      box.appendChild(el("p", { className: "transactions", id: "transactions" },
        bi("周辺 " + t.radius_m + " m の取引: ", "Transactions within " + t.radius_m + " m: "), String(t.count),
        bi(" 件、㎡単価の中央値 ", ", median per m² "), yen(t.median_price_per_m2),
        t.first_quarter ? " (" + t.first_quarter + " – " + t.last_quarter + ")" : ""));
    }
    box.appendChild(el("p", { className: "hint", text: re.disclaimer }));
  }

  // zones of the answer on the map (fetched by id when the answer carries no geometry)
  function drawHits(answer) {
    var wanted = [];
    var seen = {};
    function want(layer, id, geometry, props) {
      var key = layer + "\u0000" + id;
      if (seen[key] || wanted.length >= 60) return;
      seen[key] = true;
      wanted.push({ layer: layer, id: id, geometry: geometry || null, properties: props || {} });
    }
    ((answer.site && answer.site.layers) || []).forEach(function (l) {
      (l.features || []).forEach(function (f) { want(usedCollection(answer, l.layer), f.id, f.geometry, f.properties); });
    });
    (answer.procedures || []).forEach(function (p) {
      if (p.status === "not-required") return;
      (p.reasons || []).forEach(function (r) { if (r.layer && r.feature_id) want(r.layer, r.feature_id); });
    });
    return Promise.all(wanted.map(function (w) {
      if (w.geometry) return Promise.resolve(w);
      var url = "/ogc/collections/" + encodeURIComponent(w.layer) + "/items/" + encodeURIComponent(w.id) + "?f=json";
      return getJSON(url).then(function (f) { w.geometry = f.geometry; return w; }).catch(function () { return null; });
    })).then(function (found) {
      var feats = found.filter(function (w) { return w && w.geometry; }).map(function (w) {
        return { type: "Feature", geometry: w.geometry,
          properties: { layer: w.layer, feature_id: String(w.id), synthetic: isSynthetic(w.layer) } };
      });
      state.hits = { type: "FeatureCollection", features: feats };
      setData("hits", state.hits);
      if (state.siteGeometry && state.siteGeometry.type !== "Point") fitTo(state.siteGeometry, 18);
      else if (state.siteGeometry) {
        var p = state.siteGeometry.coordinates;
        if (!map.getBounds().contains(p) || map.getZoom() < 14) map.jumpTo({ center: p, zoom: Math.max(map.getZoom(), 16) });
      }
      return feats;
    });
  }

  // ------------------------------------------------------------------ language, print
  function setLang(l) {
    document.documentElement.lang = l === "en" ? "en" : "ja";
    try { localStorage.setItem("guide-lang", document.documentElement.lang); } catch (e) { /* private mode */ }
    document.title = (l === "en" ? "Procedure guide" : "手続きガイド") + " — Tokyo GeoTwin";
    $all("option[data-ja]").forEach(function (o) { o.textContent = o.getAttribute(l === "en" ? "data-en" : "data-ja"); });
    // re-render language-dependent plain text (values formatted with pick())
    if (state.answer && state.request) renderAnswer(state.answer, state.request);
  }

  // ------------------------------------------------------------------ keyboard entry of a site
  /** "35.6812, 139.7671" (latitude, longitude) → [lon, lat], or null: the keyboard
   *  alternative to clicking the map (JIS X 8341-3 / WCAG 2.1.1). */
  function parseLatLon(text) {
    var m = String(text).trim().match(/^(-?\d+(?:\.\d+)?)\s*[,，\s]\s*(-?\d+(?:\.\d+)?)$/);
    if (!m) return null;
    var lat = Number(m[1]), lon = Number(m[2]);
    return Math.abs(lat) <= 90 && Math.abs(lon) <= 180 ? [lon, lat] : null;
  }
  function coordsError(bad) { $("#coords-error").hidden = !bad; return bad; }
  function pointFromKeyboard() {
    var p = parseLatLon($("#point-coords").value);
    if (coordsError(!p)) return;
    setPoint(p[0], p[1]);
    map.jumpTo({ center: p, zoom: Math.max(map.getZoom(), 15) });
  }
  function polygonFromKeyboard() {
    var pts = $("#poly-coords").value.split(/\n/).map(function (l) { return l.trim(); }).filter(Boolean).map(parseLatLon);
    if (coordsError(pts.length < 3 || pts.some(function (p) { return !p; }))) return;
    setPolygon(pts);
    fitTo(state.siteGeometry, 18);
  }
  $("#point-set").addEventListener("click", pointFromKeyboard);
  $("#point-coords").addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); pointFromKeyboard(); } });
  $("#poly-set").addEventListener("click", polygonFromKeyboard);

  // ------------------------------------------------------------------ wiring
  $all("input[name=site-mode]").forEach(function (r) { r.addEventListener("change", function () { setMode(r.value); }); });
  $("#parcel-search").addEventListener("click", searchParcels);
  $("#chiban").addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); searchParcels(); } });
  $("#poly-finish").addEventListener("click", finishPolygon);
  $("#poly-clear").addEventListener("click", function () { state.vertices = []; state.drawing = true; renderDraw(); });
  $("#guide-form").addEventListener("submit", function (e) { e.preventDefault(); submit(); });
  $("#lang-toggle").addEventListener("click", function () { setLang(lang() === "ja" ? "en" : "ja"); });
  $("#print-button").addEventListener("click", function () { window.print(); });
  window.addEventListener("beforeprint", function () { map.resize(); });
  window.addEventListener("afterprint", function () { map.resize(); });
  if (window.matchMedia) {
    var printQuery = window.matchMedia("print");
    var onPrint = function () { map.resize(); };
    if (printQuery.addEventListener) printQuery.addEventListener("change", onPrint);
    else if (printQuery.addListener) printQuery.addListener(onPrint);
  }

  var saved = null;
  try { saved = localStorage.getItem("guide-lang"); } catch (e) { saved = null; }
  setLang(saved === "en" ? "en" : "ja");

  var ready = mapLoaded.then(function () {
    map.on("moveend", function () { refreshOverlays(); });
    var rules = getJSON("/api/guide/rules").then(function (doc) {
      state.parcelLayers = doc.parcel_layers || [];
    }).catch(function () { state.parcelLayers = ["parcels"]; });
    return Promise.all([loadAdmin().catch(showError), loadCollections(), refreshOverlays(), rules]);
  }).then(function () { document.body.setAttribute("data-guide-ready", "true"); return true; });

  window.guide = {
    map: map, basemap: basemap, state: state, ready: ready,
    setMode: setMode, setPoint: setPoint, setPolygon: setPolygon, setParcel: setParcel,
    searchParcels: searchParcels, finishPolygon: finishPolygon, submit: submit, setLang: setLang,
    refreshOverlays: refreshOverlays
  };
})();
