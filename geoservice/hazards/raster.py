"""The flood-depth raster: a SYNTHETIC Cloud-Optimised GeoTIFF, its sampling and rendering.

``write_flood_cog(settings)`` is run by ``geoservice build`` (post-build hook, when the
build includes hazards-domain layers) and, when the file is missing, once at start-up.
It writes ``<work_dir>/rasters/flood-depth.tif`` with rasterio (GDAL's COG driver,
DEFLATE, internal overviews).  The depths are invented by a deterministic formula over
two declared demo areas (boxes around 大田区 and 葛飾区); every other cell is nodata,
which means *no data*, never *no flooding*.  The file says so in its tags
(``SYNTHETIC=yes``, ``DESCRIPTION``, ``COVERAGE`` ...).

``FloodRaster`` reads the band once (a few MB) and answers, without touching the file
again and safely from many threads:

* :meth:`FloodRaster.sample` - max / mean depth inside a geometry (rasterio's
  ``geometry_mask``: cells whose centre is inside; a site smaller than a cell takes the
  cells it touches) and whether the geometry lies inside the raster's data coverage;
* :meth:`FloodRaster.coverage_tiff` - a GeoTIFF of a bbox at a given size (OGC API
  Coverages), resampled with ``rasterio.warp.reproject`` (nearest);
* :meth:`FloodRaster.tile_png` - a 256 px Web-Mercator tile coloured by depth class.

An unreadable, non-single-band or non-CRS84 raster raises :class:`RasterError` (HTTP 400
class ``InvalidRaster``) naming the file: callers never see a GDAL traceback.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry

from geoservice.errors import ServiceError

if TYPE_CHECKING:
    from geoservice.catalogue import LayerSpec
    from geoservice.config import Settings

COLLECTION = "flood-depth"
FILENAME = "flood-depth.tif"
NODATA = -9999.0
#: Cell size in degrees (about 18 m east-west and 22 m north-south in Tokyo).
RES = 0.0002
#: Raster extent (lon/lat, CRS84): covers both demo areas.
EXTENT = (139.650, 35.520, 139.900, 35.800)
#: The declared coverage of the synthetic raster: code -> (name, lon/lat box).
AREAS: dict[str, tuple[str, tuple[float, float, float, float]]] = {
    "13111": ("大田区", (139.653, 35.528, 139.826, 35.614)),
    "13122": ("葛飾区", (139.813, 35.710, 139.895, 35.798)),
}
VERSION = "1"
TITLE = "想定浸水深（合成デモ）/ Flood depth (SYNTHETIC demo)"
DESCRIPTION = (
    "SYNTHETIC flood depth in metres, invented by a formula for the Tokyo GeoTwin demo: "
    "NOT a flood simulation and NOT the legal flood hazard map (洪水浸水想定区域図). "
    "Cells outside the declared demo areas (boxes around 大田区 and 葛飾区) are nodata: "
    "no data, not 'no flooding'."
)
LICENCE = "CC BY 4.0 (synthetic demo data)"
ATTRIBUTION = "Tokyo GeoTwin synthetic demo raster — not an official flood map"

#: Depth classes of the national scheme (m, upper bound) and their map colours.
CLASSES: list[tuple[float, str, tuple[int, int, int]]] = [
    (0.5, "0.5m未満", (247, 245, 169)),
    (3.0, "0.5m以上3m未満", (255, 216, 192)),
    (5.0, "3m以上5m未満", (255, 183, 183)),
    (10.0, "5m以上10m未満", (255, 145, 145)),
    (20.0, "10m以上20m未満", (242, 133, 201)),
    (math.inf, "20m以上", (220, 122, 220)),
]


class RasterError(ServiceError):
    """The raster cannot be read or is not the raster the service expects."""

    status = 400
    code = "InvalidRaster"


def raster_path(settings: Settings) -> Path:
    """Where the build writes the flood-depth COG."""
    return Path(settings.work_dir) / "rasters" / FILENAME


def depth_class(depth: float | None) -> str | None:
    """The national depth-class label of a depth (``None`` for no depth or dry)."""
    if depth is None or depth <= 0:
        return None
    return next(label for upper, label, _ in CLASSES if depth < upper)


# --------------------------------------------------------------------------- writing


def serves_hazards(specs: Mapping[str, LayerSpec]) -> bool:
    """Whether a catalogue has hazards-room layers (then the raster goes with them)."""
    return any(s.domain == "hazards" for s in specs.values())


def after_build(
    settings: Settings, specs: Mapping[str, LayerSpec], mirror: object, report: object
) -> None:
    """The room's after-build step: write the COG when the build included hazards layers."""
    if serves_hazards(specs):
        write_flood_cog(settings)


