"""The HTTP client of the 不動産情報ライブラリ API: one tile per call, politely.

Why each piece is here:

* the key travels only in the ``Ocp-Apim-Subscription-Key`` header, so request URLs (which
  we log, cache and show as provenance) never contain it;
* answers are gzip-encoded JSON or Mapbox Vector Tiles; both become CRS84 features with the
  API's own property names (mapping to a layer's schema is ``mapping.py``'s job);
* the operator warns users who access excessively: a per-process cap on requests in flight,
  a sliding per-minute budget (the service's: counted in the store by every process and
  host), and back-off on 429 (``Retry-After`` honoured), 5xx and
  timeouts;
* every failure is a ``ReinfolibError`` whose description we wrote ourselves.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from geoservice.features import Feature
from geoservice.reinfolib.apis import api as documented
from geoservice.reinfolib.errors import RETRYABLE, ReinfolibError, status_error
from geoservice.reinfolib.settings import ReinfolibSettings
from geoservice.reinfolib.tiles import Tile, decode_mvt, iter_geojson
from geoservice.state import DB_ERRORS

log = logging.getLogger("geoservice.reinfolib")
T = TypeVar("T")
KEY_HEADER = "Ocp-Apim-Subscription-Key"
#: After a 401 the key is wrong for every tile: answer "unauthorized" without asking again
#: for this long (the key is read at start-up, so fixing it means a restart anyway).
REFUSED_PAUSE_S = 60.0


@dataclass(frozen=True, slots=True)
class TileAnswer:
    """One tile as the API gave it: features with the API's property names, in CRS84."""

    api: str
    tile: Tile
    features: list[Feature]
    url: str  # the request URL; the key is a header, never part of it
    fetched_at: str  # ISO 8601, UTC


