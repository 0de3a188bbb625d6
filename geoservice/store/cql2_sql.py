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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import shapely
from psycopg import sql
from shapely.geometry.base import BaseGeometry

from geoservice.cql2 import nodes as n
from geoservice.cql2.compiler import Compiler, _has_property
from geoservice.cql2.nodes import Expr
from geoservice.cql2.values import TEMPORAL_SQL

#: an SQL fragment and its static kind: string, int, float, boolean, date, datetime, geometry
Typed = tuple[sql.Composable, str]
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
_CMP = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_NUMERIC = {"int", "float"}
_TEMPORAL = {"date", "datetime"}
_BIGINT = (-(2**63), 2**63 - 1)


class Untranslatable(Exception):
    """A filter (part) with no faithful SQL translation; evaluate it in Python instead."""


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


class Translator:
    """Translate expressions over one layer (schema: queryable name -> CQL2 schema type).

    ``column(name)`` gives the SQL of a property's column; ``geometry`` the geometry
    column; ``casei_collation`` an ICU collation for locale-independent case mapping.
    """

    def __init__(
        self,
        schema: Mapping[str, str],
        column: Callable[[str], sql.Composable],
        geometry: sql.Composable,
        casei_collation: str | None = "und-x-icu",
    ) -> None:
        self.schema = dict(schema)
        self.column = column
        self.geometry = geometry
        self.casei_collation = casei_collation
        self.compiler = Compiler(schema)
        self.params: dict[str, Any] = {}

    # -- parameters and constants ----------------------------------------------------
    def param(self, value: Any, cast: str) -> sql.Composable:
        """Bind ``value`` as a named parameter, cast to ``cast``."""
        name = f"c{len(self.params)}"
        self.params[name] = value
        return sql.SQL("{}::" + cast).format(sql.Placeholder(name))

    def constant(self, value: Any, kind: str) -> Typed:
        """A value computed by the evaluator, as a typed SQL literal."""
        if value is None:
            return sql.SQL(_NULLS.get(kind, "NULL")), kind
        if isinstance(value, bool):
            return sql.SQL("TRUE" if value else "FALSE"), "boolean"
        if isinstance(value, int):
            cast = "bigint" if _BIGINT[0] <= value <= _BIGINT[1] else "numeric"
            return self.param(value, cast), "int"
        if isinstance(value, float):
            return self.param(value, "double precision"), "float"
        if isinstance(value, str):
            return self.param(value, "text"), "string"
        if isinstance(value, dt.datetime):
            return self.param(value, "timestamptz"), "datetime"
        if isinstance(value, dt.date):
            return self.param(value, "date"), "date"
        if isinstance(value, BaseGeometry):
            wkb = shapely.to_wkb(shapely.force_2d(value), flavor="iso")
            return sql.SQL("ST_GeomFromWKB({}, 4326)").format(self.param(wkb, "bytea")), "geometry"
        raise Untranslatable(f"constant of type {type(value).__name__}")

    def fold(self, node: Expr) -> Typed:
        """Evaluate a property-free expression with the evaluator and bind the result."""
        value = self.compiler.compile(node)({}, None)
        return self.constant(value, self.static_kind(node))

    def static_kind(self, node: Expr) -> str:
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

    # -- entry point -------------------------------------------------------------------
    def translate(self, expr: Expr) -> SqlFilter:
        """The WHERE condition for a filter already checked by ``compile_filter``."""
        cond, kind = self.expr(expr)
        if kind != "boolean":
            raise Untranslatable(f"a filter of kind {kind}")
        return SqlFilter(cond, self.params)

    def expr(self, node: Expr) -> Typed:
        """Translate any value expression."""
        if not isinstance(node, n.Interval | n.OpenEnd | n.Array) and not _has_property(node):
            return self.fold(node)
        if isinstance(node, n.Property):
            return self.prop(node.name)
        if isinstance(node, n.Op):
            handler = self.handler(node.op)
            return handler(node)
        raise Untranslatable(f"{type(node).__name__} outside its operator")

    def prop(self, name: str) -> Typed:
        """A property as its column (the geometry name as the geometry column)."""
        stype = self.compiler.property_type(name)
        kind = _COLUMN_KINDS.get(stype)
        if kind is None:
            raise Untranslatable(f"property {name!r} of type {stype}")
        if kind == "geometry":
            return self.geometry, kind
        return self.column(name), kind

    def handler(self, op: str) -> Callable[[n.Op], Typed]:
        """The method translating one operator family."""
        if op in n.LOGICAL_OPS:
            return self.logical
        if op in n.COMPARISON_OPS:
            return self.comparison
        table: dict[str, Callable[[n.Op], Typed]] = {
            "like": self.like,
            "between": self.between,
            "in": self.in_list,
            "isNull": self.is_null,
            "casei": self.casei,
            "accenti": self.accenti,
        }
        if op in table:
            return table[op]
        if op in n.ARITHMETIC_OPS:
            return self.arithmetic
        if op in n.SPATIAL_OPS:
            return self.spatial
        if op in n.TEMPORAL_OPS:
            return self.temporal_op
        if op in n.ARRAY_OPS:
            return self.array_op
        raise Untranslatable(f"operator {op!r}")

    # -- logic and comparison ------------------------------------------------------------
    def logical(self, node: n.Op) -> Typed:
        """AND / OR / NOT: SQL's are Kleene's, as in ``tri_and`` / ``tri_or``."""
        parts = [self.boolean(a) for a in node.args]
        if node.op == "not":
            return sql.SQL("(NOT {})").format(parts[0]), "boolean"
        joiner = sql.SQL(" AND " if node.op == "and" else " OR ")
        return sql.SQL("({})").format(joiner.join(parts)), "boolean"

    def boolean(self, node: Expr) -> sql.Composable:
        """An operand that must be a predicate."""
        code, kind = self.expr(node)
        if kind != "boolean":
            raise Untranslatable(f"{kind} where a boolean is needed")
        return code

    def compare(self, op: str, a: Typed, b: Typed) -> sql.Composable:
        """``a op b`` with the evaluator's alignment rules (dates as midnight UTC, C order)."""
        (ca, ka), (cb, kb) = a, b
        if ka in _TEMPORAL and kb in _TEMPORAL and ka != kb:
            ca, cb = self.as_timestamp(a), self.as_timestamp(b)
        elif not (ka == kb or {ka, kb} <= _NUMERIC):
            raise Untranslatable(f"comparison of {ka} with {kb}")
        if ka == "string":  # code-point order, as Python compares str
            ca = sql.SQL('({} COLLATE "C")').format(ca)
            cb = sql.SQL('({} COLLATE "C")').format(cb)
        return sql.SQL("({} " + _CMP[op] + " {})").format(ca, cb)

    def comparison(self, node: n.Op) -> Typed:
        """``=``, ``<>``, ``<`` ... between any two comparable expressions."""
        left, right = (self.expr(a) for a in node.args)
        return self.compare(node.op, left, right), "boolean"

    def between(self, node: n.Op) -> Typed:
        """BETWEEN as ``x >= lo AND x <= hi`` (the evaluator's three-valued rule)."""
        x, lo, hi = (self.expr(a) for a in node.args)
        low, high = self.compare(">=", x, lo), self.compare("<=", x, hi)
        return sql.SQL("({} AND {})").format(low, high), "boolean"

    def in_list(self, node: n.Op) -> Typed:
        """IN as an OR of equalities: unknown when nothing matched but a null took part."""
        value, items = node.args
        if not isinstance(items, n.Array):
            raise Untranslatable("IN without a list")
        v = self.expr(value)
        hits = [self.compare("=", v, self.expr(i)) for i in items.items]
        if not hits:
            raise Untranslatable("empty IN list")
        return sql.SQL("({})").format(sql.SQL(" OR ").join(hits)), "boolean"

    def is_null(self, node: n.Op) -> Typed:
        """IS NULL; a literal list is never null, an interval is when an end is."""
        arg = node.args[0]
        if isinstance(arg, n.Array):
            return sql.SQL("FALSE"), "boolean"
        if isinstance(arg, n.Interval):
            start, end, nullable = self.span(arg)
            if not nullable:
                return sql.SQL("FALSE"), "boolean"
            checks = [sql.SQL("{} IS NULL").format(p) for p in nullable]
            return sql.SQL("({})").format(sql.SQL(" OR ").join(checks)), "boolean"
        code, _ = self.expr(arg)
        return sql.SQL("({} IS NULL)").format(code), "boolean"

    # -- strings -------------------------------------------------------------------------
    def string(self, node: Expr) -> sql.Composable:
        """An operand that must be text."""
        code, kind = self.expr(node)
        if kind != "string":
            raise Untranslatable(f"{kind} where a string is needed")
        return code

    def like(self, node: n.Op) -> Typed:
        """LIKE with the evaluator's escapes; a literal pattern is rewritten in Python."""
        value, pattern = node.args
        v = self.string(value)
        if not _has_property(pattern):
            text = self.compiler.compile(pattern)({}, None)
            if not isinstance(text, str):
                return sql.SQL("NULL::boolean"), "boolean"
            p = self.param(like_pattern(text), "text")
            return sql.SQL("({} LIKE {})").format(v, p), "boolean"
        # a pattern from the data: make a trailing lone escape literal, as the evaluator does
        raw = self.string(pattern)
        fixed = sql.SQL("(CASE WHEN {} ~ {} THEN {} || {} ELSE {} END)").format(
            raw, self.param(r"(^|[^\\])(\\\\)*\\$", "text"), raw, self.param("\\", "text"), raw
        )
        return sql.SQL("({} LIKE {})").format(v, fixed), "boolean"

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
        return code, "string"

    def accenti(self, node: n.Op) -> Typed:
        """NFD, drop every combining mark, NFC - ``values.accenti`` step for step."""
        v = self.string(node.args[0])
        marks = self.param(combining_class_pattern(), "text")
        code = sql.SQL("normalize(regexp_replace(normalize({}, NFD), {}, '', 'g'), NFC)")
        return code.format(v, marks), "string"

    # -- arithmetic ------------------------------------------------------------------------
    def arithmetic(self, node: n.Op) -> Typed:
        """Integer maths in numeric (no overflow), the rest in double; errors become NULL."""
        (ca, ka), (cb, kb) = (self.expr(a) for a in node.args)
        if not {ka, kb} <= _NUMERIC:
            raise Untranslatable(f"arithmetic on {ka} and {kb}")
        ints = ka == kb == "int"
        op = node.op
        fmt: dict[str, sql.Composable] = {}
        if ints and op in ("+", "-", "*", "%", "div"):
            fmt = {
                "a": sql.SQL("({})::numeric").format(ca),
                "b": sql.SQL("({})::numeric").format(cb),
            }
            code = {
                "+": "({a} + {b})",
                "-": "({a} - {b})",
                "*": "({a} * {b})",
                "%": "mod({a}, NULLIF({b}, 0))",
                "div": "div({a}, NULLIF({b}, 0))",
            }[op]
            return sql.SQL(code).format(**fmt), "int"
        fmt = {
            "a": sql.SQL("({})::double precision").format(ca),
            "b": sql.SQL("({})::double precision").format(cb),
        }
        code = {
            "+": "({a} + {b})",
            "-": "({a} - {b})",
            "*": "({a} * {b})",
            "/": "({a} / NULLIF({b}, 0))",
            "div": "trunc({a} / NULLIF({b}, 0))",
            "%": "({a} - {b} * trunc({a} / NULLIF({b}, 0)))",
            "^": "(CASE WHEN ({a} = 0 AND {b} < 0) OR ({a} < 0 AND {b} <> trunc({b}))"
            " THEN NULL ELSE power({a}, {b}) END)",
        }[op]
        return sql.SQL(code).format(**fmt), "float"

    # -- spatial ---------------------------------------------------------------------------
    def spatial(self, node: n.Op) -> Typed:
        """S_* as the PostGIS (GEOS) predicate of the same name; GiST-assisted."""
        (ca, ka), (cb, kb) = (self.expr(a) for a in node.args)
        if ka != "geometry" or kb != "geometry":
            raise Untranslatable(f"spatial predicate on {ka} and {kb}")
        func = sql.SQL(_SPATIAL[node.op])
        return sql.SQL("{}({}, {})").format(func, ca, cb), "boolean"

    # -- temporal --------------------------------------------------------------------------
    def as_timestamp(self, typed: Typed) -> sql.Composable:
        """A date or timestamp as ``timestamptz`` (a date counts as its midnight UTC)."""
        code, kind = typed
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

    def temporal_op(self, node: n.Op) -> Typed:
        """T_*: the relation on spans, NULL (not FALSE) when any span part is NULL."""
        a0, a1, an = self.span(node.args[0])
        b0, b1, bn = self.span(node.args[1])
        rel = sql.SQL(TEMPORAL_SQL[node.op]).format(a0=a0, a1=a1, b0=b0, b1=b1)
        nullable = [sql.SQL("{} IS NULL").format(p) for p in (*an, *bn)]
        if not nullable:
            return sql.SQL("({})").format(rel), "boolean"
        guard = sql.SQL(" OR ").join(nullable)
        return sql.SQL("(CASE WHEN {} THEN NULL ELSE ({}) END)").format(guard, rel), "boolean"

    # -- arrays ----------------------------------------------------------------------------
    def items(self, node: Expr) -> list[Typed]:
        """The items of a literal list (array properties do not exist in our stores)."""
        if not isinstance(node, n.Array):
            raise Untranslatable("an array that is not a literal list")
        out = []
        for item in node.items:
            if isinstance(item, n.Array):
                raise Untranslatable("nested arrays")
            out.append(self.expr(item))
        return out

    def equal(self, a: Typed, b: Typed) -> sql.Composable:
        """Array element equality as the evaluator's ``any(compare(...))`` sees it: TRUE/FALSE."""
        kinds = {a[1], b[1]}
        comparable = len(kinds) == 1 or kinds <= _NUMERIC or kinds <= _TEMPORAL
        if not comparable or "geometry" in kinds:
            return sql.SQL("FALSE")
        return sql.SQL("COALESCE({}, FALSE)").format(self.compare("=", a, b))

    def contains_all(self, container: list[Typed], items: list[Typed]) -> sql.Composable:
        """Every item equals some element of the container (``_contains_all``)."""
        if not items:
            return sql.SQL("TRUE")
        if not container:
            return sql.SQL("FALSE")
        each = [
            sql.SQL("({})").format(sql.SQL(" OR ").join(self.equal(x, y) for y in container))
            for x in items
        ]
        return sql.SQL("({})").format(sql.SQL(" AND ").join(each))

    def array_op(self, node: n.Op) -> Typed:
        """A_* relations, expanded element by element; never NULL, like the evaluator."""
        a, b = self.items(node.args[0]), self.items(node.args[1])
        if node.op == "a_contains":
            return self.contains_all(a, b), "boolean"
        if node.op == "a_containedby":
            return self.contains_all(b, a), "boolean"
        if node.op == "a_overlaps":
            if not a or not b:
                return sql.SQL("FALSE"), "boolean"
            hits = [self.equal(x, y) for x in a for y in b]
            return sql.SQL("({})").format(sql.SQL(" OR ").join(hits)), "boolean"
        if len(a) != len(b):
            return sql.SQL("FALSE"), "boolean"
        both = sql.SQL("({} AND {})").format(self.contains_all(a, b), self.contains_all(b, a))
        return both, "boolean"


def translate(
    expr: Expr,
    schema: Mapping[str, str],
    column: Callable[[str], sql.Composable],
    geometry: sql.Composable,
    casei_collation: str | None = "und-x-icu",
) -> SqlFilter:
    """Translate a checked filter into SQL (raises :class:`Untranslatable` if it cannot)."""
    return Translator(schema, column, geometry, casei_collation).translate(expr)
