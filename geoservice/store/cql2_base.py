"""The skeleton both CQL2-to-SQL translators share; each store supplies a dialect.

``cql2_sqlite`` (the GeoPackage store) and ``cql2_sql`` (PostGIS) translate the same AST
with the evaluator's semantics (``geoservice.cql2.compiler``).  What does not depend on
the SQL dialect lives here: walking the expression, folding property-free parts with the
evaluator, the operator table, Kleene logic, BETWEEN / IN / IS NULL, temporal relations
on spans and the array relations expanded element by element.  A dialect subclass gives
the SQL fragment type and how to format and join it, constants, columns, comparison,
element equality, spans, and the operators whose SQL differs (LIKE, CASEI, ACCENTI,
arithmetic, spatial predicates).

Anything not translatable raises :class:`Untranslatable`; the store then evaluates the
filter in Python for that query.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from geoservice.cql2 import nodes as n
from geoservice.cql2.compiler import Compiler, _has_property
from geoservice.cql2.nodes import Expr
from geoservice.cql2.values import TEMPORAL_SQL

S = TypeVar("S")


class Untranslatable(Exception):
    """The expression has no SQL with exactly the evaluator's meaning."""


@dataclass(frozen=True)
class Code(Generic[S]):
    """A translated expression: its SQL, its kind and, for a folded literal, its value."""

    sql: S
    kind: str
    value: Any = None


