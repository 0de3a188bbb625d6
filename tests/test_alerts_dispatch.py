"""The dispatcher's contract with its senders (webhook, push, e-mail, ...): whatever a
sender does, each claimed delivery ends as delivered, retried or dead - never stranded."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
from shapely.geometry import box

from geoservice.config import AlertSettings
from geoservice.sightings.alerts import Claimed, Dispatcher, Notifier, Outbox


def test_a_sender_that_raises_spends_an_attempt_and_ends_dead(tmp_path: Path) -> None:
    """A bug in one sender (here: it raises) must count as a failed attempt.  Before, the
    exception killed the delivery task: the row stayed leased for ``lease_s``, was claimed
    again, and never reached ``dead`` however often it failed."""
    outbox = Outbox(tmp_path / "alerts.sqlite")
    sid, *_ = outbox.add_subscription(box(139, 35, 140, 36), {}, [], "http://127.0.0.1:9/hook")
    outbox.append_event("wildlife-sightings", "f1", json.dumps({"id": "f1"}), [sid])
    settings = AlertSettings(max_attempts=2, retry_base_s=0.05, poll_s=0.05, timeout_s=1,
                             lease_s=30)
    calls: list[int] = []

    async def broken(client: httpx.AsyncClient, c: Claimed) -> tuple[int | None, str | None]:
        calls.append(c.attempts)
        raise RuntimeError("secret-looking detail that must not be stored")

    async def run() -> list[dict[str, object]]:
        dispatcher = Dispatcher(outbox, Notifier(), settings)
        dispatcher.senders["webhook"] = broken
        dispatcher.notifier.bind(asyncio.get_running_loop())
        dispatcher.start()
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                rows = outbox.deliveries(sid, "dead")
                if rows:
                    return rows
                await asyncio.sleep(0.05)
            return []
        finally:
            await dispatcher.stop()

    dead = asyncio.run(run())
    outbox.close()
    assert calls == [1, 2]
    assert len(dead) == 1 and dead[0]["attempts"] == 2
    assert dead[0]["last_error"] == "the sender failed (RuntimeError)"
