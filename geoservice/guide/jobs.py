"""A durable job table for the async OGC process: SQLite under ``settings.work_dir``.

A job is written (``accepted``) before the client is told about it, so nothing acknowledged
is lost: a job left ``accepted`` or ``running`` by a stopped server is queued again by the
next ``start()``.  One worker thread per store claims jobs atomically (``UPDATE … WHERE
status = 'accepted'``), so several app processes over one file never run a job twice at
the same time.  ``paused`` (a setting and a test hook) keeps the worker from claiming.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from geoservice.errors import ServiceError
from geoservice.sqlite import connect_durable

log = logging.getLogger("geoservice.guide.jobs")

PENDING = ("accepted", "running")
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    process_id TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    updated TEXT NOT NULL,
    inputs TEXT NOT NULL,
    result TEXT,
    error TEXT,
    error_status INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Job:
    """One row of the job table."""

    id: str
    process_id: str
    status: str
    message: str
    created: str
    started: str | None
    finished: str | None
    updated: str
    inputs: Any
    result: Any
    error: dict[str, Any] | None
    error_status: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        """A job from a table row (JSON columns decoded)."""
        return cls(
            row["id"], row["process_id"], row["status"], row["message"], row["created"],
            row["started"], row["finished"], row["updated"], json.loads(row["inputs"]),
            None if row["result"] is None else json.loads(row["result"]),
            None if row["error"] is None else json.loads(row["error"]),
            row["error_status"],
        )


Runner = Callable[[Any], Any]


class JobStore:
    """The job table and its worker thread.

    Parameters
    ----------
    path : Path
        The SQLite file (created with its folder).
    run : callable
        ``run(inputs) -> JSON result``; a ``ServiceError`` fails the job with its document.
    paused : bool
        Start with the worker paused (jobs are accepted and stored, not run).
    error_doc : callable, optional
        Turns a ``ServiceError`` into the exception document stored with a failed job.
    """

    def __init__(
        self,
        path: Path,
        run: Runner,
        *,
        paused: bool = False,
        error_doc: Callable[[ServiceError], dict[str, Any]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run = run
        self.error_doc = error_doc or (lambda e: {"code": e.code, "description": e.description})
        self._wake = threading.Event()
        self._resume = threading.Event()
        self._stop = threading.Event()
        if not paused:
            self._resume.set()
        self._thread: threading.Thread | None = None
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = connect_durable(self.path)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> int:
        """Requeue the jobs a stopped server left pending and start the worker.

        Returns the number of pending jobs found.
        """
        with self._db() as db:
            db.execute("UPDATE jobs SET status = 'accepted', updated = ?, message = "
                       "'requeued after a restart' WHERE status = 'running'", (_now(),))
            pending = db.execute("SELECT count(*) FROM jobs WHERE status = 'accepted'")
            count = int(pending.fetchone()[0])
        if count:
            log.info("guide jobs: %d pending job(s) queued again", count)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="guide-jobs", daemon=True)
            self._thread.start()
        self._wake.set()
        return count

    def stop(self, timeout: float = 10) -> None:
        """Stop the worker (a running job finishes first)."""
        self._stop.set()
        self._resume.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def pause(self) -> None:
        """Stop claiming jobs (the one running finishes)."""
        self._resume.clear()

    def resume(self) -> None:
        """Claim jobs again."""
        self._resume.set()
        self._wake.set()

    # ------------------------------------------------------------------ API

    def submit(self, process_id: str, inputs: Any) -> Job:
        """Store a new ``accepted`` job (durably, before returning) and wake the worker."""
        jid = uuid.uuid4().hex
        now = _now()
        with self._db() as db:
            db.execute(
                "INSERT INTO jobs (id, process_id, status, created, updated, inputs) "
                "VALUES (?, ?, 'accepted', ?, ?, ?)",
                (jid, process_id, now, now, json.dumps(inputs, ensure_ascii=False)),
            )
        self._wake.set()
        job = self.get(jid)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        """One job, or ``None``."""
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else Job.from_row(row)

    def list(self, limit: int = 100) -> list[Job]:
        """The most recent jobs first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)
            ).fetchall()
        return [Job.from_row(r) for r in rows]

    def dismiss(self, job_id: str) -> Job | None:
        """Cancel a pending job or forget a finished one (its results are deleted)."""
        job = self.get(job_id)
        if job is None:
            return None
        with self._db() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        now = _now()
        return Job(job.id, job.process_id, "dismissed", "dismissed by the client",
                   job.created, job.started, job.finished or now, now, None, None, None, None)

    def wait_idle(self, timeout: float = 10) -> bool:
        """Block until no job is pending (for tests and benchmarks)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._db() as db:
                n = db.execute("SELECT count(*) FROM jobs WHERE status IN ('accepted', "
                               "'running')").fetchone()[0]
            if not n:
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------------ worker

    def _claim(self) -> tuple[str, Any] | None:
        now = _now()
        with self._db() as db:
            row = db.execute(
                "UPDATE jobs SET status = 'running', started = ?, updated = ?, "
                "message = 'running' WHERE id = (SELECT id FROM jobs WHERE status = "
                "'accepted' ORDER BY created LIMIT 1) AND status = 'accepted' "
                "RETURNING id, inputs",
                (now, now),
            ).fetchone()
        return None if row is None else (row["id"], json.loads(row["inputs"]))

    def _finish(self, jid: str, status: str, message: str, result: Any = None,
                error: dict[str, Any] | None = None, error_status: int | None = None) -> None:
        now = _now()
        with self._db() as db:  # a job dismissed meanwhile is gone: nothing is written
            db.execute(
                "UPDATE jobs SET status = ?, message = ?, finished = ?, updated = ?, "
                "result = ?, error = ?, error_status = ? WHERE id = ? AND status = 'running'",
                (status, message, now, now,
                 None if result is None else json.dumps(result, ensure_ascii=False),
                 None if error is None else json.dumps(error, ensure_ascii=False),
                 error_status, jid),
            )

    def _work(self) -> None:
        while not self._stop.is_set():
            self._resume.wait()
            if self._stop.is_set():
                return
            try:
                claimed = self._claim()
            except sqlite3.Error:
                log.exception("guide jobs: cannot claim a job")
                claimed = None
            if claimed is None:
                self._wake.wait(0.5)  # also polls for jobs written by other processes
                self._wake.clear()
                continue
            jid, inputs = claimed
            try:
                result = self.run(inputs)
            except ServiceError as exc:
                self._finish(jid, "failed", exc.description, error=self.error_doc(exc),
                             error_status=exc.status)
            except Exception:
                log.exception("guide job %s failed", jid)
                doc = {"code": "ServerError", "description": "internal error; it has been logged"}
                self._finish(jid, "failed", doc["description"], error=doc, error_status=500)
            else:
                self._finish(jid, "successful", "done", result=result)
