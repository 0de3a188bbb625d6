"""App hosts as separate processes, a webhook receiver and SSE clients, for the multi-host
proof (tests/test_multihost.py) and its benchmark (bench/multihost.py).

A ``Host`` is ``geoservice serve`` in its own process group with its own config file and
``work_dir`` (read-only when asked: on PostGIS a host needs no writable state); ``kill()``
is ``kill -9``.  The ``Receiver`` is a local webhook endpoint that counts deliveries by
their ``Idempotency-Key`` header, as a real receiver de-duplicates.  An ``SseClient``
follows ``/api/sightings/stream`` in a thread and reconnects - to another host - with
``Last-Event-ID``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from geoservice.cli import main; main()"]
PEPPER = "multihost-test-pepper"


def host_config(
    folder: Path, port: int, store: dict[str, Any], layers: list[str],
    sections: dict[str, Any], alerts: dict[str, Any],
) -> Path:
    """Write ``<folder>/config.yml`` for one host (its work_dir is ``<folder>/work``;
    ``sections``: more top-level sections such as ``sightings`` or ``guide``)."""
    work = folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    cfg = folder / "config.yml"
    cfg.write_text(yaml.safe_dump({
        "server": {"host": "127.0.0.1", "port": port},
        "store": store,
        "layers_dir": str(ROOT / "layers"),
        "enabled_layers": layers,
        "work_dir": str(work),
        "tiles_dir": str(folder / "tiles"),
        "alerts": alerts,
        **sections,
    }), "utf-8")
    return cfg


class Host:
    """One ``geoservice serve`` process (its output in ``<folder>/serve.log``)."""

    def __init__(self, name: str, config: Path, port: int) -> None:
        self.name, self.config, self.port = name, config, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "serve.log"
        #: started and answering (what a load balancer's health check would say)
        self.ready = False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 120) -> Host:
        """Start and wait until ``/ogc/conformance`` answers."""
        env = {**os.environ, "GEOSERVICE_TOKEN_PEPPER": PEPPER}
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [*CLI, "serve", "-c", str(self.config)], cwd=self.config.parent, env=env,
                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/ogc/conformance", timeout=5).status_code == 200:
                    self.ready = True
                    return self
            except httpx.HTTPError:
                pass
            if not self.alive or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text("utf-8", "replace")[-3000:]
                raise RuntimeError(f"host {self.name} did not start:\n{tail}")
            time.sleep(0.2)

    def kill(self) -> None:
        """``kill -9`` the host (its whole process group): no shutdown hook runs."""
        self.ready = False
        if self.alive:
            os.killpg(self.pid, signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(timeout=30)

    def pause(self, frozen: bool) -> None:
        """Freeze (``SIGSTOP``) or thaw (``SIGCONT``) the host, e.g. so that another
        host surely claims a job first."""
        if self.alive:
            os.killpg(self.pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        """A clean stop (SIGTERM, then SIGKILL after 20 s)."""
        self.ready = False
        if not self.alive:
            return
        assert self.proc is not None
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def cli(self, *args: str) -> str:
        """Run a ``geoservice`` command with this host's config; its stdout."""
        env = {**os.environ, "GEOSERVICE_TOKEN_PEPPER": PEPPER}
        out = subprocess.run([*CLI, *args, "-c", str(self.config)], env=env, check=True,
                             capture_output=True, text=True, timeout=120)
        return out.stdout


def new_token(host: Host, name: str, *scope: str) -> str:
    """A token made by ``geoservice tokens create`` on ``host`` (printed once)."""
    out = host.cli("tokens", "create", "--name", name, *scope)
    return next(w for w in out.split() if w.startswith("gt_"))


class Receiver:
    """A webhook endpoint on 127.0.0.1 - a real HTTP server, as the product's senders meet
    one - shared by the alert tests and the multi-host proof.

    Every request is kept in ``requests`` (monotonic time, headers, body).  The first
    ``fail_first`` are answered 500, the others 204 after ``delay_s``; those accepted are
    counted by ``Idempotency-Key`` as a real receiver de-duplicates: ``hits`` (how often),
    ``first_at`` (epoch time of the first, for latency) and ``events`` (the feature id)."""

    def __init__(self, port: int | None = None, fail_first: int = 0,
                 delay_s: float = 0.0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.delay_s = delay_s
        self.got = threading.Event()
        self.hits: Counter[str] = Counter()
        self.first_at: dict[str, float] = {}
        self.events: dict[str, str] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(outer.delay_s)
                key = self.headers.get("Idempotency-Key", "")
                failing = outer._record(key, dict(self.headers), body)
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if not failing:
                    outer.got.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, key: str, headers: dict[str, str], body: bytes) -> bool:
        """Keep one request; whether it is to be failed."""
        with self.lock:
            self.requests.append({"t": time.monotonic(), "headers": headers, "body": body})
            failing = len(self.requests) <= self.fail_first
            if not failing:
                self.hits[key] += 1
                self.first_at.setdefault(key, time.time())
                self.events[key] = _feature_id(body)
        return failing

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def keys(self) -> set[str]:
        """The idempotency keys of the deliveries accepted so far."""
        with self.lock:
            return set(self.hits)

    def wait(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Wait until ``n`` deliveries were accepted; every request so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if sum(self.hits.values()) >= n:
                    return list(self.requests)
            time.sleep(0.01)
        raise AssertionError(f"expected {n} deliveries, got {len(self.requests)} requests")


def _feature_id(body: bytes) -> str:
    """The sighting id an alert body is about ("" for a body that is not an alert)."""
    try:
        return str(json.loads(body)["feature"]["id"])
    except (ValueError, KeyError, TypeError):
        return ""


class SseClient:
    """Follows the sighting stream of one host in a thread; on a broken connection it
    reconnects to ``fallback()`` (another host) with ``Last-Event-ID``."""

    def __init__(self, url: str, fallback: Callable[[], str] | None = None) -> None:
        self.url = url
        self.fallback = fallback
        self.ids: list[str] = []
        self.features: list[str] = []
        self.resets = 0
        self.reconnects = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SseClient:
        self.thread.start()
        assert self.connected.wait(30), f"SSE {self.url} did not connect"
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        url = self.url
        while not self._stop.is_set():
            headers = {"Last-Event-ID": self.ids[-1]} if self.ids else {}
            try:
                with httpx.stream("GET", f"{url}/api/sightings/stream", headers=headers,
                                  timeout=httpx.Timeout(10, read=5)) as r:
                    self._read(r)
            except httpx.HTTPError:
                pass
            if self._stop.is_set() or self.fallback is None:
                return
            url = self.fallback()
            self.reconnects += 1
            time.sleep(0.2)

    def _read(self, r: httpx.Response) -> None:
        event = ident = data = None
        for line in r.iter_lines():
            if self._stop.is_set():
                return
            if line.startswith(": connected"):
                self.connected.set()
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "":
                if event == "sighting" and ident and data:
                    self.ids.append(ident)
                    self.features.append(json.loads(data)["id"])
                elif event == "reset":
                    self.resets += 1
                event = ident = data = None
