"""The CQL2 abstract syntax tree: small immutable dataclasses shared by both encodings.

Every operator and function call is an :class:`Op` whose ``op`` is the canonical
CQL2 JSON operator name (``"and"``, ``"="``, ``"like"``, ``"isNull"``, ``"s_intersects"``,
``"t_during"``, ``"casei"``, ``"+"``, ``"div"``, a custom function name, ...), so the
tree maps one-to-one onto CQL2 JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from geoservice.errors import InvalidParameter


class CQL2Error(InvalidParameter):
    """A CQL2 filter that cannot be parsed, type-checked or compiled (HTTP 400)."""


@dataclass(frozen=True)
class Literal:
    """A string, number or boolean literal."""

    value: str | int | float | bool


@dataclass(frozen=True)
class Property:
    """A reference to a queryable (property) by name."""

    name: str


@dataclass(frozen=True)
class DateLit:
    """``DATE('2022-04-16')``: an instant with a granularity of one day."""

    value: dt.date


@dataclass(frozen=True)
class TimestampLit:
    """``TIMESTAMP('2022-04-16T10:13:19Z')``: a time-zone aware instant (UTC if naive)."""

    value: dt.datetime


@dataclass(frozen=True)
class OpenEnd:
    """The open end ``'..'`` of an interval."""


@dataclass(frozen=True)
class Interval:
    """``INTERVAL(start, end)``; each end is a date, timestamp, open end or expression."""

    start: Expr
    end: Expr


@dataclass(frozen=True)
class Geometry:
    """A geometry literal, stored as canonical GeoJSON text (so the node stays hashable)."""

    geojson_text: str

    @classmethod
    def from_geojson(cls, obj: dict[str, Any]) -> Geometry:
        """Build from a GeoJSON geometry mapping."""
        return cls(json.dumps(obj, sort_keys=True, separators=(",", ":")))

    @property
    def geojson(self) -> dict[str, Any]:
        """The GeoJSON geometry mapping."""
        value: dict[str, Any] = json.loads(self.geojson_text)
        return value


@dataclass(frozen=True)
class BBox:
    """``BBOX(minx, miny, maxx, maxy)`` or the 6-number 3D form; minx > maxx crosses 180°."""

    coords: tuple[float, ...]


@dataclass(frozen=True)
class Array:
    """An array literal ``(a, b, c)`` / JSON list."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Op:
    """An operator or function application, named as in CQL2 JSON."""

    op: str
    args: tuple[Expr, ...]


Expr = (
    Literal | Property | DateLit | TimestampLit | OpenEnd | Interval | Geometry | BBox | Array | Op
)

COMPARISON_OPS = frozenset({"=", "<>", "<", "<=", ">", ">="})
LOGICAL_OPS = frozenset({"and", "or", "not"})
ARITHMETIC_OPS = frozenset({"+", "-", "*", "/", "%", "div", "^"})
SPATIAL_OPS = frozenset(
    {
        "s_intersects", "s_equals", "s_disjoint", "s_touches",
        "s_within", "s_overlaps", "s_crosses", "s_contains",
    }
)
TEMPORAL_OPS = frozenset(
    {
        "t_after", "t_before", "t_contains", "t_disjoint", "t_during", "t_equals",
        "t_finishedby", "t_finishes", "t_intersects", "t_meets", "t_metby",
        "t_overlappedby", "t_overlaps", "t_startedby", "t_starts",
    }
)
ARRAY_OPS = frozenset({"a_equals", "a_contains", "a_containedby", "a_overlaps"})
STRING_FUNCS = frozenset({"casei", "accenti"})
PREDICATE_OPS = frozenset({"like", "between", "in", "isNull"})
KNOWN_OPS = (
    COMPARISON_OPS | LOGICAL_OPS | ARITHMETIC_OPS | SPATIAL_OPS | TEMPORAL_OPS
    | ARRAY_OPS | STRING_FUNCS | PREDICATE_OPS
)
#: canonical spelling of every known op, keyed by its lower-case form
CANONICAL_OPS = {name.lower(): name for name in KNOWN_OPS}


def canonical_op(name: str) -> str:
    """Return the canonical CQL2 JSON spelling of an operator or function name.

    Examples
    --------
    >>> canonical_op("S_INTERSECTS"), canonical_op("ISNULL"), canonical_op("myFunc")
    ('s_intersects', 'isNull', 'myfunc')
    """
    return CANONICAL_OPS.get(name.lower(), name.lower())
