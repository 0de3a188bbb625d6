/* Basemaps of the 2D (MapLibre) pages: the background tiles named in the page's
 * #basemaps-config (settings.basemaps; 地理院タイル by default), a switcher control, the
 * credit the tile provider requires, and a quiet note when the tiles cannot be fetched
 * (offline, blocked): the page then keeps working on its plain background.
 *
 * Use: style: GeoBasemaps.style("#e9efe6") when creating the map, then
 * GeoBasemaps.attach(map) once. Labels follow <html lang> (the pages' language switches).
 */
(function () {
  "use strict";
  var PREFIX = "basemap-";
  var NONE = "";

  function config() {
    var node = document.getElementById("basemaps-config");
    try { return node ? JSON.parse(node.textContent) : { sources: [] }; } catch (e) { return { sources: [] }; }
  }
  var CFG = config();

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  /** The provider's credit as HTML (MapLibre's attribution control takes HTML). */
  function creditHtml(att) {
    if (!att) return "";
    if (!att.url || !/^https?:\/\//.test(att.url)) return esc(att.text);
    return '<a href="' + esc(att.url) + '" target="_blank" rel="noopener">' + esc(att.text) + "</a>";
  }
  function lang() { return document.documentElement.lang === "en" ? "en" : "ja"; }
  function label(src) { return lang() === "en" ? src.title_en : src.title; }

  /** A style with the background colour and every configured basemap (the first visible). */
  function style(background) {
    var sources = {}, layers = [{ id: "background", type: "background", paint: { "background-color": background } }];
    CFG.sources.forEach(function (s, i) {
      sources[PREFIX + s.id] = {
        type: "raster", tiles: [s.url], tileSize: s.tile_size, minzoom: s.min_zoom, maxzoom: s.max_zoom,
        attribution: creditHtml(s.attribution)
      };
      layers.push({ id: PREFIX + s.id, type: "raster", source: PREFIX + s.id, layout: { visibility: i === 0 ? "visible" : "none" } });
    });
    return { version: 8, sources: sources, layers: layers };
  }

  /** Adds the switcher and the credit to ``map``; returns the page's handle for tests. */
  function attach(map) {
    var state = { current: CFG.sources.length ? CFG.sources[0].id : NONE, loaded: {}, failed: {}, unavailable: false };
    var box = document.createElement("div");
    box.className = "maplibregl-ctrl maplibregl-ctrl-group gt-basemaps";
    var fs = document.createElement("fieldset");
    var legend = document.createElement("legend");
    fs.appendChild(legend);
    var note = document.createElement("p");
    note.className = "gt-basemap-note";
    note.setAttribute("role", "status");
    note.hidden = true;
    var radios = [];

    function option(id, src) {
      var lab = document.createElement("label");
      var input = document.createElement("input");
      input.type = "radio"; input.name = "gt-basemap-" + map.getContainer().id; input.value = id;
      input.checked = id === state.current;
      input.addEventListener("change", function () { if (input.checked) show(id); });
      var span = document.createElement("span");
      lab.appendChild(input); lab.appendChild(span);
      radios.push({ span: span, src: src });
      fs.appendChild(lab);
    }
    CFG.sources.forEach(function (s) { option(s.id, s); });
    option(NONE, null);
    box.appendChild(fs);
    box.appendChild(note);

    function relabel() {
      var en = lang() === "en";
      legend.textContent = en ? "Basemap" : "背景地図";
      radios.forEach(function (r) { r.span.textContent = r.src ? label(r.src) : (en ? "None" : "なし"); });
      note.textContent = en ? "Basemap unavailable — showing the data on a plain background." : "背景地図を利用できません（無地の背景で表示しています）";
    }
    function show(id) {
      state.current = id;
      CFG.sources.forEach(function (s) {
        if (map.getLayer(PREFIX + s.id)) map.setLayoutProperty(PREFIX + s.id, "visibility", s.id === id && !state.unavailable ? "visible" : "none");
      });
    }
    /** No tile of the basemap could be fetched: hide it (no retry storm), say so quietly. */
    function giveUp() {
      state.unavailable = true;
      show(state.current);
      note.hidden = false;
      fs.disabled = true;
    }
    map.on("error", function (e) {
      var sid = e && e.sourceId;
      if (!sid || sid.indexOf(PREFIX) !== 0) {
        if (e && e.error) console.error(e.error);   // what MapLibre does without a listener
        return;
      }
      var id = sid.slice(PREFIX.length);
      state.failed[id] = (state.failed[id] || 0) + 1;
      if (!state.loaded[id] && !state.unavailable) giveUp();
    });
    map.on("sourcedata", function (e) {
      if (e.sourceId && e.sourceId.indexOf(PREFIX) === 0 && e.tile && e.tile.state === "loaded") {
        var id = e.sourceId.slice(PREFIX.length);
        state.loaded[id] = (state.loaded[id] || 0) + 1;
      }
    });
    new MutationObserver(relabel).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
    relabel();
    if (CFG.sources.length) map.addControl({ onAdd: function () { return box; }, onRemove: function () { box.remove(); } }, "top-left");
    map.addControl(new maplibregl.AttributionControl({ compact: false }), "bottom-right");
    return {
      state: state,
      current: function () { return state.current; },
      show: show,
      loadedTiles: function (id) { return state.loaded[id] || 0; }
    };
  }

  window.GeoBasemaps = { config: CFG, style: style, attach: attach, creditHtml: creditHtml };
})();
