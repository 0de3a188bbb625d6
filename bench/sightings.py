"""Issue 4 benchmark: sighting writes → webhooks, reads under writes, CSV import.

Builds a temp store (admin-boundaries + wildlife-sightings) from the real extracts in
``../shared/data``, serves it with ``geoservice serve`` (subprocess, one worker, 127.0.0.1,
free port, temp config.yml with ``alerts.allow_private_webhooks: true`` so a loopback
webhook is accepted) and measures:

1. create → webhook delivered: a webhook receiver (``http.server`` in a thread) on
   127.0.0.1, one subscription covering western Tokyo, then N sequential admin creates via
   ``POST /ogc/collections/wildlife-sightings/items``; latency = webhook arrival − create sent,
   matched by the feature id in the payload;
2. public reads while writes go on: 8 concurrent readers on ``items?limit=100`` (and the
   WebMercatorQuad vector tiles, when that route exists) with and without a writer doing
   ``BENCH_WRITES_PER_S`` creates/s;
3. CSV import rows/s: 5,000 template rows inside 奥多摩町 (13308), imported per-row over
   HTTP with a 13308 municipality token, then re-imported (all unchanged); the same with
   the ``geoservice sightings import`` CLI (wall time, including process start-up).

Usage: ``.venv/bin/python bench/sightings.py``. Knobs: those of bench/run.py
(BENCH_DURATION, BENCH_WARMUP, BENCH_CONCURRENCY) plus BENCH_CREATES (default 100),
BENCH_WRITES_PER_S (default 20), BENCH_IMPORT_ROWS (default 5000).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from shapely.geometry import Point
from shapely.prepared import prep

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from common import Server, pct, write_config  # noqa: E402
from run import (  # noqa: E402
    CONCURRENCY,
    DATA,
    DURATION,
    HEADERS,
    ROOT,
    Result,
    Side,
    free_port,
    run_side,
)

LAYERS = ["admin-boundaries", "wildlife-sightings"]
OKUTAMA = "13308"
ITEMS = "/collections/wildlife-sightings/items"
TILE = "/collections/wildlife-sightings/tiles/WebMercatorQuad/10/{y}/{x}"
N_CREATES = int(os.environ.get("BENCH_CREATES", "100"))
WRITES_PER_S = float(os.environ.get("BENCH_WRITES_PER_S", "20"))
IMPORT_ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "5000"))
SPECIES = ["asian-black-bear", "wild-boar", "sika-deer", "japanese-macaque", "japanese-serow"]
KINDS = ["witness", "trace", "photographing"]
GEOSERVICE = str(Path(sys.executable).with_name("geoservice"))
WEST_TOKYO = {"type": "Polygon", "coordinates": [[[138.9, 35.5], [139.5, 35.5], [139.5, 35.95],
                                                  [138.9, 35.95], [138.9, 35.5]]]}


# --------------------------------------------------------------------------- setup

def okutama_points(store_path: Path, n: int, seed: int) -> list[tuple[float, float]]:
    """``n`` reproducible random points strictly inside 奥多摩町."""
    from geoservice.auth.scope import MunicipalityIndex
    from geoservice.store.gpkg import GpkgStore

    st = GpkgStore(store_path)
    idx = MunicipalityIndex.from_store(st)
    st.close()
    polys = [g for c, g in zip(idx.codes, idx.geoms, strict=True) if c == OKUTAMA]
    poly = max(polys, key=lambda g: g.area).buffer(-0.002)  # keep off the boundary
    inside = prep(poly)
    minx, miny, maxx, maxy = poly.bounds
    rng = random.Random(seed)
    out: list[tuple[float, float]] = []
    while len(out) < n:
        x, y = round(rng.uniform(minx, maxx), 6), round(rng.uniform(miny, maxy), 6)
        if inside.contains(Point(x, y)):
            out.append((x, y))
    return out


def cli(*args: str, config: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GEOSERVICE, *args, "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "GEOSERVICE_CONFIG": str(config)})


def make_token(config: Path, name: str, *extra: str) -> str:
    p = cli("tokens", "create", "--name", name, *extra, config=config)
    if p.returncode != 0:
        raise RuntimeError(f"tokens create failed: {p.stdout}{p.stderr}")
    return p.stdout.strip().splitlines()[-1].strip()


def feature(lon: float, lat: float, i: int) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {
            "species": SPECIES[i % len(SPECIES)], "kind": "witness",
            "observed_at": "2025-11-21T07:00:00+09:00", "count": 1, "status": "published",
        },
    }


# --------------------------------------------------------------------------- webhook receiver

class Receiver:
    """A loopback webhook endpoint; records the arrival time of each feature id."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.lock = threading.Lock()
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                t = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                try:
                    fid = str(json.loads(body)["feature"]["id"])
                except (ValueError, KeyError, TypeError):
                    fid = ""
                with rx.lock:
                    rx.count += 1
                    rx.arrivals.setdefault(fid, t)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- 1. webhooks

