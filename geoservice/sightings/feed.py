"""Atom feeds (RFC 4287, GeoRSS-Simple points) of published sightings, per municipality or bbox.

Feed readers poll ``GET /api/sightings/feed.atom?municipality=13308`` (or ``bbox=``); the
entries are read through the public read policy (``SightingsView`` with no caller), so a
pending or rejected report never appears and a sensitive record's point is the centre of its
grid cell, exactly as on the map and in the OGC API.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from geoservice.errors import InvalidParameter
from geoservice.features import Feature
from geoservice.ogc import params
from geoservice.ogc.pygeoapi_adapter import layer_notice
from geoservice.runtime import Runtime
from geoservice.sightings.policy import COLLECTION, SightingsView
from geoservice.store import Query, Store
from geoservice.store.base import BBox

ATOM = "http://www.w3.org/2005/Atom"
GEORSS = "http://www.georss.org/georss"
MEDIA_TYPE = "application/atom+xml; charset=utf-8"
PATH = "/api/sightings/feed.atom"
BOUNDARIES = "admin-boundaries"
JAPAN = timezone(timedelta(hours=9), "JST")
MUNICIPALITY = re.compile(r"^\d{5}$")
ET.register_namespace("", ATOM)
ET.register_namespace("georss", GEORSS)


@lru_cache(maxsize=1)
def labels() -> dict[str, dict[str, list[str]]]:
    """Japanese and English words for species and kinds (``labels.yml``)."""
    raw = yaml.safe_load(Path(__file__).with_name("labels.yml").read_text("utf-8"))
    return {k: {c: list(v) for c, v in d.items()} for k, d in raw.items()}


def label(field: str, code: Any, lang: str = "ja") -> str:
    """The word for a coded value (the code itself when unknown)."""
    words = labels().get(field, {}).get(str(code))
    return words[0 if lang == "ja" else 1] if words else str(code or "")


@dataclass(frozen=True)
class FeedQuery:
    """What one feed covers: a municipality, a bbox (CRS84), both or neither; newest first."""

    municipality: str | None = None
    bbox: BBox | None = None
    limit: int = 50

    def query_string(self) -> str:
        """The canonical query string of this feed (its ``self`` link and ``id``)."""
        q: dict[str, str] = {}
        if self.municipality:
            q["municipality"] = self.municipality
        if self.bbox:
            q["bbox"] = ",".join(f"{v:g}" for v in self.bbox)
        if self.limit != 50:
            q["limit"] = str(self.limit)
        return urlencode(q)


def parse_feed_query(qp: dict[str, str]) -> FeedQuery:
    """Query parameters → ``FeedQuery``; anything else is a 400 saying what is accepted."""
    params.check_known(qp, {"municipality", "bbox", "limit"})
    muni = qp.get("municipality") or None
    if muni is not None and not MUNICIPALITY.match(muni):
        raise InvalidParameter(
            f"municipality={muni!r}: expected a 5-digit municipality code such as 13308"
        )
    bbox = params.parse_bbox(qp["bbox"], None) if qp.get("bbox") else None
    raw = qp.get("limit", "50")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 500:  # not "²"
        raise InvalidParameter(f"limit={raw!r}: expected an integer from 1 to 500")
    return FeedQuery(muni, bbox, int(raw))


def municipality_names(rt: Runtime) -> dict[str, str]:
    """Municipality code → name, from ``admin-boundaries`` (empty when it is not served)."""
    if BOUNDARIES not in rt.specs:
        return {}
    page = rt.reader.query(BOUNDARIES, Query(limit=1000))
    return {
        str(f.properties.get("municipality_code")): str(f.properties.get("name"))
        for f in page.features
        if f.properties.get("municipality_code")
    }


def published(view: Store, fq: FeedQuery) -> list[Feature]:
    """The newest published sightings the feed covers, as the public sees them."""
    props = {"municipality_code": fq.municipality} if fq.municipality else {}
    q = Query(bbox=fq.bbox, properties=props, sortby=(("observed_at", False),), limit=fq.limit)
    return view.query(COLLECTION, q).features


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime(1970, 1, 1, tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_title(f: Feature, names: dict[str, str]) -> str:
    """``ツキノワグマ（目撃）— 奥多摩町 2025-11-14`` (the day in Japan time)."""
    p = f.properties
    day = _instant(p.get("observed_at")).astimezone(JAPAN).date().isoformat()
    place = names.get(str(p.get("municipality_code")), str(p.get("municipality_code") or ""))
    return f"{label('species', p.get('species'))}（{label('kind', p.get('kind'))}）— {place} {day}"


def _entry(feed: ET.Element, f: Feature, base: str, names: dict[str, str]) -> None:
    p = f.properties
    item = f"{base}/ogc/collections/{COLLECTION}/items/{f.id}"
    e = _sub(feed, "entry")
    _sub(e, "id", item)
    _sub(e, "title", entry_title(f, names))
    when = _rfc3339(_instant(p.get("observed_at")))
    _sub(e, "updated", when)
    _sub(e, "published", when)
    _sub(e, "link", rel="alternate", type="text/html", href=f"{item}?f=html")
    _sub(e, "link", rel="related", type="application/geo+json", href=f"{item}?f=json")
    _sub(e, "category", term=str(p.get("species") or ""), label=label("species", p.get("species")))
    text = [str(p.get("description") or "").strip()]
    if p.get("location_generalised_m"):
        cell = p["location_generalised_m"]
        text.append(f"位置は約 {cell} m 四方に一般化しています / location generalised to {cell} m")
    _sub(e, "summary", " ".join(t for t in text if t) or entry_title(f, names))
    if f.geometry is not None and not f.geometry.is_empty:
        pt = f.geometry.representative_point()
        ET.SubElement(e, f"{{{GEORSS}}}point").text = f"{pt.y:.6f} {pt.x:.6f}"


def feed_title(fq: FeedQuery, names: dict[str, str]) -> str:
    """Where the feed is about, in its title."""
    where = []
    if fq.municipality:
        where.append(names.get(fq.municipality, fq.municipality))
    if fq.bbox:
        where.append("bbox " + ",".join(f"{v:g}" for v in fq.bbox))
    return "クマ等の出没情報 / Wildlife sightings — " + (" · ".join(where) or "東京都 / Tokyo")


def atom_feed(rt: Runtime, view: Store, fq: FeedQuery) -> bytes:
    """The Atom document of one feed (newest entries first)."""
    base = rt.settings.server.base_url
    names = municipality_names(rt)
    if fq.municipality and names and fq.municipality not in names:
        raise InvalidParameter(
            f"municipality={fq.municipality!r} is not a municipality of {BOUNDARIES}"
        )
    feats = published(view, fq)
    spec = rt.spec_of(COLLECTION)
    synthetic = bool(spec.synthetic or rt.reader.info(COLLECTION).synthetic)
    qs = fq.query_string()
    self_url = f"{base}{PATH}" + (f"?{qs}" if qs else "")
    feed = ET.Element(f"{{{ATOM}}}feed")
    _sub(feed, "id", self_url)
    _sub(feed, "title", feed_title(fq, names))
    if synthetic:
        _sub(feed, "subtitle", "合成デモデータ — not official / synthetic demo data")
    newest = max((_instant(f.properties.get("observed_at")) for f in feats), default=None)
    _sub(feed, "updated", _rfc3339(newest or datetime.now(UTC)))
    author = _sub(feed, "author")
    _sub(author, "name", rt.settings.contact.name)
    _sub(author, "uri", rt.settings.contact.url)
    _sub(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    _sub(feed, "link", rel="alternate", type="text/html", href=f"{base}/map/")
    _sub(feed, "link", rel="license", href=spec.licence.url)
    _sub(feed, "rights", layer_notice(spec, synthetic))
    _sub(feed, "generator", "Tokyo GeoTwin")
    for f in feats:
        _entry(feed, f, base, names)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def feed_links(rt: Runtime, cid: str) -> list[dict[str, str]]:
    """The Atom feed link of ``wildlife-sightings``' metadata (``rt.collection_links``)."""
    if cid != COLLECTION:
        return []
    return [
        {
            "href": f"{rt.settings.server.base_url}{PATH}",
            "rel": "alternate",
            "type": "application/atom+xml",
            "title": "Atom feed of published sightings (add municipality= or bbox=)",
        }
    ]


def public_view(rt: Runtime, sensitive: Any) -> SightingsView:
    """The sightings as the public reads them (published only, sensitive points generalised)."""
    return SightingsView(rt.reader, None, sensitive)
