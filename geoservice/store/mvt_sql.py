"""PostGIS tiles made for their zoom in ONE statement (``ST_AsMVTGeom`` + ``ST_AsMVT``).

Why: encoding the rows in Python (``tiling.render``) made a cold PostGIS tile 3-5x
slower than tipg's ``ST_AsMVT`` - every row crossed the wire as WKB, was decoded,
projected, clipped and encoded by the interpreter.  This statement makes the tile that
``tiling.render`` makes at its first budget level, inside the database:

- rows whose bounding box is at least a pixel (and all points) are simplified to one
  tile unit (below ``maxzoom`` only, as ``tiling``) by ``ST_Simplify`` keeping collapsed
  rings - liblwgeom's Douglas-Peucker, where ``ST_SimplifyPreserveTopology`` (GEOS, as
  shapely) cost more than the rest of the tile; ``ST_AsMVTGeom`` then clips to the tile
  + 64-unit buffer, snaps to the 4096 grid and makes polygons valid;
- sub-pixel polygons are aggregated per pixel cell (``GROUP BY`` on the same tile-unit
  formulas as ``tiling.units``) into one square per cell with the property
  ``coalesced``, placed and sized exactly as ``tiling.Cells.squares`` does (``round`` on
  double precision rounds half to even, as numpy); sub-pixel lines are dropped;
- properties are thinned to ``low_zoom_properties`` below ``detail_zoom``;
- features in ``id`` order (``COLLATE "C"``, as the GeoPackage store), squares after.

No ``WHERE mvt_geom IS NOT NULL``: ``ST_AsMVT`` skips rows whose geometry collapsed, and
the planner pushed that filter into the scan and then evaluated ``ST_AsMVTGeom`` a
second time for the output - twice the cost of the tile.

The store falls back to ``tiling.render`` from its second level on only when this tile
is over the layer's byte budget (attribute thinning, coarser cells, drop-densest).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from geoservice import mvt
from geoservice.catalogue import LayerSpec
from geoservice.store import tiling


def _merc(v: str) -> str:
    """Spherical Mercator y (radians) of a latitude expression, as ``tiling._merc``."""
    return f"ln(tan(pi() / 4 + radians(least(greatest({v}, -85.0511287798066),"  \
        " 85.0511287798066)) / 2))"


#: A row's bounding box in tile units, as ``tiling.units`` computes it (parameters of
#: ``tiling.Scale``: lon0, kx, mtop, km).
TILE_CX = sql.SQL("((ST_XMin(t.geom) + ST_XMax(t.geom)) / 2 - %(lon0)s) * %(kx)s")
TILE_CY = sql.SQL(f"(%(mtop)s - {_merc('(ST_YMin(t.geom) + ST_YMax(t.geom)) / 2')})"
                  " * %(km)s")
TILE_W = sql.SQL("(ST_XMax(t.geom) - ST_XMin(t.geom)) * %(kx)s")
TILE_H = sql.SQL(f"({_merc('ST_YMax(t.geom)')} - {_merc('ST_YMin(t.geom)')}) * %(km)s")
#: Rows drawn as themselves below maxzoom: points, and anything at least a pixel wide.
_DRAWN = sql.SQL("(GeometryType(t.geom) IN ('POINT', 'MULTIPOINT')"
                 " OR greatest({}, {}) >= %(px)s)").format(TILE_W, TILE_H)
#: Rows that may be coalesced into cells below maxzoom (those under a pixel both ways).
_POLYGON = sql.SQL("GeometryType(t.geom) IN ('POLYGON', 'MULTIPOLYGON')")


def tile_args(z: int, x: int, y: int) -> dict[str, Any]:
    """The statement's tile parameters: buffered CRS84 search box, ``tiling.Scale``,
    tile envelope indices and the simplification tolerance in metres (one tile unit)."""
    sc = tiling.Scale.of(z, x, y)
    w, s, e, n = mvt.lonlat_bounds(z, x, y, mvt.BUFFER)
    minx, _, maxx, _ = mvt.mercator_bounds(z, x, y)
    return {"w": w, "s": s, "e": e, "n": n, "lon0": sc.lon0, "kx": sc.kx, "mtop": sc.mtop,
            "km": sc.km, "px": tiling.PIXEL, "z": z, "x": x, "y": y,
            "tol": (maxx - minx) / mvt.EXTENT, "extent": mvt.EXTENT, "buffer": mvt.BUFFER,
            "lo": -mvt.BUFFER, "hi": mvt.EXTENT + mvt.BUFFER}


def statement(spec: LayerSpec, table: sql.Composable, columns: list[tuple[str, sql.Composable]],
              where: sql.Composable, z: int) -> sql.Composed:
    """``SELECT ST_AsMVT(...)`` of tile ``z`` for ``spec`` (parameters: :func:`tile_args`
    plus ``layer`` and those of ``where``).  ``columns`` are the properties as the
    Features API writes them (name, SQL expression on ``t``)."""
    ts = spec.tiles
    full = z >= ts.maxzoom
    if z < ts.detail_zoom:
        columns = [(n, c) for n, c in columns if n in ts.low_zoom_properties]
    names = [sql.Identifier(n) for n, _ in columns]
    points = spec.geometry_type in ("Point", "MultiPoint")
    lines = spec.geometry_type in ("LineString", "MultiLineString")
    geom: sql.Composable = sql.SQL("ST_Transform(ST_Force2D(t.geom), 3857)")
    if not full and not points:
        geom = sql.SQL("ST_Simplify({}, %(tol)s, true)").format(geom)
    rows = sql.SQL(
        "SELECT ST_AsMVTGeom({g}, ST_TileEnvelope(%(z)s, %(x)s, %(y)s), %(extent)s,"
        " %(buffer)s, true) AS mvt_geom, t.id AS id{cols}, NULL::bigint AS coalesced,"
        " 0 AS k FROM {t} t WHERE {where}{drawn}"
    ).format(
        g=geom, t=table, where=where,
        cols=sql.SQL("").join(sql.SQL(", {} AS {}").format(c, n)
                              for (_, c), n in zip(columns, names, strict=True)),
        drawn=sql.SQL("") if full or points else sql.SQL(" AND ") + _DRAWN)
    parts = [rows]
    if not (full or points or lines):
        parts.append(_squares(table, where, len(names)))
    out = sql.SQL(", ").join([sql.Identifier("mvt_geom"), sql.Identifier("id"), *names,
                              sql.Identifier("coalesced")])
    return sql.SQL(
        "SELECT ST_AsMVT(m, %(layer)s, %(extent)s, 'mvt_geom') FROM (SELECT {out} FROM ({u}) u"
        ' ORDER BY u.k, u.id COLLATE "C") m'
    ).format(out=out, u=sql.SQL(" UNION ALL ").join(parts))


def _squares(table: sql.Composable, where: sql.Composable, nprops: int) -> sql.Composed:
    """One square per pixel cell of sub-pixel polygons (``tiling.Cells.squares``): at the
    mean centre of the cell's boxes, side sqrt(summed box area) clamped to [1, cell],
    corners rounded to the grid, at least one unit; exterior ring wound as MVT asks
    (positive area in tile coordinates = counter-clockwise with y taken as up).  The
    ``OFFSET 0`` fences make PostgreSQL compute each row's tile units (three Mercator
    logarithms) once, not once per use in the filter, the group key and the sums."""
    nulls = sql.SQL("").join([sql.SQL(", NULL")] * nprops)
    return sql.SQL(
        "SELECT ST_ForcePolygonCCW(ST_MakeEnvelope(s.x0, s.y0, s.x1, s.y1)) AS mvt_geom,"
        " NULL AS id{nulls}, s.n AS coalesced, 1 AS k FROM (SELECT b.n, b.x0, b.y0,"
        " greatest(b.x0 + 1, round(b.cx + b.side / 2)) AS x1,"
        " greatest(b.y0 + 1, round(b.cy + b.side / 2)) AS y1"
        " FROM (SELECT q.*, round(q.cx - q.side / 2) AS x0, round(q.cy - q.side / 2) AS y0"
        " FROM (SELECT c.n, c.sx / c.n AS cx, c.sy / c.n AS cy,"
        " least(greatest(sqrt(c.a), 1.0), %(px)s) AS side FROM (SELECT count(*) AS n,"
        " sum(u.w * u.h) AS a, sum(u.cx) AS sx, sum(u.cy) AS sy FROM (SELECT {cx} AS cx,"
        " {cy} AS cy, {w} AS w, {h} AS h FROM {t} t WHERE {where} AND {poly} OFFSET 0) u"
        " WHERE greatest(u.w, u.h) < %(px)s GROUP BY floor(u.cx / %(px)s),"
        " floor(u.cy / %(px)s)) c) q) b OFFSET 0) s"
        " WHERE s.x1 > %(lo)s AND s.x0 < %(hi)s AND s.y1 > %(lo)s AND s.y0 < %(hi)s"
    ).format(nulls=nulls, w=TILE_W, h=TILE_H, cx=TILE_CX, cy=TILE_CY, t=table, where=where,
             poly=_POLYGON)
