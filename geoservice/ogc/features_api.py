"""Framework-neutral core of the items endpoints: typed request in, GeoJSON dict out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from geoservice import crs as crsmod
from geoservice.fastjson import geometries_json, geometry_json
from geoservice.features import Feature
from geoservice.ogc.params import ItemsRequest
from geoservice.store import Page, Store

GEOJSON = "application/geo+json"


def feature_doc(
    f: Feature,
    req_crs: crsmod.CrsInfo,
    select: tuple[str, ...] | None = None,
    skip_geometry: bool = False,
) -> dict[str, Any]:
    """One feature as GeoJSON in the requested CRS (coordinates in its axis order).

    Coordinates are numpy arrays (``geometry_json``): serialise with
    ``geoservice.fastjson`` (``FastJSONResponse``), not the standard library."""
    geom = None
    if f.geometry is not None and not skip_geometry:
        geom = geometry_json(crsmod.from_crs84(f.geometry, req_crs))
    props = (
        f.properties
        if select is None
        else {k: f.properties[k] for k in select if k in f.properties}
    )
    return {"type": "Feature", "id": f.id, "geometry": geom, "properties": props}


def _link(href: str, rel: str, type_: str, title: str) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": type_, "title": title}


def page_links(
    base: str, params: dict[str, str], page: Page, req: ItemsRequest
) -> list[dict[str, str]]:
    """self / alternate / collection / next / prev links of an items page."""
    q = req.query

    def url(**over: Any) -> str:
        merged = {**{k: v for k, v in params.items() if k != "f"}, **over}
        return f"{base}/items?{urlencode(merged)}"

    # A limit above the server's maximum was clamped (params._int): the links carry the
    # limit actually applied and say so, so a client paging with them is not surprised.
    asked = params.get("limit")
    clamped = asked is not None and asked.strip().lstrip("+").isdigit() and int(asked) > q.limit
    note = f" (limit {asked} clamped to the maximum {q.limit})" if clamped else ""
    fixed = {"limit": q.limit} if clamped else {}
    links = [
        _link(url(f="json", **fixed), "self", GEOJSON, "this document" + note),
        _link(url(f="html", **fixed), "alternate", "text/html", "this document as HTML" + note),
        _link(base, "collection", "application/json", "the collection"),
    ]
    if q.offset + len(page.features) < page.number_matched:
        links.append(
            _link(
                url(f="json", offset=q.offset + q.limit, limit=q.limit),
                "next",
                GEOJSON,
                "next page",
            )
        )
    if q.offset > 0:
        links.append(
            _link(
                url(f="json", offset=max(0, q.offset - q.limit), limit=q.limit),
                "prev",
                GEOJSON,
                "previous page",
            )
        )
    return links


def items_doc(
    store: Store, collection: str, req: ItemsRequest, base: str, params: dict[str, str]
) -> tuple[dict[str, Any], Page]:
    """Run the query and build the FeatureCollection document."""
    page = store.query(collection, req.query)
    features = [feature_doc(f, req.crs, req.select, skip_geometry=True) for f in page.features]
    if not req.skip_geometry:
        geoms = [None if f.geometry is None else crsmod.from_crs84(f.geometry, req.crs)
                 for f in page.features]
        for doc_f, geom in zip(features, geometries_json(geoms), strict=True):
            doc_f["geometry"] = geom
    doc = {
        "type": "FeatureCollection",
        "features": features,
        "numberMatched": page.number_matched,
        "numberReturned": len(page.features),
        "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "links": page_links(base, params, page, req),
    }
    return doc, page


def item_links(base: str, fid: str) -> list[dict[str, str]]:
    """self / alternate / collection links of one feature."""
    href = f"{base}/items/{fid}"
    return [
        _link(f"{href}?f=json", "self", GEOJSON, "this feature"),
        _link(f"{href}?f=html", "alternate", "text/html", "this feature as HTML"),
        _link(base, "collection", "application/json", "the collection"),
    ]
