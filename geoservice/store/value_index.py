"""Exact filtered counts of layers that only a build changes, from sorted values in memory.

Why: at city size a filter on a declared numeric index (``measured_height > h``, a new
``h`` each time: a slider, a paged map) still costs an index-only scan of the matches for
``numberMatched`` - ~15 ms at 300,000 buildings, growing with N - and ``counts.CountCache``
cannot help a value it has not seen.  For a static layer (``editable: false``: only
``geoservice build`` writes it) the non-NULL values of each numeric property declared in
``indexes:`` are kept here as ONE sorted numpy array per (collection, property), read once
by one query (the index makes it an index-only scan) and sorted by numpy.  A count of

    prop op literal        (op: =, <>, <, <=, >, >=, either side)
    prop BETWEEN lo AND hi
    an AND of those on the same property

is then a few ``np.searchsorted`` on it: exact, microseconds, whatever the value.

Exactness, as the SQL it replaces:

- NULLs are not in the array, so a comparison never counts them (SQL's NULL semantics,
  ``<>`` included; BETWEEN is ``>= AND <=`` as ``cql2_base`` translates it).
- Numbers compare as in SQL: PostgreSQL compares a double column with an integer in double
  precision and an integer column with a float in double precision too; SQLite compares
  INTEGER and REAL exactly.  Both agree with exact arithmetic when every integer involved
  is at most 2**53 in magnitude, so an array holding a larger integer, a NaN or anything
  not a number (SQLite keeps text in a REAL column; text sorts above every number there)
  is not used, and neither is a literal beyond 2**53 or not finite.  A float bound on an
  integer array becomes the integer bound with the same answer (``> 2.5`` is ``> 2``).
- Every array carries the data version it was read at (``Store.data_version``'s token, read
  in the same snapshot as the values).  A page compares it with the version it reads in its
  own snapshot - exactly as ``CountCache.candidate`` is used - so a stale array is never
  served: on a mismatch the page counts in SQL and the array is dropped (the next page
  loads the new one).
- Anything else (other shapes, a bbox/datetime/property parameter beside the filter,
  editable layers, undeclared or non-numeric properties) counts in SQL as before.

Editable layers never use it: every write would change the version and make each page
reload the whole column.

Memory: a process holds at most ``MAX_BYTES`` (64 MiB) of arrays, least recently used out
first; a column whose rows would take more than that is never loaded (8 bytes a value:
2,000,000 buildings' heights are 16 MB).  Each server worker has its own copy, so the
bound is per process, kept small enough for several workers on a small machine.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geoservice.catalogue import LayerSpec
from geoservice.cql2 import nodes as n
from geoservice.store.base import Query

#: arrays held per process (bytes, all collections and properties together)
MAX_BYTES = 64 * 1024 * 1024
#: integers up to this magnitude compare the same in double precision and exactly
EXACT = 2**53
_SWAP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "<>": "<>"}
_NUMERIC = ("integer", "number")

Number = int | float
#: what a store's loader returns: the version read and the values in that snapshot
#: (``None`` values: the column is not usable at that version, e.g. too many rows)
Loaded = tuple[str | None, Any]


@dataclass(frozen=True)
class Ranged:
    """A filter this index can count: conditions ``(op, number)`` on one property."""

    collection: str
    prop: str
    conditions: tuple[tuple[str, Number], ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.collection, self.prop)


def ranged(spec: LayerSpec, query: Query) -> Ranged | None:
    """The shape of ``query`` if this index can count it, else ``None``.

    Examples
    --------
    >>> from geoservice.cql2 import parse_text
    >>> spec = LayerSpec.model_validate({"id": "b", "title": "B", "licence": {"name": "x",
    ...   "url": "https://x"}, "attribution": "x", "source": {"format": "geojson",
    ...   "paths": ["x"]}, "coverage": {"description": "x"}, "indexes": ["h"],
    ...   "properties": [{"name": "h", "type": "number"}]})
    >>> ranged(spec, Query(filter=parse_text("h > 3 AND 10 >= h"))).conditions
    (('>', 3), ('<=', 10))
    >>> ranged(spec, Query(filter=parse_text("h > 3 OR h < 1"))) is None
    True
    """
    if spec.editable or query.filter is None or query.bbox is not None:
        return None
    if query.datetime is not None or query.properties:
        return None
    found = _conditions(query.filter)
    if found is None:
        return None
    prop, conditions = found
    p = spec.property(prop)
    if p is None or p.type not in _NUMERIC or prop not in spec.indexes:
        return None
    return Ranged(spec.id, prop, tuple(conditions))


def _conditions(node: Any) -> tuple[str, list[tuple[str, Number]]] | None:
    """(property, conditions) of a comparison, BETWEEN or AND of them on one property."""
    if not isinstance(node, n.Op):
        return None
    if node.op == "and":
        parts = [_conditions(a) for a in node.args]
        if not parts or any(p is None for p in parts):
            return None
        props = {p[0] for p in parts if p is not None}
        if len(props) != 1:
            return None
        return props.pop(), [c for p in parts if p is not None for c in p[1]]
    if node.op == "between" and len(node.args) == 3:
        x, lo, hi = node.args
        if isinstance(x, n.Property) and _number(lo) is not None and _number(hi) is not None:
            return x.name, [(">=", _number(lo)), ("<=", _number(hi))]  # type: ignore[list-item]
        return None
    if node.op in _SWAP and len(node.args) == 2:
        a, b = node.args
        if isinstance(a, n.Property) and (v := _number(b)) is not None:
            return a.name, [(node.op, v)]
        if isinstance(b, n.Property) and (v := _number(a)) is not None:
            return b.name, [(_SWAP[node.op], v)]
    return None


def _number(node: Any) -> Number | None:
    """A numeric literal both SQL dialects compare exactly as numpy does, else ``None``."""
    if not isinstance(node, n.Literal) or isinstance(node.value, bool):
        return None
    v = node.value
    if isinstance(v, int):
        return v if abs(v) <= EXACT else None
    if isinstance(v, float) and math.isfinite(v):
        return v
    return None


def as_array(values: Sequence[Any] | np.ndarray) -> np.ndarray | None:
    """Sorted int64 or float64 values, or ``None`` when a value breaks the rules above
    (not a number, NaN, an integer beyond 2**53)."""
    if isinstance(values, np.ndarray):
        a = values
    else:
        types = set(map(type, values))
        if not types <= {int, float}:  # text (SQLite keeps it in a REAL column), bool...
            return None
        if types == {int, float} and any(abs(v) > EXACT for v in values if type(v) is int):
            return None  # float64 would round it (2**53 + 1 to 2**53): checked before
        try:
            a = np.array(values, dtype=np.int64 if types <= {int} else np.float64)
        except OverflowError:  # an integer beyond 64 bits
            return None
    if a.dtype.kind == "f":
        if np.isnan(a).any():
            return None
    elif a.size and (int(a.min()) < -EXACT or int(a.max()) > EXACT):
        return None
    if a.size > 1 and not bool((a[:-1] <= a[1:]).all()):
        a = np.sort(a)
    return a


def _on_integers(op: str, v: Number) -> tuple[str, int] | str | None:
    """The condition on an integer array with the same answer as ``x op v``: an
    ``(op, int)``, ``"none"`` (nothing matches) or ``None`` (every value does)."""
    if isinstance(v, int):
        return op, v
    if abs(v) > EXACT:  # beyond every value (all within 2**53): as the next integer out
        return op, EXACT + 1 if v > 0 else -EXACT - 1
    if op in (">", "<="):  # x > 2.5 is x > 2, x <= 2.5 is x <= 2
        return op, math.floor(v)
    if op in (">=", "<"):  # x >= 2.5 is x >= 3, x < 2.5 is x < 3
        return op, math.ceil(v)
    if v != math.floor(v):  # = 2.5 never, <> 2.5 always
        return "none" if op == "=" else None
    return op, int(v)


def count(a: np.ndarray, conditions: Sequence[tuple[str, Number]]) -> int:
    """How many values of the sorted array ``a`` meet every condition.

    Examples
    --------
    >>> a = np.array([1, 2, 2, 3, 5])
    >>> count(a, [(">", 1.5), ("<>", 3)]), count(a, [("=", 2.0)]), count(a, [("<>", 2)])
    (3, 2, 3)
    """
    lo, hi = 0, len(a)
    excluded: set[Number] = set()

    def left(v: Number) -> int:
        return int(np.searchsorted(a, v, "left"))

    def right(v: Number) -> int:
        return int(np.searchsorted(a, v, "right"))

    for op, raw in conditions:
        if a.dtype.kind == "f":
            cond: tuple[str, Number] | str | None = (op, float(raw))
        else:
            cond = _on_integers(op, raw)
        if cond == "none":
            return 0
        if cond is None or isinstance(cond, str):
            continue
        op, v = cond
        if op in (">", ">=", "="):
            lo = max(lo, right(v) if op == ">" else left(v))
        if op in ("<", "<=", "="):
            hi = min(hi, left(v) if op == "<" else right(v))
        if op == "<>":
            excluded.add(v)
    matched = max(0, hi - lo)
    for v in excluded:
        matched -= max(0, min(hi, right(v)) - max(lo, left(v)))
    return matched


class ValueIndex:
    """Per process: ``(collection, property) -> (data version, sorted values or None)``.

    Thread-safe; a column is loaded by one thread while the others count in SQL."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._arrays: OrderedDict[tuple[str, str], tuple[str, np.ndarray | None]] = (
            OrderedDict())
        self._loading: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.hits = 0  # counts answered here
        self.loads = 0  # columns read from the store
        self.stale = 0  # candidates a page's snapshot showed out of date

    def max_rows(self) -> int:
        """The most values one column may have to be loaded."""
        return self.max_bytes // 8

    def candidate(self, r: Ranged) -> tuple[str, int] | None:
        """``(version, count)`` from the array in memory, to be checked against the
        version a page reads in its own snapshot (``confirm``)."""
        with self._lock:
            version, a = self._arrays.get(r.key, ("", None))
            if a is None:
                return None
            self._arrays.move_to_end(r.key)
        return version, count(a, r.conditions)

    def confirm(self, r: Ranged, candidate: tuple[str, int], version: str | None) -> int | None:
        """The candidate's count if ``version`` (the page's) is the one it was made at;
        else ``None``, and the out-of-date array is dropped."""
        if version is not None and candidate[0] == version:
            with self._lock:
                self.hits += 1
            return candidate[1]
        with self._lock:
            self.stale += 1
        self.seen(r, version)
        return None

    def seen(self, r: Ranged, version: str | None) -> None:
        """A page read ``version``: drop what is held for ``r``'s column at another one
        (an array, or the mark that it was unusable), so the next page loads it anew."""
        with self._lock:
            entry = self._arrays.get(r.key)
            if entry is not None and entry[0] != version:
                del self._arrays[r.key]

    def count_at(self, r: Ranged, version: str | None,
                 load: Callable[[], Loaded]) -> int | None:
        """The count of ``r`` at ``version`` (already read in the caller's snapshot), loading
        the column with ``load`` (in that same snapshot) when it is not in memory."""
        cand = self.candidate(r)
        if cand is None or cand[0] != version:
            self.ensure(r, load, version)
            cand = self.candidate(r)
        return None if cand is None else self.confirm(r, cand, version)

    def ensure(self, r: Ranged, load: Callable[[], Loaded], wanted: str | None = None) -> None:
        """Load the column of ``r`` unless it is in memory (at ``wanted`` when given),
        known unusable at that version, or being loaded by another thread."""
        with self._lock:
            entry = self._arrays.get(r.key)
            if entry is not None and (wanted is None or entry[0] == wanted):
                return
            if r.key in self._loading:
                return
            self._loading.add(r.key)
        try:
            version, values = load()
            a = None if values is None else as_array(values)
            if a is not None and a.nbytes > self.max_bytes:
                a = None
            with self._lock:
                self.loads += 1
                if version is not None:
                    self._put(r.key, version, a)
        finally:
            with self._lock:
                self._loading.discard(r.key)

    def _put(self, key: tuple[str, str], version: str, a: np.ndarray | None) -> None:
        """Keep ``a`` (lock held), dropping least recently used arrays over the budget."""
        self._arrays[key] = (version, a)
        self._arrays.move_to_end(key)
        while sum(x.nbytes for _, x in self._arrays.values() if x is not None) > self.max_bytes:
            self._arrays.popitem(last=False)
