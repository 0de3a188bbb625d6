"""Tiles made for their zoom, on both stores: a synthetic city of small buildings.

Checked by decoding the tiles (mapbox_vector_tile and GDAL's MVT driver), against the
generated city (independent of the store): a low-zoom tile shows the whole city, not a
strip; every building is drawn or counted in a coalesced square; the byte budget holds;
full detail at the layer's maxzoom; features crossing a tile edge reach both tiles.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mapbox_vector_tile
import numpy as np
import pyogrio
import pytest
import shapely

from geoservice import mvt
from geoservice.catalogue import LayerSpec
from geoservice.features import Feature
from geoservice.store.base import Store
from geoservice.store.gpkg import GpkgStore

Z_LOW, SIDE, STEP_M, SIZE_M = 12, 90, 24.0, 10.0
CENTRE = (139.7600, 35.6800)


def city_spec(max_bytes: int = 500_000, geometry: str = "Polygon") -> LayerSpec:
    return LayerSpec.model_validate({
        "id": "city", "title": "Synthetic city", "synthetic": True,
        "licence": {"name": "CC BY 4.0", "url": "https://x"}, "attribution": "test",
        "source": {"format": "geojson", "paths": ["x"]}, "coverage": {"description": "t"},
        "geometry_type": geometry,
        "properties": [{"name": "usage"}, {"name": "height", "type": "number"}],
        "tiles": {"maxzoom": 16, "max_bytes": max_bytes, "low_zoom_properties": ["usage"]},
    })


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """Slippy-map tile of a point (the standard formula, not the service's code)."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    return x, int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def _low_tile() -> tuple[int, int]:
    return _tile_of(*CENTRE, Z_LOW)


def city(kind: str = "polygon") -> list[Feature]:
    """SIDE x SIDE buildings of 10 m every 24 m, centred in the z12 tile of CENTRE."""
    x, y = _low_tile()
    w, s, e, n = mvt.lonlat_bounds(Z_LOW, x, y)
    lon0, lat0 = (w + e) / 2, (s + n) / 2
    dlat = 1 / 110_950
    dlon = dlat / 0.8124
    out = []
    for i in range(SIDE):
        for j in range(SIDE):
            cx = lon0 + (i - SIDE / 2) * STEP_M * dlon
            cy = lat0 + (j - SIDE / 2) * STEP_M * dlat
            geom = (shapely.box(cx, cy, cx + SIZE_M * dlon, cy + SIZE_M * dlat)
                    if kind == "polygon" else shapely.Point(cx, cy))
            out.append(Feature(f"b{i:03d}{j:03d}", {"usage": "住宅", "height": 9.5}, geom))
    return out


@pytest.fixture(scope="module")
def pg_url(pg_database: Callable[[str], str]) -> str:
    return pg_database("tiling")


@pytest.fixture(params=["gpkg", "postgis"])
def make_store(request: pytest.FixtureRequest,
               tmp_path: Path) -> Iterator[Callable[[LayerSpec, list[Feature]], Store]]:
    made: list[Store] = []

    def make(spec: LayerSpec, feats: list[Feature]) -> Store:
        if request.param == "gpkg":
            s: Store = GpkgStore(tmp_path / f"{uuid.uuid4().hex}.gpkg", create=True)
        else:
            from geoservice.store import postgis

            url = request.getfixturevalue("pg_url")
            s = postgis.PostgisStore(url, schema=f"t_{uuid.uuid4().hex[:12]}", create=True)
        s.create_collection(spec, source="test", synthetic=True)
        s.bulk_load(spec.id, feats)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _decode(data: bytes) -> list[dict]:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})["city"][
        "features"]


def _coords(geom: dict) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []

    def walk(c: object) -> None:
        if isinstance(c, list) and c and isinstance(c[0], int | float):
            out.append((float(c[0]), float(c[1])))  # type: ignore[arg-type]
        elif isinstance(c, list):
            for part in c:
                walk(part)

    walk(geom["coordinates"])
    return out


