"""Benchmark of the guide answering from the 不動産情報ライブラリ API (cold and warm cache).

The service (uvicorn subprocess, one worker) talks to the local contract server of the
tests (tests/reinfolib_server.py, fixtures around 大田区) with a latency injected on every
request (default 50 ms), as a stand-in for the real API over the Internet.  Rows:

- ``cold`` — the first answer for each of up to ``--sites`` sites about 2.3 km apart over
  大田区 (no tile of a site cached before): p50 / p99 latency and API requests per site;
  target: every answer within the site budget (3 s);
- ``warm`` — the same answer repeated (every tile cached in the store): p50 / p99;
  target p50 ≤ 5 ms;
- ``no key`` — the anchor: the same site on a server without a key (the demo: API layers
  "not configured"), the guide's cost without any API layer.

Answers are checked first: for each site the warm answer must equal the cold one (statuses,
sources, land-price panel); the run stops otherwise.  The per-minute request budget is
raised for the run (the default, 60, would refuse a cold site after about three).

Usage (from the project root)::

    .venv/bin/python bench/reinfolib.py                     # 20 sites, 200 warm requests
    .venv/bin/python bench/reinfolib.py --sites 5 --requests 50 --latency 0.05
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import Server, free_port, pct, uvicorn_cmd, write_config  # noqa: E402

from geoservice.build import build  # noqa: E402
from geoservice.config import load_settings  # noqa: E402
from tests.reinfolib_server import ReinfolibServer  # noqa: E402

WORKS = {"activities": ["new-building", "land-development"], "site_area_m2": 600,
         "use": "apartment-for-sale-or-rent", "floor_area_m2": 800, "building_height_m": 12}
#: The first site lies on the fixtures (急傾斜地, 用途地域, land prices…); the others on a
#: grid over 大田区 (in the demo store's municipalities), ~2.3 km apart, so no two share a
#: tile (points in the bay are skipped: outside the service area).
FIRST = (139.7055, 35.5782)
GRID = [(139.665 + 0.025 * i, 35.525 + 0.021 * j) for j in range(5) for i in range(6)]


def essence(answer: dict[str, Any]) -> Any:
    """What a cached answer must repeat: statuses, sources (with fetch dates), the panel."""
    return ({p["id"]: p["status"] for p in answer["procedures"]},
            [(s["layer"], s["kind"], s["fetched_at"], s["reason_code"]) for s in answer["sources"]],
            answer["real_estate"])


def post(client: httpx.Client, base: str, site: tuple[float, float]) -> tuple[float, Any]:
    """One guide request: (milliseconds, answer), the answer ``None`` off the service area."""
    t0 = time.perf_counter()
    r = client.post(f"{base}/api/guide", json={"site": {"point": list(site)}, "works": WORKS})
    ms = (time.perf_counter() - t0) * 1000
    if r.status_code == 422 and "outside the service area" in r.text:
        return ms, None
    if r.status_code != 200:
        raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
    return ms, r.json()


def serve(tmp: Path, name: str, api: ReinfolibServer, key: str | None) -> Server:
    """The service over the built store, its API section pointing at the contract server."""
    port = free_port()
    section = {"base_url": api.url, "requests_per_minute": 100_000}
    path = write_config(tmp, port, None, name=f"{name}.yml",
                        store={"path": str(tmp / "store.gpkg")}, reinfolib=section)
    env = {"GEOSERVICE_CONFIG": str(path), "REINFOLIB_API_KEY": key or ""}
    return Server(name, uvicorn_cmd("geoservice.asgi:app", port), port, env,
                  "/api/guide/rules", tmp / f"{name}.log")


def run(args: argparse.Namespace, tmp: Path) -> None:
    base = load_settings(ROOT / "config.yml", env={})
    store = base.store.model_copy(update={"path": tmp / "store.gpkg"})
    settings = base.model_copy(update={"store": store, "work_dir": tmp / "build"})
    t0 = time.perf_counter()
    build(settings, mirror=Path(args.mirror).resolve())
    print(f"built a store from {args.mirror} in {time.perf_counter() - t0:.1f} s")
    sites = [FIRST, *GRID][: args.sites]
    with ReinfolibServer() as api, httpx.Client(timeout=30) as client:
        api.state.latency_s = args.latency
        with serve(tmp, "keyed", api, api.key) as srv:
            cold, per_site, answers, kept = [], [], [], []
            for site in sites:
                before = len(api.served)
                ms, answer = post(client, srv.base, site)
                if answer is None:  # a grid point off Tokyo's municipalities
                    continue
                cold.append(ms)
                per_site.append(len(api.served) - before)
                answers.append(answer)
                kept.append(site)
            sites = kept
            for site, first in zip(sites, answers, strict=True):
                if essence(post(client, srv.base, site)[1]) != essence(first):
                    raise SystemExit(f"the cached answer differs from the cold one at {site}")
            warm = [post(client, srv.base, FIRST)[0] for _ in range(args.requests)]
            extra = len(api.served) - sum(per_site)
        with serve(tmp, "nokey", api, None) as srv:
            plain = [post(client, srv.base, FIRST)[0] for _ in range(args.requests)]
    report(args, cold, per_site, warm, plain, extra)


def report(args: argparse.Namespace, cold: list[float], per_site: list[int], warm: list[float],
           plain: list[float], extra: int) -> None:
    print(f"\nguide with the 不動産情報ライブラリ API — {len(cold)} cold sites, "
          f"{len(warm)} warm requests, {args.latency * 1000:.0f} ms injected per API request; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("every cached answer equals its cold answer: True")
    head = f"{'row':<40} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  target"
    print(head + "\n" + "-" * (len(head) + 20))
    rows = [
        ("cold cache (API fetched)", cold, "all <= 3000 ms", max(cold) <= 3000),
        ("warm cache (tiles in the store)", warm, "p50 <= 5 ms", pct(warm, 0.5) <= 5),
        ("no key (anchor: API not configured)", plain, "anchor", None),
    ]
    for name, times, target, ok in rows:
        mark = "" if ok is None else (" OK" if ok else " MISSED")
        print(f"{name:<40} {pct(times, 0.5):>8.1f} {pct(times, 0.99):>8.1f} "
              f"{max(times):>8.1f}  {target}{mark}")
    print(f"\nAPI requests per cold site: median {sorted(per_site)[len(per_site) // 2]}, "
          f"min {min(per_site)}, max {max(per_site)}; requests after the cold pass: {extra}")
    print(f"warm / anchor p50: {pct(warm, 0.5) / pct(plain, 0.5):.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", default=str(ROOT / "data" / "demo"),
                    help="mirror to build the store from (default: the demo data)")
    ap.add_argument("--sites", type=int, default=20, help="cold sites (at most 31)")
    ap.add_argument("--requests", type=int, default=200, help="warm and anchor requests")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds per API request")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reinfolib-bench-") as t:
        run(args, Path(t))


if __name__ == "__main__":
    main()
