"""A local server implementing the documented contract of the 不動産情報ライブラリ API.

Started by the tests on 127.0.0.1 (never a mock of our code): it checks the key header
(401), the parameters against the manual (400: missing ``z``, zoom outside the API's range,
``from``/``to`` on XPT001, ``year`` on XPT002), answers 404 for an unknown API, and serves
gzip-encoded GeoJSON or Mapbox Vector Tiles cut from fixtures in ``tests/data/reinfolib``
(so polygons crossing tile edges come back in pieces, with a small tile buffer as real
vector tiles have).  Failures can be injected: 429 with ``Retry-After``, 5xx, latency, a
hang, a truncated or non-JSON body, a pbf that does not decode.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import numpy as np
import shapely
from shapely.geometry import shape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from geoservice.reinfolib.apis import apis
from geoservice.reinfolib.tiles import Tile
from tests.conftest import ThreadedServer, free_port

FIXTURES = Path(__file__).parent / "data" / "reinfolib"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
CREDIT = ("このサービスは、国土交通省の不動産情報ライブラリのAPI機能を使用していますが、"
          "提供情報の最新性、正確性、完全性等が保証されたものではありません")
BUFFER = 0.02  # share of a tile's width added on each side, like real vector tiles


@dataclass
class Injection:
    """A failure served instead of the normal answer (``count`` times)."""

    kind: str  # "204" "403" "429" "500" "502" "503" "truncated" "cut" "non-json" "bad-pbf" "hang"
    count: int = 1
    retry_after: float | None = None
    seconds: float = 30.0


@dataclass
class Served:
    """What one request asked for (never the key itself: only whether it matched)."""

    api: str
    params: dict[str, str]
    key_ok: bool
    status: int
    gzip: bool  # the client asked for a gzip-encoded answer


@dataclass
class ContractState:
    key: str
    fixtures: Path
    latency_s: float = 0.0
    injections: list[Injection] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    max_in_flight: int = 0  # most requests answered at once (checks the client's cap)

    def take(self) -> Injection | None:
        with self.lock:
            if not self.injections:
                return None
            inj = self.injections[0]
            inj.count -= 1
            if inj.count <= 0:
                self.injections.pop(0)
            return inj


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps({"message": message}), status, headers=headers,
                    media_type="application/json")


def _check(api: str, q: dict[str, str]) -> str | None:
    """Why the parameters are refused (the manual's 400 cases), or ``None``."""
    spec = apis()[api]
    if q.get("response_format") not in ("geojson", "pbf"):
        return "response_format must be geojson or pbf"
    for p in ("z", "x", "y"):
        if not q.get(p, "").isdigit():
            return f"{p} is required"
    z = int(q["z"])
    if not spec.zoom_min <= z <= spec.zoom_max:
        return f"z must be {spec.zoom_min}-{spec.zoom_max}"
    if int(q["x"]) >= 2**z or int(q["y"]) >= 2**z:
        return "x/y out of range"
    missing = [p for p in spec.required if not q.get(p)]
    return f"{missing} required" if missing else None


def _features(fixtures: Path, api: str, tile: Tile) -> list[tuple[Any, dict[str, Any]]]:
    """Fixture features clipped to the buffered tile."""
    path = fixtures / f"{api}.geojson"
    if not path.exists():
        return []
    w, s, e, n = tile.bounds()
    bw, bh = (e - w) * BUFFER, (n - s) * BUFFER
    window = shapely.box(w - bw, s - bh, e + bw, n + bh)
    out = []
    for f in json.loads(path.read_text("utf-8"))["features"]:
        geom = shape(f["geometry"])
        if geom.intersects(window):
            clipped = geom if geom.geom_type == "Point" else geom.intersection(window)
            if not clipped.is_empty:
                out.append((clipped, f["properties"]))
    return out


def _pixels(geom: Any, tile: Tile) -> Any:
    """CRS84 → tile pixels (extent 4096, y down)."""
    n = 2**tile.z

    def convert(xy: np.ndarray) -> np.ndarray:
        gx = (xy[:, 0] + 180.0) / 360.0 * n
        rad = np.radians(xy[:, 1])
        gy = (1 - np.log(np.tan(rad) + 1 / np.cos(rad)) / np.pi) / 2 * n
        return np.column_stack([(gx - tile.x) * 4096, (gy - tile.y) * 4096])

    return shapely.transform(geom, convert)


def _body(api: str, tile: Tile, fmt: str, fixtures: Path) -> tuple[bytes, str]:
    feats = _features(fixtures, api, tile)
    if fmt == "pbf":
        layer = {"name": api, "features": [
            {"geometry": _pixels(g, tile).wkt, "properties": p} for g, p in feats]}
        data = mapbox_vector_tile.encode(
            [layer], default_options={"y_coord_down": True, "extents": 4096}) if feats else b""
        return data, "application/vnd.mapbox-vector-tile"
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": shapely.geometry.mapping(g), "properties": p}
        for g, p in feats]}
    return json.dumps(fc, ensure_ascii=False).encode("utf-8"), "application/json"