def bench_webhooks(api: str, admin: str, rx: Receiver,
                   pts: list[tuple[float, float]]) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {admin}", "Content-Type": "application/geo+json"}
    sent: dict[str, float] = {}
    create_ms: list[float] = []
    errors = 0
    with httpx.Client(timeout=30, headers={"Accept-Encoding": "identity"}) as c:
        for i, (x, y) in enumerate(pts):
            t0 = time.perf_counter()
            r = c.post(api + ITEMS, content=json.dumps(feature(x, y, i)), headers=auth)
            create_ms.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 201:
                errors += 1
                continue
            sent[str(r.json()["id"])] = t0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with rx.lock:
            if all(fid in rx.arrivals for fid in sent):
                break
        time.sleep(0.05)
    with rx.lock:
        lat = [(rx.arrivals[f] - t0) * 1000 for f, t0 in sent.items() if f in rx.arrivals]
    return {"n": len(pts), "created": len(sent), "create_errors": errors,
            "delivered": len(lat), "lat": lat, "create_ms": create_ms}


# --------------------------------------------------------------------------- 2. reads + writes

async def writer(api: str, admin: str, pts: list[tuple[float, float]], stop: asyncio.Event,
                 stats: dict[str, Any]) -> None:
    """Creates at WRITES_PER_S, one at a time, until ``stop``."""
    auth = {"Authorization": f"Bearer {admin}", "Content-Type": "application/geo+json"}
    period = 1.0 / WRITES_PER_S
    async with httpx.AsyncClient(timeout=30, headers={"Accept-Encoding": "identity"}) as c:
        t_start = time.perf_counter()
        nxt = t_start
        i = 0
        while not stop.is_set():
            x, y = pts[i % len(pts)]
            try:
                r = await c.post(api + ITEMS, content=json.dumps(feature(x, y, i)), headers=auth)
                ok = r.status_code == 201
            except httpx.HTTPError:
                ok = False
            stats["ok" if ok else "errors"] += 1
            i += 1
            nxt += period
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
        stats["elapsed"] = time.perf_counter() - t_start


async def reads_with_writes(api: str, side: Side, admin: str,
                            pts: list[tuple[float, float]]) -> tuple[Result, dict[str, Any]]:
    stop = asyncio.Event()
    stats: dict[str, Any] = {"ok": 0, "errors": 0, "elapsed": 0.0}
    task = asyncio.create_task(writer(api, admin, pts, stop, stats))
    try:
        res = await run_side(api, side)
    finally:
        stop.set()
        await task
    return res, stats


def tile_paths(api: str, pts: list[tuple[float, float]]) -> list[str] | None:
    """z10 tiles holding sightings that answer 200; None when none does (route absent)."""
    n = 2 ** 10
    cells: list[tuple[int, int]] = []
    for lon, lat in pts:
        x = int((lon + 180) / 360 * n)
        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
        if (x, y) not in cells:
            cells.append((x, y))
    out, seen = [], []
    with httpx.Client(timeout=30, headers=HEADERS) as c:
        for x, y in cells[:8]:
            path = TILE.format(x=x, y=y)
            r = c.get(api + path)
            seen.append(f"{x}/{y}:{r.status_code}")
            if r.status_code == 200:
                out.append(path)
    if not out:
        print(f"  tiles: no z10 tile answered 200 (x/y:status {', '.join(seen)}); "
              "skipping the tiles rows")
    return out or None


# --------------------------------------------------------------------------- 3. CSV import

