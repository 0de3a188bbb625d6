/* The e-mail alert form of /map/: subscribe to sightings around the point chosen on the
   map (map.js keeps it in the URL as lon/lat) or in a municipality. No inline script (CSP);
   the answer - "check your mail" or what was wrong - is announced in #ea-result. */
(function () {
  "use strict";
  var form = document.getElementById("ea-form");
  if (!form) return;
  var $ = function (id) { return document.getElementById(id); };
  var result = $("ea-result");

  function point() {
    var q = new URLSearchParams(location.search);
    var lon = parseFloat(q.get("lon")), lat = parseFloat(q.get("lat"));
    return isFinite(lon) && isFinite(lat) ? [lon, lat] : null;
  }

  function areaKind() {
    var checked = form.querySelector("input[name=ea-area]:checked");
    return checked ? checked.value : "point";
  }

  function showPoint() {
    var p = point();
    $("ea-point").textContent = p
      ? "地点 / point: " + p[1].toFixed(4) + ", " + p[0].toFixed(4)
      : "地点が未指定です。上の「地図で地点を指定」か「現在地」で選んでください。/ No point yet: choose one with the buttons above or pick it on the map.";
  }

  function copyMunicipalities() {
    var from = $("bm-muni"), to = $("ea-muni");
    if (!from || to.options.length > 1) return;
    to.textContent = "";
    Array.prototype.forEach.call(from.options, function (o) {
      if (!o.value) return;
      var opt = document.createElement("option");
      opt.value = o.value; opt.textContent = o.textContent;
      to.appendChild(opt);
    });
    if (from.value) to.value = from.value;
  }

  function say(text, ok) {
    result.textContent = text;
    result.className = "ea-result " + (ok ? "ea-ok" : "ea-error");
  }

  function body() {
    var area;
    var address = $("ea-email");
    if (!address.value.trim() || !address.checkValidity()) {
      // the server refuses it too (400, same words); saying it here spares a round trip
      return "メールアドレスの形式ではありません（例: name@example.jp）。/ Not an accepted address: expected a plain address such as name@example.jp.";
    }
    if (areaKind() === "municipality") {
      if (!$("ea-muni").value) return "市区町村を選んでください。/ Choose a municipality.";
      area = { municipality: $("ea-muni").value };
    } else {
      var p = point();
      if (!p) return "地図で地点を指定してください。/ Choose a point on the map first.";
      area = { point: p, radius_m: Number($("ea-radius").value) * 1000 };
    }
    var species = Array.prototype.map.call(
      form.querySelectorAll("input[name=species]:checked"), function (c) { return c.value; });
    return { email: $("ea-email").value.trim(), area: area, species: species,
             mode: $("ea-mode").value, lang: $("ea-lang").value };
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var b = body();
    if (typeof b === "string") { say(b, false); return; }
    $("ea-submit").disabled = true;
    say("送信中… / Sending…", true);
    fetch("/api/subscriptions", {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(b)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (doc) {
        if (r.status === 202) say(doc.description || "確認メールを送りました。/ Check your mail.", true);
        else if (r.status === 429) say("送信が多すぎます。" + (r.headers.get("Retry-After") || "") + " 秒後に再試行してください。/ Too many requests: " + (doc.description || ""), false);
        else say((doc.description || ("HTTP " + r.status)), false);
      });
    }).catch(function () {
      say("送信できませんでした。通信を確認してください。/ Could not send: check the connection.", false);
    }).then(function () { $("ea-submit").disabled = false; });
  });

  $("ea").addEventListener("toggle", function () { copyMunicipalities(); showPoint(); });
  $("ea-muni").addEventListener("focus", copyMunicipalities);
  form.addEventListener("focusin", showPoint);
  var q = new URLSearchParams(location.search);
  if (q.get("lang") === "en") $("ea-lang").value = "en";
  showPoint();
})();
