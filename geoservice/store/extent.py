"""A collection's extent kept exact by writes without scanning the table on each one.

Why: recomputing ``min/max`` over every row on every write cost a full scan per write
(about 0.2 s at two million buildings).  A write only *grows* the extent by what it adds;
only a removed geometry that touched the extent's edge can shrink it, and only then is the
extent recomputed (rare in a large collection, exact in every case).

Both stores call :func:`next_extent` inside the write transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from shapely.geometry.base import BaseGeometry

from geoservice.store.base import BBox


def bounds(geom: BaseGeometry | None) -> BBox | None:
    """``(minx, miny, maxx, maxy)`` of a geometry, ``None`` when missing or empty."""
    if geom is None or geom.is_empty:
        return None
    b = geom.bounds
    return (b[0], b[1], b[2], b[3])


def union(boxes: Iterable[BBox | None]) -> BBox | None:
    """The smallest box holding every given box (``None`` when there is none)."""
    present = [b for b in boxes if b is not None]
    if not present:
        return None
    return (min(b[0] for b in present), min(b[1] for b in present),
            max(b[2] for b in present), max(b[3] for b in present))


def touches_edge(removed: BBox, extent: BBox) -> bool:
    """Whether removing a geometry with bounds ``removed`` may shrink ``extent``."""
    return (removed[0] <= extent[0] or removed[1] <= extent[1]
            or removed[2] >= extent[2] or removed[3] >= extent[3])


def next_extent(
    current: BBox | None, added: BBox | None, removed: BBox | None
) -> BBox | None | Literal[True]:
    """The extent after a write, or ``True`` when it must be recomputed from the rows.

    >>> next_extent((0, 0, 2, 2), (1, 1, 3, 3), None)
    (0, 0, 3, 3)
    >>> next_extent((0, 0, 2, 2), None, (0, 0, 1, 1))
    True
    """
    if removed is not None and current is not None and touches_edge(removed, current):
        return True
    return union([current, added])
