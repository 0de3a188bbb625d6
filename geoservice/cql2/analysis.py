"""Static analysis of a CQL2 AST: referenced properties, a spatial prefilter envelope."""

from __future__ import annotations

import math

from geoservice.cql2 import nodes as n
from geoservice.cql2.nodes import Expr
from geoservice.cql2.values import literal_geometry

Envelope = tuple[float, float, float, float]
#: spatial predicates that imply the two geometries intersect
INTERSECTING = n.SPATIAL_OPS - {"s_disjoint"}


def properties_used(expr: Expr) -> set[str]:
    """Names of all properties the expression references.

    Examples
    --------
    >>> from geoservice.cql2 import parse_text
    >>> sorted(properties_used(parse_text("a = 1 AND S_INTERSECTS(geom, POINT(0 0))")))
    ['a', 'geom']
    """
    if isinstance(expr, n.Property):
        return {expr.name}
    children: tuple[Expr, ...] = ()
    if isinstance(expr, n.Op):
        children = expr.args
    elif isinstance(expr, n.Array):
        children = expr.items
    elif isinstance(expr, n.Interval):
        children = (expr.start, expr.end)
    return set().union(*(properties_used(c) for c in children))


def _literal_envelope(node: Expr) -> Envelope | None:
    if not isinstance(node, n.Geometry | n.BBox):
        return None
    bounds = literal_geometry(node).bounds
    if any(math.isnan(b) for b in bounds):
        return None
    return (bounds[0], bounds[1], bounds[2], bounds[3])


def _predicate_envelope(op: n.Op) -> Envelope | None:
    left, right = op.args
    if isinstance(left, n.Property):
        return _literal_envelope(right)
    if isinstance(right, n.Property):
        return _literal_envelope(left)
    return None


def _area(env: Envelope) -> float:
    return (env[2] - env[0]) * (env[3] - env[1])


def _union(envs: list[Envelope]) -> Envelope:
    return (
        min(e[0] for e in envs), min(e[1] for e in envs),
        max(e[2] for e in envs), max(e[3] for e in envs),
    )


def spatial_bbox(expr: Expr) -> Envelope | None:
    """An envelope that the geometry of every matching feature intersects, if derivable.

    Derived from spatial predicates (all but ``S_DISJOINT``) between the geometry
    property and a literal: under AND the smallest such envelope is used (intersecting
    them would be unsound), under OR the union if every branch has one.

    Examples
    --------
    >>> from geoservice.cql2 import parse_text
    >>> spatial_bbox(parse_text("S_INTERSECTS(geom, BBOX(0,40,10,50)) AND a = 1"))
    (0.0, 40.0, 10.0, 50.0)
    >>> spatial_bbox(parse_text("a = 1")) is None
    True
    """
    if not isinstance(expr, n.Op):
        return None
    if expr.op in INTERSECTING and len(expr.args) == 2:
        return _predicate_envelope(expr)
    found = [spatial_bbox(a) for a in expr.args]
    envs = [e for e in found if e is not None]
    if expr.op == "and" and envs:
        return min(envs, key=_area)
    if expr.op == "or" and envs and len(envs) == len(found):
        return _union(envs)
    return None
