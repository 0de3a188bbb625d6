"""Translate a CQL2 AST into a PostgreSQL/PostGIS WHERE clause with the evaluator's semantics.

The Python evaluator (``geoservice.cql2.compiler``) is the definition of what a filter
means; this module produces SQL that gives the same answer row by row, so the database can
do the work (indexes, no row shipping).  The rules that keep the two in step:

* SQL's NULL logic is the evaluator's three-valued logic (Kleene AND/OR/NOT, comparisons
  with null are unknown, only TRUE matches) - except where SQL would short-circuit a
  relation that the evaluator treats as unknown as a whole (temporal spans), which is
  guarded with an explicit ``CASE``.
* Sub-expressions without a property are evaluated *in Python, by the evaluator itself*
  and bound as parameters, so CASEI/ACCENTI of literals, literal arithmetic and geometry
  literals (BBOX across the antimeridian, ...) are exactly what the evaluator computes.
* Things SQL would raise an error on (division by zero, a negative number to a fractional
  power, a LIKE pattern ending in an escape) become NULL, as in the evaluator.
* Text is compared with ``COLLATE "C"`` (code-point order, like Python ``str``); dates
  meet timestamps as midnight UTC; instants and intervals become ``timestamptz`` spans
  with ``-infinity`` / ``infinity`` for open ends.

Anything not translatable raises :class:`Untranslatable`; the store then evaluates the
filter in Python for that query (and counts the fallback).
"""

from __future__ import annotations

import datetime as dt
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import shapely
from psycopg import sql
from shapely.geometry.base import BaseGeometry

from geoservice.cql2 import nodes as n
from geoservice.cql2.compiler import _has_property
from geoservice.cql2.nodes import Expr
from geoservice.store.cql2_base import Code, Untranslatable
from geoservice.store.cql2_base import Translator as BaseTranslator

#: an SQL fragment and its static kind: string, int, float, boolean, date, datetime, geometry
#: A translated expression (``cql2_base.Code``) over psycopg SQL.
Typed = Code[sql.Composable]
#: a temporal operand: start and end (timestamptz SQL) and the parts that may be NULL
Span = tuple[sql.Composable, sql.Composable, tuple[sql.Composable, ...]]

_COLUMN_KINDS = {
    "string": "string",
    "integer": "int",
    "number": "float",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "geometry": "geometry",
}
_NULLS = {
    "string": "NULL::text",
    "int": "NULL::numeric",
    "float": "NULL::double precision",
    "boolean": "NULL::boolean",
    "date": "NULL::date",
    "datetime": "NULL::timestamptz",
    "geometry": "NULL::geometry",
}
_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_equals": "ST_Equals",
    "s_disjoint": "ST_Disjoint",
    "s_touches": "ST_Touches",
    "s_within": "ST_Within",
    "s_overlaps": "ST_Overlaps",
    "s_crosses": "ST_Crosses",
    "s_contains": "ST_Contains",
}
_SAME_ARITH = {"+": "({a} + {b})", "-": "({a} - {b})", "*": "({a} * {b})"}
#: Integer arithmetic in ``numeric`` (no overflow; x % 0 and div by 0 are NULL).
_INT_ARITH = {**_SAME_ARITH, "%": "mod({a}, NULLIF({b}, 0))", "div": "div({a}, NULLIF({b}, 0))"}
#: The rest in double precision, as Python's float operators (errors are NULL).
_FLOAT_ARITH = {
    **_SAME_ARITH,
    "/": "({a} / NULLIF({b}, 0))",
    "div": "trunc({a} / NULLIF({b}, 0))",
    "%": "({a} - {b} * trunc({a} / NULLIF({b}, 0)))",
    "^": "(CASE WHEN ({a} = 0 AND {b} < 0) OR ({a} < 0 AND {b} <> trunc({b}))"
    " THEN NULL ELSE power({a}, {b}) END)",
}
_CMP = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_NUMERIC = {"int", "float"}
_TEMPORAL = {"date", "datetime"}
_BIGINT = (-(2**63), 2**63 - 1)


