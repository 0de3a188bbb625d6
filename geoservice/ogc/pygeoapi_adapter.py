"""The one module that knows pygeoapi: its configuration, its OpenAPI document, its calls.

pygeoapi's configuration is *generated* here from our settings and the built store;
nobody edits a pygeoapi YAML.  We build ``pygeoapi.api.API`` objects directly instead of
importing ``pygeoapi.starlette_app`` (which reads environment variables at import time), so
``create_app(settings)`` can build several independent apps in one process.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pygeoapi import l10n as _pygeoapi_l10n
from pygeoapi.api import API, APIRequest
from pygeoapi.openapi import get_oas
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute

from geoservice import crs as crsmod
from geoservice.catalogue import LayerSpec
from geoservice.config import Settings
from geoservice.fastjson import FastJSONResponse
from geoservice.runtime import Runtime
from geoservice.store import Store


class _NoConfigCache(dict):  # type: ignore[type-arg]
    """pygeoapi caches the locale-translated config in a module global keyed by locale only,
    so a second app in the same process (tests, chunked servers) rendered HTML with the first
    app's config and failed (``config['resources'][id]`` undefined -> 500).  Never cache."""

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


_pygeoapi_l10n._cfg_cache = _NoConfigCache()

PROVIDER = "geoservice.ogc.provider.StoreProvider"


def layer_notice(spec: LayerSpec, synthetic: bool) -> str:
    """The credit line shown with a layer (and the synthetic warning where it applies)."""
    text = f"出典 / Source: {spec.attribution} — {spec.licence.name}"
    if synthetic and not spec.synthetic:
        # Built from the demo mirror: invented content in the official source's format.
        text = f"Tokyo GeoTwin demo data, modelled on the format of: {spec.attribution}"
    if synthetic:
        text = "【合成デモデータ / SYNTHETIC DEMO DATA — not official】 " + text
    return text


def _resource(spec: LayerSpec, store: Store, store_key: str) -> dict[str, Any]:
    info = store.info(spec.id)
    synthetic = spec.synthetic or info.synthetic
    bbox = list(info.extent or spec.coverage.bbox or (138.9, 24.0, 142.3, 35.9))
    res: dict[str, Any] = {
        "type": "collection",
        "title": {"en": spec.title_en or spec.title, "ja": spec.title},
        "description": f"{spec.description} {layer_notice(spec, synthetic)}".strip(),
        "keywords": spec.keywords or [spec.domain],
        "links": [
            {
                "type": "text/html",
                "rel": "license",
                "title": spec.licence.name,
                "href": spec.licence.url,
                "hreflang": "ja",
            },
        ],
        "extents": {"spatial": {"bbox": bbox, "crs": crsmod.CRS84}},
        "providers": [
            {
                "type": "feature",
                "name": PROVIDER,
                "data": store_key,
                "id_field": "id",
                "editable": spec.editable,
                "options": {"collection": spec.id},
                "crs": list(crsmod.SUPPORTED),
                "storage_crs": crsmod.CRS84,
                **({"time_field": spec.temporal_property} if spec.temporal_property else {}),
            }
        ],
    }
    if spec.source.url:
        res["links"].append(
            {
                "type": "text/html",
                "rel": "describedby",
                "title": "source",
                "href": spec.source.url,
                "hreflang": "ja",
            }
        )
    return res


#: Overrides of pygeoapi's HTML templates (the rest fall through to pygeoapi's own).
OGC_TEMPLATES = Path(__file__).with_name("templates")


def build_config(
    settings: Settings,
    specs: dict[str, LayerSpec],
    store: Store,
    store_key: str,
    processes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The pygeoapi configuration for this service, from our settings and store."""
    s = settings.server
    resources = {
        i: _resource(spec, store, store_key)
        for i, spec in specs.items()
        if i in store.collections()
    }
    resources.update(processes or {})
    return {
        "server": {
            "bind": {"host": s.host, "port": s.port},
            "url": f"{s.base_url}/ogc",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "gzip": False,
            "languages": ["en-US", "ja-JP"],
            "pretty_print": False,
            "limits": {
                "default_items": s.limit_default,
                "max_items": s.limit_max,
                "on_exceed": "throttle",
            },
            "map": {"url": "", "attribution": ""},
            # Our templates first (CSP-clean layout with the site's landmarks; a collection page
            # without pygeoapi's CDN map), pygeoapi's own page templates after them.
            "templates": {"path": str(OGC_TEMPLATES)},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": {"en": s.title, "ja": "東京ジオツイン"},
                "description": {"en": s.description, "ja": s.description},
                "keywords": ["Tokyo", "PLATEAU", "OGC API", "hazard", "wildlife"],
                "keywords_type": "theme",
                "terms_of_service": f"{s.base_url}/#terms",
                "url": f"{s.base_url}/",
            },
            "license": {
                "name": "CC BY 4.0 (per layer; see each collection)",
                "url": "https://creativecommons.org/licenses/by/4.0/",
            },
            "provider": {"name": settings.contact.name, "url": settings.contact.url},
            "contact": {
                "name": settings.contact.name,
                "email": settings.contact.email,
                "url": settings.contact.url,
                "role": "pointOfContact",
            },
        },
        "resources": resources,
    }


def build_openapi(config: dict[str, Any], served: Sequence[BaseRoute]) -> dict[str, Any]:
    """pygeoapi's OpenAPI document, patched to describe what ``served`` (our OGC routes)
    really accept."""
    from geoservice.ogc.openapi_patch import patch_openapi

    doc = get_oas(copy.deepcopy(config), fail_on_invalid_collection=False)
    return patch_openapi(doc, config, served)


class Pygeoapi:
    """A pygeoapi ``API`` built from generated config, and a way to call it from routes."""

    def __init__(self, config: dict[str, Any], openapi: dict[str, Any]) -> None:
        self.config = config
        self.openapi = openapi
        self.api = API(config, openapi)

    async def call(
        self, fn: Callable[..., tuple[dict[str, Any], int, Any]], request: Request, *args: Any
    ) -> tuple[dict[str, Any], int, Any]:
        """Run a pygeoapi API function in a worker thread; return (headers, status, content)."""
        api_request = await APIRequest.from_starlette(request, self.api.locales)
        if not api_request.is_valid():
            return self.api.get_format_exception(api_request)  # type: ignore[no-any-return]
        return await asyncio.to_thread(fn, self.api, api_request, *args)

    async def respond(
        self, fn: Callable[..., tuple[dict[str, Any], int, Any]], request: Request, *args: Any
    ) -> Response:
        """Call pygeoapi and wrap its answer in a Starlette response."""
        headers, status, content = await self.call(fn, request, *args)
        return to_response(headers, status, content)


def to_response(headers: dict[str, Any], status: int, content: Any) -> Response:
    """pygeoapi's (headers, status, content) → a Starlette response."""
    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
    if headers.get("Content-Type", "").startswith("text/html"):
        return HTMLResponse(content, status_code=status, headers=headers)
    if isinstance(content, dict):
        return FastJSONResponse(content, status_code=status, headers=headers)
    return Response(content, status_code=status, headers=headers)


def pygeoapi_of(rt: Runtime) -> Pygeoapi:
    """The pygeoapi wrapper the app put in the runtime's services (``build_runtime``)."""
    return rt.services.require(Pygeoapi)
