"""Three app hosts on one PostgreSQL, a client spreading requests over them, hosts killed.

Each host is ``geoservice serve`` in its own process with its own config and a READ-ONLY
``work_dir`` (``tests/cluster.py``).  The proof, in order:

1. tokens made on one host (``geoservice tokens create``) write through the others; every
   acknowledged write reads back from every host; audit entries equal writes;
2. ``kill -9`` of a host in the middle of a write burst and of a webhook-delivery burst
   (it holds delivery leases when it dies): no acknowledged write is lost, nothing is
   half-done (feature, audit entry and event: all or none), every webhook is received
   once per subscription and event (the receiver counts by ``Idempotency-Key``), the SSE
   clients of the surviving hosts get every event in order, the killed host's SSE client
   reconnects to another host with ``Last-Event-ID`` and misses nothing;
3. an async guide job running on a host that is killed is finished by another;
4. the citizen-report rate limit holds across hosts (one counter in the database).

The same suite runs on the embedded store with one host, "killed" and restarted.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from geoservice.build import build
from geoservice.state import FILES, SEARCH_PATH
from geoservice.state.pg import to_pg
from tests.cluster import Host, Receiver, SseClient, host_config, new_token
from tests.conftest import DATA, ROOT, free_port, pg_settings_for, settings_for

LAYERS = ["admin-boundaries", "wildlife-sightings"]
ITEMS = "/ogc/collections/wildlife-sightings/items"
OKUTAMA = [139.0944, 35.8093]
AREA = {"point": OKUTAMA, "radius_m": 5000}
REPORTS_PER_MINUTE = 4
#: short leases so a dead host's deliveries and jobs are taken over within seconds; at most
#: ``concurrency`` deliveries are in flight per host, so at most that many can be sent twice
#: (sent by the host that dies before it records them, then by another)
CONCURRENCY = 4
ALERTS = {"allow_private_webhooks": True, "lease_s": 3, "timeout_s": 2, "poll_s": 0.3,
          "retry_base_s": 0.2, "heartbeat_s": 1, "concurrency": CONCURRENCY}
SECTIONS = {"sightings": {"reports_per_minute": REPORTS_PER_MINUTE},
         "guide": {"job_lease_s": 2}}


@dataclass
class Cluster:
    """The hosts of one backend and how to read its state directly (for the checks)."""

    backend: str
    hosts: list[Host]
    database_url: str | None
    work: Path
    rr: Iterator[int] = field(default_factory=lambda: itertools.count())

    def live(self) -> list[Host]:
        return [h for h in self.hosts if h.ready]

    def next(self) -> Host:
        """Round-robin over the live hosts (what a load balancer does)."""
        _wait("a live host", lambda: bool(self.live()))
        live = self.live()
        return live[next(self.rr) % len(live)]

    def query(self, concern: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a state concern: PostgreSQL, or the one host's SQLite side file."""
        if self.database_url is not None:
            opts = f"-c search_path={SEARCH_PATH}"
            with psycopg.connect(self.database_url, options=opts) as con:
                return con.execute(to_pg(sql), params).fetchall()  # type: ignore[arg-type]
        with sqlite3.connect(self.work / FILES[concern]) as con:
            return con.execute(sql, params).fetchall()


def _readonly(folder: Path) -> None:
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)


