/* Service worker of the bear map (served as /map/sw.js, scope /map/).
 *
 * Shows the Web Push alerts the server sends (an encrypted JSON the browser has already
 * decrypted: see geoservice/sightings/push.py for its fields) and opens the sighting on
 * /map/ when the notification is tapped.  It caches nothing: the map always shows what
 * the server has now.
 */
"use strict";

var SCOPE = new URL("./", self.location.href);

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

function lang() {
  return (self.navigator.language || "ja").toLowerCase().indexOf("ja") === 0 ? "ja" : "en";
}

function pick(text, l) {
  if (!text) return "";
  return typeof text === "string" ? text : (text[l] || text.ja || text.en || "");
}

/** Only pages of this map may be opened from a notification (never another origin). */
function mapUrl(raw) {
  try {
    var u = new URL(raw, SCOPE);
    if (u.origin === SCOPE.origin && u.pathname.indexOf(SCOPE.pathname) === 0) return u.href;
  } catch (e) { /* fall through */ }
  return SCOPE.href;
}

self.addEventListener("push", function (event) {
  var l = lang();
  var alert = {};
  try { alert = event.data ? event.data.json() : {}; } catch (e) { alert = {}; }
  var title = pick(alert.title, l) || (l === "ja" ? "クマ等の出没情報" : "Wildlife sighting");
  var options = {
    body: pick(alert.body, l),
    tag: alert.tag || alert.event_id || "sighting",
    lang: l,
    icon: "/static/icons/map-192.png",
    badge: "/static/icons/map-192.png",
    data: { url: mapUrl(alert.url || SCOPE.href) }
  };
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = mapUrl(event.notification.data && event.notification.data.url);
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (list) {
    for (var i = 0; i < list.length; i++) {
      var c = list[i];
      if (new URL(c.url).pathname.indexOf(SCOPE.pathname) === 0 && "navigate" in c) {
        return c.navigate(url).then(function (w) { return (w || c).focus(); });
      }
    }
    return self.clients.openWindow(url);
  }));
});
