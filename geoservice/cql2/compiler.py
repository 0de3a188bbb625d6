"""Type-check a CQL2 AST against a schema and compile it into a fast Python predicate."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geoservice.cql2 import nodes as n
from geoservice.cql2.nodes import CQL2Error, Expr
from geoservice.cql2.operators import (
    Tri,
    arithmetic,
    array_relation,
    compare,
    tri_and,
    tri_in,
    tri_or,
)
from geoservice.cql2.values import (
    TEMPORAL_RELATIONS,
    accenti,
    casei,
    coerce_date,
    coerce_datetime,
    instant_key,
    like_regex,
    literal_geometry,
)

Props = Mapping[str, Any]
Fn = Callable[[Props, BaseGeometry | None], Any]
Predicate = Callable[[Props, BaseGeometry | None], bool]
SCHEMA_TYPES = ("string", "integer", "number", "boolean", "date", "datetime", "geometry", "array")
KIND_OF_SCHEMA = {"integer": "number", "number": "number"}
TEMPORAL_KINDS = {"date", "datetime", "interval"}
#: ops with a fixed number of arguments
ARITY = {
    **{op: 2 for op in n.COMPARISON_OPS | n.ARITHMETIC_OPS | n.SPATIAL_OPS},
    **{op: 2 for op in n.TEMPORAL_OPS | n.ARRAY_OPS},
    "like": 2, "between": 3, "in": 2, "isNull": 1, "not": 1, "casei": 1, "accenti": 1,
}
#: predicate(geom, literal) rewritten as predicate'(literal, geom) so the literal is prepared
SWAPPED = {"within": "contains", "contains": "within"}
SUPPORTED = (
    "casei, accenti, s_* spatial, t_* temporal and a_* array functions, "
    "plus and, or, not, comparisons, like, between, in, isNull and arithmetic operators"
)


def _describe(node: Expr) -> str:
    from geoservice.cql2.json_codec import to_json

    text = json.dumps(to_json(node), ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _constant(value: Any) -> Fn:
    return lambda p, g: value


def _has_property(node: Expr) -> bool:
    if isinstance(node, n.Property):
        return True
    if isinstance(node, n.Op):
        return any(_has_property(a) for a in node.args)
    if isinstance(node, n.Array):
        return any(_has_property(a) for a in node.items)
    if isinstance(node, n.Interval):
        return _has_property(node.start) or _has_property(node.end)
    return False


class Compiler:
    """Compile expressions against ``schema`` (property name -> CQL2 schema type)."""

    def __init__(self, schema: Mapping[str, str]) -> None:
        self.schema = dict(schema)

    # -- static types --------------------------------------------------------
    def kind(self, node: Expr) -> str:
        """The static kind of an expression (``any`` if only known at run time)."""
        if isinstance(node, n.Literal):
            if isinstance(node.value, bool):
                return "boolean"
            return "string" if isinstance(node.value, str) else "number"
        if isinstance(node, n.Property):
            stype = self.property_type(node.name)
            return KIND_OF_SCHEMA.get(stype, stype if stype in SCHEMA_TYPES else "any")
        simple = {
            n.DateLit: "date", n.TimestampLit: "datetime", n.Interval: "interval",
            n.Geometry: "geometry", n.BBox: "geometry", n.Array: "array", n.OpenEnd: "open",
        }
        if type(node) in simple:
            return simple[type(node)]
        assert isinstance(node, n.Op)
        if node.op not in n.KNOWN_OPS:
            raise CQL2Error(f"unknown function {node.op!r}; supported are: {SUPPORTED}")
        if node.op in n.STRING_FUNCS:
            return "string"
        return "number" if node.op in n.ARITHMETIC_OPS else "boolean"

    def property_type(self, name: str) -> str:
        if name not in self.schema:
            queryables = ", ".join(sorted(self.schema)) or "(none)"
            raise CQL2Error(f"unknown property {name!r}; queryables are: {queryables}")
        return self.schema[name]

    def expect(self, node: Expr, kinds: set[str], role: str) -> None:
        kind = self.kind(node)
        if kind != "any" and kind not in kinds:
            raise CQL2Error(
                f"{role} must be {' or '.join(sorted(kinds))}, got {kind} in {_describe(node)}"
            )

    def check_comparable(self, op: str, left: Expr, right: Expr) -> None:
        kinds = {self.kind(left), self.kind(right)} - {"any"}
        groups = {"date": "temporal", "datetime": "temporal"}
        found = {groups.get(k, k) for k in kinds}
        if found - {"string", "number", "boolean", "temporal"} or len(found) > 1:
            raise CQL2Error(
                f"cannot compare {' with '.join(sorted(kinds))} using {op!r} in "
                f"{_describe(n.Op(op, (left, right)))}; compare strings, numbers, booleans, "
                "or dates/timestamps (use DATE('...') / TIMESTAMP('...') literals)"
            )

    # -- compile -----------------------------------------------------------
    def compile(self, node: Expr) -> Fn:
        """Compile any expression node to a closure ``f(properties, geometry)``."""
        if isinstance(node, n.Op):
            fn = self.compile_op(node)
            if not _has_property(node):
                return _constant(fn({}, None))
            return fn
        if isinstance(node, n.Property):
            return self.getter(node.name)
        if isinstance(node, n.Literal):
            return _constant(node.value)
        if isinstance(node, n.DateLit | n.TimestampLit):
            return _constant(node.value)
        if isinstance(node, n.Geometry | n.BBox):
            geom = literal_geometry(node)
            shapely.prepare(geom)
            return _constant(geom)
        if isinstance(node, n.Array):
            items = [self.compile(i) for i in node.items]
            return lambda p, g: [f(p, g) for f in items]
        if isinstance(node, n.Interval):
            return self.temporal(node)
        raise CQL2Error("'..' (an open interval end) is only allowed inside INTERVAL(...)")

    def getter(self, name: str) -> Fn:
        stype = self.property_type(name)
        if stype == "geometry":
            return lambda p, g: g
        if stype == "date":
            return lambda p, g: coerce_date(p.get(name))
        if stype == "datetime":
            return lambda p, g: coerce_datetime(p.get(name))
        return lambda p, g: p.get(name)

    def compile_op(self, node: n.Op) -> Fn:
        op, args = node.op, node.args
        expected = ARITY.get(op)
        if expected is not None and len(args) != expected:
            raise CQL2Error(f"{op!r} takes {expected} argument(s), got {len(args)}")
        for family, method in self.FAMILIES:
            if op in family:
                handler: Callable[[Compiler, n.Op], Fn] = method
                return handler(self, node)
        raise CQL2Error(f"unknown function {op!r}; supported are: {SUPPORTED}")

    # -- families ----------------------------------------------------------
    def logical(self, node: n.Op) -> Fn:
        if node.op != "not" and len(node.args) < 2:
            raise CQL2Error(f"{node.op!r} takes at least 2 arguments")
        for arg in node.args:
            self.expect(arg, {"boolean"}, f"an operand of {node.op.upper()}")
        fns = [self.compile(a) for a in node.args]
        if node.op == "not":
            inner = fns[0]
            return lambda p, g: None if (v := inner(p, g)) is None else not v
        combine = tri_and if node.op == "and" else tri_or

        def run(p: Props, g: BaseGeometry | None) -> Tri:
            return combine([partial(f, p, g) for f in fns])

        return run

    def comparison(self, node: n.Op) -> Fn:
        left, right = node.args
        self.check_comparable(node.op, left, right)
        fa, fb, op = self.compile(left), self.compile(right), node.op
        return lambda p, g: compare(op, fa(p, g), fb(p, g))

    def like(self, node: n.Op) -> Fn:
        value, pattern = node.args
        self.expect(value, {"string"}, "the left side of LIKE")
        self.expect(pattern, {"string"}, "a LIKE pattern")
        fv, fp = self.compile(value), self.compile(pattern)
        if not _has_property(pattern):
            text = fp({}, None)
            if not isinstance(text, str):
                return _constant(None)
            rx = like_regex(text)
            return lambda p, g: None if not isinstance(v := fv(p, g), str) else bool(
                rx.fullmatch(v)
            )
        return lambda p, g: _like(fv(p, g), fp(p, g))

    def between(self, node: n.Op) -> Fn:
        for arg in node.args:
            self.expect(arg, {"number", "date", "datetime"}, "an operand of BETWEEN")
        fx, flo, fhi = (self.compile(a) for a in node.args)

        def run(p: Props, g: BaseGeometry | None) -> Tri:
            x = fx(p, g)
            low = compare(">=", x, flo(p, g))
            if low is False:
                return False
            high = compare("<=", x, fhi(p, g))
            return high if low else (None if high is not False else False)

        return run

    def in_list(self, node: n.Op) -> Fn:
        value, items = node.args
        if not isinstance(items, n.Array):
            raise CQL2Error("the right side of IN must be a list, e.g. x IN (1, 2)")
        for item in items.items:
            self.check_comparable("in", value, item)
        fv, fitems = self.compile(value), [self.compile(i) for i in items.items]
        return lambda p, g: tri_in(fv(p, g), [f(p, g) for f in fitems])

    def is_null(self, node: n.Op) -> Fn:
        fv = self.compile(node.args[0])
        return lambda p, g: fv(p, g) is None

    def string_func(self, node: n.Op) -> Fn:
        self.expect(node.args[0], {"string"}, f"the argument of {node.op.upper()}")
        fv, func = self.compile(node.args[0]), casei if node.op == "casei" else accenti
        return lambda p, g: func(v) if isinstance(v := fv(p, g), str) else None

    def arithmetic(self, node: n.Op) -> Fn:
        for arg in node.args:
            self.expect(arg, {"number"}, f"an operand of {node.op!r}")
        fa, fb, op = self.compile(node.args[0]), self.compile(node.args[1]), node.op
        return lambda p, g: arithmetic(op, fa(p, g), fb(p, g))

    def spatial(self, node: n.Op) -> Fn:
        for arg in node.args:
            self.expect(arg, {"geometry"}, f"an argument of {node.op.upper()}")
        left, right = node.args
        name = node.op[2:]
        if not _has_property(right) and _has_property(left):
            left, right, name = right, left, SWAPPED.get(name, name)
        func = getattr(shapely, name)
        fa, fb = self.compile(left), self.compile(right)
        return lambda p, g: _spatial(func, fa(p, g), fb(p, g))

    def temporal_op(self, node: n.Op) -> Fn:
        for arg in node.args:
            self.expect(arg, TEMPORAL_KINDS, f"an argument of {node.op.upper()}")
        fa, fb = (self.temporal(a) for a in node.args)
        relation = TEMPORAL_RELATIONS[node.op]

        def run(p: Props, g: BaseGeometry | None) -> Tri:
            a, b = fa(p, g), fb(p, g)
            return None if a is None or b is None else bool(relation(a, b))

        return run

    def temporal(self, node: Expr) -> Fn:
        """Compile a temporal operand to a closure giving a (start, end) key span or None."""
        if isinstance(node, n.Interval):
            for end in (node.start, node.end):
                self.expect(end, {"date", "datetime", "open"}, "an INTERVAL end")
            fs = self.instant(node.start, float("-inf"))
            fe = self.instant(node.end, float("inf"))
            return lambda p, g: None if (s := fs(p, g)) is None or (e := fe(p, g)) is None else (
                s, e
            )
        fi = self.instant(node, 0.0)
        return lambda p, g: None if (k := fi(p, g)) is None else (k, k)

    def instant(self, node: Expr, open_value: float) -> Fn:
        if isinstance(node, n.OpenEnd):
            return _constant(open_value)
        fv = self.compile(node)
        return lambda p, g: _instant_key(fv(p, g))

    def array(self, node: n.Op) -> Fn:
        for arg in node.args:
            self.expect(arg, {"array"}, f"an argument of {node.op.upper()}")
        fa, fb, op = self.compile(node.args[0]), self.compile(node.args[1]), node.op
        return lambda p, g: array_relation(op, fa(p, g), fb(p, g))

    FAMILIES: tuple[tuple[frozenset[str], Any], ...] = (
        (n.LOGICAL_OPS, logical),
        (n.COMPARISON_OPS, comparison),
        (frozenset({"like"}), like),
        (frozenset({"between"}), between),
        (frozenset({"in"}), in_list),
        (frozenset({"isNull"}), is_null),
        (n.STRING_FUNCS, string_func),
        (n.ARITHMETIC_OPS, arithmetic),
        (n.SPATIAL_OPS, spatial),
        (n.TEMPORAL_OPS, temporal_op),
        (n.ARRAY_OPS, array),
    )


def _like(value: Any, pattern: Any) -> Tri:
    if not isinstance(value, str) or not isinstance(pattern, str):
        return None
    return bool(like_regex(pattern).fullmatch(value))


def _spatial(func: Callable[[Any, Any], Any], a: Any, b: Any) -> Tri:
    if not isinstance(a, BaseGeometry) or not isinstance(b, BaseGeometry):
        return None
    return bool(func(a, b))


def _instant_key(value: Any) -> float | int | None:
    if isinstance(value, dt.date):
        return instant_key(value)
    if isinstance(value, str):
        parsed = coerce_datetime(value)
        return None if parsed is None else instant_key(parsed)
    return None


def compile_filter(expr: Expr, schema: Mapping[str, str]) -> Predicate:
    """Type-check ``expr`` against ``schema`` and compile it into a row predicate.

    Parameters
    ----------
    expr : Expr
        A parsed filter (from :func:`parse_text` or :func:`parse_json`).
    schema : Mapping[str, str]
        Queryable name -> ``string``, ``integer``, ``number``, ``boolean``, ``date``,
        ``datetime``, ``geometry`` (the feature geometry) or ``array`` (JSON list).

    Returns
    -------
    Callable[[dict, BaseGeometry | None], bool]
        ``pred(properties, geometry)``; true only where the filter is true (SQL
        three-valued logic: unknown, e.g. a comparison with null, does not match).

    Raises
    ------
    CQL2Error
        Unknown property or function, wrong argument count or incompatible types.

    Examples
    --------
    >>> from geoservice.cql2 import parse_text
    >>> pred = compile_filter(parse_text("pop > 10"), {"pop": "integer"})
    >>> pred({"pop": 11}, None), pred({"pop": None}, None)
    (True, False)
    """
    compiler = Compiler(schema)
    compiler.expect(expr, {"boolean"}, "a filter")
    fn = compiler.compile(expr)
    return lambda properties, geometry: fn(properties, geometry) is True
