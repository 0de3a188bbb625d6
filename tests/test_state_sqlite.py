"""The embedded StateDB: closing it while another thread runs a statement.

A dispatcher's cancelled ``asyncio.to_thread`` call goes on running its statement after
the app's shutdown hook closed the alerts database; closing a SQLite connection under a
running statement cut it off ("Cannot operate on a closed database") or crashed the test
process (a segfault).  ``close`` now waits for it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from geoservice.state.sqlite import SqliteDB

#: many rows: the statement is stepped row by row while ``close`` runs
SLOW = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)"
        " SELECT x FROM c")


def test_close_waits_for_a_statement_running_on_another_thread(tmp_path: Path) -> None:
    db = SqliteDB(tmp_path / "state.sqlite", "CREATE TABLE IF NOT EXISTS t (x INTEGER);")
    n = 1_000_000
    result: list[int] = []
    started = threading.Event()

    def slow() -> None:
        started.set()
        rows = db.execute(SLOW, (n,)).fetchall()
        result.append(len(rows))

    worker = threading.Thread(target=slow)
    worker.start()
    started.wait()
    time.sleep(0.05)  # the statement is running
    db.close()
    worker.join(timeout=30)
    assert result == [n]  # finished on its connection, not cut off
    db.execute("INSERT INTO t VALUES (1)")  # a use after close opens a new connection
    assert db.execute("SELECT count(*) FROM t").fetchone() == (1,)
    db.close()
