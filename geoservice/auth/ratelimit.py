"""A sliding-window rate limit kept in the auth database, so every server process - and
on PostGIS every host - counts against one log (one counter per key, not per process)."""

from __future__ import annotations

import math
import time

from geoservice.auth.errors import TooManyRequests
from geoservice.state import StateDB


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds per key."""

    def __init__(self, db: StateDB, limit: int, window: float = 60.0) -> None:
        self.db = db
        self.limit = limit
        self.window = window

    def hit(self, key: str, now: float | None = None) -> None:
        """Count one hit for ``key``, or raise ``TooManyRequests`` (with Retry-After)."""
        t = time.time() if now is None else now
        with self.db.write() as con:
            self.db.lock(con, f"rate:{key}")  # PostgreSQL: hosts check-and-count one at a time
            con.execute("DELETE FROM rate_hits WHERE at <= ?", (t - self.window,))
            rows = con.execute(
                "SELECT at FROM rate_hits WHERE key = ? ORDER BY at", (key,)
            ).fetchall()
            if len(rows) >= self.limit:
                oldest = rows[len(rows) - self.limit][0]
                retry = max(1, math.ceil(oldest + self.window - t))
                raise TooManyRequests(
                    f"too many requests: at most {self.limit} per {int(self.window)} s;"
                    f" retry in {retry} s",
                    {"Retry-After": str(retry)},
                )
            con.execute("INSERT INTO rate_hits (key, at) VALUES (?, ?)", (key, t))
