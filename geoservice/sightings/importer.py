"""CSV bulk import of sightings for municipalities: validate by line, then write.

Two layouts are recognised by their header:

- **TOKYOくまっぷ**: ``number, date (Y/M/D), accuracy, sightings, lat, lon`` (``latitude`` /
  ``longitude`` / ``緯度`` / ``経度`` also accepted; values in English or 高/中/低, 目撃/痕跡/撮影/
  捕獲); species is Asian black bear, ``source`` is ``TOKYOくまっぷ``, ``source_id`` the number;
- **our template** (``docs/sightings_import_template.csv``): ``source_id, species, kind,
  reliability, observed_at, lon, lat, count, description`` (optional ``source``,
  ``sensitive``); ``source`` defaults to ``import:<municipality>`` of the token.

A row is identified by ``source`` + ``source_id``: a row equal to the stored record is
``unchanged``, a different one ``updated``, a new one ``created`` — so importing the same
file twice changes nothing.  Times without an offset are Japan time.  Every row goes through
``GuardedWriter.prepare`` (municipality scope, vocabulary, geometry), so an import can do
no more than the same token could over OGC API Features.

``all-or-nothing`` writes nothing when any row is rejected (and undoes its own writes if the
store fails part-way); ``per-row`` writes the accepted rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import Point

from geoservice.auth.tokens import Principal
from geoservice.auth.writes import GuardedWriter, Op
from geoservice.catalogue import LayerSpec
from geoservice.errors import InvalidParameter, ServiceError, Unprocessable
from geoservice.features import Feature
from geoservice.loaders.common import coerce
from geoservice.runs import RunReport
from geoservice.sightings.feed import labels
from geoservice.sightings.policy import COLLECTION
from geoservice.store import Query, values

MODES = ("all-or-nothing", "per-row")
KUMAP_SOURCE = "TOKYOくまっぷ"
TEMPLATE_COLUMNS = [
    "source_id",
    "species",
    "kind",
    "reliability",
    "observed_at",
    "lon",
    "lat",
    "count",
    "description",
]
KUMAP_COLUMNS = ["number", "date", "accuracy", "sightings", "lat", "lon"]
_LAT = ("lat", "latitude", "緯度")
_LON = ("lon", "lng", "longitude", "経度")
Progress = Callable[[int, int], None]


@dataclass(kw_only=True)
class ImportReport(RunReport):
    """What an import did (or would have done), by line (``rejected``: line and errors)."""

    mode: str
    layout: str
    rows: int = 0
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    written: bool = False


def _pick(row: dict[str, str], names: tuple[str, ...]) -> str | None:
    for n in names:
        if row.get(n) not in (None, ""):
            return row[n]
    return None


def _layout(header: list[str]) -> str:
    cols = {h.strip() for h in header}
    if {"number", "date", "accuracy", "sightings"} <= cols:
        return "kumap"
    if {"source_id", "species", "kind", "observed_at"} <= cols:
        return "template"
    raise Unprocessable(
        f"CSV header {sorted(cols)} is not recognised; use the template columns "
        f"{TEMPLATE_COLUMNS} or the TOKYOくまっぷ columns {KUMAP_COLUMNS}"
    )


def _point(row: dict[str, str]) -> Point:
    lat, lon = _pick(row, _LAT), _pick(row, _LON)
    if lat is None or lon is None:
        raise InvalidParameter("lat/lon: both are required")
    try:
        x, y = float(lon), float(lat)
    except ValueError:
        raise InvalidParameter(f"lat/lon: not numbers ({lat!r}, {lon!r})") from None
    if not (-180 <= x <= 180 and -90 <= y <= 90):  # NaN fails the comparison too
        raise InvalidParameter(f"lat/lon: out of range ({lat}, {lon})")
    return Point(x, y)


def _codes(field: str) -> dict[str, str]:
    """Japanese word → code of ``field``: the feed's own words (``labels.yml``) read back,
    so the import and the feed cannot drift apart."""
    return {w: code for code, words in labels()[field].items() for w in (words[0], *words[2:])}


def _datetime(raw: str | None) -> str | None:
    try:
        value = coerce(raw, "datetime")
    except ValueError:
        raise Unprocessable(f"observed_at/date: not a date or ISO 8601 time: {raw!r}") from None
    return None if value is None else str(value)


def _props(layout: str, row: dict[str, str], who: Principal) -> tuple[str, str, dict[str, Any]]:
    """``(source, source_id, properties)`` of one row."""
    if layout == "kumap":
        sid = (row.get("number") or "").strip()
        kind = (row.get("sightings") or "").strip()
        rel = (row.get("accuracy") or "").strip()
        props: dict[str, Any] = {
            "species": "asian-black-bear",
            "kind": _codes("kind").get(kind, kind) or None,
            "reliability": _codes("reliability").get(rel, rel) or None,
            "observed_at": _datetime(row.get("date")),
            "count": 1,
        }
        source = KUMAP_SOURCE
    else:
        sid = (row.get("source_id") or "").strip()
        default = f"import:{who.municipality}" if not who.admin else f"import:{who.name}"
        source = (row.get("source") or "").strip() or default
        props = {
            "species": (row.get("species") or "").strip() or None,
            "kind": (row.get("kind") or "").strip() or None,
            "reliability": (row.get("reliability") or "").strip() or None,
            "observed_at": _datetime(row.get("observed_at")),
            "description": row.get("description") or None,
        }
        try:
            props["count"] = coerce(row.get("count"), "integer") or 1
        except ValueError:
            raise Unprocessable(f"count: not a whole number: {row.get('count')!r}") from None
        if row.get("sensitive"):
            try:
                props["sensitive"] = coerce(row.get("sensitive"), "boolean")
            except ValueError as exc:
                raise Unprocessable(f"sensitive: {exc}") from None
    if not sid:
        raise Unprocessable("source_id/number: required (it identifies the row on re-import)")
    props["source"] = source
    props["source_id"] = sid
    return source, sid, props


def _same(spec: LayerSpec, a: Feature, b: Feature) -> bool:
    pa = values.to_storage(spec, a.properties)
    pb = values.to_storage(spec, b.properties)
    ga = None if a.geometry is None else a.geometry.wkb
    gb = None if b.geometry is None else b.geometry.wkb
    return pa == pb and ga == gb


def _fid(layout: str, source: str, sid: str) -> str:
    if layout == "kumap":
        return f"tokyo-kumap-{sid}"
    return "ws-imp-" + hashlib.sha256(f"{source}\x1f{sid}".encode()).hexdigest()[:24]


def _records(text: str) -> tuple[str, list[tuple[int, dict[str, str]]]]:
    """The layout and the rows of a CSV, each with the line it starts on; 400 if unreadable."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    entries: list[tuple[int, dict[str, str]]] = []
    try:
        layout = _layout(list(reader.fieldnames or []))
        for raw in reader:
            # The line a record starts on (a quoted field may span several lines).
            span = sum(v.count("\n") for v in raw.values() if isinstance(v, str))
            entries.append((reader.line_num - span, raw))
    except csv.Error as exc:  # e.g. a field longer than csv.field_size_limit()
        raise InvalidParameter(f"CSV line {reader.line_num}: {exc}") from None
    return layout, entries


