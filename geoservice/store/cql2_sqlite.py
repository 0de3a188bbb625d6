"""Translate a CQL2 AST into an SQLite WHERE fragment with the evaluator's semantics.

The Python evaluator (``geoservice.cql2.compiler``) defines what a filter means; this
module produces SQL for the GeoPackage store (plain ``sqlite3``, alias ``t``) that selects
exactly the rows the evaluator accepts, so SQLite can count and page without building
every row in Python.  The rules that keep the two in step:

* SQLite's AND / OR / NOT and NULL comparisons are Kleene's three-valued logic, as in
  ``tri_and`` / ``tri_or``; a row matches only where the condition is TRUE.
* Sub-expressions without a property are evaluated *in Python, by the evaluator itself*
  and bound as parameters (CASEI of a literal, literal arithmetic, geometry literals).
* Text compares with SQLite's default BINARY collation: UTF-8 byte order is code-point
  order, which is how Python orders ``str``.  Numbers compare numerically (SQLite
  compares INTEGER with REAL exactly, as Python does).  Booleans are stored as 0/1.
* Everything whose SQL meaning could drift from Python calls a registered deterministic
  function that runs the evaluator's own code: CASEI / ACCENTI folding, dates and
  timestamps as the evaluator's instant keys (stored timestamps with and without
  milliseconds do not sort as text), arithmetic, spatial predicates on decoded
  geometries, LIKE with a pattern taken from the data.  A literal LIKE pattern becomes
  a case-sensitive GLOB (SQLite's LIKE folds ASCII case), with the function as the
  fallback for values containing NUL, where GLOB stops reading.
* A result SQL cannot hold (an integer beyond 64 bits, NaN) makes the function raise;
  the store then re-runs the query on the Python path (see :data:`FUNCTION_ERROR`).

Anything not translatable raises :class:`Untranslatable`; the store evaluates the filter
in Python for that query (and counts the fallback).
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geoservice.cql2 import nodes as n
from geoservice.cql2.compiler import SWAPPED, _has_property, _like
from geoservice.cql2.nodes import Expr
from geoservice.cql2.operators import arithmetic
from geoservice.cql2.values import (
    accenti,
    casei,
    coerce_date,
    coerce_datetime,
    instant_key,
)
from geoservice.store import gpkg_geom
from geoservice.store.cql2_base import Code, Untranslatable
from geoservice.store.cql2_base import Translator as BaseTranslator

#: how sqlite3 reports an exception raised inside a registered function
FUNCTION_ERROR = "user-defined function raised exception"
_INT64 = (-(2**63), 2**63 - 1)
_TEMPORAL = {"date", "datetime"}
_KEY_FUNCTION = {"date": "cql2_date_key", "datetime": "cql2_datetime_key"}
_COLUMN_KINDS = {
    "string": "string",
    "integer": "number",
    "number": "number",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "geometry": "geometry",
}


class Unrepresentable(ValueError):
    """Raised inside a registered function for a value SQLite cannot hold exactly."""


# -- SQL fragments ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sql:
    """An SQL fragment with its ``?`` parameters, in the order they appear in the text.

    Why not named parameters: the store appends this to conditions that use ``?``, and
    sqlite3 takes one parameter style per statement.
    """

    text: str
    params: tuple[Any, ...] = ()


def fmt(template: str, **parts: Sql) -> Sql:
    """Fill ``{name}`` slots (a slot may repeat) keeping the parameters in text order."""
    out: list[str] = []
    params: list[Any] = []
    rest = template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        name, _, rest = tail.partition("}")
        part = parts[name]
        out.append(head + part.text)
        params.extend(part.params)
    out.append(rest)
    return Sql("".join(out), tuple(params))


def join(sep: str, parts: list[Sql]) -> Sql:
    """``parts`` joined by ``sep`` (text without parameters)."""
    return Sql(sep.join(p.text for p in parts), tuple(v for p in parts for v in p.params))


def bind(value: Any) -> Sql:
    """One parameter."""
    return Sql("?", (value,))


TRUE, FALSE, NULL = Sql("1"), Sql("0"), Sql("NULL")


@dataclass(frozen=True, slots=True)
class SqliteFilter:
    """A translated filter: a condition on alias ``t`` and its ``?`` parameters."""

    where: str
    params: tuple[Any, ...]


# -- registered functions (the evaluator's own code, called from SQL) -----------------------


def _sql_number(value: Any) -> Any:
    """A number as SQLite can hold it exactly, else raise (the store then uses Python)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not _INT64[0] <= value <= _INT64[1]:
            raise Unrepresentable(f"integer {value} beyond 64 bits")
    elif isinstance(value, float) and math.isnan(value):
        raise Unrepresentable("NaN")
    return value


