/* Basemap imagery and terrain for the 3D viewer (CesiumJS), from the page's
 * #basemaps-config (settings.basemaps): 地理院タイル imagery and 地理院 標高タイル (dem_png)
 * as a Cesium terrain provider. Loaded before viewer3d.js, which uses window.GeoTerrain.
 *
 * Heights: the 標高タイル give heights above the geoid (T.P.), Cesium wants heights above the
 * WGS84 ellipsoid, so every height gets the local geoid undulation added (the same constant
 * the 3D Tiles writer adds to PLATEAU's T.P. heights, CFG.ground_height_m): buildings then
 * stand on the terrain instead of floating or sinking ~37 m.
 *
 * Offline: a terrain tile that cannot be fetched is flat ground at the geoid height, and once
 * nothing could be fetched at all the provider stops asking; imagery that cannot be fetched
 * is removed. Either way onUnavailable() is called once so the page can say so quietly.
 */
(function () {
  "use strict";
  var N = 65;                       // heightmap samples per tile side (64 intervals)
  var TWO23 = 8388608, TWO24 = 16777216;

  /** One 標高タイル pixel → metres above the geoid, or null for "no data".
   *  x = 2^16 R + 2^8 G + B; h = 0.01 x if x < 2^23; no data if x = 2^23; 0.01 (x − 2^24) above. */
  function decode(r, g, b) {
    var x = r * 65536 + g * 256 + b;
    if (x === TWO23) return null;
    return (x < TWO23 ? x : x - TWO24) * 0.01;
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function credit(att) {
    var html = att.url && /^https?:\/\//.test(att.url)
      ? '<a href="' + esc(att.url) + '" target="_blank" rel="noopener">' + esc(att.text) + "</a>"
      : esc(att.text);
    return new Cesium.Credit(html, true);
  }
  function tileUrl(template, x, y, z) {
    return template.replace("{z}", z).replace("{x}", x).replace("{y}", y);
  }

  /** Decoded heights (ellipsoidal, Float32Array N×N) of one PNG, sampled at N×N pixels. */
  function heightsOf(bitmap, offset) {
    var canvas = document.createElement("canvas");
    canvas.width = bitmap.width; canvas.height = bitmap.height;
    var ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    var px = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
    var out = new Float32Array(N * N), w = bitmap.width, hgt = bitmap.height;
    for (var j = 0; j < N; j++) {
      var py = Math.min(hgt - 1, Math.max(0, Math.round(j * hgt / (N - 1) - 0.5)));
      for (var i = 0; i < N; i++) {
        var pxx = Math.min(w - 1, Math.max(0, Math.round(i * w / (N - 1) - 0.5)));
        var k = (py * w + pxx) * 4;
        var h = decode(px[k], px[k + 1], px[k + 2]);
        out[j * N + i] = (h === null ? 0 : h) + offset;   // no data: the sea, T.P. 0 m
      }
    }
    return out;
  }

  /** A Cesium TerrainProvider over 地理院 標高タイル (WebMercator XYZ, PNG-encoded heights). */
  function GsiDemTerrainProvider(src, offset, onUnavailable) {
    this._src = src;
    this._offset = offset || 0;
    this._tilingScheme = new Cesium.WebMercatorTilingScheme();
    this._errorEvent = new Cesium.Event();
    this._credit = credit(src.attribution);
    this._levelZeroError = Cesium.TerrainProvider.getEstimatedLevelZeroGeometricErrorForAHeightmap(
      this._tilingScheme.ellipsoid, N, this._tilingScheme.getNumberOfXTilesAtLevel(0));
    this._flat = new Float32Array(N * N).fill(this._offset);
    this._onUnavailable = onUnavailable || function () {};
    this.stats = { requested: 0, loaded: 0, failed: 0 };
    this.unavailable = false;
  }
  Object.defineProperties(GsiDemTerrainProvider.prototype, {
    tilingScheme: { get: function () { return this._tilingScheme; } },
    errorEvent: { get: function () { return this._errorEvent; } },
    credit: { get: function () { return this._credit; } },
    hasWaterMask: { get: function () { return false; } },
    hasVertexNormals: { get: function () { return false; } },
    availability: { get: function () { return undefined; } },
    ready: { get: function () { return true; } }
  });
  GsiDemTerrainProvider.prototype.getLevelMaximumGeometricError = function (level) {
    return this._levelZeroError / (1 << level);
  };
  GsiDemTerrainProvider.prototype.getTileDataAvailable = function () { return undefined; };
  GsiDemTerrainProvider.prototype.loadTileDataAvailability = function () { return undefined; };
  GsiDemTerrainProvider.prototype._heights = function (x, y, level) {
    var self = this;
    if (level < this._src.min_zoom || this.unavailable) return Promise.resolve(this._flat);
    this.stats.requested++;
    return fetch(tileUrl(this._src.url, x, y, level), { mode: "cors", credentials: "omit" }).then(function (r) {
      if (r.status === 404) return null;                       // outside the survey: flat
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.blob().then(function (b) {
        return createImageBitmap(b, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
      }).then(function (bmp) { self.stats.loaded++; return heightsOf(bmp, self._offset); });
    }).catch(function () {
      self.stats.failed++;
      if (!self.stats.loaded && !self.unavailable) { self.unavailable = true; self._onUnavailable("terrain"); }
      return null;
    }).then(function (h) { return h || self._flat; });
  };
  GsiDemTerrainProvider.prototype.requestTileGeometry = function (x, y, level) {
    var max = this._src.max_zoom;
    return this._heights(x, y, level).then(function (buf) {
      // childTileMask 0 at the last level: Cesium upsamples deeper tiles from this one
      return new Cesium.HeightmapTerrainData({ buffer: buf, width: N, height: N, childTileMask: level < max ? 15 : 0 });
    });
  };

  /** An imagery layer of ``src`` limited to ``bounds`` ([w, s, e, n]); removed if it cannot load. */
  function imageryProvider(src, bounds, onUnavailable) {
    var provider = new Cesium.UrlTemplateImageryProvider({
      url: src.url, maximumLevel: src.max_zoom, minimumLevel: Math.min(src.min_zoom, 5),
      rectangle: Cesium.Rectangle.fromDegrees(bounds[0], bounds[1], bounds[2], bounds[3]),
      tileWidth: src.tile_size, tileHeight: src.tile_size, credit: credit(src.attribution)
    });
    var stats = provider.stats = { loaded: 0, failed: 0 };
    var request = provider.requestImage.bind(provider);
    provider.requestImage = function (x, y, level, req) {
      var p = request(x, y, level, req);
      if (p && p.then) p.then(function () { stats.loaded++; }, function () {});
      return p;
    };
    provider.errorEvent.addEventListener(function (err) {
      stats.failed++;
      err.retry = false;
      if (!stats.loaded && !provider.unavailable) { provider.unavailable = true; onUnavailable("imagery"); }
    });
    return provider;
  }

  window.GeoTerrain = { decode: decode, GsiDemTerrainProvider: GsiDemTerrainProvider, imageryProvider: imageryProvider, SAMPLES: N };
})();
