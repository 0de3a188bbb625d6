"""The guide's job worker survives its database failing for a moment (a PostgreSQL
fail-over, a locked SQLite file): the job in hand is left to its lease, the worker goes on."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geoservice.guide.jobs import MAX_ATTEMPTS, SCHEMA, JobStore
from geoservice.state import Result
from geoservice.state.sqlite import SqliteDB


class FlakyDB(SqliteDB):
    """The jobs file, whose first write of a job's outcome fails like a lost connection."""

    failures = 1

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        if sql.startswith("UPDATE jobs SET status = ?, message = ?") and self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, params)


def test_worker_survives_a_failed_outcome_write(tmp_path: Path) -> None:
    jobs = JobStore(FlakyDB(tmp_path / "jobs.sqlite", SCHEMA), run=lambda i: {"ran": i},
                    lease_s=0.6)
    first = jobs.submit("procedure-guide", {"n": 1})
    jobs.start()
    try:
        second = jobs.submit("procedure-guide", {"n": 2})
        assert jobs.wait_idle(timeout=10), "the worker stopped after a database error"
        for job, n in ((first, 1), (second, 2)):
            done = jobs.get(job.id)
            assert done is not None and done.status == "successful", done
            assert done.result == {"ran": {"n": n}}
    finally:
        jobs.stop()


def test_a_job_whose_hosts_keep_dying_fails_after_its_attempts(tmp_path: Path) -> None:
    """Three workers claim the job and die before finishing it (their leases run out); the
    fourth fails it with the reason instead of running it again, and goes on to the next."""
    path = tmp_path / "jobs.sqlite"
    ran: list[Any] = []
    poison = JobStore(path, run=ran.append, lease_s=0.05).submit("procedure-guide", {"n": 1})
    for _ in range(MAX_ATTEMPTS):  # each "host" claims it, then dies (no finish, no beat)
        dying = JobStore(path, run=ran.append, lease_s=0.05)
        assert dying._claim() is not None
        time.sleep(0.1)
    jobs = JobStore(path, run=lambda i: {"ran": i}, lease_s=0.6)
    fine = jobs.submit("procedure-guide", {"n": 2})
    jobs.start()
    try:
        assert jobs.wait_idle(timeout=10)
        failed = jobs.get(poison.id)
        assert failed is not None and failed.status == "failed", failed
        assert f"started {MAX_ATTEMPTS} times" in failed.message and failed.error_status == 500
        done = jobs.get(fine.id)
        assert done is not None and done.status == "successful"
        assert ran == []
    finally:
        jobs.stop()
