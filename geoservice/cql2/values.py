"""Typed values: instants and intervals, geometries, LIKE patterns, CASEI / ACCENTI."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from functools import lru_cache
from typing import Any

import shapely
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from geoservice.cql2.nodes import BBox, DateLit, Expr, Geometry, OpenEnd, TimestampLit

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")


def parse_date(text: str) -> dt.date:
    """Parse ``YYYY-MM-DD`` (ValueError with a readable message otherwise)."""
    if not _DATE_RE.match(text):
        raise ValueError(f"{text!r} is not a date of the form YYYY-MM-DD")
    return dt.date.fromisoformat(text)


def parse_timestamp(text: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp; a naive one is taken as UTC."""
    if not _TS_RE.match(text):
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp (YYYY-MM-DDThh:mm:ssZ)")
    value = dt.datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def date_literal(text: str) -> DateLit:
    """``DATE('...')`` literal node."""
    return DateLit(parse_date(text))


def timestamp_literal(text: str) -> TimestampLit:
    """``TIMESTAMP('...')`` literal node."""
    return TimestampLit(parse_timestamp(text))


def interval_end(text: str) -> Expr:
    """An interval end given as a string: ``'..'``, a date or a timestamp."""
    if text == "..":
        return OpenEnd()
    if _DATE_RE.match(text):
        return date_literal(text)
    return timestamp_literal(text)


def format_timestamp(value: dt.datetime) -> str:
    """RFC 3339 text of an aware datetime, ``Z`` for UTC."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- coercion of stored property values ---------------------------------------
@lru_cache(maxsize=8192)
def _coerce_date_text(text: str) -> dt.date | None:
    try:
        if len(text) > 10:
            return parse_timestamp(text).date()
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


@lru_cache(maxsize=8192)
def _coerce_datetime_text(text: str) -> dt.datetime | None:
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
        return parse_timestamp(text)
    except ValueError:
        return None


def coerce_date(value: Any) -> dt.date | None:
    """A stored value of a ``date`` property as :class:`datetime.date` (None if null)."""
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    if isinstance(value, dt.datetime):
        return value.date()
    return _coerce_date_text(str(value))


def coerce_datetime(value: Any) -> dt.datetime | None:
    """A stored value of a ``datetime`` property as an aware datetime (UTC if naive)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=UTC)
    return _coerce_datetime_text(str(value))


def as_datetime(value: dt.date) -> dt.datetime:
    """A date as midnight UTC (used when a date meets a timestamp)."""
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day, tzinfo=UTC)


def instant_key(value: dt.date) -> int:
    """Microseconds since the epoch (a date counts as its midnight UTC)."""
    return (as_datetime(value) - EPOCH) // dt.timedelta(microseconds=1)


# -- temporal relations (Allen's interval algebra, instants as [t, t]) ---------
Span = tuple[float, float]

TEMPORAL_RELATIONS: dict[str, Any] = {
    "t_after": lambda a, b: a[0] > b[1],
    "t_before": lambda a, b: a[1] < b[0],
    "t_contains": lambda a, b: a[0] < b[0] and a[1] > b[1],
    "t_disjoint": lambda a, b: a[0] > b[1] or a[1] < b[0],
    "t_during": lambda a, b: a[0] > b[0] and a[1] < b[1],
    "t_equals": lambda a, b: a[0] == b[0] and a[1] == b[1],
    "t_finishedby": lambda a, b: a[0] < b[0] and a[1] == b[1],
    "t_finishes": lambda a, b: a[0] > b[0] and a[1] == b[1],
    "t_intersects": lambda a, b: a[0] <= b[1] and a[1] >= b[0],
    "t_meets": lambda a, b: a[1] == b[0],
    "t_metby": lambda a, b: a[0] == b[1],
    "t_overlappedby": lambda a, b: b[0] < a[0] < b[1] < a[1],
    "t_overlaps": lambda a, b: a[0] < b[0] < a[1] < b[1],
    "t_startedby": lambda a, b: a[0] == b[0] and a[1] > b[1],
    "t_starts": lambda a, b: a[0] == b[0] and a[1] < b[1],
}

#: The same relations as SQL templates over span ends ``{a0} {a1} {b0} {b1}``, shared by
#: the PostGIS and SQLite translators (``geoservice.store.cql2_sql`` / ``cql2_sqlite``).
TEMPORAL_SQL: dict[str, str] = {
    "t_after": "{a0} > {b1}",
    "t_before": "{a1} < {b0}",
    "t_contains": "{a0} < {b0} AND {a1} > {b1}",
    "t_disjoint": "{a0} > {b1} OR {a1} < {b0}",
    "t_during": "{a0} > {b0} AND {a1} < {b1}",
    "t_equals": "{a0} = {b0} AND {a1} = {b1}",
    "t_finishedby": "{a0} < {b0} AND {a1} = {b1}",
    "t_finishes": "{a0} > {b0} AND {a1} = {b1}",
    "t_intersects": "{a0} <= {b1} AND {a1} >= {b0}",
    "t_meets": "{a1} = {b0}",
    "t_metby": "{a0} = {b1}",
    "t_overlappedby": "{b0} < {a0} AND {a0} < {b1} AND {b1} < {a1}",
    "t_overlaps": "{a0} < {b0} AND {b0} < {a1} AND {a1} < {b1}",
    "t_startedby": "{a0} = {b0} AND {a1} > {b1}",
    "t_starts": "{a0} = {b0} AND {a1} < {b1}",
}


# -- geometry ------------------------------------------------------------------
def bbox_geometry(coords: tuple[float, ...]) -> BaseGeometry:
    """A BBOX as a polygon; split in two when it crosses the antimeridian (minx > maxx)."""
    if len(coords) == 6:
        coords = (coords[0], coords[1], coords[3], coords[4])
    minx, miny, maxx, maxy = coords
    if minx > maxx:
        return shapely.MultiPolygon([box(minx, miny, 180.0, maxy), box(-180.0, miny, maxx, maxy)])
    return box(minx, miny, maxx, maxy)


def literal_geometry(node: Geometry | BBox) -> BaseGeometry:
    """The shapely geometry of a geometry or BBOX literal."""
    if isinstance(node, BBox):
        return bbox_geometry(node.coords)
    return shape(node.geojson)


# -- strings -------------------------------------------------------------------
def casei(value: str) -> str:
    """Case-fold a string (CQL2 ``CASEI``)."""
    return value.casefold()


def accenti(value: str) -> str:
    """Strip accents: NFD, drop combining marks, NFC (CQL2 ``ACCENTI``)."""
    decomposed = unicodedata.normalize("NFD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped)


@lru_cache(maxsize=1024)
def like_regex(pattern: str) -> re.Pattern[str]:
    """Compile a LIKE pattern: ``%`` any run, ``_`` one character, ``\\`` escapes the next.

    Examples
    --------
    >>> bool(like_regex("B_r%").fullmatch("Berlin")), bool(like_regex("100\\\\%").fullmatch("100%"))
    (True, True)
    """
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)