@cache
def combining_class_pattern() -> str:
    """A regex bracket expression of every code point with a non-zero combining class.

    Why: ACCENTI drops exactly these after NFD (``unicodedata.combining``); PostgreSQL's
    ``unaccent`` uses a different, table-driven rule set, so we mirror Python instead.
    """
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.combining(chr(cp)):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))

    def esc(cp: int) -> str:
        return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"

    parts = [esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges]
    return "[" + "".join(parts) + "]"


#: a noncharacter that case mapping leaves alone, holding dotless ı through upper()/lower()
_DOTLESS_STANDIN = "\ufdd0"


@cache
def casefold_table() -> tuple[str, str]:
    """``translate()`` arguments: every character whose casefold is one other character."""
    src: list[str] = []
    dst: list[str] = []
    for cp in range(1, sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        folded = ch.casefold()
        if folded != ch and len(folded) == 1:
            src.append(ch)
            dst.append(folded)
    return "".join(src), "".join(dst)


def like_pattern(pattern: str) -> str:
    """Our LIKE pattern as a PostgreSQL LIKE pattern (escape ``\\``) with the same meaning.

    Why: the evaluator reads ``\\x`` as a literal ``x`` and a trailing lone ``\\`` as a
    literal backslash, where PostgreSQL raises an error; re-escaping every literal makes
    the two agree.

    >>> like_pattern("100\\\\%_a%"), like_pattern("a\\\\")
    ('100\\\\%_a%', 'a\\\\\\\\')
    """
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            lit = next(chars, "\\")
            out.append("\\" + lit if lit in "%_\\" else lit)
        else:
            out.append(ch)  # wildcards and plain characters mean the same in both
    return "".join(out)


@dataclass
class SqlFilter:
    """A translated filter: the condition and its named parameters."""

    where: sql.Composable
    params: dict[str, Any] = field(default_factory=dict)


def _arith(template: str, a: sql.Composable, b: sql.Composable, cast: str) -> sql.Composable:
    """``template`` over ``a`` and ``b`` cast to ``cast``."""
    return sql.SQL(template).format(
        a=sql.SQL("({})::" + cast).format(a), b=sql.SQL("({})::" + cast).format(b)
    )


class Translator(BaseTranslator[sql.Composable]):
    """The PostgreSQL dialect (``cql2_base``).

    ``column(name)`` gives the SQL of a property's column; ``geometry`` the geometry
    column; ``casei_collation`` an ICU collation for locale-independent case mapping.
    """

    TRUE, FALSE = sql.SQL("TRUE"), sql.SQL("FALSE")

    def __init__(
        self,
        schema: Mapping[str, str],
        column: Callable[[str], sql.Composable],
        geometry: sql.Composable,
        casei_collation: str | None = "und-x-icu",
    ) -> None:
        super().__init__(schema)
        self.column = column
        self.geometry = geometry
        self.casei_collation = casei_collation
        self.params: dict[str, Any] = {}

    def fmt(self, template: str, **parts: sql.Composable) -> sql.Composable:
        """Fill ``{name}`` slots."""
        return sql.SQL(template).format(**parts)

    def join(self, sep: str, parts: Sequence[sql.Composable]) -> sql.Composable:
        """``parts`` joined by ``sep``."""
        return sql.SQL(sep).join(parts)

    def translate(self, expr: Expr) -> SqlFilter:
        """The WHERE condition for a filter already checked by ``compile_filter``."""
        return SqlFilter(self.condition(expr), self.params)

    # -- parameters and constants ----------------------------------------------------
    def param(self, value: Any, cast: str) -> sql.Composable:
        """Bind ``value`` as a named parameter, cast to ``cast``."""
        name = f"c{len(self.params)}"
        self.params[name] = value
        return sql.SQL("{}::" + cast).format(sql.Placeholder(name))

    def constant(self, value: Any, kind: str) -> Typed:
        """A value computed by the evaluator, as a typed SQL literal."""
        if value is None:
            return Code(sql.SQL(_NULLS.get(kind, "NULL")), kind)
        if isinstance(value, bool):
            return Code(sql.SQL("TRUE" if value else "FALSE"), "boolean")
        if isinstance(value, int):
            cast = "bigint" if _BIGINT[0] <= value <= _BIGINT[1] else "numeric"
            return Code(self.param(value, cast), "int")
        if isinstance(value, float):
            return Code(self.param(value, "double precision"), "float")
        if isinstance(value, str):
            return Code(self.param(value, "text"), "string")
        if isinstance(value, dt.datetime):
            return Code(self.param(value, "timestamptz"), "datetime")
        if isinstance(value, dt.date):
            return Code(self.param(value, "date"), "date")
        if isinstance(value, BaseGeometry):
            wkb = shapely.to_wkb(shapely.force_2d(value), flavor="iso")
            geom = sql.SQL("ST_GeomFromWKB({}, 4326)").format(self.param(wkb, "bytea"))
            return Code(geom, "geometry")
        raise Untranslatable(f"constant of type {type(value).__name__}")

    def kind_of(self, node: Expr) -> str:
        """Our kind of an expression (the evaluator's, with number split into int/float)."""
        kind = self.compiler.kind(node)
        if kind != "number":
            return kind
        return "int" if self.is_int(node) else "float"

    def is_int(self, node: Expr) -> bool:
        """Whether a numeric expression is integral (so div/% follow integer rules)."""
        if isinstance(node, n.Literal):
            return isinstance(node.value, int) and not isinstance(node.value, bool)
        if isinstance(node, n.Property):
            return self.schema.get(node.name) == "integer"
        if isinstance(node, n.Op) and node.op in ("+", "-", "*", "%", "div"):
            return all(self.is_int(a) for a in node.args)
        return False

    def prop(self, name: str) -> Typed:
        """A property as its column (the geometry name as the geometry column)."""
        stype = self.compiler.property_type(name)
        kind = _COLUMN_KINDS.get(stype)
        if kind is None:
            raise Untranslatable(f"property {name!r} of type {stype}")
        if kind == "geometry":
            return Code(self.geometry, kind)
        return Code(self.column(name), kind)

    # -- comparison ------------------------------------------------------------------------
    def compare(self, op: str, a: Typed, b: Typed) -> sql.Composable:
        """``a op b`` with the evaluator's alignment rules (dates as midnight UTC, C order)."""
        (ca, ka), (cb, kb) = (a.sql, a.kind), (b.sql, b.kind)
        if ka in _TEMPORAL and kb in _TEMPORAL and ka != kb:
            ca, cb = self.as_timestamp(a), self.as_timestamp(b)
        elif not (ka == kb or {ka, kb} <= _NUMERIC):
            raise Untranslatable(f"comparison of {ka} with {kb}")
        if ka == "string":  # code-point order, as Python compares str
            ca = sql.SQL('({} COLLATE "C")').format(ca)
            cb = sql.SQL('({} COLLATE "C")').format(cb)
        return sql.SQL("({} " + _CMP[op] + " {})").format(ca, cb)

    def like(self, node: n.Op) -> Typed:
        """LIKE with the evaluator's escapes; a literal pattern is rewritten in Python."""
        value, pattern = node.args
        v = self.string(value)
        if not _has_property(pattern):
            text = self.compiler.compile(pattern)({}, None)
            if not isinstance(text, str):
                return Code(sql.SQL("NULL::boolean"), "boolean")
            p = self.param(like_pattern(text), "text")
            return Code(sql.SQL("({} LIKE {})").format(v, p), "boolean")
        # a pattern from the data: make a trailing lone escape literal, as the evaluator does
        raw = self.string(pattern)
        fixed = sql.SQL("(CASE WHEN {} ~ {} THEN {} || {} ELSE {} END)").format(
            raw, self.param(r"(^|[^\\])(\\\\)*\\$", "text"), raw, self.param("\\", "text"), raw
        )
        return Code(sql.SQL("({} LIKE {})").format(v, fixed), "boolean")

    def casei(self, node: n.Op) -> Typed:
        """Python's ``str.casefold()`` in SQL (exact for every code point, checked by tests).

        ICU's ``lower(upper(x))`` does the full case mappings (ß -> ss); single-character
        foldings it misses (final sigma, Cherokee, ...) are finished by ``translate``;
        the two characters it over-folds (dotless ı, capital ẞ) are handled around it.
        Without an ICU collation the result would depend on the database locale, so the
        filter is evaluated in Python instead.
        """
        v = self.string(node.args[0])
        if not self.casei_collation:
            raise Untranslatable("CASEI without an ICU collation")
        src, dst = casefold_table()
        code = sql.SQL(
            "replace(translate(lower(upper(replace(replace(({} COLLATE {}), 'ẞ', 'ss'),"
            " 'ı', {}))), {}, {}), {}, 'ı') COLLATE \"C\""
        ).format(
            v,
            sql.Identifier(self.casei_collation),
            self.param(_DOTLESS_STANDIN, "text"),
            self.param(src, "text"),
            self.param(dst, "text"),
            self.param(_DOTLESS_STANDIN, "text"),
        )
        return Code(code, "string")

    def accenti(self, node: n.Op) -> Typed:
        """NFD, drop every combining mark, NFC - ``values.accenti`` step for step."""
        v = self.string(node.args[0])
        marks = self.param(combining_class_pattern(), "text")
        code = sql.SQL("normalize(regexp_replace(normalize({}, NFD), {}, '', 'g'), NFC)")
        return Code(code.format(v, marks), "string")

    def arithmetic(self, node: n.Op) -> Typed:
        """Integer maths in numeric (no overflow), the rest in double; errors become NULL."""
        (ca, ka), (cb, kb) = ((c.sql, c.kind) for c in (self.expr(a) for a in node.args))
        if not {ka, kb} <= _NUMERIC:
            raise Untranslatable(f"arithmetic on {ka} and {kb}")
        if ka == kb == "int" and node.op in _INT_ARITH:
            return Code(_arith(_INT_ARITH[node.op], ca, cb, "numeric"), "int")
        return Code(_arith(_FLOAT_ARITH[node.op], ca, cb, "double precision"), "float")

    def spatial(self, node: n.Op) -> Typed:
        """S_* as the PostGIS (GEOS) predicate of the same name; GiST-assisted."""
        (ca, ka), (cb, kb) = ((c.sql, c.kind) for c in (self.expr(a) for a in node.args))
        if ka != "geometry" or kb != "geometry":
            raise Untranslatable(f"spatial predicate on {ka} and {kb}")
        func = sql.SQL(_SPATIAL[node.op])
        return Code(sql.SQL("{}({}, {})").format(func, ca, cb), "boolean")

    def as_timestamp(self, typed: Typed) -> sql.Composable:
        """A date or timestamp as ``timestamptz`` (a date counts as its midnight UTC)."""
        code, kind = typed.sql, typed.kind
        if kind == "date":
            return sql.SQL("(({})::timestamp AT TIME ZONE 'UTC')").format(code)
        if kind == "datetime":
            return code
        raise Untranslatable(f"{kind} as an instant")

    def instant(self, node: Expr, open_end: str) -> tuple[sql.Composable, bool]:
        """One interval end (or instant) as timestamptz, and whether it can be NULL."""
        if isinstance(node, n.OpenEnd):
            return sql.SQL(f"'{open_end}'::timestamptz"), False
        typed = self.expr(node)
        return self.as_timestamp(typed), _has_property(node)

    def span(self, node: Expr) -> Span:
        """A temporal operand as (start, end, nullable parts)."""
        if isinstance(node, n.Interval):
            start, s_null = self.instant(node.start, "-infinity")
            end, e_null = self.instant(node.end, "infinity")
            nullable = tuple(p for p, null in ((start, s_null), (end, e_null)) if null)
            return start, end, nullable
        at, null = self.instant(node, "")
        return at, at, (at,) if null else ()

    def equal(self, a: Typed, b: Typed) -> sql.Composable:
        """Array element equality as the evaluator's ``any(compare(...))`` sees it: TRUE/FALSE."""
        kinds = {a.kind, b.kind}
        comparable = len(kinds) == 1 or kinds <= _NUMERIC or kinds <= _TEMPORAL
        if not comparable or "geometry" in kinds:
            return sql.SQL("FALSE")
        return sql.SQL("COALESCE({}, FALSE)").format(self.compare("=", a, b))


def translate(
    expr: Expr,
    schema: Mapping[str, str],
    column: Callable[[str], sql.Composable],
    geometry: sql.Composable,
    casei_collation: str | None = "und-x-icu",
) -> SqlFilter:
    """Translate a checked filter into SQL (raises :class:`Untranslatable` if it cannot)."""
    return Translator(schema, column, geometry, casei_collation).translate(expr)