def _city_box_units() -> tuple[float, float, float, float]:
    """The generated city's extent in the low tile's units (independent formula)."""
    x, y = _low_tile()
    n = 2**Z_LOW
    b = shapely.MultiPolygon([f.geometry for f in city()]).bounds

    def ux(lon: float) -> float:
        return ((lon + 180) / 360 * n - x) * 4096

    def uy(lat: float) -> float:
        return ((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n - y) * 4096

    return ux(b[0]), uy(b[3]), ux(b[2]), uy(b[1])


def _check_covers_city(feats: list[dict]) -> None:
    pts = [p for f in feats for p in _coords(f["geometry"])]
    x0, y0, x1, y1 = _city_box_units()
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    # the whole city, within two pixels at each side - not a strip of it
    assert min(xs) <= x0 + 32 and max(xs) >= x1 - 32, (min(xs), max(xs), x0, x1)
    assert min(ys) <= y0 + 32 and max(ys) >= y1 - 32, (min(ys), max(ys), y0, y1)


def test_low_zoom_tile_coalesces_subpixel_buildings_and_shows_the_whole_city(
    make_store: Callable[[LayerSpec, list[Feature]], Store], tmp_path: Path
) -> None:
    spec = city_spec()
    store = make_store(spec, city())
    x, y = _low_tile()
    data = store.tile("city", Z_LOW, x, y)
    assert 0 < len(data) <= spec.tiles.max_bytes
    feats = _decode(data)
    _check_covers_city(feats)
    # every building is drawn or counted once (a 10 m building is ~1/6 px at z12)
    assert sum(f["properties"].get("coalesced", 1) for f in feats) == SIDE * SIDE
    assert all("coalesced" in f["properties"] for f in feats)
    # GDAL's MVT driver reads it and sees the same features
    path = tmp_path / "t.pbf"
    path.write_bytes(data)
    df = pyogrio.read_dataframe(path, layer="city", X=str(x), Y=str(y), Z=str(Z_LOW),
                               CLIP="NO")
    assert len(df) == len(feats)


def test_budget_is_kept_by_coarser_cells_and_thinner_attributes(
    make_store: Callable[[LayerSpec, list[Feature]], Store],
) -> None:
    spec = city_spec(max_bytes=8192)
    store = make_store(spec, city())
    x, y = _low_tile()
    feats_full = _decode(store.tile("city", 14, x * 4 + 1, y * 4 + 1))
    data = store.tile("city", Z_LOW, x, y)
    assert 0 < len(data) <= 8192
    feats = _decode(data)
    _check_covers_city(feats)
    assert sum(f["properties"].get("coalesced", 1) for f in feats) == SIDE * SIDE
    assert feats_full  # z14 under the same budget still draws its part of the city


def test_full_detail_at_maxzoom_and_nothing_beyond(
    make_store: Callable[[LayerSpec, list[Feature]], Store],
) -> None:
    spec = city_spec()
    buildings = city()
    store = make_store(spec, buildings)
    lon, lat = buildings[SIDE * SIDE // 2].geometry.centroid.coords[0]
    x, y = _tile_of(lon, lat, 16)
    feats = _decode(store.tile("city", 16, x, y))
    w, s, e, nn = mvt.lonlat_bounds(16, x, y)
    inside = {f.id for f in buildings if f.geometry.intersects(shapely.box(w, s, e, nn))}
    ids = {f["properties"]["id"] for f in feats}
    assert inside <= ids and not any("coalesced" in f["properties"] for f in feats)
    assert {"usage", "height", "id"} <= set(feats[0]["properties"])
    assert store.tile("city", 17, x * 2, y * 2) == b""


def test_a_building_across_a_tile_edge_reaches_both_tiles(
    make_store: Callable[[LayerSpec, list[Feature]], Store],
) -> None:
    z = 16
    x, y = 58_213, 25_806
    w, s, e, n = mvt.lonlat_bounds(z, x, y)
    dx = (e - w) / 50
    edge = Feature("edge", {"usage": "x"}, shapely.box(e - dx, s + 10 * dx, e + dx, s + 12 * dx))
    store = make_store(city_spec(), [edge])
    for tx in (x, x + 1):
        (f,) = _decode(store.tile("city", z, tx, y))
        assert f["properties"]["id"] == "edge"
        xs = [p[0] for p in _coords(f["geometry"])]
        assert min(xs) >= -64 and max(xs) <= 4096 + 64


def test_points_over_the_budget_are_thinned_drop_densest(
    make_store: Callable[[LayerSpec, list[Feature]], Store],
) -> None:
    spec = city_spec(max_bytes=4096, geometry="Point")
    store = make_store(spec, city("point"))
    x, y = _low_tile()
    data = store.tile("city", Z_LOW, x, y)
    assert 0 < len(data) <= 4096
    feats = _decode(data)
    assert sum(f["properties"].get("point_count", 1) for f in feats) == SIDE * SIDE
    assert len(feats) < SIDE * SIDE
    _check_covers_city(feats)


def _mixed_city() -> tuple[LayerSpec, list[Feature]]:
    """The city plus parks (polygons over a pixel), roads, sub-pixel lines and points, with
    every property type, and a detail zoom that thins attributes below z14."""
    spec = LayerSpec.model_validate({
        **city_spec().model_dump(), "geometry_type": "Geometry",
        "properties": [{"name": "usage"}, {"name": "height", "type": "number"},
                       {"name": "n", "type": "integer"}, {"name": "ok", "type": "boolean"},
                       {"name": "d", "type": "date"}, {"name": "t", "type": "datetime"}],
        "tiles": {"maxzoom": 16, "detail_zoom": 14, "low_zoom_properties": ["usage"]}})
    feats = [Feature(f.id, {**f.properties, "n": i, "ok": i % 2 == 0, "d": "2024-05-01",
                            "t": "2024-05-01T10:00:00.5Z" if i % 3 else "2024-05-01T10:00:00Z"},
                     f.geometry) for i, f in enumerate(city())]
    x0, y0 = CENTRE
    for i in range(30):
        feats += [
            Feature(f"park{i:02d}", {"usage": "park"}, shapely.Point(
                x0 + i * 0.003, y0 + (i % 5) * 0.002).buffer(0.001 + i * 1e-4, 8)),
            Feature(f"road{i:02d}", {"usage": "road"}, shapely.LineString(
                [(x0 - 0.02, y0 + i * 7e-4), (x0 + 0.02, y0 + i * 5e-4)])),
            Feature(f"lane{i:02d}", {"usage": "lane"}, shapely.LineString(
                [(x0 + i * 1e-3, y0), (x0 + i * 1e-3 + 1e-5, y0)])),
            Feature(f"pt{i:02d}", {"usage": "bear"}, shapely.Point(x0 + i * 0.0011, y0 - 0.003)),
        ]
    return spec, feats


@contextmanager
def _two_stores(pg_url: str, tmp_path: Path, spec: LayerSpec,
                feats: list[Feature]) -> Iterator[tuple[GpkgStore, Store]]:
    """A GeoPackage and a PostGIS store holding ``feats``."""
    from geoservice.store import postgis

    g = GpkgStore(tmp_path / "a.gpkg", create=True)
    p = postgis.PostgisStore(pg_url, schema=f"t_{uuid.uuid4().hex[:12]}", create=True)
    try:
        for s in (g, p):
            s.create_collection(spec, source="t", synthetic=True)
            s.bulk_load("city", feats)
        yield g, p
    finally:
        g.close()
        p.close()


def test_both_stores_draw_the_same_tiles(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostGIS makes its tiles in SQL (``mvt_sql``: one ``ST_AsMVT`` statement, no Python
    encoding within the budget); the GeoPackage store in Python (``tiling.render``).  Both
    draw the same features with the same properties, the same coalesced squares, and
    geometries within a pixel of each other, from z10 to full detail at z16."""
    from geoservice.store import tiling

    spec, feats = _mixed_city()
    with _two_stores(pg_url, tmp_path, spec, feats) as (g, p):
        seen = set()
        for z in (10, 12, 13, 14, 16):
            x, y = _tile_of(*CENTRE, z)
            for tx, ty in ((x, y), (x + 1, y), (x - 1, y - 1)):
                a = _decode_any(g.tile("city", z, tx, ty))
                with monkeypatch.context() as m:
                    m.setattr(tiling, "render", _no_python)
                    b = _decode_any(p.tile("city", z, tx, ty))
                assert _drawn(a).keys() == _drawn(b).keys(), (z, tx, ty)
                for fid, (props, geom) in _drawn(a).items():
                    props_b, geom_b = _drawn(b)[fid]
                    assert props == props_b, (z, fid)
                    assert shapely.hausdorff_distance(geom, geom_b) <= 3, (z, fid)
                    seen.add(geom.geom_type)
                assert _squares(a) == _squares(b), (z, tx, ty)
                seen |= {"coalesced"} if _squares(a) else set()
        assert {"Polygon", "LineString", "Point", "coalesced"} <= seen
        # the thinned attributes below detail_zoom, all of them at it
        x, y = _tile_of(*CENTRE, 13)
        assert {"usage", "id"} == set(_drawn(_decode_any(p.tile("city", 13, x, y)))["pt01"][0])
        x, y = _tile_of(*feats[SIDE * SIDE // 2].geometry.centroid.coords[0], 16)
        full = [props for fid, (props, _) in _drawn(_decode_any(p.tile("city", 16, x, y))).items()
                if fid.startswith("b")]
        assert full and all({"usage", "height", "n", "ok", "d", "t", "id"} == set(f)
                            for f in full)


@pytest.mark.parametrize(("budget", "maxzoom"), [(4096, 16), (20_000, 16), (4096, 13)])
def test_over_budget_postgis_tiles_are_made_in_sql_as_the_geopackage_store_makes_them(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int, maxzoom: int
) -> None:
    """A tile over the byte budget: PostGIS makes the budget levels in SQL (``mvt_sql``,
    no Python encoding), the GeoPackage store in Python (``tiling.render``); both end at
    the same level and draw the same features, properties, ``point_count`` (drop-densest)
    and coalesced squares (cells of 2-32 pixels), under the budget, read by GDAL - below
    ``maxzoom`` and at it (where levels 0-1 keep full detail).

    Tolerances, and why: geometries are simplified by Douglas-Peucker in PostGIS
    (``ST_Simplify``) and by shapely's topology-preserving simplification, each by the
    level's tolerance (``tiling.level``), so a drawn geometry may differ by up to twice
    that (+ 3 units of snapping); the two encoders order keys and values differently, so
    the sizes differ by a few bytes (here at most 64 + 1%).  A tile whose size at some level
    lies within that difference of the budget could end one level apart in the two
    stores; none of these does."""
    from geoservice.store import postgis, tiling

    level = tiling.level
    spec, feats = _mixed_city()
    spec = LayerSpec.model_validate({**spec.model_dump(), "tiles": {
        **spec.tiles.model_dump(), "max_bytes": budget, "maxzoom": maxzoom}})
    with _two_stores(pg_url, tmp_path, spec, feats) as (g, p):
        x, y = _tile_of(*CENTRE, 12)
        addresses = [(10, *_tile_of(*CENTRE, 10)), (12, x, y), (12, x + 1, y)]
        x, y = _tile_of(*CENTRE, 13)
        addresses += [(13, x, y), (13, x + 1, y),
                      (16, *_tile_of(*feats[SIDE * SIDE // 2].geometry.centroid.coords[0], 16))]
        addresses = [a for a in addresses if a[0] <= maxzoom]
        counted, levels, made = 0, set(), {}
        for z, x, y in addresses:
            tried: list[int] = []

            def spy(s: LayerSpec, z: int, n: int, tried: list[int] = tried) -> tiling.Level:
                tried.append(n)
                return level(s, z, n)

            with monkeypatch.context() as m:  # the levels tiling.render tries on GeoPackage
                m.setattr(tiling, "level", spy)
                a = g.tile("city", z, x, y)
            n = tried[-1]
            levels.add(n)
            with monkeypatch.context() as m:
                m.setattr(tiling, "render", _no_python)
                b = made[z, x, y] = p.tile("city", z, x, y)
            assert 0 < len(b) <= budget and 0 < len(a) <= budget, (z, len(a), len(b))
            assert abs(len(a) - len(b)) <= 64 + len(a) // 100, (z, len(a), len(b))
            fa, fb = _decode_any(a), _decode_any(b)
            assert _squares(fa) == _squares(fb), (z, x, y)
            da, db = _drawn(fa), _drawn(fb)
            assert da.keys() == db.keys(), (z, x, y)
            tol = 2 * tiling.level(spec, z, n).tolerance + 3
            for fid, (props, geom) in da.items():
                assert props == db[fid][0], (z, fid)
                assert shapely.hausdorff_distance(geom, db[fid][1]) <= tol, (z, fid)
                counted += "point_count" in props
            path = tmp_path / f"{z}-{x}-{y}.pbf"
            path.write_bytes(b)
            df = pyogrio.read_dataframe(path, layer="city", X=str(x), Y=str(y), Z=str(z),
                                       CLIP="NO")
            assert len(df) == len(fb)
        assert counted and max(levels) >= 3, (counted, levels)  # drop-densest, coarse cells
        assert 0 in levels or budget < 20_000
        # after a tile over the budget the store tries all levels in one statement (level 0
        # included); a store asked in the other order (level 0 alone first) makes the same
        other = postgis.PostgisStore(pg_url, schema=p.schema)
        try:
            assert {a: other.tile("city", *a) for a in reversed(addresses)} == made
        finally:
            other.close()


def test_level_0_asked_alone_skips_cells_over_the_budget_as_every_other_path(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Level 0 whose tile fits the budget but whose coalesced cells alone are estimated
    over it (``tiling.CELL_BYTES`` each) is skipped by ``tiling.render``.  PostGIS asks
    level 0 alone when the last tile of the zoom fitted, and all levels at once after
    one over the budget: both must skip it too, or a tile would depend on which tile of
    its zoom was asked before.  T: 20 sub-pixel buildings (20 cells, a few hundred
    bytes); U beside it: 300 buildings of 5 pixels with long names (over the budget)."""
    from geoservice.store import postgis, tiling

    monkeypatch.setattr(tiling, "CELL_BYTES", 400)  # 20 cells "cost" 8,000 > 4,096
    z = Z_LOW
    x, y = _tile_of(*CENTRE, z)
    w, s, e, n = mvt.lonlat_bounds(z, x, y)
    dx, dy = (e - w), (n - s)  # a pixel is dx / 256: T's huts are a third of one
    f32 = np.vectorize(lambda v: float(np.float32(v)))  # as the GeoPackage R-tree keeps it
    feats = [Feature(f"t{i:02d}", {"usage": "hut", "height": 2.0}, shapely.box(*f32([
        w + dx * (0.2 + 0.03 * i), s + dy * 0.5, w + dx * (0.2 + 0.03 * i + 0.0013),
        s + dy * 0.5013]))) for i in range(20)]
    feats += [Feature(f"u{i:03d}", {"usage": f"office building number {i}", "height": i},
                      shapely.box(e + dx * (0.05 + 0.045 * (i % 20)),
                                  s + dy * (0.05 + 0.06 * (i // 20)),
                                  e + dx * (0.08 + 0.045 * (i % 20)),
                                  s + dy * (0.08 + 0.06 * (i // 20))))
              for i in range(300)]
    spec = city_spec(max_bytes=4096)
    with _two_stores(pg_url, tmp_path, spec, feats) as (g, p):
        tried: list[int] = []
        level = tiling.level

        def spy(sp: LayerSpec, zz: int, k: int) -> tiling.Level:
            tried.append(k)
            return level(sp, zz, k)

        with monkeypatch.context() as m:
            m.setattr(tiling, "level", spy)
            g.tile("city", z, x + 1, y)
            assert tried[0] == 0 and tried[-1] > 0  # U: over the budget at level 0
            tried.clear()
            a = _decode_any(g.tile("city", z, x, y))
        assert tried[0] == 0 and tried[-1] > 0  # T: level 0 skipped by its cells
        with monkeypatch.context() as m:
            m.setattr(tiling, "render", _no_python)
            alone = p.tile("city", z, x, y)  # a fresh store: level 0 asked alone
            other = postgis.PostgisStore(pg_url, schema=p.schema)
            try:
                assert len(other.tile("city", z, x + 1, y)) <= 4096  # U: over at level 0
                after = other.tile("city", z, x, y)  # all levels in one statement
            finally:
                other.close()
        assert alone == after
        b = _decode_any(alone)
        assert _squares(a) == _squares(b) and len(_squares(b)) > 0
        assert _drawn(a).keys() == _drawn(b).keys()


def _no_python(*args: object, **kw: object) -> bytes:
    raise AssertionError("a PostGIS tile was encoded in Python")


def _decode_any(data: bytes) -> list[dict]:
    layers = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    return layers["city"]["features"] if layers else []


def _drawn(feats: list[dict]) -> dict[str, tuple[dict, shapely.Geometry]]:
    """Features drawn as themselves: id -> (properties, tile-space geometry)."""
    return {f["properties"]["id"]: (f["properties"], shapely.geometry.shape(f["geometry"]))
            for f in feats if "id" in f["properties"]}


def _squares(feats: list[dict]) -> list[tuple[int, str]]:
    """Coalesced squares: (count, normalised geometry), sorted."""
    return sorted((f["properties"]["coalesced"],
                   shapely.normalize(shapely.geometry.shape(f["geometry"])).wkt)
                  for f in feats if "coalesced" in f["properties"])


def test_prebuilt_pyramid_is_read_not_made_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geoservice.store import pyramid, tiling

    spec = LayerSpec.model_validate({**city_spec().model_dump(),
                                     "tiles": {**city_spec().tiles.model_dump(),
                                               "maxzoom": 14, "prebuild": True}})
    path = tmp_path / "p.gpkg"
    store = GpkgStore(path, create=True)
    store.create_collection(spec, source="t", synthetic=True)
    store.bulk_load("city", city())
    report = pyramid.prebuild(path, "city", workers=2)
    # z0..z12 one tile each, then the 2.2 km city spans a few tiles per level
    assert report.tiles >= 15 and report.maxzoom == 14 and report.skipped == 0
    x, y = _low_tile()
    addresses = [(z, x >> (Z_LOW - z), y >> (Z_LOW - z)) for z in range(0, Z_LOW + 1)]
    addresses += [(14, 4 * x + 1, 4 * y + 2), (14, 4 * x + 2, 4 * y + 1), (13, 0, 0)]
    made = {a: store.tile("city", *a, prebuilt=False) for a in addresses}
    assert made[(13, 0, 0)] == b"" and all(made[a] for a in addresses[:-1])

    def no_rendering(*args: object, **kw: object) -> bytes:
        raise AssertionError("a prebuilt tile was made again")

    monkeypatch.setattr(tiling, "render", no_rendering)
    assert {a: store.tile("city", *a) for a in addresses} == made  # reads, same bytes
    monkeypatch.undo()
    # interrupted at z13: half of z13 and all of z14 missing -> the next run makes only those
    con = store._con()
    with con:
        con.execute("UPDATE geoservice_tile_builds SET done_zoom = 12")
        con.execute("DELETE FROM geoservice_tiles WHERE z = 14 OR (z = 13 AND x % 2 = 0)")
    again = pyramid.prebuild(path, "city", workers=1)
    assert again.skipped > 0 and 0 < again.tiles + again.empty < report.tiles + report.empty
    assert store.tile("city", 14, 4 * x + 1, 4 * y + 2) == made[(14, 4 * x + 1, 4 * y + 2)]
    # a write makes a new data version: the pyramid is no longer used, tiles are made
    w, s, _, _ = mvt.lonlat_bounds(14, 4 * x + 1, 4 * y + 2)
    store.create("city", Feature("new", {"usage": "x"}, shapely.box(w, s, w + 1e-4, s + 1e-4)))
    assert store.tile("city", 14, 4 * x + 1, 4 * y + 2) != made[(14, 4 * x + 1, 4 * y + 2)]
    store.close()


def test_pyramid_write_batches_are_bounded_in_bytes_not_only_in_tiles() -> None:
    """The build's parent holds one write batch: 64 tiles near the budget were ~30 MB, so its
    peak memory grew with the city (issue 17); batches now stop at ``BATCH_BYTES``."""
    from geoservice.store import pyramid

    big = [(14, x, 0, bytes([x % 251]) * 400_000) for x in range(100)]  # near the budget
    small = [(16, x, 0, b"t" * 100) for x in range(150)]
    huge = [(11, 0, 0, b"h" * (3 * pyramid.BATCH_BYTES))]  # alone over the limit: still written
    batches = list(pyramid._batches(iter(big + small + huge)))
    assert [t for b in batches for t in b] == big + small + huge  # each tile once, in order
    for b in batches:
        assert len(b) <= pyramid.BATCH
        assert len(b) == 1 or sum(len(t[3]) for t in b) <= pyramid.BATCH_BYTES
    assert max(len(b) for b in batches) == pyramid.BATCH  # small tiles still go 64 at a time


def test_prebuilt_pyramid_on_postgis_is_read_not_made(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geoservice.store import postgis, pyramid, tiling

    spec = LayerSpec.model_validate({**city_spec().model_dump(),
                                     "tiles": {**city_spec().tiles.model_dump(),
                                               "maxzoom": 13, "prebuild": True}})
    store = postgis.PostgisStore(pg_url, schema=f"t_{uuid.uuid4().hex[:12]}", create=True)
    try:
        store.create_collection(spec, source="t", synthetic=True)
        store.bulk_load("city", city())
        report = pyramid.prebuild((pg_url, store.schema), "city", workers=2)
        assert report.tiles >= 14 and report.skipped == 0
        x, y = _low_tile()
        addresses = [(z, x >> (Z_LOW - z), y >> (Z_LOW - z)) for z in range(0, Z_LOW + 1)]
        addresses += [(13, 2 * x, 2 * y + 1), (13, 0, 0)]
        made = {a: store.tile("city", *a, prebuilt=False) for a in addresses}

        def no_rendering(*args: object, **kw: object) -> bytes:
            raise AssertionError("a prebuilt tile was made again")

        monkeypatch.setattr(tiling, "render", no_rendering)
        assert {a: store.tile("city", *a) for a in addresses} == made
        monkeypatch.undo()
        store.create("city", Feature("new", {"usage": "x"}, shapely.Point(*CENTRE)))
        # a new data version: made on demand again (the new building is in it)
        assert store.tile("city", Z_LOW, x, y) != made[(Z_LOW, x, y)]
    finally:
        store.close()


def test_a_write_changes_only_the_tiles_it_touches(tmp_path: Path) -> None:
    """GeoPackage: ``tile_version`` (the tile cache key and ETag) of a tile changes with a
    write whose old or new geometry touches it, and with no other."""
    spec = LayerSpec.model_validate({**city_spec().model_dump(), "editable": True})
    store = GpkgStore(tmp_path / "e.gpkg", create=True)
    store.create_collection(spec, source="t", synthetic=True)
    store.bulk_load("city", city()[:100])
    z, x, y = 16, 58_213, 25_806
    a, b = (z, x, y), (z, x + 3, y)

    def centre(t: tuple[int, int, int]) -> shapely.Point:
        return shapely.box(*mvt.lonlat_bounds(*t)).centroid

    va, vb = store.tile_version("city", *a), store.tile_version("city", *b)
    store.create("city", Feature("w", {"usage": "x"}, centre(a).buffer(1e-5)))
    assert store.tile_version("city", *a) != va and store.tile_version("city", *b) == vb
    va = store.tile_version("city", *a)
    store.replace("city", "w", Feature("w", {"usage": "x"}, centre(b).buffer(1e-5)))
    va2, vb2 = store.tile_version("city", *a), store.tile_version("city", *b)
    assert va2 != va and vb2 != vb  # moved: its old tile and its new one
    store.update("city", "w", {"usage": "y"})
    assert store.tile_version("city", *a) == va2 and store.tile_version("city", *b) != vb2
    store.close()


def test_the_change_log_is_pruned_and_never_gives_back_a_stale_tile_token(
    tmp_path: Path,
) -> None:
    """GeoPackage: ``geoservice_changes`` keeps the last ``changes_kept`` writes' boxes
    (pruned every ``prune_every`` writes); a tile whose last write was pruned gets a newer
    token, never one it had before that write (its old cache entry and ETag would be
    served again), and later writes still change only the tiles they touch."""
    spec = LayerSpec.model_validate({**city_spec().model_dump(), "editable": True})
    store = GpkgStore(tmp_path / "p.gpkg", create=True)
    store.changes_kept, store.prune_every = 5, 5
    store.create_collection(spec, source="t", synthetic=True)
    z, x, y = 16, 58_213, 25_806
    a, b = (z, x, y), (z, x + 3, y)

    def at(t: tuple[int, int, int]) -> shapely.Polygon:
        return shapely.box(*mvt.lonlat_bounds(*t)).centroid.buffer(1e-5)

    before = {store.tile_version("city", *a)}  # the empty collection
    store.bulk_load("city", city()[:10])
    before.add(store.tile_version("city", *a))
    store.create("city", Feature("w", {"usage": "x"}, at(a)))
    store.create("city", Feature("u", {"usage": "x"}, at(b)))
    for i in range(40):
        store.update("city", "u", {"usage": f"v{i}"})
    con = store._con()
    (rows,) = con.execute("SELECT count(*) FROM geoservice_changes").fetchone()
    assert rows <= 2 * (store.changes_kept + store.prune_every) + 1
    va = store.tile_version("city", *a)
    assert va not in before
    vb = store.tile_version("city", *b)
    store.update("city", "u", {"usage": "last"})
    assert store.tile_version("city", *a) == va and store.tile_version("city", *b) != vb
    store.close()


def test_a_low_zoom_tile_reads_its_boxes_by_chunks_and_draws_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A z0-z10 tile of a city covers every building: the GeoPackage store reads the
    R-tree boxes a chunk at a time (memory bounded by the tile's cells, not the city -
    the pyramid's workers held 627 MB at 2,000,000 buildings) and draws the same tile:
    every building counted once, the same squares within a tile unit (sums of a cell's
    centres add in another order), the same cells and counts."""
    from geoservice.store import gpkg

    spec = city_spec()
    store = GpkgStore(tmp_path / "c.gpkg", create=True)
    store.create_collection(spec, source="test", synthetic=True)
    store.bulk_load(spec.id, city())
    x, y = _low_tile()
    whole = _decode(store.tile("city", Z_LOW, x, y))
    reads: list[int] = []
    real = gpkg._box_cells

    def counted(boxes: np.ndarray, zxy: tuple[int, int, int]) -> object:
        reads.append(len(boxes))
        return real(boxes, zxy)

    monkeypatch.setattr(gpkg, "BOX_CHUNK", 997)
    monkeypatch.setattr(gpkg, "_box_cells", counted)
    chunked = _decode(store.tile("city", Z_LOW, x, y))
    store.close()
    assert len(reads) > 5 and max(reads) <= 997 and sum(reads) == SIDE * SIDE
    assert sum(f["properties"]["coalesced"] for f in chunked) == SIDE * SIDE
    assert len(chunked) == len(whole)

    def cells(feats: list[dict]) -> list[tuple[int, float, float]]:
        return sorted((f["properties"]["coalesced"], *np.mean(_coords(f["geometry"]), axis=0))
                      for f in feats)

    for (na, xa, ya), (nb, xb, yb) in zip(cells(whole), cells(chunked), strict=True):
        assert na == nb and abs(xa - xb) <= 1 and abs(ya - yb) <= 1
