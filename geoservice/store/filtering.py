"""Turn a ``Query`` into what the GeoPackage store runs: SQL conditions plus, when needed,
an exact Python predicate.

Property equality and datetime go to SQL; the bbox becomes an R-tree prefilter and, for
non-point layers, an exact intersection test.  A CQL2 filter is translated to SQL by
``cql2_sqlite`` when ``pushdown`` is on and every part of it translates; otherwise it is
evaluated faithfully in Python by ``geoservice.cql2`` (with the translatable top-level
AND conjuncts still run in SQL as a prefilter, which cannot change the answer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geoservice.catalogue import LayerSpec
from geoservice.errors import InvalidParameter
from geoservice.store import cql2_sqlite, values
from geoservice.store.base import BBox, Query
from geoservice.store.cql2_sqlite import SqliteFilter

Predicate = Callable[[dict[str, Any], BaseGeometry | None], bool]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to run: SQL conditions (on alias ``t``), an index bbox and a row predicate."""

    sql_where: tuple[str, ...]
    sql_params: tuple[Any, ...]
    bbox: BBox | None
    predicate: Predicate | None
    empty: bool = False
    needs_geometry: bool = True
    #: None without a filter; True when the whole filter runs as SQL, False when in Python
    pushed: bool | None = None


def queryable_schema(spec: LayerSpec) -> dict[str, str]:
    """Property name → CQL2 type, with the geometry under the layer's geometry name."""
    schema: dict[str, str] = {p.name: p.type for p in spec.properties}
    schema[spec.geometry_name] = "geometry"
    return schema


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _equality(spec: LayerSpec, props: dict[str, Any]) -> tuple[list[str], list[Any]]:
    where, params = [], []
    for name, raw in props.items():
        p = spec.property(name)
        if p is None:
            raise InvalidParameter(f"unknown query parameter {name!r}")
        where.append(f"t.{_qi(name)} = ?")
        params.append(values.to_storage(spec, {name: _parse_scalar(p.type, raw)})[name])
    return where, params


def _parse_scalar(kind: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        raise InvalidParameter(f"value {raw!r} is not a valid {kind}") from None
    if kind == "boolean":
        if raw.lower() not in ("true", "false"):
            raise InvalidParameter(f"value {raw!r} is not a boolean (true|false)")
        return raw.lower() == "true"
    return raw


def _datetime(spec: LayerSpec, query: Query) -> tuple[list[str], list[Any]]:
    if query.datetime is None:
        return [], []
    prop = spec.property(spec.temporal_property) if spec.temporal_property else None
    if prop is None:
        raise InvalidParameter(
            f"collection {spec.id!r} has no temporal property: datetime is not supported"
        )
    start, end = query.datetime
    col = f"t.{_qi(prop.name)}"
    fmt = (lambda d: d.date().isoformat()) if prop.type == "date" else values.format_datetime
    where: list[str] = []
    params: list[Any] = []
    if start is not None:
        where.append(f"{col} >= ?")
        params.append(fmt(start))
    if end is not None:
        where.append(f"{col} <= ?")
        params.append(fmt(end))
    if not where:
        where.append(f"{col} IS NOT NULL")
    return where, params


def _intersect(a: BBox | None, b: BBox | None) -> tuple[BBox | None, bool]:
    if a is None or b is None:
        return (a or b), False
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return box, box[0] > box[2] or box[1] > box[3]


def compile_query(spec: LayerSpec, query: Query, *, pushdown: bool = False) -> Plan:
    """Plan a query for ``spec``; raises ``InvalidParameter`` for anything not accepted.

    With ``pushdown`` the CQL2 filter and the exact bbox test become SQL where they can
    (the connection must have ``cql2_sqlite.register_functions``); without it the plan is
    the all-Python one, which the store also uses when a pushed-down query cannot finish.
    """
    where, params = _equality(spec, query.properties)
    w2, p2 = _datetime(spec, query)
    where += w2
    params += p2
    preds: list[Predicate] = []
    cql_box = None
    needs_geometry = False
    pushed: bool | None = None
    if query.filter is not None:
        from geoservice import cql2

        schema = queryable_schema(spec)
        predicate = cql2.compile_filter(query.filter, schema)  # checks it: 400 if bad
        cql_box = cql2.spatial_bbox(query.filter)
        pushed = False
        if pushdown:
            pushed, conds = _pushdown(query.filter, schema)
            for cond in conds:
                where.append(cond.where)
                params.extend(cond.params)
        if not pushed:
            preds.append(predicate)
            needs_geometry = spec.geometry_name in cql2.properties_used(query.filter)
    if query.bbox is not None and spec.geometry_type not in ("Point", "MultiPoint"):
        if pushdown:
            # A feature whose R-tree box (alias ``r``, joined by the store whenever the
            # plan has a bbox) lies inside the query box intersects it: only features
            # straddling the edge pay for the exact test (SQLite stops at the first true
            # OR term).  Most of a map view's features are inside.
            b = query.bbox
            where.append(
                "((r.minx >= ? AND r.maxx <= ? AND r.miny >= ? AND r.maxy <= ?)"
                " OR cql2_intersects_box(t.geom, ?, ?, ?, ?))"
            )
            params.extend([b[0], b[2], b[1], b[3], *b])
        else:
            prepared = shapely.box(*query.bbox)
            shapely.prepare(prepared)
            preds.append(lambda _p, g: g is not None and prepared.intersects(g))
            needs_geometry = True
    box, empty = _intersect(query.bbox, cql_box)
    return Plan(tuple(where), tuple(params), box, _all(preds), empty, needs_geometry, pushed)


def _pushdown(expr: Any, schema: dict[str, str]) -> tuple[bool, list[SqliteFilter]]:
    """The filter as SQL if it all translates (True), else its translatable AND parts.

    Why the parts: a conjunct that is false for a row makes the whole filter false there,
    so running it in SQL only drops rows the Python predicate would drop anyway.
    """
    from geoservice.cql2 import Op

    def one(e: Any) -> SqliteFilter | None:
        try:
            return cql2_sqlite.translate(e, schema, lambda name: f"t.{_qi(name)}")
        except cql2_sqlite.Untranslatable:
            return None

    whole = one(expr)
    if whole is not None:
        return True, [whole]
    if isinstance(expr, Op) and expr.op == "and":
        return False, [c for c in map(one, expr.args) if c is not None]
    return False, []


def _all(preds: list[Predicate]) -> Predicate | None:
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    return lambda p, g: all(fn(p, g) for fn in preds)
