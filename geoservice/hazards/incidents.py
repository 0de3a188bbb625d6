"""Incident ingest: CSV, GeoJSON and other OGC API Features feeds into one ``incidents`` layer.

Every ingested record keeps its provenance: ``source`` (the ingest label: ``csv:<file>``,
``geojson:<file>``, ``feed:<url>#<collection>`` or ``--source``; a record that names its
own source keeps it after the label: ``feed:… via demo``) and ``source_id`` (the record's
id in that source).  The feature id is a hash of (source label, source_id), so ingesting
the same source again updates changed records, leaves equal ones untouched and never
duplicates (idempotent).  Writes are journalled in the audit log like every other write.

Input fields (CSV columns / GeoJSON properties / feed properties): ``type``, ``severity``,
``status``, ``reported_at``, ``description``, ``source``, and an id: for GeoJSON and feeds
the feature id (the record's id where it was ingested from; two upstream sources may reuse
the same ``source_id``), else a ``source_id`` / ``id`` / ``ID`` property or CSV column.
CSV positions come from ``lon``/``lat`` (also ``longitude``/``latitude``, ``経度``/``緯度``).
A few Japanese values are mapped (``冠水`` -> ``flood``, ``高`` -> ``high`` ...); anything
else must already be one of the layer's enum values.  A bad record is skipped and
reported with its line or feature number.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from geoservice import feeds as pager
from geoservice.auth.audit import AuditLog, audited_upsert
from geoservice.auth.scope import MunicipalityIndex
from geoservice.auth.tokens import Principal
from geoservice.catalogue import LayerSpec
from geoservice.errors import NotFound, SourceError
from geoservice.features import Feature
from geoservice.loaders.common import coerce
from geoservice.runs import RunReport
from geoservice.store import Store

COLLECTION = "incidents"
FIELDS = ("type", "severity", "status", "reported_at", "description")
MAX_PAGES = 1000
VALUE_MAPS: dict[str, dict[str, str]] = {
    "type": {
        "洪水": "flood", "冠水": "flood", "浸水": "flood", "内水氾濫": "inland-flood",
        "土砂災害": "landslide", "がけ崩れ": "landslide", "崖崩れ": "landslide",
        "土石流": "landslide", "地すべり": "landslide", "火災": "fire",
        "建物倒壊": "building-collapse", "地震被害": "earthquake-damage",
        "通行止め": "road-closure", "停電": "power-outage", "断水": "water-outage",
        "避難": "evacuation", "その他": "other",
    },
    "severity": {"低": "low", "中": "moderate", "高": "high", "重大": "critical",
                 "medium": "moderate"},
    "status": {"報告": "reported", "確認済": "confirmed", "対応中": "responding",
               "解決": "resolved", "終了": "closed", "open": "reported"},
}
_LON = ("lon", "longitude", "lng", "x", "経度")
_LAT = ("lat", "latitude", "y", "緯度")
_ID = ("source_id", "id", "ID", "番号")


@dataclass(kw_only=True)
class IngestReport(RunReport):
    """What one ingest did."""

    source: str
    read: int = 0


def incident_id(source: str, source_id: str) -> str:
    """The stable feature id of a record of a source (idempotent re-ingest)."""
    digest = hashlib.sha256(f"{source}\x1f{source_id}".encode()).hexdigest()[:20]
    return f"inc-{digest}"


class Ingester:
    """Maps raw records to ``incidents`` features and upserts them (audited)."""

    def __init__(self, store: Store, audit: AuditLog | None = None) -> None:
        if COLLECTION not in store.collections():
            raise SourceError(f"the store has no {COLLECTION!r} collection; build it first")
        self.store = store
        self.spec: LayerSpec = store.spec(COLLECTION)
        self.audit = audit
        self.index = MunicipalityIndex.from_store(store)

    # -- one record ------------------------------------------------------------------------

    def to_feature(
        self, label: str, raw: dict[str, Any], geom: BaseGeometry | None, fallback_id: Any
    ) -> Feature:
        """Map one raw record (``SourceError`` naming the problem)."""
        sid = fallback_id  # a feature id is the record's id in the source ingested from
        if sid in (None, ""):
            sid = next((raw[k] for k in _ID if raw.get(k) not in (None, "")), None)
        if sid in (None, ""):
            raise SourceError("no id (source_id, id or ID) to keep the record's provenance")
        if geom is None or geom.is_empty:
            raise SourceError("no position")
        if geom.geom_type != "Point":
            geom = geom.representative_point()
        if not (-180 <= geom.x <= 180 and -90 <= geom.y <= 90):
            raise SourceError(f"position {geom.x}, {geom.y} is not lon/lat")
        props: dict[str, Any] = {}
        for name in FIELDS:
            prop = self.spec.property(name)
            if prop is None:
                continue
            value = raw.get(name)
            mapped = VALUE_MAPS.get(name, {}).get(str(value).strip()) if value is not None else None
            value = mapped or value
            try:
                typed = coerce(value, prop.type)
            except (ValueError, TypeError) as exc:
                raise SourceError(f"{name}: cannot read {value!r} as {prop.type}: {exc}") from None
            if prop.enum is not None and typed is not None and typed not in prop.enum:
                raise SourceError(f"{name}: {typed!r} is not one of {prop.enum}")
            if typed is not None:
                props[name] = typed
        for required in ("type", "reported_at"):
            if required not in props:
                raise SourceError(f"{required}: missing")
        props.setdefault("status", "reported")
        own = raw.get("source")
        props["source"] = label if own in (None, "", label) else f"{label} via {own}"
        props["source_id"] = str(sid)
        code = self.index.code_at(geom)
        if code is not None and self.spec.property("municipality_code") is not None:
            props["municipality_code"] = code
        return Feature(incident_id(label, str(sid)), props, Point(geom.x, geom.y))

    # -- upsert ------------------------------------------------------------------------------

    def upsert(self, label: str, records: Iterable[tuple[str, dict[str, Any], Any, Any]]
               ) -> IngestReport:
        """Write every record (``(where, raw, geometry, feature id)``); skip bad ones."""
        report = IngestReport(source=label)
        who = Principal(f"ingest:{label}"[:60], f"incidents ingest {label}", None, True)
        for where, raw, geom, fid in records:
            report.read += 1
            try:
                feature = self.to_feature(label, raw, geom, fid)
            except SourceError as exc:
                report.skip(f"{where}: {exc.description}")
                continue
            try:
                before = self.store.get(COLLECTION, feature.id)
            except NotFound:
                before = None
            if before is not None and _same(before, feature):
                report.unchanged += 1
                continue
            self._write(who, before, feature)
            report.wrote(before)
        return report

    def _write(self, who: Principal, before: Feature | None, after: Feature) -> None:
        audited_upsert(self.store, self.audit, who, COLLECTION, before, after, "ingest")

    # -- sources ------------------------------------------------------------------------------

    def ingest_csv(self, path: Path, label: str | None = None) -> IngestReport:
        """Ingest a UTF-8 CSV file (lon/lat columns)."""
        return self.upsert(label or f"csv:{path.name}", read_csv(path))

    def ingest_geojson(self, path: Path, label: str | None = None) -> IngestReport:
        """Ingest a GeoJSON FeatureCollection file (CRS84)."""
        return self.upsert(label or f"geojson:{path.name}", read_geojson(path))

    def ingest_feed(
        self,
        url: str,
        collection: str,
        label: str | None = None,
        client: httpx.Client | None = None,
        page_size: int = 100,
    ) -> IngestReport:
        """Ingest every item of another OGC API Features collection (following ``next``)."""
        own = client is None
        http = client or httpx.Client(timeout=30, follow_redirects=True)
        try:
            src = label or f"feed:{url.rstrip('/')}#{collection}"
            return self.upsert(src, read_feed(http, url, collection, page_size))
        finally:
            if own:
                http.close()


def _value_key(value: Any) -> Any:
    """Compare date-times as instants (the store may normalise ``+09:00`` to ``Z``)."""
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def _same(a: Feature, b: Feature) -> bool:
    keys = set(a.properties) | set(b.properties)
    same_props = all(
        _value_key(a.properties.get(k)) == _value_key(b.properties.get(k)) for k in keys
    )
    same_geom = (a.geometry is None and b.geometry is None) or (
        a.geometry is not None and b.geometry is not None
        and a.geometry.equals_exact(b.geometry, 1e-9)
    )
    return same_props and same_geom


def _pick(row: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((row[n] for n in names if row.get(n) not in (None, "")), None)


def read_csv(path: Path) -> Iterator[tuple[str, dict[str, Any], Any, Any]]:
    """Rows of a CSV as ``(where, raw, point, None)``."""
    try:
        text = Path(path).read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{Path(path).name}: cannot read as UTF-8 text: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    for n, row in enumerate(reader, start=2):
        where = f"{Path(path).name}: line {n}"
        lon, lat = _pick(row, _LON), _pick(row, _LAT)
        geom: Any = None
        try:
            if lon is not None and lat is not None:
                geom = Point(float(lon), float(lat))
        except ValueError:
            geom = None
        yield where, dict(row), geom, None


def read_geojson(path: Path) -> Iterator[tuple[str, dict[str, Any], Any, Any]]:
    """Features of a GeoJSON file as ``(where, properties, geometry, feature id)``."""
    try:
        doc = json.loads(Path(path).read_text("utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{Path(path).name}: not readable GeoJSON: {exc}") from None
    feats = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(feats, list):
        raise SourceError(f"{Path(path).name}: not a GeoJSON FeatureCollection")
    yield from _features(Path(path).name, feats)


def _features(name: str, feats: list[Any]) -> Iterator[tuple[str, dict[str, Any], Any, Any]]:
    for i, f in enumerate(feats):
        where = f"{name}: feature {i}"
        if not isinstance(f, dict):
            yield where, {}, None, None
            continue
        try:
            geom = shape(f["geometry"]) if f.get("geometry") else None
        except Exception:
            geom = None
        props = f.get("properties") or {}
        yield where, dict(props) if isinstance(props, dict) else {}, geom, f.get("id")


def read_feed(
    client: httpx.Client, url: str, collection: str, page_size: int = 100
) -> Iterator[tuple[str, dict[str, Any], Any, Any]]:
    """Items of ``{url}/collections/{collection}/items``, page by page (``rel=next``;
    ``geoservice.feeds``): a page's records are written before the next page is fetched."""
    first = pager.items_url(url, collection)
    for n, feats in enumerate(pager.pages(client, first, {"limit": page_size}, url, MAX_PAGES), 1):
        yield from _features(f"{collection} page {n}", feats)