def _tri(value: bool | None) -> int | None:
    return None if value is None else int(value)


def sql_casei(value: Any) -> str | None:
    """``CASEI`` as the evaluator applies it (non-text is unknown)."""
    return casei(value) if isinstance(value, str) else None


def sql_accenti(value: Any) -> str | None:
    """``ACCENTI`` as the evaluator applies it (non-text is unknown)."""
    return accenti(value) if isinstance(value, str) else None


def sql_like(value: Any, pattern: Any) -> int | None:
    """LIKE through the evaluator's own regex (pattern from the data, or a value with NUL)."""
    return _tri(_like(value, pattern))


@lru_cache(maxsize=65536)
def _date_key(text: str) -> int | None:
    day = coerce_date(text)
    return None if day is None else instant_key(day)


@lru_cache(maxsize=65536)
def _datetime_key(text: str) -> int | None:
    when = coerce_datetime(text)
    return None if when is None else instant_key(when)


def sql_date_key(value: Any) -> int | None:
    """A stored ``date`` value as the evaluator's instant key (NULL where it reads null).

    Memoised on text: the COUNT and the page statement of one query meet the same values.
    """
    if isinstance(value, str):
        return _date_key(value)
    day = coerce_date(value)
    return None if day is None else instant_key(day)


def sql_datetime_key(value: Any) -> int | None:
    """A stored ``datetime`` value as the evaluator's instant key (memoised on text)."""
    if isinstance(value, str):
        return _datetime_key(value)
    when = coerce_datetime(value)
    return None if when is None else instant_key(when)


def sql_arith(op: str, a: Any, b: Any) -> Any:
    """The evaluator's arithmetic; raises when the result does not fit SQLite."""
    return _sql_number(arithmetic(op, a, b))


@lru_cache(maxsize=64)
def _literal_geometry(wkb: bytes) -> BaseGeometry:
    geom = shapely.from_wkb(wkb)
    shapely.prepare(geom)
    return geom


_SPATIAL_FUNCS = {op[2:]: getattr(shapely, op[2:]) for op in n.SPATIAL_OPS}


#: blobs up to this size (points, small shapes) have their predicate results memoised
_MEMO_BLOB = 512


def _spatial(name: str, literal_wkb: bytes, blob: bytes) -> int:
    return int(bool(_SPATIAL_FUNCS[name](_literal_geometry(literal_wkb), gpkg_geom.decode(blob))))


_spatial_memo = lru_cache(maxsize=16384)(_spatial)


def sql_spatial(name: str, literal_wkb: bytes, blob: bytes | None) -> int | None:
    """``shapely.<name>(literal, geometry)`` as the evaluator calls it (prepared literal).

    Decoding WKB dominates; a query's COUNT and page statements (and repeated queries)
    test the same small blobs again, so those results are memoised (bounded memory).
    """
    if blob is None:
        return None
    if len(blob) <= _MEMO_BLOB:
        return _spatial_memo(name, literal_wkb, bytes(blob))
    return _spatial(name, literal_wkb, blob)


@lru_cache(maxsize=64)
def _box(minx: float, miny: float, maxx: float, maxy: float) -> BaseGeometry:
    box = shapely.box(minx, miny, maxx, maxy)
    shapely.prepare(box)
    return box


def sql_intersects_box(
    blob: bytes | None, minx: float, miny: float, maxx: float, maxy: float
) -> int:
    """The exact ``bbox=`` test of ``filtering.compile_query`` (no geometry: no match)."""
    geom = gpkg_geom.decode(blob)
    return int(geom is not None and _box(minx, miny, maxx, maxy).intersects(geom))


FUNCTIONS: tuple[tuple[str, int, Callable[..., Any]], ...] = (
    ("cql2_casei", 1, sql_casei),
    ("cql2_accenti", 1, sql_accenti),
    ("cql2_like", 2, sql_like),
    ("cql2_date_key", 1, sql_date_key),
    ("cql2_datetime_key", 1, sql_datetime_key),
    ("cql2_arith", 3, sql_arith),
    ("cql2_spatial", 3, sql_spatial),
    ("cql2_intersects_box", 5, sql_intersects_box),
)


