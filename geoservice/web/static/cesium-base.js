/* Where CesiumJS finds its workers and assets (read by Cesium.js when it loads).
 * A file of its own, not an inline script: the pages' CSP runs only the service's files. */
window.CESIUM_BASE_URL = "/static/vendor/cesium/";