def make_csv(pts: list[tuple[float, float]], prefix: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["source_id", "species", "kind", "reliability", "observed_at", "lon", "lat",
                "count", "description"])
    for i, (x, y) in enumerate(pts):
        w.writerow([f"{prefix}-{i:05d}", SPECIES[i % len(SPECIES)], KINDS[i % len(KINDS)],
                    ("high", "middle", "low")[i % 3],
                    f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T06:{i % 60:02d}:00+09:00",
                    f"{x:.6f}", f"{y:.6f}", 1 + i % 3, f"ベンチ行 {i}"])
    return buf.getvalue()


def http_import(api_root: str, token: str, text: str) -> tuple[float, dict[str, Any]]:
    with httpx.Client(timeout=170) as c:
        t0 = time.perf_counter()
        r = c.post(api_root + "/api/sightings/import?mode=per-row", content=text.encode(),
                   headers={"Authorization": f"Bearer {token}",
                            "Content-Type": "text/csv; charset=utf-8"})
        dt = time.perf_counter() - t0
    if r.status_code not in (200, 201):
        raise RuntimeError(f"import HTTP {r.status_code}: {r.text[:300]}")
    return dt, r.json()


def cli_import(config: Path, token: str, path: Path) -> tuple[float, dict[str, Any] | str]:
    t0 = time.perf_counter()
    p = cli("sightings", "import", str(path), "--token", token, "--mode", "per-row",
            config=config, timeout=170)
    dt = time.perf_counter() - t0
    try:
        return dt, json.loads(p.stdout)
    except ValueError:
        return dt, f"rc={p.returncode}: {(p.stdout + p.stderr)[-300:]}"


def summary(rep: dict[str, Any]) -> str:
    rej = rep.get("rejected") or []
    return (f"created {rep.get('created')} updated {rep.get('updated')} "
            f"unchanged {rep.get('unchanged')} rejected {len(rej)}")


# --------------------------------------------------------------------------- main