def synthetic_depth() -> tuple[np.ndarray, Any]:
    """The synthetic depth grid (float32, nodata outside the areas) and its transform."""
    from affine import Affine

    x0, y0, x1, y1 = EXTENT
    width = int(round((x1 - x0) / RES))
    height = int(round((y1 - y0) / RES))
    transform = Affine(RES, 0.0, x0, 0.0, -RES, y1)
    cols = x0 + (np.arange(width) + 0.5) * RES
    rows = y1 - (np.arange(height) + 0.5) * RES
    lon, lat = np.meshgrid(cols, rows)
    depth = np.full((height, width), NODATA, dtype=np.float32)
    km_lon, km_lat = 90.8, 111.0  # km per degree at 35.6°N
    # 葛飾区: 荒川・中川 on the west edge, 江戸川 on the east edge, higher ground north.
    _, (ax0, ay0, ax1, ay1) = AREAS["13122"]
    inside = (lon >= ax0) & (lon <= ax1) & (lat >= ay0) & (lat <= ay1)
    west = (lon - ax0) * km_lon
    east = (ax1 - lon) * km_lon
    north = (lat - ay0) * km_lat
    value = (
        4.6 * np.exp(-west / 1.6)
        + 3.4 * np.exp(-east / 1.1)
        + 0.45 * np.sin(lon * 900.0) * np.cos(lat * 700.0)
        - 0.25 * north
        + 0.6
    )
    depth[inside] = value[inside]
    # 大田区: 多摩川 along the south-west edge, the coast on the east, hills north-west.
    _, (bx0, by0, bx1, by1) = AREAS["13111"]
    inside_b = (lon >= bx0) & (lon <= bx1) & (lat >= by0) & (lat <= by1)
    # distance (km) from the line (139.653, 35.600) - (139.790, 35.528) that stands for 多摩川
    px, py = (lon - 139.653) * km_lon, (lat - 35.600) * km_lat
    vx, vy = (139.790 - 139.653) * km_lon, (35.528 - 35.600) * km_lat
    t = np.clip((px * vx + py * vy) / (vx * vx + vy * vy), 0.0, 1.0)
    river = np.hypot(px - t * vx, py - t * vy)
    coast = (bx1 - lon) * km_lon
    value_b = (
        3.9 * np.exp(-river / 1.3)
        + 2.2 * np.exp(-coast / 0.9)
        + 0.35 * np.sin(lon * 800.0 + lat * 600.0)
        - 0.3
    )
    depth[inside_b] = value_b[inside_b]
    valid = depth != NODATA
    depth[valid] = np.round(np.clip(depth[valid], 0.0, None), 2)
    depth[valid & (depth < 0.05)] = 0.0
    return depth.astype(np.float32), transform


def write_flood_cog(settings: Settings) -> Path:
    """Write the synthetic flood-depth COG into ``<work_dir>/rasters`` (atomically)."""
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy

    target = raster_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    depth, transform = synthetic_depth()
    profile = {
        "driver": "GTiff",
        "width": depth.shape[1],
        "height": depth.shape[0],
        "count": 1,
        "dtype": "float32",
        "crs": "OGC:CRS84",
        "transform": transform,
        "nodata": NODATA,
    }
    coverage = "; ".join(f"{c} {n} {b}" for c, (n, b) in AREAS.items())
    tmp = target.with_name(target.name + ".part")
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(depth, 1)
            ds.update_tags(
                SYNTHETIC="yes",
                TITLE=TITLE,
                DESCRIPTION=DESCRIPTION,
                LICENCE=LICENCE,
                ATTRIBUTION=ATTRIBUTION,
                UNITS="m",
                COVERAGE=coverage,
                GENERATOR=f"geoservice.hazards.raster v{VERSION}",
            )
            ds.set_band_description(1, "flood depth (m), SYNTHETIC")
            ds.update_tags(1, UNITS="m", SYNTHETIC="yes")
        with mem.open() as src:
            rio_copy(src, str(tmp), driver="COG", compress="DEFLATE", predictor="3")
    with rasterio.open(tmp) as check:  # fail the build, not a later request
        if check.tags().get("SYNTHETIC") != "yes":
            raise RasterError(f"{tmp.name}: tags were not written")
    os.replace(tmp, target)
    return target


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Sample:
    """Depth statistics of one geometry."""

    coverage: str  # inside | partial | outside
    cells: int
    valid_cells: int
    max: float | None
    mean: float | None
    method: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "coverage": self.coverage,
            "max_m": self.max,
            "mean_m": self.mean,
            "max_class": depth_class(self.max),
            "cells": self.cells,
            "cells_with_data": self.valid_cells,
            "method": self.method,
        }