@pytest.fixture(scope="module", params=["postgis", "gpkg"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"multihost-{backend}")
    if backend == "postgis":
        url = request.getfixturevalue("pg_database")("multihost")
        settings = pg_settings_for(tmp, ROOT / "layers", url)
        store = {"backend": "postgis", "database_url": url}
        count = 3
    else:
        url = None
        settings = settings_for(tmp, ROOT / "layers")
        store = {"backend": "gpkg", "path": str(tmp / "store.gpkg")}
        count = 1
    build(settings.model_copy(update={"enabled_layers": LAYERS}), mirror=DATA, layers=LAYERS)
    hosts = []
    for i in range(count):
        port = free_port()
        cfg = host_config(tmp / f"host{i}", port, store, LAYERS, SECTIONS, ALERTS)
        hosts.append(Host(f"host{i}", cfg, port))
    if backend == "postgis":
        for h in hosts:  # nothing a host keeps may need a writable work_dir
            _readonly(h.config.parent / "work")
    for h in hosts:
        h.start()
    work = hosts[0].config.parent / "work"
    try:
        yield Cluster(backend, hosts, url, work)
    finally:
        for h in hosts:
            h.kill()
            (h.config.parent / "work").chmod(0o755)


@dataclass
class Writer:
    """A client that writes sightings through the cluster, remembering what was acked."""

    cluster: Cluster
    tokens: list[str]
    marker: str
    acked: list[str] = field(default_factory=list)
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, i: int) -> None:
        host = self.cluster.next()
        body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": OKUTAMA},
                "properties": {"species": "asian-black-bear", "kind": "witness",
                               "observed_at": "2025-10-01T06:30:00+09:00",
                               "description": f"{self.marker} {i}"}}
        headers = {"Authorization": f"Bearer {self.tokens[i % len(self.tokens)]}",
                   "Content-Type": "application/geo+json"}
        try:
            r = httpx.post(f"{host.url}{ITEMS}", content=json.dumps(body), headers=headers,
                           timeout=20)
        except httpx.HTTPError:
            with self.lock:
                self.failed += 1  # in flight on a killed host: not acknowledged
            return
        assert r.status_code == 201, (host.name, r.status_code, r.text)
        with self.lock:
            self.acked.append(r.json()["id"])

    def burst(self, n: int, threads: int = 3) -> threading.Thread:
        """``n`` writes from ``threads`` client threads, in the background."""
        counter = itertools.count()

        def work() -> None:
            while (i := next(counter)) < n:
                self.write(i)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        runner = threading.Thread(target=lambda: [w.start() for w in workers]
                                  and [w.join() for w in workers])
        runner.start()
        return runner