def main() -> int:
    from geoservice.build import build
    from geoservice.config import load_settings

    t_all = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="geotwin-sightings-bench-"))
    srv: Server | None = None
    rows: list[tuple[str, str, str, str, str, str]] = []  # measure, n, rate, p50, p99, notes
    notes: list[str] = []
    try:
        port = free_port()
        config = write_config(tmp, port, LAYERS,
                              server={"title": "Tokyo GeoTwin (sightings bench)"},
                              alerts={"allow_private_webhooks": True})
        t0 = time.perf_counter()
        report = build(load_settings(config), DATA, layers=LAYERS)
        print(f"built store in {time.perf_counter() - t0:.1f} s: {report.counts}")
        admin = make_token(config, "bench", "--admin")
        muni = make_token(config, "bench-okutama", "--municipality", OKUTAMA)
        pts = okutama_points(tmp / "store.gpkg", N_CREATES + 200, seed=4)
        srv = Server("geoservice serve",
                     [GEOSERVICE, "serve", "--config", str(config), "--host", "127.0.0.1",
                      "--port", str(port), "--workers", "1"],
                     port, {"GEOSERVICE_CONFIG": str(config)},
                     "/ogc/collections/wildlife-sightings/items?limit=1&f=json",
                     tmp / "serve.log", api_prefix="/ogc")
        srv.start()
        print(f"serving on {srv.base} (geoservice serve, 1 worker; access log on, to a file)")

        # 1. create -> webhook
        with Receiver() as rx:
            r = httpx.post(srv.base + "/api/subscriptions", timeout=30,
                           json={"area": WEST_TOKYO, "species": [], "webhook": rx.url})
            if r.status_code != 201:
                raise RuntimeError(f"subscription refused: HTTP {r.status_code} {r.text[:300]}")
            sub = r.json()
            print(f"1. {N_CREATES} creates -> webhook {rx.url}", flush=True)
            wh = bench_webhooks(srv.api, admin, rx, pts[:N_CREATES])
            lat, cm = wh["lat"], wh["create_ms"]
            rows.append(("create -> webhook delivered", f"{wh['delivered']}/{wh['n']}", "",
                         f"{pct(lat, 0.5):.1f}" if lat else "-",
                         f"{pct(lat, 0.99):.1f}" if lat else "-",
                         f"create errors {wh['create_errors']}; webhooks received {rx.count}"))
            rows.append(("  (create response alone)", str(len(cm)),
                         f"{1000 * len(cm) / sum(cm):.1f} creates/s",
                         f"{pct(cm, 0.5):.1f}", f"{pct(cm, 0.99):.1f}", "sequential"))

            # 2. reads, without and with a writer (subscription stays: webhooks go on too)
            print(f"2. readers x{CONCURRENCY}, {DURATION:g} s per row, writer "
                  f"{WRITES_PER_S:g}/s", flush=True)
            targets = [("items?limit=100", [f"{ITEMS}?limit=100&f=json"])]
            tiles = tile_paths(srv.api, pts[:N_CREATES])
            if tiles:
                targets.append((f"tiles z10 ({len(tiles)} tiles)", tiles))
            else:
                notes.append("vector tiles: /ogc/collections/wildlife-sightings/tiles/"
                             "WebMercatorQuad/10/{y}/{x} answered no 200 at run time (route "
                             "absent: 404) - tiles rows skipped")
            for label, paths in targets:
                side = Side(paths)
                base_r = asyncio.run(run_side(srv.api, side))
                rows.append((f"GET {label}, no writes", str(base_r.requests),
                             f"{base_r.rps:.1f} req/s", f"{base_r.p50_ms:.1f}",
                             f"{base_r.p99_ms:.1f}", f"errors {base_r.errors}"))
                res, ws = asyncio.run(reads_with_writes(srv.api, side, admin, pts))
                wps = ws["ok"] / ws["elapsed"] if ws["elapsed"] else 0.0
                ratio = res.rps / base_r.rps if base_r.rps else 0.0
                rows.append((f"GET {label}, + writes", str(res.requests),
                             f"{res.rps:.1f} req/s", f"{res.p50_ms:.1f}", f"{res.p99_ms:.1f}",
                             f"errors {res.errors}; writes {wps:.1f}/s achieved "
                             f"(target {WRITES_PER_S:g}, {ws['errors']} failed); "
                             f"{ratio:.2f}x of no-writes"))
            httpx.delete(f"{srv.base}/api/subscriptions/{sub['id']}", timeout=30,
                         headers={"Authorization": f"Bearer {sub['secret']}"})
        notes.append("the subscription was deleted before the imports, so they deliver "
                     "no webhooks")

        # 3. CSV import
        print(f"3. CSV import, {IMPORT_ROWS} rows in 奥多摩町 ({OKUTAMA})", flush=True)
        ipts = okutama_points(tmp / "store.gpkg", IMPORT_ROWS, seed=13308)
        text = make_csv(ipts, "BENCH")
        (tmp / "import.csv").write_text(text, "utf-8")
        for label in ("HTTP import (new)", "HTTP re-import (same file)"):
            dt, rep = http_import(srv.base, muni, text)
            rows.append((label, str(IMPORT_ROWS), f"{IMPORT_ROWS / dt:.0f} rows/s", "", "",
                         f"{dt:.2f} s; {summary(rep)}"))
        cli_csv = tmp / "import-cli.csv"
        cli_csv.write_text(make_csv(ipts, "BENCH-CLI"), "utf-8")
        for label in ("CLI import (new)", "CLI re-import (same file)"):
            if time.perf_counter() - t_all > 140:
                notes.append(f"{label}: skipped to stay within the 3-minute bound")
                continue
            dt, rep = cli_import(config, muni, cli_csv)
            detail = summary(rep) if isinstance(rep, dict) else rep
            rows.append((label, str(IMPORT_ROWS), f"{IMPORT_ROWS / dt:.0f} rows/s", "", "",
                         f"{dt:.2f} s wall incl. process start; {detail}"))
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    head = ("measure", "n", "rate", "p50 ms", "p99 ms", "notes")
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    line = "  ".join(f"{head[i]:<{w[i]}}" if i == 0 else f"{head[i]:>{w[i]}}"
                     for i in range(5)) + "  " + head[5]
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(f"{r[i]:<{w[i]}}" if i == 0 else f"{r[i]:>{w[i]}}" for i in range(5))
              + "  " + r[5])
    print("-" * len(line))
    for n in notes:
        print(f"note: {n}")
    print(f"total {time.perf_counter() - t_all:.0f} s on {os.cpu_count()} CPU(s); load "
          f"generator, webhook receiver and server share them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
