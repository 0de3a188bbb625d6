"""A sliding-window rate limit kept in the auth database, so every server process - and
on PostGIS every host - counts against one log (one counter per key, not per process).

Pruning is kept off the hot path: a hit deletes only its own key's expired rows (a range
of the ``(key, at)`` index, under the key's lock), never the whole table - a full-table
delete per request would make every hit, of every client, contend on the same rows.
Rows of keys nobody hits again are removed by a sweep of everyone's expired rows, run by
a hit at most once every ``SWEEP_EVERY_S`` per process and database.  Each row carries
its own expiry (``expires_at`` = hit + its limiter's window) because limiters of
different windows share the table (reports: a minute; e-mail subscriptions: an hour per
client, a day per address): a sweep by one limiter's window would delete another's hits
still inside theirs.
"""

from __future__ import annotations

import math
import threading
import time
import weakref

from geoservice.auth.errors import TooManyRequests
from geoservice.state import StateDB

#: How often (seconds) a process sweeps every key's expired rows from one database.
SWEEP_EVERY_S = 60.0
#: When each open database was last swept by this process (by hit time).
_swept: weakref.WeakKeyDictionary[StateDB, float] = weakref.WeakKeyDictionary()
_swept_lock = threading.Lock()


def sweep(db: StateDB, now: float | None = None) -> int:
    """Delete every key's expired hits; return how many went."""
    t = time.time() if now is None else now
    return db.execute("DELETE FROM rate_hits WHERE expires_at <= ?", (t,)).rowcount


def sweep_due(db: StateDB, now: float) -> bool:
    """Whether this process should sweep ``db`` now (and, if so, note that it does):
    true at most once per ``SWEEP_EVERY_S`` per database, whichever limiter asks (and
    after the clock stepped back, so a step does not stop sweeps until it catches up)."""
    with _swept_lock:
        last = _swept.get(db)
        if last is not None and 0 <= now - last < SWEEP_EVERY_S:
            return False
        _swept[db] = now
        return True


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds per key."""

    def __init__(self, db: StateDB, limit: int, window: float = 60.0) -> None:
        self.db = db
        self.limit = limit
        self.window = window

    def hit(self, key: str, now: float | None = None) -> None:
        """Count one hit for ``key``, or raise ``TooManyRequests`` (with Retry-After)."""
        t = time.time() if now is None else now
        if sweep_due(self.db, t):
            sweep(self.db, t)
        with self.db.write() as con:
            self.db.lock(con, f"rate:{key}")  # PostgreSQL: hosts check-and-count one at a time
            con.execute(
                "DELETE FROM rate_hits WHERE key = ? AND at <= ?", (key, t - self.window)
            )
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
            con.execute(
                "INSERT INTO rate_hits (key, at, expires_at) VALUES (?, ?, ?)",
                (key, t, t + self.window),
            )
