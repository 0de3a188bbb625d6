"""CQL2 JSON encoding: parse into the AST and serialise back."""

from __future__ import annotations

import json
from typing import Any

from geoservice.cql2 import nodes as n
from geoservice.cql2.nodes import canonical_op
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


def _fail(path: str, problem: str) -> n.CQL2Error:
    return n.CQL2Error(f"invalid CQL2 JSON filter at {path}: {problem}; expected {ACCEPTED}")


def _op(obj: dict[str, Any], path: str) -> n.Op:
    name, args = obj["op"], obj.get("args", [])
    if not isinstance(name, str) or not isinstance(args, list):
        raise _fail(path, "'op' must be a string and 'args' an array")
    parsed = tuple(_node(a, f"{path}.args[{i}]") for i, a in enumerate(args))
    return n.Op(canonical_op(name), parsed)


def _temporal(obj: dict[str, Any], path: str) -> n.Expr:
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
        return n.Interval(start, end)
    except (ValueError, TypeError) as exc:
        raise _fail(path, str(exc)) from None


def _bbox(obj: dict[str, Any], path: str) -> n.BBox:
    coords = obj["bbox"]
    ok = isinstance(coords, list) and len(coords) in (4, 6)
    if not ok or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords):
        raise _fail(path, "'bbox' must be an array of 4 or 6 numbers")
    return n.BBox(tuple(float(c) for c in coords))


def _object(obj: dict[str, Any], path: str) -> n.Expr:
    if "op" in obj:
        return _op(obj, path)
    if "property" in obj:
        if not isinstance(obj["property"], str):
            raise _fail(path, "'property' must be a string")
        return n.Property(obj["property"])
    if any(k in obj for k in ("date", "timestamp", "interval")):
        return _temporal(obj, path)
    if "bbox" in obj:
        return _bbox(obj, path)
    if obj.get("type") in GEOMETRY_TYPES:
        return n.Geometry.from_geojson(obj)
    raise _fail(path, f"unrecognised object with keys {sorted(obj)}")


def _node(obj: Any, path: str) -> n.Expr:
    if isinstance(obj, bool | str):
        return n.Literal(obj)
    if isinstance(obj, int | float):
        return n.Literal(obj)
    if isinstance(obj, list):
        return n.Array(tuple(_node(v, f"{path}[{i}]") for i, v in enumerate(obj)))
    if isinstance(obj, dict):
        return _object(obj, path)
    raise _fail(path, f"unsupported value {obj!r}")


def parse_json(data: str | bytes | dict[str, Any] | Any) -> n.Expr:
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
            raise n.CQL2Error(
                f"invalid CQL2 JSON filter: {exc.msg} at position {exc.pos + 1}; "
                "expected a JSON object"
            ) from None
    return _node(data, "$")


def _interval_end_json(node: n.Expr) -> Any:
    if isinstance(node, n.OpenEnd):
        return ".."
    if isinstance(node, n.DateLit):
        return node.value.isoformat()
    if isinstance(node, n.TimestampLit):
        return format_timestamp(node.value)
    return to_json(node)


def to_json(expr: n.Expr) -> Any:
    """Serialise the AST as CQL2 JSON.

    Parameters
    ----------
    expr : n.Expr
        An expression tree.

    Returns
    -------
    dict
        CQL2 JSON (a bare literal for a literal node).

    Examples
    --------
    >>> to_json(n.Op("isNull", (n.Property("a"),)))
    {'op': 'isNull', 'args': [{'property': 'a'}]}
    """
    if isinstance(expr, n.Literal):
        return expr.value
    if isinstance(expr, n.Property):
        return {"property": expr.name}
    if isinstance(expr, n.Op):
        return {"op": expr.op, "args": [to_json(a) for a in expr.args]}
    if isinstance(expr, n.Array):
        return [to_json(a) for a in expr.items]
    if isinstance(expr, n.DateLit):
        return {"date": expr.value.isoformat()}
    if isinstance(expr, n.TimestampLit):
        return {"timestamp": format_timestamp(expr.value)}
    if isinstance(expr, n.Interval):
        return {"interval": [_interval_end_json(expr.start), _interval_end_json(expr.end)]}
    if isinstance(expr, n.BBox):
        return {"bbox": list(expr.coords)}
    if isinstance(expr, n.Geometry):
        return expr.geojson
    return ".."  # OpenEnd outside an interval
