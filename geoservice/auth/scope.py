"""Which municipality a point lies in: an index over ``admin-boundaries``, built once.

Write scoping and the derived ``municipality_code`` of sightings both use it, so the code a
feature carries is the code its token was checked against.  Points just outside the
simplified N03 polygons (coast, borders moved by simplification) take the nearest
municipality within ``max_distance`` degrees (~1 km), as the build's loader does.
"""

from __future__ import annotations

from dataclasses import dataclass

from shapely import STRtree
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from geoservice.store import Store

BOUNDARIES = "admin-boundaries"


@dataclass
class MunicipalityIndex:
    """Polygons with their 5-digit codes and names, in an STRtree."""

    codes: list[str]
    names: dict[str, str]
    geoms: list[BaseGeometry]
    max_distance: float = 0.01

    def __post_init__(self) -> None:
        self.tree = STRtree(self.geoms)

    @classmethod
    def from_store(cls, store: Store, collection: str = BOUNDARIES) -> MunicipalityIndex:
        """Read every boundary of ``collection`` (an empty index when it is absent)."""
        codes: list[str] = []
        names: dict[str, str] = {}
        geoms: list[BaseGeometry] = []
        if collection in store.collections():
            for f in store.iter_features(collection):
                code = f.properties.get("municipality_code")
                if code is None or f.geometry is None or f.geometry.is_empty:
                    continue
                codes.append(str(code))
                names.setdefault(str(code), str(f.properties.get("name", code)))
                geoms.append(f.geometry)
        return cls(codes, names, geoms)

    @property
    def empty(self) -> bool:
        """No boundaries loaded (every municipality-scoped write is then refused)."""
        return not self.geoms

    def code_at(self, geom: BaseGeometry) -> str | None:
        """The municipality of a point (of a geometry's representative point)."""
        if self.empty:
            return None
        pt = geom if isinstance(geom, Point) else geom.representative_point()
        for i in self.tree.query(pt, predicate="intersects"):
            return self.codes[int(i)]
        i = self.tree.query_nearest(pt, max_distance=self.max_distance, all_matches=False)
        return self.codes[int(i[0])] if len(i) else None

    def covers(self, code: str, geom: BaseGeometry) -> bool:
        """Does the geometry lie in municipality ``code`` (its point, for point features)?"""
        if isinstance(geom, Point):
            return self.code_at(geom) == code
        parts = [g for c, g in zip(self.codes, self.geoms, strict=True) if c == code]
        return any(g.buffer(self.max_distance).covers(geom) for g in parts)
