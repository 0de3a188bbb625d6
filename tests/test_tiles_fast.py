"""The embedded store's fast tile paths against the general ones, on the real extracts.

The GeoPackage store makes on-demand tiles from columns (no dict per feature), with
vectorised point projection/clipping/snapping and a vectorised MVT writer; these tests
hold them to the general paths over random tiles of the real sightings (points), debris-
flow zones and admin boundaries (polygons), neighbours of a feature's tile included so
that features crossing tile edges are cut: same geometries, same tile bytes, decoded
like ``mapbox_vector_tile``'s own encoding, and read by GDAL's MVT driver.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import mapbox_vector_tile
import numpy as np
import pyogrio
import pytest
import shapely
from shapely.geometry import shape

from geoservice import mvt, mvtpb
from geoservice.store import Query
from geoservice.store.base import Store
from geoservice.store.gpkg import GpkgStore

SIGHTINGS, ZONES, ADMIN = "wildlife-sightings", "sediment-special-zones", "admin-boundaries"


@pytest.fixture(scope="module")
def store(real_store: Path) -> Iterator[GpkgStore]:
    s = GpkgStore(real_store / "store.gpkg")
    yield s
    s.close()


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """Slippy-map tile of a point (the standard formula, not the service's code)."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    return x, int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def _tiles(store: GpkgStore, collection: str, count: int,
           seed: int) -> list[tuple[int, int, int]]:
    """Random tiles over a layer's features, z6-z16: a feature's own tile or one of its
    eight neighbours (a neighbour holds the feature's parts cut at the edge)."""
    rnd = random.Random(seed)
    feats = [f for f in store.iter_features(collection) if f.geometry is not None]
    out = set()
    while len(out) < count:
        p = rnd.choice(feats).geometry.representative_point()
        z = rnd.randint(6, 16)
        x, y = _tile_of(p.x, p.y, z)
        out.add((z, x + rnd.choice((-1, 0, 0, 1)), y + rnd.choice((-1, 0, 0, 1))))
    return sorted(out)


def _features(store: GpkgStore, collection: str, z: int, x: int, y: int) -> list:
    bbox = mvt.lonlat_bounds(z, x, y, mvt.BUFFER)
    return store.query(collection, Query(bbox=bbox, limit=2**62)).features


def _wkb(geoms: np.ndarray) -> list[bytes | None]:
    return [None if g is None else shapely.to_wkb(g) for g in geoms]


@pytest.mark.usefixtures("shared_data")
def test_point_fast_path_equals_the_general_geometry_path(store: GpkgStore) -> None:
    """Sightings: the vectorised projection equals shapely.transform's, and clipping and
    snapping by coordinates equals GEOS clip_by_rect + set_precision, point for point
    (points on and near the buffer edge included)."""
    cut = 0
    for z, x, y in _tiles(store, SIGHTINGS, 60, seed=1):
        geoms = [f.geometry for f in _features(store, SIGHTINGS, z, x, y)]
        if not geoms:
            continue
        fast = mvt.to_tile_space(geoms, z, x, y)
        general = shapely.transform(np.array(geoms, dtype=object), mvt._projector(z, x, y))
        assert shapely.equals_exact(fast, general, tolerance=0).all()
        done = mvt.finish(fast)
        assert _wkb(done) == _wkb(mvt._finish_shapes(fast))
        cut += sum(g is None for g in done)
    assert cut > 0  # some tiles had points outside the buffered tile
    edge = np.array([[-64.0, 0], [-63.9, 0.5], [4159.5, -0.5], [4160, 1], [2.5, -2.5]])
    pts = shapely.points(edge)
    assert _wkb(mvt._finish_points(pts)) == _wkb(mvt._finish_shapes(pts))


@pytest.mark.usefixtures("shared_data")
def test_sightings_tiles_under_a_read_policy_equal_the_general_path(store: GpkgStore) -> None:
    """``status = published`` (the public read policy): the store's SQL-filtered, columnar
    tile is byte for byte the general path's (a bbox query, features, render)."""
    drawn = 0
    for z, x, y in _tiles(store, SIGHTINGS, 60, seed=2):
        fast = store.tile(SIGHTINGS, z, x, y, {"status": "published"})
        assert fast == Store.tile(store, SIGHTINGS, z, x, y, {"status": "published"})
        drawn += bool(fast)
    assert drawn > 20


@pytest.mark.parametrize("collection", [SIGHTINGS, ZONES, ADMIN])
@pytest.mark.usefixtures("shared_data")
def test_real_tiles_decode_like_mapbox_vector_tile(store: GpkgStore, collection: str) -> None:
    """Our vectorised writer against mapbox_vector_tile's encoder on the real layers'
    clipped, snapped geometries (multipolygons, holes, parts cut at the edges): the same
    features (normalised geometry, properties) in the same order."""
    compared = 0
    for z, x, y in _tiles(store, collection, 25, seed=3):
        feats = _features(store, collection, z, x, y)
        pairs = [(g, {**f.properties, "id": f.id}) for f, g in
                 zip(feats, mvt.tile_geometries([f.geometry for f in feats], z, x, y),
                     strict=True) if g is not None]
        if not pairs:
            continue
        ours = mvtpb.encode_layer(collection, pairs, mvt.EXTENT)
        ref = bytes(mapbox_vector_tile.encode(
            [{"name": collection, "features": [{"geometry": g, "properties": p}
                                               for g, p in pairs]}],
            default_options={"extents": mvt.EXTENT, "y_coord_down": True}))
        assert _decoded(ours, collection) == _decoded(ref, collection)
        compared += 1
    assert compared > 10


def _decoded(data: bytes, layer: str) -> list[tuple[bytes, dict]]:
    feats = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})[layer]
    return [(shapely.to_wkb(shapely.normalize(shape(f["geometry"]))), f["properties"])
            for f in feats["features"]]


@pytest.mark.usefixtures("shared_data")
def test_gdal_reads_the_stores_polygon_tiles(store: GpkgStore, tmp_path: Path) -> None:
    """GDAL's MVT driver reads the store's zone tiles (cut at the edges) with as many
    features as the mapbox decoder and the same ids."""
    read = 0
    for z, x, y in _tiles(store, ZONES, 12, seed=4):
        data = store.tile(ZONES, z, x, y)
        if not data:
            continue
        path = tmp_path / f"{z}_{x}_{y}.pbf"
        path.write_bytes(data)
        df = pyogrio.read_dataframe(path, layer=ZONES, X=str(x), Y=str(y), Z=str(z), CLIP="NO")
        ids = [f["properties"].get("id") for f in mapbox_vector_tile.decode(data)[ZONES]
               ["features"]]
        assert len(df) == len(ids)
        gdal_ids = list(df["id"]) if "id" in df.columns else []  # only coalesced squares
        assert sorted(i for i in gdal_ids if isinstance(i, str)) == sorted(
            i for i in ids if isinstance(i, str))
        read += bool(gdal_ids)
    assert read > 3
