"""Runtime semantics of CQL2 operators on typed values (three-valued: None is unknown)."""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

from geoservice.cql2.values import as_datetime

Tri = bool | None  # SQL-style three-valued logic result

COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def align(a: Any, b: Any) -> tuple[Any, Any]:
    """Bring a date and a timestamp onto the same footing (the date as midnight UTC)."""
    if isinstance(a, dt.date) and isinstance(b, dt.date):
        if isinstance(a, dt.datetime) != isinstance(b, dt.datetime):
            return as_datetime(a), as_datetime(b)
    return a, b


def compare(op: str, a: Any, b: Any) -> Tri:
    """Compare two typed values; unknown if either is null or they are not comparable.

    Examples
    --------
    >>> compare("<", 1, 2), compare("=", None, 1)
    (True, None)
    """
    if a is None or b is None:
        return None
    if isinstance(a, bool) != isinstance(b, bool):
        return None
    a, b = align(a, b)
    try:
        return bool(COMPARATORS[op](a, b))
    except TypeError:
        return None


def tri_and(values: Sequence[Callable[[], Tri]]) -> Tri:
    """Kleene AND over lazily evaluated operands."""
    result: Tri = True
    for value in values:
        v = value()
        if v is False:
            return False
        if v is None:
            result = None
    return result


def tri_or(values: Sequence[Callable[[], Tri]]) -> Tri:
    """Kleene OR over lazily evaluated operands."""
    result: Tri = False
    for value in values:
        v = value()
        if v is True:
            return True
        if v is None:
            result = None
    return result


def tri_in(value: Any, items: Sequence[Any]) -> Tri:
    """SQL ``IN``: true on a match, unknown if no match but a null is involved."""
    if value is None:
        return None
    result: Tri = False
    for item in items:
        hit = compare("=", value, item)
        if hit:
            return True
        if hit is None:
            result = None
    return result


def _trunc_div(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        quotient = abs(a) // abs(b)
        return quotient if (a >= 0) == (b >= 0) else -quotient
    return float(math.trunc(a / b))


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        return a - b * _trunc_div(a, b)
    return math.fmod(a, b)


def _divide(a: Any, b: Any) -> Any:
    return a / b


ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _divide,
    "%": _mod,
    "div": _trunc_div,
    "^": operator.pow,
}


def arithmetic(op: str, a: Any, b: Any) -> Any:
    """Apply an arithmetic operator; null (None) on null input, division by zero or overflow.

    Examples
    --------
    >>> arithmetic("div", 21, 10), arithmetic("%", 5, 2), arithmetic("/", 1, 0)
    (2, 1, None)
    """
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return None
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return None
    try:
        result = ARITHMETIC[op](a, b)
    except (ZeroDivisionError, OverflowError, ValueError):
        return None
    return None if isinstance(result, complex) else result


def _contains_all(container: Sequence[Any], items: Sequence[Any]) -> bool:
    return all(any(compare("=", x, y) for y in container) for x in items)


ARRAY_RELATIONS: dict[str, Callable[[Sequence[Any], Sequence[Any]], bool]] = {
    "a_equals": lambda a, b: len(a) == len(b) and _contains_all(a, b) and _contains_all(b, a),
    "a_contains": _contains_all,
    "a_containedby": lambda a, b: _contains_all(b, a),
    "a_overlaps": lambda a, b: any(any(compare("=", x, y) for y in b) for x in a),
}


def array_relation(op: str, a: Any, b: Any) -> Tri:
    """Evaluate an ``A_*`` array predicate; unknown if either side is not an array."""
    if not isinstance(a, list | tuple) or not isinstance(b, list | tuple):
        return None
    return ARRAY_RELATIONS[op](a, b)