def import_csv(
    writer: GuardedWriter,
    who: Principal,
    text: str,
    mode: str = "all-or-nothing",
    progress: Progress | None = None,
) -> ImportReport:
    """Validate every row, then write per ``mode``; return the report by line."""
    if mode not in MODES:
        raise InvalidParameter(f"mode={mode!r}; accepted: {', '.join(MODES)}")
    layout, entries = _records(text)
    report = ImportReport(mode=mode, layout=layout)
    spec = writer.editable(COLLECTION)
    existing: dict[str, dict[str, Feature]] = {}
    seen: dict[tuple[str, str], int] = {}
    ops: list[tuple[int, Op]] = []
    total = len(entries)
    with writer.lock:
        for n, (line, row) in enumerate(entries, start=1):
            report.rows += 1
            row = {(k or "").strip(): (v or "") for k, v in row.items() if k is not None}
            try:
                source, sid, props = _props(layout, row, who)
                if (source, sid) in seen:
                    raise Unprocessable(
                        f"source_id {sid!r} repeats line {seen[(source, sid)]} of this file"
                    )
                seen[(source, sid)] = line
                if source not in existing:
                    page = writer.store.query(
                        COLLECTION, Query(properties={"source": source}, limit=10_000_000)
                    )
                    existing[source] = {
                        str(f.properties.get("source_id")): f for f in page.features
                    }
                before = existing[source].get(sid)
                geom = _point(row)
                if before is None:
                    new = writer.prepare(
                        who, COLLECTION, Feature(_fid(layout, source, sid), props, geom), None
                    )
                    ops.append((line, Op("create", "import.create", COLLECTION, new.id, None, new)))
                else:
                    writer.check_current(who, before, None)
                    merged = {**before.properties, **props}
                    new = writer.prepare(who, COLLECTION, Feature(before.id, merged, geom), before)
                    if _same(spec, new, before):
                        report.unchanged += 1
                    else:
                        ops.append(
                            (
                                line,
                                Op("replace", "import.update", COLLECTION, before.id, before, new),
                            )
                        )
                report.accepted += 1
            except ServiceError as exc:
                report.rejected.append({"line": line, "errors": [exc.description]})
            if progress is not None:
                progress(n, total)
        if mode == "all-or-nothing" and report.rejected:
            report.unchanged = 0
            return report
        _write(writer, who, ops, mode, report)
    return report


def _write(
    writer: GuardedWriter,
    who: Principal,
    ops: list[tuple[int, Op]],
    mode: str,
    report: ImportReport,
) -> None:
    done: list[Op] = []
    for line, op in ops:
        try:
            writer.apply(who, op, note=f"CSV import ({mode}), line {line}")
        except ServiceError as exc:
            if mode == "per-row":
                report.rejected.append({"line": line, "errors": [exc.description]})
                report.accepted -= 1
                continue
            _undo(writer, who, done)
            raise
        except BaseException:
            if mode == "all-or-nothing":
                _undo(writer, who, done)
            raise
        done.append(op)
        report.wrote(None if op.kind == "create" else op)
    report.written = bool(done)


def _undo(writer: GuardedWriter, who: Principal, done: list[Op]) -> None:
    """Compensate the writes of a failed all-or-nothing import, newest first."""
    for op in reversed(done):
        if op.kind == "create":
            writer.apply(who, Op("delete", "import.undo", COLLECTION, op.fid, op.after, None))
        elif op.before is not None:
            writer.apply(who, Op("replace", "import.undo", COLLECTION, op.fid, op.after, op.before))