def _wait(what: str, done: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _leases_of(cluster: Cluster, host: Host) -> int:
    rows = cluster.query("alerts", "SELECT count(*) FROM deliveries WHERE status = 'pending'"
                         " AND lease_owner LIKE ?", f"%/{host.pid}/%")
    return int(rows[0][0])


def _kill_or_restart(cluster: Cluster, victim: Host) -> None:
    """``kill -9`` ``victim``; with one host (embedded store) start it again at once."""
    victim.kill()
    if not cluster.live():
        victim.start()


def _event_log(cluster: Cluster) -> list[tuple[str, str]]:
    return [(e, f) for e, f in cluster.query(
        "alerts", "SELECT event_id, feature_id FROM events ORDER BY seq")]


def test_hosts_share_everything_and_survive_kill_9(cluster: Cluster) -> None:
    hosts = cluster.hosts
    first, last = hosts[0], hosts[-1]
    admin = new_token(first, "都 管理者", "--admin")
    scoped = new_token(hosts[1 % len(hosts)], "奥多摩町 環境整備課", "--municipality", "13308")
    marker = f"multihost-{cluster.backend}-{time.time_ns()}"

    with Receiver(delay_s=0.15) as receiver:
        subs = []
        for h in hosts[:2]:
            r = httpx.post(f"{h.url}/api/subscriptions", timeout=20,
                           json={"area": AREA, "species": [], "webhook": receiver.url})
            assert r.status_code == 201, r.text
            subs.append(r.json()["id"])
        # the stream of every host, and one on the host to be killed that falls back
        streams = [SseClient(h.url).start() for h in hosts[:-1]]
        moving = SseClient(last.url, fallback=lambda: cluster.next().url).start()

        # 1. writes through every host with tokens made on others; read back everywhere
        writer = Writer(cluster, [admin, scoped], marker)
        for i in range(12):
            writer.write(i)
        assert len(writer.acked) == 12 and writer.failed == 0
        for fid in writer.acked:
            for h in hosts:
                r = httpx.get(f"{h.url}{ITEMS}/{fid}", timeout=20,
                              headers={"Authorization": f"Bearer {admin}"})
                assert r.status_code == 200, (h.name, fid, r.text)

        # the same If-Match from two hosts at once: one wins, the other gets 412
        if len(hosts) > 1:
            _if_match_races(hosts[0], hosts[1], admin)

        # 2. kill -9 the last host mid write burst, while it holds delivery leases
        burst = writer.burst(60)
        _wait("the victim to hold delivery leases", lambda: _leases_of(cluster, last) > 0)
        leased_at_kill = _leases_of(cluster, last)
        _kill_or_restart(cluster, last)
        burst.join(120)
        assert len(writer.acked) + writer.failed == 72
        acked = list(writer.acked)

        # every acknowledged write is there, on every live host
        for fid in acked[::5] + acked[-5:]:
            for h in cluster.live():
                r = httpx.get(f"{h.url}{ITEMS}/{fid}", timeout=20,
                              headers={"Authorization": f"Bearer {admin}"})
                assert r.status_code == 200, (h.name, fid, r.text)
        mine = _stored(cluster, admin, marker)
        assert set(acked) <= mine, "an acknowledged write was lost"
        # nothing half-done: every stored write has one audit entry and one event.  On
        # PostGIS that holds for every write; the embedded store (two files, no shared
        # transaction) promises it for acknowledged writes, and may leave a write that was
        # in flight at the kill with a pending audit entry or no event (README).
        audit = _audit(cluster, marker)
        log = _event_log(cluster)
        evented = Counter(f for _, f in log if f in mine)
        strict = mine if cluster.backend == "postgis" else set(acked)
        assert mine <= set(audit), "a stored write without its audit entry"
        assert all(audit[f] == {"committed"} or f not in strict for f in mine)
        assert all(evented[f] == 1 for f in strict), "a write without its event (or twice)"
        # an entry for a write that is not stored: only the embedded store's in-flight write
        # at the kill, never acknowledged, left pending (reconciled once it is old enough)
        unstored = set(audit) - mine
        if cluster.backend == "postgis":
            assert not unstored, "an audit entry for a write that is not stored"
        assert all(audit[f] <= {"pending", "aborted"} for f in unstored), audit
        assert len(mine - strict) + len(unstored) <= writer.failed

        # every webhook once per subscription and event, counted by Idempotency-Key
        expected = {f"{e}.{s}" for e, f in log if f in mine for s in subs}
        _wait("all deliveries", lambda: expected <= receiver.keys(), timeout=90)
        with receiver.lock:
            got = {k: n for k, n in receiver.hits.items() if receiver.events[k] in mine}
        assert set(got) == expected, "a webhook for an event that is not in the log"
        # the receiver sees a request before its sender records it (and a sender killed
        # in between leaves the row to be re-sent when its lease ends): wait for the rows
        def recorded() -> set[str]:
            rows = cluster.query("alerts", "SELECT event_id, subscription_id, status"
                                 " FROM deliveries")
            return {f"{e}.{s}" for e, s, st in rows if st == "delivered"}

        _wait("deliveries recorded as delivered", lambda: recorded() >= expected, timeout=60)
        dupes = sum(n - 1 for n in got.values())
        assert dupes <= CONCURRENCY, (dupes, leased_at_kill)

        # SSE: surviving hosts' clients got every event in order; the moved one too
        order = [e for e, f in log if f in mine]
        clients = [*streams, moving]
        _wait("SSE clients", lambda: all(set(order) <= set(c.ids) for c in clients), 30)
        for c in clients:
            got = [e for e in c.ids if e in set(order)]
            assert got == order, "events out of order or missed"
            assert len(c.ids) == len(set(c.ids)), "an event sent twice to one client"
        assert moving.reconnects >= 1 and moving.resets == 0
        for c in clients:
            c.stop()

    # 3. an async guide job running on a host that is killed finishes on another
    _guide_job_survives_its_host(cluster)

    # 4. the citizen-report limit holds across hosts (the killed ones restarted, over
    #    their read-only work_dirs)
    for h in cluster.hosts:
        if not h.ready:
            h.start()
    codes = []
    for _ in range(REPORTS_PER_MINUTE + 4):
        h = cluster.next()
        r = httpx.post(f"{h.url}/api/reports", timeout=20, json={
            "point": OKUTAMA, "species": "wild-boar", "kind": "witness",
            "observed_at": "2025-10-02T07:00:00+09:00"})
        codes.append(r.status_code)
    assert codes.count(201) == REPORTS_PER_MINUTE and codes.count(429) == 4, codes

    # on PostGIS the hosts kept nothing in their work_dirs but what is regenerated (the
    # pygeoapi configuration); checked by listing, as root ignores the read-only mode
    if cluster.backend == "postgis":
        for h in cluster.hosts:
            left = {p.name for p in (h.config.parent / "work").iterdir()}
            assert left <= {"generated"}, (h.name, left)


def _if_match_races(a: Host, b: Host, admin: str) -> None:
    auth = {"Authorization": f"Bearer {admin}"}
    body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": OKUTAMA},
            "properties": {"species": "sika-deer", "kind": "trace",
                           "observed_at": "2025-10-03T06:30:00+09:00"}}
    r = httpx.post(f"{a.url}{ITEMS}", content=json.dumps(body), timeout=20,
                   headers={**auth, "Content-Type": "application/geo+json"})
    fid = r.json()["id"]
    for n in range(2, 7):
        etag = httpx.get(f"{a.url}{ITEMS}/{fid}", headers=auth, timeout=20).headers["ETag"]
        start = threading.Barrier(2)
        codes: list[int] = []

        def patch(h: Host, count: int, etag: str = etag, start: threading.Barrier = start,
                  codes: list[int] = codes) -> None:
            start.wait()
            r = httpx.patch(f"{h.url}{ITEMS}/{fid}", timeout=20,
                            content=json.dumps({"properties": {"count": count}}),
                            headers={**auth, "If-Match": etag,
                                     "Content-Type": "application/merge-patch+json"})
            codes.append(r.status_code)

        threads = [threading.Thread(target=patch, args=(h, n * 10 + i))
                   for i, h in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) == [200, 412], codes


