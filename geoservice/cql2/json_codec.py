"""CQL2 JSON encoding: parse into the AST and serialise back."""

from __future__ import annotations

import json
from typing import Any

from geoservice.cql2.nodes import (
    Array,
    BBox,
    CQL2Error,
    DateLit,
    Expr,
    Geometry,
    Interval,
    Literal,
    Op,
    OpenEnd,
    Property,
    TimestampLit,
    canonical_op,
)
from geoservice.cql2.values import (
    date_literal,
    format_timestamp,
    interval_end,
    timestamp_literal,
)

GEOMETRY_TYPES = {
    "Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon",
    "GeometryCollection",
}
ACCEPTED = (
    "a string, number, boolean, array, or an object with one of 'op'+'args', 'property', "
    "'date', 'timestamp', 'interval', 'bbox' or a GeoJSON geometry"
)


def _fail(path: str, problem: str) -> CQL2Error:
    return CQL2Error(f"invalid CQL2 JSON filter at {path}: {problem}; expected {ACCEPTED}")


def _op(obj: dict[str, Any], path: str) -> Op:
    name, args = obj["op"], obj.get("args", [])
    if not isinstance(name, str) or not isinstance(args, list):
        raise _fail(path, "'op' must be a string and 'args' an array")
    return Op(canonical_op(name), tuple(_node(a, f"{path}.args[{i}]") for i, a in enumerate(args)))


def _temporal(obj: dict[str, Any], path: str) -> Expr:
    try:
        if "date" in obj:
            return date_literal(obj["date"])
        if "timestamp" in obj:
            return timestamp_literal(obj["timestamp"])
        ends = obj["interval"]
        if not isinstance(ends, list) or len(ends) != 2:
            raise ValueError("'interval' must be an array of two ends")
        start, end = (
            interval_end(e) if isinstance(e, str) else _node(e, f"{path}.interval[{i}]")
            for i, e in enumerate(ends)
        )
        return Interval(start, end)
    except (ValueError, TypeError) as exc:
        raise _fail(path, str(exc)) from None


def _bbox(obj: dict[str, Any], path: str) -> BBox:
    coords = obj["bbox"]
    ok = isinstance(coords, list) and len(coords) in (4, 6)
    if not ok or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords):
        raise _fail(path, "'bbox' must be an array of 4 or 6 numbers")
    return BBox(tuple(float(c) for c in coords))


def _object(obj: dict[str, Any], path: str) -> Expr:
    if "op" in obj:
        return _op(obj, path)
    if "property" in obj:
        if not isinstance(obj["property"], str):
            raise _fail(path, "'property' must be a string")
        return Property(obj["property"])
    if any(k in obj for k in ("date", "timestamp", "interval")):
        return _temporal(obj, path)
    if "bbox" in obj:
        return _bbox(obj, path)
    if obj.get("type") in GEOMETRY_TYPES:
        return Geometry.from_geojson(obj)
    raise _fail(path, f"unrecognised object with keys {sorted(obj)}")


def _node(obj: Any, path: str) -> Expr:
    if isinstance(obj, bool | str):
        return Literal(obj)
    if isinstance(obj, int | float):
        return Literal(obj)
    if isinstance(obj, list):
        return Array(tuple(_node(v, f"{path}[{i}]") for i, v in enumerate(obj)))
    if isinstance(obj, dict):
        return _object(obj, path)
    raise _fail(path, f"unsupported value {obj!r}")


def parse_json(data: str | bytes | dict[str, Any] | Any) -> Expr:
    """Parse a CQL2 JSON filter (a mapping or JSON text) into the AST.

    Parameters
    ----------
    data : str, bytes or dict
        CQL2 JSON; text is decoded first.

    Returns
    -------
    Expr
        The expression tree (the same tree :func:`parse_text` gives for the same filter).

    Raises
    ------
    CQL2Error
        On invalid JSON or an unrecognised node; the message gives the JSON path.

    Examples
    --------
    >>> parse_json({"op": "=", "args": [{"property": "a"}, 1]})
    Op(op='=', args=(Property(name='a'), Literal(value=1)))
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise CQL2Error(
                f"invalid CQL2 JSON filter: {exc.msg} at position {exc.pos + 1}; "
                "expected a JSON object"
            ) from None
    return _node(data, "$")


def _interval_end_json(node: Expr) -> Any:
    if isinstance(node, OpenEnd):
        return ".."
    if isinstance(node, DateLit):
        return node.value.isoformat()
    if isinstance(node, TimestampLit):
        return format_timestamp(node.value)
    return to_json(node)


def to_json(expr: Expr) -> Any:
    """Serialise the AST as CQL2 JSON.

    Parameters
    ----------
    expr : Expr
        An expression tree.

    Returns
    -------
    dict
        CQL2 JSON (a bare literal for a literal node).

    Examples
    --------
    >>> to_json(Op("isNull", (Property("a"),)))
    {'op': 'isNull', 'args': [{'property': 'a'}]}
    """
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Property):
        return {"property": expr.name}
    if isinstance(expr, Op):
        return {"op": expr.op, "args": [to_json(a) for a in expr.args]}
    if isinstance(expr, Array):
        return [to_json(a) for a in expr.items]
    if isinstance(expr, DateLit):
        return {"date": expr.value.isoformat()}
    if isinstance(expr, TimestampLit):
        return {"timestamp": format_timestamp(expr.value)}
    if isinstance(expr, Interval):
        return {"interval": [_interval_end_json(expr.start), _interval_end_json(expr.end)]}
    if isinstance(expr, BBox):
        return {"bbox": list(expr.coords)}
    if isinstance(expr, Geometry):
        return expr.geojson
    return ".."  # OpenEnd outside an interval
