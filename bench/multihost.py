"""Issue 13 benchmark: several app hosts on one PostgreSQL, and hosts killed under load.

Builds admin-boundaries + wildlife-sightings into a scratch database
(``BENCH_DATABASE_URL``, default the local test cluster), starts up to three
``geoservice serve`` hosts (separate processes, work dirs and ports on 127.0.0.1, one
worker each; ``tests/cluster.py``) and measures:

1. writes/s (admin creates through Part 4: feature + audit + event + outbox in one
   transaction) and reads/s (``items/{id}`` of a random written feature, with a token)
   with 1, 2 and 3 hosts, a client spreading requests round-robin from
   ``BENCH_CONCURRENCY`` threads; the anchor is one host, the ratios say what more hosts
   buy.  All hosts, the database and the client share this machine's cores, so the
   ratios are bounded by them (2 cores: a second host mostly competes with the first);
2. create → webhook p50/p99 while a host is ``kill -9``ed and restarted every
   ``BENCH_KILL_EVERY`` s (3 hosts, a steady ``BENCH_WRITES_PER_S`` writes/s, one
   subscription, a local receiver keyed by ``Idempotency-Key``), with the client errors:
   requests in flight on the killed host (expected; the client saw its connection cut)
   versus any other error (target: 0), and whether every acknowledged write's webhook
   arrived.

Before a figure is printed the answers are checked: every acknowledged write is read back
with 200 from a host it was not written to.  Usage: ``.venv/bin/python bench/multihost.py``;
knobs BENCH_DURATION (s per row, default 5), BENCH_CONCURRENCY (default 6),
BENCH_CHAOS_S (default 20), BENCH_KILL_EVERY (default 4), BENCH_WRITES_PER_S (default 10).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from statistics import quantiles

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import free_port  # noqa: E402

from geoservice.build import build  # noqa: E402
from geoservice.config import load_settings  # noqa: E402
from tests.cluster import Host, Receiver, host_config, new_token  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
LAYERS = ["admin-boundaries", "wildlife-sightings"]
ITEMS = "/ogc/collections/wildlife-sightings/items"
OKUTAMA = [139.0944, 35.8093]
ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", os.environ.get(
    "GEOSERVICE_TEST_DATABASE_URL", "postgresql://geoservice:geoservice@127.0.0.1:5432/postgres"))
DURATION = float(os.environ.get("BENCH_DURATION", "5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "6"))
CHAOS_S = float(os.environ.get("BENCH_CHAOS_S", "20"))
KILL_EVERY = float(os.environ.get("BENCH_KILL_EVERY", "4"))
WRITES_PER_S = float(os.environ.get("BENCH_WRITES_PER_S", "10"))
ALERTS = {"allow_private_webhooks": True, "lease_s": 3, "timeout_s": 2, "poll_s": 0.3,
          "retry_base_s": 0.2}


def _body(i: int) -> str:
    return json.dumps({"type": "Feature",
                       "geometry": {"type": "Point", "coordinates": OKUTAMA},
                       "properties": {"species": "asian-black-bear", "kind": "witness",
                                      "observed_at": "2025-10-01T06:30:00+09:00",
                                      "description": f"bench {i}"}})


class Pool:
    """The hosts a client may use (a load balancer's view: killed ones drop out)."""

    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = hosts
        self.rr = itertools.count()

    def pick(self) -> Host:
        while True:
            live = [h for h in self.hosts if h.ready]
            if live:
                return live[next(self.rr) % len(live)]
            time.sleep(0.05)


def throughput(pool: Pool, token: str, op: Callable[[httpx.Client, Host, int], bool],
               seconds: float) -> float:
    """Successful operations per second from CONCURRENCY client threads."""
    done = [0] * CONCURRENCY
    stop = time.monotonic() + seconds
    counter = itertools.count()

    def work(slot: int) -> None:
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
            while time.monotonic() < stop:
                if op(c, pool.pick(), next(counter)):
                    done[slot] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(CONCURRENCY)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - t0)


def scaling(hosts: list[Host], token: str) -> list[tuple[int, float, float]]:
    written: list[str] = []
    lock = threading.Lock()

    def write(c: httpx.Client, h: Host, i: int) -> bool:
        r = c.post(f"{h.url}{ITEMS}", content=_body(i),
                   headers={"Content-Type": "application/geo+json"})
        if r.status_code == 201:
            with lock:
                written.append(r.json()["id"])
        return r.status_code == 201

    def read(c: httpx.Client, h: Host, i: int) -> bool:
        return c.get(f"{h.url}{ITEMS}/{random.choice(written)}").status_code == 200

    rows = []
    for n in (1, 2, 3):
        pool = Pool(hosts[:n])
        w = throughput(pool, token, write, DURATION)
        r = throughput(pool, token, read, DURATION)
        rows.append((n, w, r))
        print(f"  {n} host(s): {w:7.1f} writes/s  {r:7.1f} reads/s", flush=True)
    # checked before anything is reported: every write reads back from the last host
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
        for fid in random.sample(written, min(200, len(written))):
            assert c.get(f"{hosts[-1].url}{ITEMS}/{fid}").status_code == 200, fid
    return rows


