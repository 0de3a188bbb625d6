"""OGC API - Tiles: vector tiles of every collection, on both store backends.

Feature counts are checked against the source files (independent of the store), geometry
clipping and attributes by decoding the tiles, and GDAL reads them (MVT driver on a tile
file; the OGCAPI driver against a live server, in a subprocess: pyogrio holds the GIL).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import mapbox_vector_tile
import pyogrio
import pytest
import shapely.geometry
from fastapi.testclient import TestClient

from geoservice.runtime import Services
from tests.conftest import DATA, LiveServer

TILES = "/ogc/collections/{}/tiles"
MVT = "application/vnd.mapbox-vector-tile"
Z = 10


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """Slippy-map tile (x, y) of a point (the standard formula, not the service's code)."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    lat_r = math.radians(lat)
    y = int((1.0 - math.asinh(math.tan(lat_r)) / math.pi) / 2.0 * n)
    return x, y


def _tile_lonlat(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    n = 2**z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def _bears() -> list[dict]:
    path = DATA / "bear" / "tokyo_bear_sightings_2023-2025.geojson"
    return json.loads(Path(path).read_text("utf-8"))["features"]


def _busiest_tile(z: int) -> tuple[tuple[int, int], int]:
    counts = Counter(_tile_of(*f["geometry"]["coordinates"][:2], z) for f in _bears())
    return counts.most_common(1)[0]


def _decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})


def _inside(pt: list[float]) -> bool:
    return 0 <= pt[0] < 4096 and 0 <= pt[1] < 4096


def test_collection_links_tilesets_and_conformance(client: TestClient) -> None:
    doc = client.get("/ogc/collections/wildlife-sightings").json()
    rel = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
    link = next(k for k in doc["links"] if k["rel"] == rel)
    assert link["href"].endswith("/ogc/collections/wildlife-sightings/tiles?f=json")
    classes = client.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in classes