@dataclass
class RequestBudget:
    """At most ``per_minute`` requests in any sliding minute, shared by every caller in the
    process (threads and event loops alike) - and by every process and host when ``shared``
    is set (the source sets it to the store's ledger: ``Ledger.take_request_slot``)."""

    per_minute: int
    shared: Callable[[int], float] | None = None  # per_minute -> 0 (slot taken) or wait s
    _sent: collections.deque[float] = field(default_factory=collections.deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _slot(self) -> float:
        """Take a slot now (return 0) or say how long until one frees up."""
        now = time.monotonic()
        with self._lock:
            while self._sent and now - self._sent[0] >= 60.0:
                self._sent.popleft()
            if len(self._sent) < self.per_minute:
                self._sent.append(now)
                return 0.0
            return self._sent[0] + 60.0 - now

    async def _wait(self) -> float:
        """Take a slot (0) or say how long to wait; the shared count is a database call."""
        if self.shared is not None:
            try:
                return await asyncio.to_thread(self.shared, self.per_minute)
            except DB_ERRORS as exc:  # a locked file or a fail-over: the process's own
                # budget still bounds the requests; the answer goes on instead of a 500
                log.warning("reinfolib: the shared request budget cannot be counted (%s);"
                            " using this process's", type(exc).__name__)
        return self._slot()

    async def acquire(self, api: str, deadline: float | None) -> None:
        """Wait for a slot; ``budget-exhausted`` when none frees up before ``deadline``."""
        while (wait := await self._wait()) > 0:
            if deadline is not None and time.monotonic() + wait > deadline:
                raise ReinfolibError(
                    "budget-exhausted",
                    f"{api}: the request budget ({self.per_minute} per minute) is used up "
                    "for now; the answer could not wait for it",
                    api=api,
                )
            await asyncio.sleep(min(wait, 1.0))


class _LoopThread:
    """One event loop on a daemon thread: every request of a client runs there.

    Why: callers live on several loops (the app's, a CLI's ``asyncio.run``) and on plain
    threads (guide jobs, thread-pool routes).  One loop means one connection pool and one
    semaphore, so the concurrency cap really is per process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="reinfolib-client")
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class ReinfolibClient:
    """Fetch tiles of the documented APIs.  One per process; callable from any event loop
    or thread (requests run on the client's own loop thread)."""

    def __init__(self, settings: ReinfolibSettings, key: SecretStr | None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._key = key
        self._transport = transport
        self.budget = RequestBudget(settings.requests_per_minute)
        self._runner: _LoopThread | None = None
        self._runner_lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None
        self._gate: asyncio.Semaphore | None = None
        self._pending: dict[str, asyncio.Future[TileAnswer]] = {}  # URL -> request in flight
        self._refused_until = 0.0  # after a 401, no request until then
        self.requests = 0  # requests sent (benchmarks report requests per site)

    def _loop(self) -> _LoopThread:
        with self._runner_lock:
            if self._runner is None:
                self._runner = _LoopThread()
            return self._runner

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's loop and wait for it (for callers on plain threads;
        never from the client's own loop)."""
        return self._loop().submit(coro).result()

    async def on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the client's loop (from any other loop, or that one)."""
        runner = self._loop()
        if asyncio.get_running_loop() is runner.loop:
            return await coro
        return await asyncio.wrap_future(runner.submit(coro))

    @property
    def configured(self) -> bool:
        """A key is set."""
        return self._key is not None

    def url(self, api: str, tile: Tile, params: dict[str, Any], fmt: str) -> str:
        """The request URL of one tile (no key: that is a header)."""
        query = {"response_format": fmt, "z": tile.z, "x": tile.x, "y": tile.y, **params}
        return f"{self.settings.base_url.rstrip('/')}/{api}?{urlencode(query)}"

    def _http(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """The connection pool and the cap (created on the client's loop, on first use)."""
        if self._client is None or self._gate is None:
            self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=False)
            self._gate = asyncio.Semaphore(self.settings.concurrency)
        return self._client, self._gate

    async def tile(self, api: str, tile: Tile, params: dict[str, Any] | None = None, *,
                   fmt: str | None = None, deadline: float | None = None) -> TileAnswer:
        """One tile of ``api``, retried on transient failures until ``deadline``.

        Raises ``ReinfolibError`` (never an httpx or JSON error)."""
        params = dict(params or {})
        fmt = fmt or self.settings.response_format
        spec = documented(api)
        spec.check_zoom(tile.z)
        spec.check_params(params)
        if self._key is None:
            raise ReinfolibError("not-configured", self.settings.not_configured, api=api)
        url = self.url(api, tile, params, fmt)
        return await self.on_loop(self._shared(api, tile, url, fmt, deadline))

    async def _shared(self, api: str, tile: Tile, url: str, fmt: str,
                      deadline: float | None) -> TileAnswer:
        """One request per URL at a time: concurrent callers (two guide answers for
        neighbouring sites) share the one in flight instead of spending the budget twice.
        Runs on the client's loop, so the table needs no lock; a caller that gives up
        does not cancel the request for the others."""
        task = self._pending.get(url)
        if task is None:
            task = asyncio.ensure_future(self._retrying(api, tile, url, fmt, deadline))
            self._pending[url] = task
            task.add_done_callback(self._settled(url))
        return await asyncio.shield(task)

    def _settled(self, url: str) -> Callable[[asyncio.Future[TileAnswer]], None]:
        def done(task: asyncio.Future[TileAnswer]) -> None:
            self._pending.pop(url, None)
            if not task.cancelled():
                task.exception()  # retrieved: no "never retrieved" warning if all gave up
        return done

    async def _retrying(self, api: str, tile: Tile, url: str, fmt: str,
                        deadline: float | None) -> TileAnswer:
        delay = self.settings.backoff_s
        for attempt in range(self.settings.retries + 1):
            try:
                return await self._once(api, tile, url, fmt, deadline)
            except ReinfolibError as exc:
                if exc.reason not in RETRYABLE or attempt == self.settings.retries:
                    raise
                wait = min(exc.retry_after if exc.retry_after is not None else delay,
                           self.settings.backoff_max_s)
                if deadline is not None and time.monotonic() + wait >= deadline:
                    raise
                log.info("reinfolib %s %s: %s; retry %d in %.1f s", api, tile, exc.reason,
                         attempt + 1, wait)
                await asyncio.sleep(wait)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, client: httpx.AsyncClient, api: str, tile: Tile, url: str,
                    timeout: float) -> httpx.Response:
        """One GET with the key header; transport failures become reasons."""
        assert self._key is not None
        headers = {KEY_HEADER: self._key.get_secret_value(), "Accept-Encoding": "gzip"}
        self.requests += 1
        try:
            return await client.get(url, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            raise ReinfolibError("timeout", f"{api}: no answer for tile {tile} within "
                                 f"{timeout:.1f} s", api=api) from None
        except httpx.DecodingError:
            raise ReinfolibError("bad-body", f"{api}: the compressed answer for tile {tile}"
                                 " is corrupt or truncated", api=api) from None
        except httpx.RemoteProtocolError:
            raise ReinfolibError("bad-body", f"{api}: the answer for tile {tile} was cut "
                                 "off (truncated body)", api=api) from None
        except httpx.TransportError as exc:
            raise ReinfolibError("unreachable", f"{api}: the API could not be reached "
                                 f"({type(exc).__name__})", api=api) from None

    def _check_refused(self, api: str) -> None:
        if time.monotonic() < self._refused_until:  # the key was refused a moment ago
            raise status_error(api, 401)

    async def _once(self, api: str, tile: Tile, url: str, fmt: str,
                    deadline: float | None) -> TileAnswer:
        client, gate = self._http()
        self._check_refused(api)
        await self.budget.acquire(api, deadline)
        async with gate:
            self._check_refused(api)  # a request queued behind the one that got the 401
            timeout = self.settings.timeout_s
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    raise ReinfolibError("timeout", f"{api}: no time left for tile {tile} "
                                         "within the answer's budget", api=api)
            started = time.monotonic()
            r = await self._send(client, api, tile, url, timeout)
            if r.status_code == 401:  # stop asking with a refused key (the operator watches)
                self._refused_until = time.monotonic() + REFUSED_PAUSE_S
        log.info("reinfolib %s %s %s: HTTP %d in %.0f ms", api, tile, fmt, r.status_code,
                 (time.monotonic() - started) * 1000)
        if r.status_code not in (200, 204):
            raise status_error(api, r.status_code, _retry_after(r))
        fetched = datetime.now(UTC).isoformat(timespec="seconds")
        found = [] if r.status_code == 204 else _features(r.content, api, tile, fmt)
        return TileAnswer(api, tile, found, url, fetched)  # 204: a tile with nothing in it

    async def _close_http(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._client, self._gate = None, None

    async def aclose(self) -> None:
        """Close the connections and stop the client's loop (a later call starts anew)."""
        with self._runner_lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            await asyncio.wrap_future(runner.submit(self._close_http()))
            runner.stop()

    def close(self) -> None:
        """``aclose`` for callers without an event loop."""
        with self._runner_lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.submit(self._close_http()).result()
            runner.stop()


def _features(content: bytes, api: str, tile: Tile, fmt: str) -> list[Feature]:
    if fmt == "pbf":
        return decode_mvt(content, tile, api) if content else []
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise ReinfolibError("bad-body", f"{api}: the answer for tile {tile} is not JSON "
                             "(truncated or an error page)", api=api) from None
    return list(iter_geojson(body, api))


def _retry_after(r: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the delta form; an HTTP date counts as unknown)."""
    value = r.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