def chaos(hosts: list[Host], token: str) -> dict[str, float]:
    """Steady writes with webhooks while hosts are killed and restarted."""
    pool = Pool(hosts)
    sent: dict[str, float] = {}
    killed_at: dict[str, list[float]] = {h.name: [] for h in hosts}
    stats = {"acked": 0, "in_flight_on_killed": 0, "other_errors": 0, "kills": 0}
    stop = threading.Event()
    with Receiver() as receiver:
        r = httpx.post(f"{hosts[0].url}/api/subscriptions", timeout=30, json={
            "area": {"point": OKUTAMA, "radius_m": 5000}, "webhook": receiver.url})
        assert r.status_code == 201, r.text

        def killer() -> None:
            while not stop.wait(KILL_EVERY):
                victim = random.choice([h for h in hosts if h.ready])
                killed_at[victim.name].append(time.monotonic())
                victim.kill()
                stats["kills"] += 1
                victim.start()

        def writer() -> None:
            with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}",
                                                   "Content-Type": "application/geo+json"}) as c:
                for i in itertools.count():
                    if stop.is_set():
                        return
                    h = pool.pick()
                    t0, m0 = time.time(), time.monotonic()
                    try:
                        resp = c.post(f"{h.url}{ITEMS}", content=_body(i))
                        ok = resp.status_code == 201
                    except httpx.HTTPError:
                        ok = False
                        resp = None
                    if ok and resp is not None:
                        sent[resp.json()["id"]] = t0
                        stats["acked"] += 1
                    elif any(t >= m0 for t in killed_at[h.name]):
                        stats["in_flight_on_killed"] += 1
                    else:
                        stats["other_errors"] += 1
                    time.sleep(max(0.0, 1 / WRITES_PER_S - (time.monotonic() - m0)))

        threads = [threading.Thread(target=killer), threading.Thread(target=writer)]
        for t in threads:
            t.start()
        time.sleep(CHAOS_S)
        stop.set()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = set(receiver.events.values())
            if set(sent) <= got:
                break
            time.sleep(0.2)
        arrival = {fid: receiver.first_at[key] for key, fid in receiver.events.items()}
        lat = sorted(arrival[f] - sent[f] for f in sent if f in arrival)
        missing = len(set(sent) - set(arrival))
        dupes = sum(n - 1 for n in receiver.hits.values())
    q = quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    return {**stats, "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000,
            "webhooks_missing": missing, "webhooks_repeated": dupes}


def main() -> int:
    name = f"geoservice_bench_mh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(ADMIN_URL, dbname=name)
    hosts: list[Host] = []
    try:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        tmp = Path(tempfile.mkdtemp(prefix="bench-multihost-"))
        store = {"backend": "postgis", "database_url": url}
        extra = {"sightings": {"reports_per_minute": 1000}}
        cfg0 = host_config(tmp / "build", 8000, store, LAYERS, extra, ALERTS)
        build(load_settings(cfg0, env={}), mirror=DATA, layers=LAYERS)
        for i in range(3):
            port = free_port()
            hosts.append(Host(f"host{i}", host_config(tmp / f"host{i}", port, store, LAYERS,
                                                      extra, ALERTS), port).start())
        token = new_token(hosts[0], "bench admin", "--admin")
        print(f"multi-host benchmark: {os.cpu_count()} cores shared by the hosts, PostgreSQL"
              " and the client; one worker per host", flush=True)
        rows = scaling(hosts, token)
        w1, r1 = rows[0][1], rows[0][2]
        print("\n| hosts | writes/s | vs 1 host | reads/s | vs 1 host |\n|---|---|---|---|---|")
        for n, w, r in rows:
            print(f"| {n} | {w:.1f} | {w / w1:.2f}x | {r:.1f} | {r / r1:.2f}x |")
        print(f"\nchaos: {CHAOS_S:.0f} s, a host killed (-9) and restarted every "
              f"{KILL_EVERY:.0f} s, {WRITES_PER_S:.0f} writes/s", flush=True)
        res = chaos(hosts, token)
        print("\n| kills | acked writes | create→webhook p50 | p99 | errors in flight on the"
              " killed host | other errors | webhooks missing | repeated |\n"
              "|---|---|---|---|---|---|---|---|")
        print(f"| {res['kills']:.0f} | {res['acked']:.0f} | {res['p50_ms']:.0f} ms |"
              f" {res['p99_ms']:.0f} ms | {res['in_flight_on_killed']:.0f} |"
              f" {res['other_errors']:.0f} | {res['webhooks_missing']:.0f} |"
              f" {res['webhooks_repeated']:.0f} |")
        return 0 if res["other_errors"] == 0 and res["webhooks_missing"] == 0 else 1
    finally:
        for h in hosts:
            h.kill()
        from geoservice.store import postgis

        for pool_url in list(postgis._POOLS):
            postgis._POOLS.pop(pool_url)[0].close()
        with psycopg.connect(ADMIN_URL, autocommit=True) as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


if __name__ == "__main__":
    raise SystemExit(main())
