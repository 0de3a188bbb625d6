// Starts Swagger UI (vendored, /static/vendor/swagger-ui/) on the API docs pages.
// A file rather than an inline script so the pages work under the CSP
// (geoservice/edge/headers.py); the OpenAPI document's URL comes from the page's
// data-spec-url. No validator badge: it would call validator.swagger.io.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