def _stored(cluster: Cluster, admin: str, marker: str) -> set[str]:
    h = cluster.next()
    r = httpx.get(f"{h.url}{ITEMS}", params={"limit": 10000}, timeout=30,
                  headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200
    return {f["id"] for f in r.json()["features"]
            if str(f["properties"].get("description", "")).startswith(marker)}


def _audit(cluster: Cluster, marker: str) -> dict[str, set[str]]:
    """feature id -> states of its ``create`` entries, for the writes of this run."""
    out: dict[str, set[str]] = {}
    n: Counter[str] = Counter()
    for fid, state, after in cluster.query(
        "auth", "SELECT feature, state, after FROM audit WHERE action = 'create'"
    ):
        if marker in (after or ""):
            out.setdefault(fid, set()).add(state)
            n[fid] += 1
    assert all(v == 1 for v in n.values()), "a write audited twice"
    return out


def _guide_job_survives_its_host(cluster: Cluster) -> None:
    body = {"inputs": {"site": {"point": OKUTAMA}, "works": {"activities": ["new-building"],
                                                               "site_area_m2": 200}}}
    seen = []
    for _attempt in range(20):
        victim = cluster.live()[-1]
        others = [h for h in cluster.live() if h is not victim]
        r = httpx.post(f"{victim.url}/ogc/processes/procedure-guide/execution", json=body,
                       headers={"Prefer": "respond-async"}, timeout=20)
        assert r.status_code == 201, r.text
        jid = r.json()["jobID"]
        for h in others:  # the victim's worker, woken by the submit, claims it
            h.pause(True)
        try:
            # kill the host the moment its worker holds the job (running, leased by its pid)
            deadline = time.monotonic() + 5
            owner: str | None = None
            while time.monotonic() < deadline:
                rows = cluster.query("jobs", "SELECT status, owner FROM jobs WHERE id = ?",
                                     jid)
                status, owner = rows[0]
                if status != "accepted":
                    break
                time.sleep(0.001)
            seen.append((status, owner, victim.pid))
            caught = status == "running" and owner and f"/{victim.pid}/" in owner
            if caught:
                dead = victim.pid
                _kill_or_restart(cluster, victim)
        finally:
            for h in others:
                h.pause(False)
        if caught:
            ((status, owner),) = cluster.query("jobs", "SELECT status, owner FROM jobs"
                                               " WHERE id = ?", jid)
            if not (status == "successful" and f"/{dead}/" in owner):
                break
            # it finished in the instant before the kill: bring the host back, try again
            if not victim.ready:
                victim.start()
    else:
        pytest.fail(f"never caught a guide job running on the host to kill: {seen}")
    other = cluster.next()
    _wait("the job to finish on another host", lambda: httpx.get(
        f"{other.url}/ogc/jobs/{jid}", timeout=10).json()["status"] not in ("accepted",
                                                                            "running"),
        timeout=60)
    doc = httpx.get(f"{other.url}/ogc/jobs/{jid}", timeout=10).json()
    assert doc["status"] == "successful", doc
    ((finisher,),) = cluster.query("jobs", "SELECT owner FROM jobs WHERE id = ?", jid)
    assert f"/{dead}/" not in finisher, "finished by the killed host?"
    result = httpx.get(f"{other.url}/ogc/jobs/{jid}/results", timeout=20)
    assert result.status_code == 200 and result.json()
