"""Our pygeoapi feature provider: a thin adapter over the store opened at start-up.

pygeoapi constructs a provider object per request, so construction only looks up the
store registered by ``create_app`` (``register_store``); nothing is opened or read here.
"""

from __future__ import annotations

from typing import Any

from pygeoapi.provider.base import BaseProvider, ProviderItemNotFoundError

from geoservice.errors import NotFound
from geoservice.features import Feature
from geoservice.store import Query, Store
from geoservice.store.filtering import queryable_schema

_STORES: dict[str, Store] = {}

_JSON_TYPES = {
    "string": ("string", None),
    "integer": ("integer", None),
    "number": ("number", None),
    "boolean": ("boolean", None),
    "date": ("string", "date"),
    "datetime": ("string", "date-time"),
}


def register_store(key: str, store: Store) -> None:
    """Make ``store`` available to providers whose ``data`` is ``key``."""
    _STORES[key] = store


def feature_json(f: Feature) -> dict[str, Any]:
    """A feature as a GeoJSON dict in CRS84."""
    from shapely.geometry import mapping

    geom = None if f.geometry is None else mapping(f.geometry)
    return {"type": "Feature", "id": f.id, "geometry": geom, "properties": f.properties}


class StoreProvider(BaseProvider):
    """pygeoapi feature provider reading our store (bbox, datetime, properties, sortby)."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        try:
            self.store = _STORES[provider_def["data"]]
        except KeyError:
            raise RuntimeError(f"store {provider_def['data']!r} was not registered") from None
        self.collection = provider_def["options"]["collection"]
        self.id_field = "id"
        self.get_fields()

    def get_fields(self) -> dict[str, Any]:
        """Property name → JSON Schema type (and format), from the layer spec."""
        if not self._fields:
            spec = self.store.spec(self.collection)  # type: ignore[attr-defined]
            for name, kind in queryable_schema(spec).items():
                if kind == "geometry":
                    continue
                t, fmt = _JSON_TYPES[kind]
                self._fields[name] = {"type": t, **({"format": fmt} if fmt else {})}
        return self._fields

    def query(  # type: ignore[override]
        self,
        offset: int = 0,
        limit: int = 10,
        resulttype: str = "results",
        bbox: list[float] | None = None,
        datetime_: str | None = None,
        properties: list[tuple[str, Any]] | None = None,
        sortby: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """Delegate to the store; pygeoapi's own CQL parsing is bypassed by our routes."""
        from geoservice.ogc.params import parse_datetime_interval

        q = Query(
            bbox=tuple(bbox) if bbox else None,  # type: ignore[arg-type]
            datetime=parse_datetime_interval(datetime_) if datetime_ else None,
            properties=dict(properties or []),
            sortby=tuple((s["property"], s["order"] == "+") for s in sortby or []),
            limit=0 if resulttype == "hits" else limit,
            offset=offset,
        )
        page = self.store.query(self.collection, q)
        return {
            "type": "FeatureCollection",
            "features": [feature_json(f) for f in page.features],
            "numberMatched": page.number_matched,
            "numberReturned": len(page.features),
        }

    def get(self, identifier: str, **_: Any) -> dict[str, Any]:
        """One feature by id."""
        try:
            return feature_json(self.store.get(self.collection, str(identifier)))
        except NotFound as exc:
            raise ProviderItemNotFoundError(str(exc)) from exc