def make_app(state: ContractState) -> Starlette:
    """The contract app over ``state``."""

    async def endpoint(request: Request) -> Response:
        api = request.path_params["api"]
        q = dict(request.query_params)
        key_ok = request.headers.get(KEY_HEADER) == state.key
        state.in_flight += 1  # one event loop: no lock needed
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            response = await answer(api, q, key_ok, request)
        finally:
            state.in_flight -= 1
        gz = "gzip" in request.headers.get("accept-encoding", "")
        state.served.append(Served(api, q, key_ok, response.status_code, gz))
        return response

    async def answer(api: str, q: dict[str, str], key_ok: bool, request: Request) -> Response:
        if not key_ok:
            return _error(401, "Access denied due to missing or invalid subscription key.")
        if api not in apis():
            return _error(404, "Resource not found")
        problem = _check(api, q)
        if problem:
            return _error(400, problem)
        if state.latency_s:
            await asyncio.sleep(state.latency_s)
        inj = state.take()
        tile = Tile(int(q["z"]), int(q["x"]), int(q["y"]))
        body, media = _body(api, tile, q["response_format"], state.fixtures)
        if inj is not None:
            special = await _injected(inj, body)
            if special is not None:
                return special
        if q["response_format"] == "geojson":
            gz = "gzip" in request.headers.get("accept-encoding", "")
            return Response(gzip.compress(body) if gz else body, 200, media_type=media,
                            headers={"Content-Encoding": "gzip"} if gz else None)
        return Response(body, 200, media_type=media)

    return Starlette(routes=[Route("/{api}", endpoint)])


async def _injected(inj: Injection, body: bytes) -> Response | None:
    if inj.kind == "429":
        headers = {} if inj.retry_after is None else {"Retry-After": f"{inj.retry_after:g}"}
        return _error(429, "Rate limit is exceeded.", headers)
    if inj.kind in ("403", "500", "502", "503"):
        return _error(int(inj.kind), "refused" if inj.kind == "403" else "internal error")
    if inj.kind == "204":  # an empty tile answered without a body
        return Response(status_code=204)
    if inj.kind == "hang":
        await asyncio.sleep(inj.seconds)
        return None
    if inj.kind == "cut":  # the connection drops mid-body (Content-Length not reached)
        return _Cut(gzip.compress(body))
    if inj.kind == "truncated":
        return Response(gzip.compress(body[: max(1, len(body) // 2)]), 200,
                        media_type="application/json", headers={"Content-Encoding": "gzip"})
    if inj.kind == "non-json":
        return Response(gzip.compress(b"<html><body>Service Unavailable</body></html>"), 200,
                        media_type="application/json", headers={"Content-Encoding": "gzip"})
    if inj.kind == "bad-pbf":
        return Response(b"\x1a\xff\xff\xff\x0fnot a vector tile", 200,
                        media_type="application/vnd.mapbox-vector-tile")
    raise ValueError(f"unknown injection {inj.kind!r}")


class _Cut(Response):
    """Announces the whole gzip body, sends half of it, and ends the response."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body, 200, media_type="application/json",
                         headers={"Content-Encoding": "gzip"})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2],
                    "more_body": False})


class ReinfolibServer(ThreadedServer):
    """The contract server on a free port of 127.0.0.1 (context manager); ``url`` is the
    ``base_url`` to configure."""

    def __init__(self, key: str = "test-key-5ecret", fixtures: Path = FIXTURES) -> None:
        self.state = ContractState(key, fixtures)
        app = Starlette(routes=[])
        app.mount("/ex-api/external", make_app(self.state))
        super().__init__(app, free_port(), lifespan="off")
        self.url = f"{self.url}/ex-api/external"

    @property
    def key(self) -> str:
        """The key this server accepts."""
        return self.state.key

    @property
    def served(self) -> list[Served]:
        """Requests answered so far."""
        return self.state.served

    def inject(self, kind: str, count: int = 1, **opts: Any) -> None:
        """Serve ``kind`` instead of the next ``count`` answers."""
        with self.state.lock:
            self.state.injections.append(Injection(kind, count, **opts))

    def clear(self) -> None:
        """No injections, no latency, forget what was served."""
        with self.state.lock:
            self.state.injections.clear()
            self.state.served.clear()
            self.state.latency_s = 0.0


def use_server(settings: Any, server: ReinfolibServer, **changes: Any) -> Any:
    """``settings`` whose ``reinfolib`` section points at ``server`` (plus ``changes``,
    e.g. ``response_format="pbf"``, ``timeout_s=0.5``)."""
    section = settings.reinfolib.model_copy(update={"base_url": server.url, **changes})
    return settings.model_copy(update={"reinfolib": section})


def write_api_layer(directory: Path, layer_id: str, api: str, zoom: int,
                    properties: list[dict[str, Any]], **source: Any) -> Path:
    """Write a ``source.kind: reinfolib`` layer spec (for tests; real specs are in layers/)."""
    import yaml

    geometry = "Point" if apis()[api].geometry == "point" else "MultiPolygon"
    spec = {
        "id": layer_id, "title": f"{apis()[api].title} (不動産情報ライブラリ API, test)",
        "licence": {"name": "不動産情報ライブラリ 利用規約",
                    "url": "https://www.reinfolib.mlit.go.jp/help/termsOfUse/"},
        "attribution": CREDIT,
        "source": {"kind": "reinfolib", "api": api, "zoom": zoom, **source},
        "coverage": {"description": "全国 (API)", "bbox": [122.0, 20.0, 154.0, 46.0]},
        "geometry_type": geometry, "properties": properties,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{layer_id}.yml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), "utf-8")
    return path