class FloodRaster:
    """The flood-depth band in memory with its georeferencing and tags."""

    def __init__(self, path: Path, data: np.ndarray, transform: Any, tags: dict[str, str]):
        self.path = path
        self.data = data
        self.transform = transform
        self.tags = tags
        self.height, self.width = data.shape
        self.res = float(transform.a)
        left, top = transform.c, transform.f
        self.bounds = (left, top - self.height * self.res, left + self.width * self.res, top)
        self.synthetic = tags.get("SYNTHETIC") == "yes"

    @classmethod
    def open(cls, path: Path) -> FloodRaster:
        """Read the raster (``RasterError`` when missing, unreadable or unexpected)."""
        import rasterio
        from rasterio.errors import RasterioError

        if not Path(path).is_file():
            raise RasterError(f"{Path(path).name}: raster file not found (run geoservice build)")
        try:
            with rasterio.open(path) as ds:
                if ds.count != 1:
                    raise RasterError(f"{Path(path).name}: expected 1 band, found {ds.count}")
                if ds.crs is None or ds.crs.to_epsg() not in (4326, None) and not _is_crs84(ds):
                    raise RasterError(f"{Path(path).name}: expected CRS84, found {ds.crs}")
                if abs(ds.transform.b) > 0 or abs(ds.transform.d) > 0:
                    raise RasterError(f"{Path(path).name}: rotated rasters are not supported")
                data = ds.read(1, masked=False).astype(np.float32)
                nodata = ds.nodata
                if nodata is not None and nodata != NODATA:
                    data[data == nodata] = NODATA
                data[~np.isfinite(data)] = NODATA
                return cls(Path(path), data, ds.transform, dict(ds.tags()))
        except RasterioError as exc:
            raise RasterError(f"{Path(path).name}: unreadable raster: {exc}") from None

    # -- sampling -------------------------------------------------------------------------

    def sample(self, geom: BaseGeometry) -> Sample:
        """Max and mean depth of the cells of ``geom`` and its coverage status."""
        from affine import Affine
        from rasterio.features import geometry_mask

        left, bottom, right, top = self.bounds
        if isinstance(geom, Point):
            col = int(math.floor((geom.x - left) / self.res))
            row = int(math.floor((top - geom.y) / self.res))
            if not (0 <= row < self.height and 0 <= col < self.width):
                return Sample("outside", 0, 0, None, None, "cell at point")
            v = round(float(self.data[row, col]), 2)
            if v == NODATA:
                return Sample("outside", 1, 0, None, None, "cell at point")
            return Sample("inside", 1, 1, v, v, "cell at point")
        gx0, gy0, gx1, gy1 = geom.bounds
        c0 = max(0, int(math.floor((gx0 - left) / self.res)))
        c1 = min(self.width, int(math.ceil((gx1 - left) / self.res)))
        r0 = max(0, int(math.floor((top - gy1) / self.res)))
        r1 = min(self.height, int(math.ceil((top - gy0) / self.res)))
        if c0 >= c1 or r0 >= r1:
            return Sample("outside", 0, 0, None, None, "no cells")
        # the window's transform, built directly (rasterio.windows.transform emits a
        # PendingDeprecationWarning per call, which costs more than the sampling)
        wt = Affine(self.res, 0.0, left + c0 * self.res, 0.0, -self.res, top - r0 * self.res)
        shape = (r1 - r0, c1 - c0)
        method = "cell centres inside"
        mask = geometry_mask([geom], out_shape=shape, transform=wt, invert=True)
        if not mask.any():
            method = "cells touched (site smaller than a cell)"
            mask = geometry_mask(
                [geom], out_shape=shape, transform=wt, invert=True, all_touched=True
            )
        values = self.data[r0:r1, c0:c1][mask]
        good = values[values != NODATA]
        if good.size == 0:
            return Sample("outside", int(values.size), 0, None, None, method)
        within = good.size == values.size and box(*self.bounds).contains(geom)
        status = "inside" if within else "partial"
        return Sample(
            status,
            int(values.size),
            int(good.size),
            round(float(good.max()), 2),
            round(float(good.astype(np.float64).mean()), 3),
            method,
        )

    # -- coverage output --------------------------------------------------------------------

    def grid(
        self,
        bbox: Sequence[float] | None,
        size: tuple[int | None, int | None] = (None, None),
    ) -> tuple[np.ndarray, Any]:
        """The depth grid over ``bbox`` (CRS84) at ``size`` (default: native cells)."""
        x0, y0, x1, y1 = bbox if bbox is not None else self.bounds
        if not (x1 > x0 and y1 > y0):
            raise RasterError("bbox: min must be less than max on both axes")
        w, h = size
        if w is None and h is None:
            w = max(1, int(round((x1 - x0) / self.res)))
            h = max(1, int(round((y1 - y0) / self.res)))
        elif w is None:
            assert h is not None
            w = max(1, int(round(h * (x1 - x0) / (y1 - y0))))
        elif h is None:
            h = max(1, int(round(w * (y1 - y0) / (x1 - x0))))
        assert w is not None and h is not None
        if w * h > 4096 * 4096:
            raise RasterError(f"requested {w} x {h} cells; the limit is 4096 x 4096")
        if bbox is None and (w, h) == (self.width, self.height):
            return self.data.copy(), self.transform
        dst_transform = _bounds_transform(x0, y0, x1, y1, w, h)
        return self._warp((h, w), dst_transform, "EPSG:4326"), dst_transform

    def _warp(self, shape: tuple[int, int], dst_transform: Any, dst_crs: str) -> np.ndarray:
        """The depths resampled (nearest) onto a ``shape`` grid; NODATA where none."""
        from rasterio.warp import Resampling, reproject

        dst = np.full(shape, NODATA, dtype=np.float32)
        reproject(
            source=self.data,
            destination=dst,
            src_transform=self.transform,
            src_crs="EPSG:4326",
            src_nodata=NODATA,
            dst_transform=dst_transform,
            dst_crs=dst_crs,
            dst_nodata=NODATA,
            resampling=Resampling.nearest,
        )
        return dst

    def coverage_tiff(
        self, bbox: Sequence[float] | None, size: tuple[int | None, int | None] = (None, None)
    ) -> bytes:
        """A GeoTIFF (float32, nodata, the source's tags) of ``bbox`` at ``size``."""
        from rasterio.io import MemoryFile

        data, transform = self.grid(bbox, size)
        with MemoryFile() as mem:
            with mem.open(
                driver="GTiff",
                width=data.shape[1],
                height=data.shape[0],
                count=1,
                dtype="float32",
                crs="OGC:CRS84",
                transform=transform,
                nodata=NODATA,
                compress="DEFLATE",
            ) as ds:
                ds.write(data, 1)
                ds.update_tags(**self.tags)
                ds.set_band_description(1, "flood depth (m), SYNTHETIC")
            return bytes(mem.read())

    # -- tiles ------------------------------------------------------------------------------

    def tile_png(self, z: int, x: int, y: int, size: int = 256) -> bytes:
        """A Web-Mercator (XYZ) tile coloured by depth class; transparent without data."""
        n = 2**z
        if not (0 <= x < n and 0 <= y < n):
            raise RasterError(f"tile {z}/{x}/{y} does not exist (x and y must be < 2^z)")
        half = 20037508.342789244
        span = 2 * half / n
        minx, maxy = -half + x * span, half - y * span
        if self._tile_intersects(z, x, y):
            dst_transform = _bounds_transform(minx, maxy - span, minx + span, maxy, size, size)
            dst = self._warp((size, size), dst_transform, "EPSG:3857")
        else:
            dst = np.full((size, size), NODATA, dtype=np.float32)
        rgba = np.zeros((size, size, 4), dtype=np.uint8)
        wet = (dst != NODATA) & (dst > 0)
        lower = 0.0
        for upper, _label, colour in CLASSES:
            sel = wet & (dst >= lower) & (dst < upper)
            rgba[sel, :3] = colour
            rgba[sel, 3] = 190
            lower = upper
        return encode_png(rgba)

    def _tile_intersects(self, z: int, x: int, y: int) -> bool:
        n = 2**z
        lon0, lon1 = x / n * 360 - 180, (x + 1) / n * 360 - 180
        lat1 = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
        lat0 = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 1) / n))))
        left, bottom, right, top = self.bounds
        return lon0 < right and lon1 > left and lat0 < top and lat1 > bottom

    # -- metadata ---------------------------------------------------------------------------

    def declared_areas(self) -> list[dict[str, Any]]:
        """The demo areas the raster declares (code, name, bbox)."""
        return [{"municipality_code": c, "name": n, "bbox": list(b)} for c, (n, b) in AREAS.items()]


def _bounds_transform(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> Any:
    """``rasterio.transform.from_bounds`` without its per-call deprecation warning."""
    from affine import Affine

    return Affine((x1 - x0) / w, 0.0, x0, 0.0, -(y1 - y0) / h, y1)


def _is_crs84(ds: Any) -> bool:
    try:
        return bool(ds.crs.is_geographic)
    except Exception:
        return False


def encode_png(rgba: np.ndarray) -> bytes:
    """Encode an (h, w, 4) uint8 array as PNG (zlib; no imaging library needed)."""
    h, w, _ = rgba.shape
    raw = np.zeros((h, w * 4 + 1), dtype=np.uint8)
    raw[:, 1:] = rgba.reshape(h, w * 4)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