class Translator(ABC, Generic[S]):
    """Translate expressions over one layer (schema: queryable name -> CQL2 schema type)."""

    #: the dialect's boolean literals
    TRUE: S
    FALSE: S

    def __init__(self, schema: Mapping[str, str]) -> None:
        self.schema = dict(schema)
        self.compiler = Compiler(schema)

    # -- the dialect ---------------------------------------------------------------------
    @abstractmethod
    def fmt(self, template: str, **parts: S) -> S:
        """Fill the ``{name}`` slots of ``template``."""

    @abstractmethod
    def join(self, sep: str, parts: Sequence[S]) -> S:
        """``parts`` joined by ``sep``."""

    @abstractmethod
    def constant(self, value: Any, kind: str) -> Code[S]:
        """A value computed by the evaluator, bound with the same meaning."""

    @abstractmethod
    def prop(self, name: str) -> Code[S]:
        """A property as its column."""

    @abstractmethod
    def compare(self, op: str, a: Code[S], b: Code[S]) -> S:
        """``a op b`` with the evaluator's alignment rules."""

    @abstractmethod
    def equal(self, a: Code[S], b: Code[S]) -> S:
        """Array element equality as ``any(compare("=", ...))`` sees it: TRUE or FALSE."""

    @abstractmethod
    def span(self, node: Expr) -> tuple[S, S, Sequence[S]]:
        """A temporal operand as (start, end, the parts that may be NULL)."""

    @abstractmethod
    def like(self, node: n.Op) -> Code[S]:
        """LIKE."""

    @abstractmethod
    def casei(self, node: n.Op) -> Code[S]:
        """CASEI."""

    @abstractmethod
    def accenti(self, node: n.Op) -> Code[S]:
        """ACCENTI."""

    @abstractmethod
    def arithmetic(self, node: n.Op) -> Code[S]:
        """``+ - * / div % ^``."""

    @abstractmethod
    def spatial(self, node: n.Op) -> Code[S]:
        """S_* predicates."""

    def kind_of(self, node: Expr) -> str:
        """The kind a folded expression is bound as (the evaluator's by default)."""
        return self.compiler.kind(node)

    # -- the walk --------------------------------------------------------------------------
    def condition(self, expr: Expr) -> S:
        """The WHERE condition of a filter already checked by ``compile_filter``."""
        return self.boolean(expr)

    def fold(self, node: Expr) -> Code[S]:
        """Evaluate a property-free expression with the evaluator and bind the result."""
        value = self.compiler.compile(node)({}, None)
        return self.constant(value, self.kind_of(node))

    def expr(self, node: Expr) -> Code[S]:
        """Translate any value expression."""
        if not isinstance(node, n.Interval | n.OpenEnd | n.Array) and not _has_property(node):
            return self.fold(node)
        if isinstance(node, n.Property):
            return self.prop(node.name)
        if isinstance(node, n.Op):
            return self.handler(node.op)(node)
        raise Untranslatable(f"{type(node).__name__} outside its operator")

    def handler(self, op: str) -> Callable[[n.Op], Code[S]]:
        """The method translating one operator family."""
        table: dict[str, Callable[[n.Op], Code[S]]] = {
            "like": self.like,
            "between": self.between,
            "in": self.in_list,
            "isNull": self.is_null,
            "casei": self.casei,
            "accenti": self.accenti,
        }
        families: tuple[tuple[frozenset[str], Callable[[n.Op], Code[S]]], ...] = (
            (n.LOGICAL_OPS, self.logical),
            (n.COMPARISON_OPS, self.comparison),
            (n.ARITHMETIC_OPS, self.arithmetic),
            (n.SPATIAL_OPS, self.spatial),
            (n.TEMPORAL_OPS, self.temporal_op),
            (n.ARRAY_OPS, self.array_op),
        )
        if op in table:
            return table[op]
        for ops, method in families:
            if op in ops:
                return method
        raise Untranslatable(f"operator {op!r}")

    def typed(self, node: Expr, kind: str) -> S:
        """An operand that must be of ``kind`` (a predicate, text)."""
        code = self.expr(node)
        if code.kind != kind:
            raise Untranslatable(f"{code.kind} where a {kind} is needed")
        return code.sql

    def boolean(self, node: Expr) -> S:
        """An operand that must be a predicate."""
        return self.typed(node, "boolean")

    def string(self, node: Expr) -> S:
        """An operand that must be text."""
        return self.typed(node, "string")

    def predicate(self, template: str, **parts: S) -> Code[S]:
        """A boolean result."""
        return Code(self.fmt(template, **parts), "boolean")

    # -- logic and comparison ----------------------------------------------------------------
    def logical(self, node: n.Op) -> Code[S]:
        """AND / OR / NOT: SQL's are Kleene's, as ``tri_and`` / ``tri_or``."""
        parts = [self.boolean(a) for a in node.args]
        if node.op == "not":
            return self.predicate("(NOT {x})", x=parts[0])
        return self.predicate("({x})", x=self.join(" AND " if node.op == "and" else " OR ", parts))

    def comparison(self, node: n.Op) -> Code[S]:
        """``=``, ``<>``, ``<`` ... between two comparable expressions."""
        left, right = (self.expr(a) for a in node.args)
        return Code(self.compare(node.op, left, right), "boolean")

    def between(self, node: n.Op) -> Code[S]:
        """BETWEEN as ``x >= lo AND x <= hi`` (the evaluator's three-valued rule)."""
        x, lo, hi = (self.expr(a) for a in node.args)
        low, high = self.compare(">=", x, lo), self.compare("<=", x, hi)
        return self.predicate("({low} AND {high})", low=low, high=high)

    def in_list(self, node: n.Op) -> Code[S]:
        """IN as an OR of equalities: unknown when nothing matched but a null took part."""
        value, items = node.args
        if not isinstance(items, n.Array) or not items.items:
            raise Untranslatable("IN without a non-empty list")
        v = self.expr(value)
        hits = [self.compare("=", v, self.expr(i)) for i in items.items]
        return self.predicate("({x})", x=self.join(" OR ", hits))

    def is_null(self, node: n.Op) -> Code[S]:
        """IS NULL; a literal list is never null, an interval is when an end is."""
        arg = node.args[0]
        if isinstance(arg, n.Array):
            return Code(self.FALSE, "boolean")
        if isinstance(arg, n.Interval):
            _, _, nullable = self.span(arg)
            if not nullable:
                return Code(self.FALSE, "boolean")
            checks = [self.fmt("{p} IS NULL", p=p) for p in nullable]
            return self.predicate("({x})", x=self.join(" OR ", checks))
        return self.predicate("({x} IS NULL)", x=self.expr(arg).sql)

    # -- temporal ---------------------------------------------------------------------------
    def temporal_op(self, node: n.Op) -> Code[S]:
        """T_*: the relation on spans, NULL (not FALSE) when a part of a span is NULL."""
        a0, a1, an = self.span(node.args[0])
        b0, b1, bn = self.span(node.args[1])
        rel = self.fmt("(" + TEMPORAL_SQL[node.op] + ")", a0=a0, a1=a1, b0=b0, b1=b1)
        if not an and not bn:
            return Code(rel, "boolean")
        guard = self.join(" OR ", [self.fmt("{p} IS NULL", p=p) for p in (*an, *bn)])
        return self.predicate("(CASE WHEN {g} THEN NULL ELSE {r} END)", g=guard, r=rel)

    # -- arrays -----------------------------------------------------------------------------
    def items(self, node: Expr) -> list[Code[S]]:
        """The items of a literal list (array properties do not exist in our stores)."""
        if not isinstance(node, n.Array):
            raise Untranslatable("an array that is not a literal list")
        out = []
        for item in node.items:
            if isinstance(item, n.Array | n.Interval):
                raise Untranslatable("nested arrays or intervals")
            code = self.expr(item)
            if code.kind == "geometry":
                raise Untranslatable("geometries in an array")
            out.append(code)
        return out

    def contains_all(self, container: list[Code[S]], items: list[Code[S]]) -> S:
        """Every item equals some element of the container (``_contains_all``)."""
        if not items:
            return self.TRUE
        if not container:
            return self.FALSE
        each = [self.fmt("({x})", x=self.join(" OR ", [self.equal(x, y) for y in container]))
                for x in items]
        return self.fmt("({x})", x=self.join(" AND ", each))

    def array_op(self, node: n.Op) -> Code[S]:
        """A_* relations, expanded element by element; never NULL, like the evaluator."""
        a, b = self.items(node.args[0]), self.items(node.args[1])
        if node.op == "a_contains":
            return Code(self.contains_all(a, b), "boolean")
        if node.op == "a_containedby":
            return Code(self.contains_all(b, a), "boolean")
        if node.op == "a_overlaps":
            hits = [self.equal(x, y) for x in a for y in b]
            return Code(self.fmt("({x})", x=self.join(" OR ", hits)) if hits else self.FALSE,
                        "boolean")
        if len(a) != len(b):
            return Code(self.FALSE, "boolean")
        both = self.fmt("({x} AND {y})", x=self.contains_all(a, b), y=self.contains_all(b, a))
        return Code(both, "boolean")
