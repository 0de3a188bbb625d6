"""A local XYZ tile server standing in for 地理院タイル in the tests (no network).

It serves what the real one documents: ``/{layer}/{z}/{x}/{y}.png`` (``.jpg`` for
``seamlessphoto``, PNG bytes anyway) with ``Access-Control-Allow-Origin: *``; image layers
are a flat colour per layer (so a screenshot shows which one is drawn) and ``dem_png`` is
the 標高タイル encoding of a synthetic height field ``height_tp`` (T.P. metres): positive
west of 139.80°E, negative east of it, and "no data" (x = 2²³) south of 35.55°N (the bay).
Every request is recorded.
"""

from __future__ import annotations

import io
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image

from geoservice.config import BasemapSettings

COLOURS = {"pale": (236, 226, 198), "std": (198, 226, 236), "seamlessphoto": (46, 110, 52)}
DEM = "dem_png"
TILE = re.compile(r"^/([a-z_]+)/(\d+)/(\d+)/(\d+)\.(png|jpg)$")


def height_tp(lon: Any, lat: Any) -> Any:
    """The synthetic terrain (m above T.P.); NaN where there is no data."""
    h = 5.0 + 400.0 * (139.80 - np.asarray(lon, dtype=float))
    return np.where(np.asarray(lat) < 35.55, np.nan, h)


def encode_dem(h: Any) -> Any:
    """Heights (m, NaN = no data) → RGB uint8 array in the 地理院 標高タイル encoding."""
    x = np.where(np.isnan(h), 2**23, np.round(np.nan_to_num(h) * 100)).astype(np.int64)
    x = np.where(x < 0, x + 2**24, x)
    return np.stack([(x >> 16) & 255, (x >> 8) & 255, x & 255], axis=-1).astype(np.uint8)


def pixel_lonlat(z: int, x: int, y: int, size: int = 256) -> tuple[Any, Any]:
    """Longitude and latitude of every pixel centre of an XYZ (WebMercator) tile."""
    n = 2.0**z
    i = (np.arange(size) + 0.5) / size
    lon = (x + i) / n * 360.0 - 180.0
    merc = math.pi * (1 - 2 * (y + i) / n)
    lat = np.degrees(np.arctan(np.sinh(merc)))
    return np.meshgrid(lon, lat)


def _png(rgb: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG")
    return buf.getvalue()


def tile_bytes(layer: str, z: int, x: int, y: int) -> bytes | None:
    """The PNG of one tile, or None for a layer this server does not have."""
    if layer == DEM:
        lon, lat = pixel_lonlat(z, x, y)
        return _png(encode_dem(height_tp(lon, lat)))
    if layer not in COLOURS:
        return None
    rgb = np.zeros((256, 256, 3), np.uint8)
    rgb[:] = COLOURS[layer]
    rgb[0, :] = rgb[:, 0] = (120, 120, 120)  # a grid line at tile edges
    return _png(rgb)


class TileServer:
    """The tile server on 127.0.0.1 (a free port), in a daemon thread; records requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int, int, int]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                m = TILE.match(self.path)
                body = tile_bytes(m[1], int(m[2]), int(m[3]), int(m[4])) if m else None
                if m:
                    owner.requests.append((m[1], int(m[2]), int(m[3]), int(m[4])))
                self.send_response(200 if body else 404)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def layers_requested(self) -> set[str]:
        return {r[0] for r in list(self.requests)}


def basemaps_at(origin: str) -> BasemapSettings:
    """The default 地理院タイル basemaps with their URLs moved to ``origin``."""
    base = BasemapSettings()
    sources = [
        s.model_copy(update={"url": origin + "/" + s.url.split("/xyz/", 1)[1]})
        for s in base.sources
    ]
    return base.model_copy(update={"sources": sources})


_shared: TileServer | None = None
_lock = threading.Lock()


def shared_tile_server() -> TileServer:
    """One tile server for the whole test session, started on first use."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = TileServer()
        return _shared
