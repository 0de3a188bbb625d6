"""OGC CQL2 (OGC 21-065r2): parse text and JSON, serialise JSON, compile to predicates.

Examples
--------
>>> from geoservice.cql2 import parse_text, compile_filter
>>> pred = compile_filter(parse_text("name LIKE 'B%'"), {"name": "string"})
>>> pred({"name": "Berlin"}, None)
True
"""

from geoservice.cql2.analysis import properties_used, spatial_bbox
from geoservice.cql2.compiler import compile_filter
from geoservice.cql2.json_codec import parse_json, to_json
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
)
from geoservice.cql2.text_parser import parse_text

__all__ = [
    "Array",
    "BBox",
    "CQL2Error",
    "DateLit",
    "Expr",
    "Geometry",
    "Interval",
    "Literal",
    "OpenEnd",
    "Op",
    "Property",
    "TimestampLit",
    "compile_filter",
    "parse_json",
    "parse_text",
    "properties_used",
    "spatial_bbox",
    "to_json",
]