def test_tileset_list_and_metadata(client: TestClient) -> None:
    lst = client.get(TILES.format("wildlife-sightings")).json()
    (ts,) = lst["tilesets"]
    assert ts["dataType"] == "vector" and ts["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    self_href = next(k["href"] for k in ts["links"] if k["rel"] == "self")
    path = self_href.split("://", 1)[1].split("/", 1)[1]
    meta = client.get("/" + path).json()
    assert meta["dataType"] == "vector"
    assert meta["tileMatrixSetURI"] == (
        "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
    )
    item = next(k for k in meta["links"] if k["rel"] == "item")
    assert item["type"] == MVT and item["templated"] is True
    assert "{tileMatrix}/{tileRow}/{tileCol}" in item["href"]
    assert any(k["rel"].endswith("/tiling-scheme") for k in meta["links"])
    assert meta["layers"][0]["id"] == "wildlife-sightings"


def test_bear_tile_counts_match_source_at_z10(client: TestClient) -> None:
    (x, y), _ = _busiest_tile(Z)
    r = client.get(f"{TILES.format('wildlife-sightings')}/WebMercatorQuad/{Z}/{y}/{x}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MVT
    layer = _decode(r.content)["wildlife-sightings"]
    assert layer["extent"] == 4096
    inside = [f for f in layer["features"] if _inside(f["geometry"]["coordinates"])]
    # Independent count: source points in the tile's lon/lat bounds.
    w, s, e, n = _tile_lonlat(Z, x, y)
    expected = [
        f for f in _bears()
        if w <= f["geometry"]["coordinates"][0] < e and s < f["geometry"]["coordinates"][1] <= n
    ]
    assert len(expected) > 50
    # The public view generalises sensitive records to 1 km cells: allow those to move.
    assert abs(len(inside) - len(expected)) <= max(2, len(expected) // 100), (
        len(inside), len(expected))
    # ...and exactly what the Features API serves for the same bbox (same read policy).
    served = client.get("/ogc/collections/wildlife-sightings/items",
                        params={"bbox": f"{w},{s},{e},{n}", "limit": 1}).json()["numberMatched"]
    assert abs(len(inside) - served) <= 2
    props = layer["features"][0]["properties"]
    assert props["id"].startswith("tokyo-kumap-")
    assert {"species", "observed_at", "municipality_code"} <= set(props)
    assert props["observed_at"].endswith("Z")


def test_polygons_are_clipped_to_the_buffered_tile(client: TestClient) -> None:
    cid = "sediment-special-zones"
    first = client.get(f"/ogc/collections/{cid}/items", params={"limit": 1}).json()
    lon, lat = first["features"][0]["geometry"]["coordinates"][0][0][:2]
    while isinstance(lon, list):  # MultiPolygon
        lon, lat = lon[0], lon[1]
    z = 15
    x, y = _tile_of(lon, lat, z)
    r = client.get(f"{TILES.format(cid)}/WebMercatorQuad/{z}/{y}/{x}")
    assert r.status_code == 200, r.text
    layer = _decode(r.content)[cid]
    assert layer["features"]
    coords: list[float] = []

    def walk(c: object) -> None:
        if isinstance(c, list) and c and isinstance(c[0], int | float):
            coords.extend(c)  # type: ignore[arg-type]
        elif isinstance(c, list):
            for part in c:
                walk(part)

    for f in layer["features"]:
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        walk(f["geometry"]["coordinates"])
    assert min(coords) >= -64 and max(coords) <= 4096 + 64
    assert all("id" in f["properties"] for f in layer["features"])


def test_bad_and_empty_tiles(client: TestClient) -> None:
    base = TILES.format("wildlife-sightings")
    r = client.get(f"{base}/WebMercatorQuad/ten/0/0")
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameterValue"
    for path in (f"{base}/WebMercatorQuad/3/8/0", f"{base}/WebMercatorQuad/3/0/-1",
                 f"{base}/WebMercatorQuad/30/0/0", f"{base}/WorldCRS84Quad/0/0/0",
                 f"{TILES.format('no-such')}/WebMercatorQuad/0/0/0",
                 # the tileset list and metadata check collection and matrix set alike
                 TILES.format("no-such"), f"{TILES.format('no-such')}/WebMercatorQuad",
                 f"{base}/WorldCRS84Quad"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["code"] == "NotFound"
    assert client.get(f"{base}/WebMercatorQuad/0/0/0", params={"bogus": 1}).status_code == 400
    # Middle of the Atlantic: no features, 204 No Content.
    assert client.get(f"{base}/WebMercatorQuad/6/28/20").status_code == 204


def test_gdal_mvt_driver_reads_a_tile(client: TestClient, tmp_path: Path) -> None:
    (x, y), _ = _busiest_tile(Z)
    data = client.get(f"{TILES.format('wildlife-sightings')}/WebMercatorQuad/{Z}/{y}/{x}").content
    path = tmp_path / f"{Z}_{x}_{y}.pbf"
    path.write_bytes(data)
    df = pyogrio.read_dataframe(path, layer="wildlife-sightings", X=str(x), Y=str(y), Z=str(Z),
                               CLIP="NO")
    assert len(df) == len(_decode(data)["wildlife-sightings"]["features"])
    assert df.crs.to_epsg() == 3857
    assert {"id", "species"} <= set(df.columns)
    # Back in lon/lat, GDAL's positions fall in (or within the buffer of) the tile.
    w, s, e, n = _tile_lonlat(Z, x, y)
    b = df.to_crs("OGC:CRS84").total_bounds
    pad = (e - w) * 64 / 4096 + 1e-6
    assert b[0] >= w - pad and b[2] <= e + pad and b[1] >= s - pad and b[3] <= n + pad


_GDAL_OGCAPI = """
import sys, pyogrio
df = pyogrio.read_dataframe("OGCAPI:" + sys.argv[1], layer=0, API="TILES",
                            TILEMATRIXSET="WebMercatorQuad")
print(len(df), df.crs.to_epsg(), "species" in df.columns)
"""


@pytest.mark.slow
def test_gdal_ogcapi_driver_reads_vector_tiles(live: LiveServer) -> None:
    """GDAL follows collection -> tilesets -> tileset -> tile matrix set -> tile (z0)."""
    proc = subprocess.run(
        [sys.executable, "-c", _GDAL_OGCAPI, f"{live.url}/ogc/collections/wildlife-sightings"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    count, epsg, has_species = proc.stdout.split()
    assert int(count) == len(_bears()) and epsg == "3857" and has_species == "True"


def test_openapi_promises_no_tile_operation_we_do_not_serve(client: TestClient) -> None:
    """Tile paths are absent from /ogc/openapi (pygeoapi lists none: no tile providers)."""
    doc = client.get("/ogc/openapi").json()
    tile_paths = [p for p in doc["paths"] if "/tiles" in p and "/collections/" in p]
    assert tile_paths == [], tile_paths


def test_tile_cache_is_bounded_by_bytes_least_recently_used_out() -> None:
    from geoservice.ogc.tilecache import TileCache, of

    cache = TileCache(max_bytes=10)
    cache.put(("a", 0, 0, 0, "v1"), b"1234")
    cache.put(("b", 0, 0, 0, "v1"), b"5678")
    assert cache.get(("a", 0, 0, 0, "v1")) == b"1234"  # a is now the most recent
    cache.put(("c", 0, 0, 0, "v1"), b"90ab")  # 12 bytes > 10: b goes
    assert cache.get(("b", 0, 0, 0, "v1")) is None
    assert cache.get(("a", 0, 0, 0, "v1")) == b"1234"
    assert cache.get(("a", 0, 0, 0, "v2")) is None  # another data version: a miss
    cache.put(("big", 0, 0, 0, "v1"), b"x" * 11)  # larger than the budget: not kept
    assert cache.get(("big", 0, 0, 0, "v1")) is None
    assert of(Services(), 0) is None  # server.tile_cache_mb: 0 turns it off
    services = Services()
    assert of(services, 1) is of(services, 1)  # one cache per app


def test_if_none_match_lists_weak_tags_and_star() -> None:
    from geoservice.ogc.tilecache import matches

    tag = '"abc"'
    assert matches('"x", "abc"', tag) and matches('W/"abc"', tag) and matches("*", tag)
    assert not matches('"abcd"', tag) and not matches(None, tag) and not matches("", tag)


def _reference_tile(layer: str, feats: list[tuple[object, dict]]) -> bytes:
    return bytes(mapbox_vector_tile.encode(
        [{"name": layer, "features": [{"geometry": g, "properties": p} for g, p in feats]}],
        default_options={"extents": 4096, "y_coord_down": True}))


def _decoded(data: bytes) -> list[tuple[object, dict]]:
    import shapely
    from shapely.geometry import shape

    layer = _decode(data)["things"]
    assert layer["extent"] == 4096
    return [(shapely.normalize(shape(f["geometry"])), f["properties"]) for f in layer["features"]]


def test_own_mvt_writer_decodes_like_mapbox_vector_tile() -> None:
    """Our protobuf writer (geoservice.mvtpb) against mapbox_vector_tile's encoder, on
    random tile-space points, lines and polygons with holes and mixed property types:
    same geometries (normalised), same properties, and exterior rings wound as the spec
    asks (positive area in tile coordinates, y down)."""
    import random

    import shapely

    from geoservice.mvtpb import encode_layer

    rnd = random.Random(7)
    for _ in range(200):
        feats: list[tuple[object, dict]] = []
        for i in range(rnd.randint(1, 6)):
            kind = rnd.choice(["point", "multipoint", "line", "polygon", "multipolygon"])
            x, y = rnd.randint(-64, 4000), rnd.randint(-64, 4000)
            w, h = rnd.randint(8, 90), rnd.randint(8, 90)
            if kind == "point":
                g = shapely.Point(x, y)
            elif kind == "multipoint":
                g = shapely.MultiPoint([(x, y), (x + w, y + h)])
            elif kind == "line":
                g = shapely.LineString([(x, y), (x + w, y), (x + w, y + h)])
            else:
                outer = shapely.box(x, y, x + 4 * w, y + 4 * h)
                hole = shapely.box(x + w, y + h, x + 2 * w, y + 2 * h)
                poly = outer.difference(hole)
                if rnd.random() < 0.5:
                    poly = shapely.Polygon(list(poly.exterior.coords)[::-1],
                                           [list(r.coords)[::-1] for r in poly.interiors])
                g = poly if kind == "polygon" else shapely.MultiPolygon(
                    [poly, shapely.box(x + 5 * w, y, x + 6 * w, y + h)])
            props = {"id": f"f{i}", "n": rnd.randint(-(2**40), 2**40), "ok": rnd.random() < .5,
                     "x": rnd.random(), "s": rnd.choice(["東京", "", "a\"b"])}
            feats.append((g, props))
        ours = encode_layer("things", feats, 4096)
        assert _decoded(ours) == _decoded(_reference_tile("things", feats))
        for f in _decode(ours)["things"]["features"]:
            if f["geometry"]["type"] == "Polygon":
                ring = f["geometry"]["coordinates"][0]
                # decoded with y down; the spec's exterior ring has positive surveyor area
                area = sum(ring[i - 1][0] * ring[i][1] - ring[i][0] * ring[i - 1][1]
                           for i in range(len(ring)))
                assert area > 0, ring


def test_a_tile_outside_the_layers_zoom_range_is_empty_and_cacheable(
    client: TestClient,
) -> None:
    """buildings.yml says tiles: maxzoom 16: the metadata says so, and z17 is an empty
    tile (204) with the caching headers of any public tile - not an error, not detail."""
    meta = client.get(f"{TILES.format('buildings')}/WebMercatorQuad").json()
    assert (meta["layers"][0]["minTileMatrix"], meta["layers"][0]["maxTileMatrix"]) == ("0", "16")
    first = client.get("/ogc/collections/buildings/items", params={"limit": 1}).json()
    geom = shapely.geometry.shape(first["features"][0]["geometry"])
    lon, lat = geom.representative_point().coords[0]
    x, y = _tile_of(lon, lat, 16)
    inside = client.get(f"{TILES.format('buildings')}/WebMercatorQuad/16/{y}/{x}")
    assert inside.status_code == 200 and _decode(inside.content)["buildings"]["features"]
    beyond = client.get(f"{TILES.format('buildings')}/WebMercatorQuad/17/{2 * y}/{2 * x}")
    assert beyond.status_code == 204 and not beyond.content
    assert beyond.headers["Cache-Control"] == "public, no-cache" and beyond.headers["ETag"]
    again = client.get(f"{TILES.format('buildings')}/WebMercatorQuad/17/{2 * y}/{2 * x}",
                       headers={"If-None-Match": beyond.headers["ETag"]})
    assert again.status_code == 304
    store = client.app.state.runtime.store  # type: ignore[attr-defined]
    if hasattr(store, "_con"):  # the GeoPackage store: `geoservice build` made the pyramid
        (done,) = store._con().execute("SELECT done_zoom FROM geoservice_tile_builds"
                                       " WHERE collection = 'buildings'").fetchone()
        assert done == 16