def register_functions(con: sqlite3.Connection) -> None:
    """Register the functions translated filters call (on every connection)."""
    for name, arity, func in FUNCTIONS:
        con.create_function(name, arity, func, deterministic=True)


# -- LIKE as GLOB ---------------------------------------------------------------------------


def _glob_literal(ch: str) -> str:
    return f"[{ch}]" if ch in "*?[" else ch


def like_to_glob(pattern: str) -> str:
    """A LIKE pattern (``%``, ``_``, ``\\`` escapes) as the GLOB with the same matches.

    Why GLOB: it is case-sensitive like the evaluator's LIKE and matches ``?`` against one
    code point; SQLite's LIKE folds ASCII case.  A trailing lone ``\\`` is literal.

    >>> like_to_glob("B_r%"), like_to_glob("100\\\\%*"), like_to_glob("a[b]\\\\")
    ('B?r*', '100%[*]', 'a[[]b]\\\\')
    """
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(_glob_literal(next(chars, "\\")))
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        else:
            out.append(_glob_literal(ch))
    return "".join(out)


# -- the translator ---------------------------------------------------------------------------


class Translator(BaseTranslator[Sql]):
    """The SQLite dialect (``cql2_base``): ``column(name)`` gives the SQL of a property's
    column; ``geometry`` the blob column."""

    TRUE, FALSE = TRUE, FALSE

    def __init__(
        self,
        schema: Mapping[str, str],
        column: Callable[[str], str],
        geometry: str = "t.geom",
    ) -> None:
        super().__init__(schema)
        self.column = column
        self.geometry = geometry

    def fmt(self, template: str, **parts: Sql) -> Sql:
        """Fill ``{name}`` slots keeping the ``?`` parameters in text order."""
        return fmt(template, **parts)

    def join(self, sep: str, parts: Sequence[Sql]) -> Sql:
        """``parts`` joined by ``sep``."""
        return join(sep, list(parts))

    def translate(self, expr: Expr) -> SqliteFilter:
        """The WHERE condition for a filter already checked by ``compile_filter``."""
        cond = self.condition(expr)
        return SqliteFilter(cond.text, cond.params)

    # -- constants and columns --------------------------------------------------------------
    def constant(self, value: Any, kind: str) -> Code[Sql]:
        """A value computed by the evaluator as a bound parameter of the same meaning."""
        if value is None:
            return Code(NULL, kind)
        if isinstance(value, bool):
            return Code(TRUE if value else FALSE, "boolean", value)
        if isinstance(value, int | float):
            try:
                return Code(bind(_sql_number(value)), "number", value)
            except Unrepresentable as exc:
                raise Untranslatable(str(exc)) from None
        if isinstance(value, str):
            return Code(bind(value), "string", value)
        if isinstance(value, dt.datetime):
            return Code(bind(instant_key(value)), "datetime", value)
        if isinstance(value, dt.date):
            return Code(bind(instant_key(value)), "date", value)
        if isinstance(value, BaseGeometry):
            return Code(bind(shapely.to_wkb(value)), "geometry", value)
        raise Untranslatable(f"constant of type {type(value).__name__}")


    def prop(self, name: str) -> Code[Sql]:
        """A property: its column, dates and timestamps as the evaluator's instant keys."""
        stype = self.compiler.property_type(name)
        kind = _COLUMN_KINDS.get(stype)
        if kind is None:
            raise Untranslatable(f"property {name!r} of type {stype}")
        if kind == "geometry":
            return Code(Sql(self.geometry), kind)
        col = self.column(name)
        if kind in _KEY_FUNCTION:
            return Code(Sql(f"{_KEY_FUNCTION[kind]}({col})"), kind)
        return Code(Sql(col), kind)


    def compare(self, op: str, a: Code[Sql], b: Code[Sql]) -> Sql:
        """``a op b`` for kinds the evaluator compares (temporal ones as instant keys)."""
        same = a.kind == b.kind or {a.kind, b.kind} <= _TEMPORAL
        if not same or a.kind == "geometry":
            raise Untranslatable(f"comparison of {a.kind} with {b.kind}")
        return fmt("({a} " + op + " {b})", a=a.sql, b=b.sql)


    def like(self, node: n.Op) -> Code[Sql]:
        """LIKE: a literal pattern as GLOB (NUL-safe), a pattern from the data in Python."""
        value, pattern = node.args
        v = self.string(value)
        if _has_property(pattern):
            return Code(fmt("cql2_like({v}, {p})", v=v, p=self.string(pattern)), "boolean")
        text = self.compiler.compile(pattern)({}, None)
        if not isinstance(text, str):
            return Code(NULL, "boolean")
        if "\x00" in text:
            return Code(fmt("cql2_like({v}, {p})", v=v, p=bind(text)), "boolean")
        code = fmt(
            "(CASE WHEN instr({v}, char(0)) > 0 THEN cql2_like({v}, {p}) ELSE {v} GLOB {g} END)",
            v=v,
            p=bind(text),
            g=bind(like_to_glob(text)),
        )
        return Code(code, "boolean")


    def string_func(self, node: n.Op) -> Code[Sql]:
        """CASEI / ACCENTI through the evaluator's own folding."""
        v = self.string(node.args[0])
        return Code(fmt(f"cql2_{node.op}({{v}})", v=v), "string")


    def arithmetic(self, node: n.Op) -> Code[Sql]:
        """Arithmetic through the evaluator (integer overflow, div, %, ^ as in Python)."""
        a, b = (self.expr(x) for x in node.args)
        if a.kind != "number" or b.kind != "number":
            raise Untranslatable(f"arithmetic on {a.kind} and {b.kind}")
        return Code(fmt("cql2_arith({op}, {a}, {b})", op=bind(node.op), a=a.sql, b=b.sql), "number")


    def spatial(self, node: n.Op) -> Code[Sql]:
        """S_* between a literal and the geometry, argument order as the evaluator's."""
        left, right = node.args
        name = node.op[2:]
        if not _has_property(right) and _has_property(left):
            left, right, name = right, left, SWAPPED.get(name, name)
        if _has_property(left) or not isinstance(right, n.Property):
            raise Untranslatable("a spatial predicate not between a literal and the geometry")
        lit, geom = self.expr(left), self.expr(right)
        if geom.kind != "geometry" or lit.kind != "geometry":
            raise Untranslatable(f"spatial predicate on {lit.kind} and {geom.kind}")
        if lit.value is None:
            return Code(NULL, "boolean")
        code = fmt("cql2_spatial({name}, {lit}, {g})", name=bind(name), lit=lit.sql, g=geom.sql)
        return Code(code, "boolean")


    def instant(self, node: Expr, open_end: float) -> tuple[Sql, bool]:
        """One interval end (or instant) as an instant key, and whether it can be NULL."""
        if isinstance(node, n.OpenEnd):
            return bind(open_end), False
        code = self.expr(node)
        if code.kind not in _TEMPORAL:
            raise Untranslatable(f"{code.kind} as an instant")
        return code.sql, code.value is None


    def span(self, node: Expr) -> tuple[Sql, Sql, list[Sql]]:
        """A temporal operand as (start, end, the parts that may be NULL)."""
        if isinstance(node, n.Interval):
            start, s_null = self.instant(node.start, float("-inf"))
            end, e_null = self.instant(node.end, float("inf"))
            nullable = [p for p, null in ((start, s_null), (end, e_null)) if null]
            return start, end, nullable
        at, null = self.instant(node, 0.0)
        return at, at, [at] if null else []


    def equal(self, a: Code[Sql], b: Code[Sql]) -> Sql:
        """Element equality as ``any(compare("=", ...))`` sees it: TRUE or FALSE."""
        if not (a.kind == b.kind or {a.kind, b.kind} <= _TEMPORAL):
            return FALSE  # str = number is False, bool vs other is unknown: never a hit
        return fmt("COALESCE({x}, 0)", x=self.compare("=", a, b))

    def casei(self, node: n.Op) -> Code[Sql]:
        """CASEI through the evaluator's own folding."""
        return self.string_func(node)

    def accenti(self, node: n.Op) -> Code[Sql]:
        """ACCENTI through the evaluator's own folding."""
        return self.string_func(node)


def translate(
    expr: Expr, schema: Mapping[str, str], column: Callable[[str], str], geometry: str = "t.geom"
) -> SqliteFilter:
    """Translate a checked filter into SQLite (raises :class:`Untranslatable` if it cannot)."""
    return Translator(schema, column, geometry).translate(expr)
