"""A durable job table for the async OGC process: SQLite under ``settings.work_dir``, or
the ``geoservice_jobs`` schema of the PostGIS store's database (``geoservice.state``).

A job is written (``accepted``) before the client is told about it, so nothing acknowledged
is lost, and any host can read, list and dismiss it.  One worker thread per process claims
jobs atomically (one ``UPDATE``; on PostgreSQL over ``FOR UPDATE SKIP LOCKED``) with a
*lease*: the worker renews it (heartbeat) while the job runs, and a job whose lease ran
out - its process or host died - is claimed again by any worker and finished there.  A
worker that lost its lease cannot overwrite the result (its writes name itself as owner).
On the embedded store a starting server also re-queues the jobs a stopped one left
``running`` at once.  Every claim counts an attempt: a job claimed ``MAX_ATTEMPTS`` times
whose host died each time (a site that crashes the process) fails with that reason instead
of being taken over by host after host for ever.  ``paused`` (a setting and a test hook)
keeps the worker from claiming.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from geoservice.errors import ServiceError
from geoservice.state import DB_ERRORS, StateDB, worker_id
from geoservice.state.sqlite import SqliteDB

log = logging.getLogger("geoservice.guide.jobs")

PENDING = ("accepted", "running")
#: Claims a job gets; the next claim fails it (its hosts died while running it).
MAX_ATTEMPTS = 3
_COLUMNS = """
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
    error_status INTEGER,
    owner TEXT,
    lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0
"""
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs ({_COLUMNS});
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created);
"""
DDL = {"sqlite": SCHEMA, "postgresql": SCHEMA}
FIELDS = ("id", "process_id", "status", "message", "created", "started", "finished",
          "updated", "inputs", "result", "error", "error_status")
_SELECT = f"SELECT {', '.join(FIELDS)} FROM jobs"


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
    def from_row(cls, row: tuple[Any, ...]) -> Job:
        """A job from a table row in ``FIELDS`` order (JSON columns decoded)."""
        r = dict(zip(FIELDS, row, strict=True))
        return cls(
            r["id"], r["process_id"], r["status"], r["message"], r["created"],
            r["started"], r["finished"], r["updated"], json.loads(r["inputs"]),
            None if r["result"] is None else json.loads(r["result"]),
            None if r["error"] is None else json.loads(r["error"]),
            r["error_status"],
        )


Runner = Callable[[Any], Any]


class JobStore:
    """The job table and its worker thread.

    Parameters
    ----------
    db : StateDB or Path
        The jobs database (a path opens that SQLite file, created with its folder).
    run : callable
        ``run(inputs) -> JSON result``; a ``ServiceError`` fails the job with its document.
    paused : bool
        Start with the worker paused (jobs are accepted and stored, not run).
    error_doc : callable, optional
        Turns a ``ServiceError`` into the exception document stored with a failed job.
    lease_s : float
        How long a claimed job stays claimed without a heartbeat (renewed every third).
    """

    def __init__(
        self,
        db: StateDB | Path,
        run: Runner,
        *,
        paused: bool = False,
        error_doc: Callable[[ServiceError], dict[str, Any]] | None = None,
        lease_s: float = 30.0,
    ) -> None:
        self.db: StateDB = SqliteDB(Path(db), SCHEMA) if isinstance(db, (str, Path)) else db
        _migrate(self.db)
        self.run = run
        self.lease_s = lease_s
        self.owner = worker_id()
        self.error_doc = error_doc or (lambda e: {"code": e.code, "description": e.description})
        self._wake = threading.Event()
        self._resume = threading.Event()
        self._stop = threading.Event()
        if not paused:
            self._resume.set()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> int:
        """Start the worker; return the number of pending jobs found.

        On the embedded (one-host) store the jobs a stopped server left ``running`` are
        queued again at once; on PostgreSQL another host may be running them, so they are
        taken over only when their lease runs out."""
        if self.db.dialect == "sqlite":
            self.db.execute("UPDATE jobs SET status = 'accepted', updated = ?, owner = NULL,"
                            " lease_until = 0, message = 'requeued after a restart'"
                            " WHERE status = 'running'", (_now(),))
        row = self.db.execute("SELECT count(*) FROM jobs WHERE status IN ('accepted', "
                              "'running')").fetchone()
        count = int(row[0]) if row else 0
        if count:
            log.info("guide jobs: %d pending job(s) found", count)
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
        self.db.execute(
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
        row = self.db.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else Job.from_row(row)

    def list(self, limit: int = 100) -> list[Job]:
        """The most recent jobs first."""
        rows = self.db.execute(f"{_SELECT} ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [Job.from_row(r) for r in rows]

    def dismiss(self, job_id: str) -> Job | None:
        """Cancel a pending job or forget a finished one (its results are deleted)."""
        job = self.get(job_id)
        if job is None:
            return None
        self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        now = _now()
        return Job(job.id, job.process_id, "dismissed", "dismissed by the client",
                   job.created, job.started, job.finished or now, now, None, None, None, None)

    def wait_idle(self, timeout: float = 10) -> bool:
        """Block until no job is pending (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.db.execute("SELECT count(*) FROM jobs WHERE status IN ('accepted', "
                                  "'running')").fetchone()
            if not row or not row[0]:
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------------ worker

    def _claim(self) -> tuple[str, Any] | None:
        """Take the oldest job that is accepted, or running with an expired lease; one that
        used up its attempts is failed here and the next job is looked at."""
        while (claimed := self._claim_one()) is not None:
            jid, inputs, attempts = claimed
            if attempts <= MAX_ATTEMPTS:
                return jid, inputs
            log.error("guide job %s: claimed %d times, its worker died each time; failed",
                      jid, attempts - 1)
            doc = {"code": "ServerError",
                   "description": f"the job was started {attempts - 1} times and stopped its"
                                  " server each time; it is not run again"}
            self._finish(jid, "failed", doc["description"], error=doc, error_status=500)
        return None

    def _claim_one(self) -> tuple[str, Any, int] | None:
        """Take the oldest claimable job and count the attempt."""
        now = _now()
        t = time.time()
        skip = " FOR UPDATE SKIP LOCKED" if self.db.dialect == "postgresql" else ""
        row = self.db.execute(
            "UPDATE jobs SET status = 'running', started = COALESCE(started, ?), updated = ?,"
            " message = 'running', owner = ?, lease_until = ?, attempts = attempts + 1"
            " WHERE id = (SELECT id FROM jobs"
            " WHERE status = 'accepted' OR (status = 'running' AND lease_until < ?)"
            f" ORDER BY created LIMIT 1{skip}) AND (status = 'accepted' OR"
            " (status = 'running' AND lease_until < ?)) RETURNING id, inputs, attempts",
            (now, now, self.owner, t + self.lease_s, t, t),
        ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]), int(row[2]))

    def _heartbeat(self, jid: str, done: threading.Event) -> None:
        """Renew the lease of a running job every third of the lease until ``done``."""
        while not done.wait(self.lease_s / 3):
            try:
                self.db.execute("UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ?"
                                " AND status = 'running'",
                                (time.time() + self.lease_s, jid, self.owner))
            except DB_ERRORS:
                log.exception("guide jobs: cannot renew the lease of %s", jid)

    def _finish(self, jid: str, status: str, message: str, result: Any = None,
                error: dict[str, Any] | None = None, error_status: int | None = None) -> None:
        now = _now()
        # a job dismissed meanwhile, or taken over after a lost lease: nothing is written;
        # ``owner`` stays, naming the process that finished it
        self.db.execute(
            "UPDATE jobs SET status = ?, message = ?, finished = ?, updated = ?, "
            "result = ?, error = ?, error_status = ?, lease_until = 0"
            " WHERE id = ? AND status = 'running' AND owner = ?",
            (status, message, now, now,
             None if result is None else json.dumps(result, ensure_ascii=False),
             None if error is None else json.dumps(error, ensure_ascii=False),
             error_status, jid, self.owner),
        )

    def _work(self) -> None:
        while not self._stop.is_set():
            self._resume.wait()
            if self._stop.is_set():
                return
            try:
                claimed = self._claim()
            except DB_ERRORS:
                log.exception("guide jobs: cannot claim a job")
                claimed = None
            if claimed is None:
                self._wake.wait(0.5)  # also polls for jobs written by other processes
                self._wake.clear()
                continue
            jid, inputs = claimed
            done = threading.Event()
            beat = threading.Thread(target=self._heartbeat, args=(jid, done), daemon=True)
            beat.start()
            try:
                self._execute(jid, inputs)
            except DB_ERRORS:  # the outcome could not be written: the job goes back to its
                # lease (run again once it runs out); the worker must live on for the others
                log.exception("guide jobs: cannot record the outcome of %s", jid)
            finally:
                done.set()
                beat.join()

    def _execute(self, jid: str, inputs: Any) -> None:
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


def _migrate(db: StateDB) -> None:
    """Migrate a job table made before jobs had leases or counted attempts."""
    if db.dialect != "sqlite":
        db.execute("ALTER TABLE jobs ADD COLUMN IF NOT EXISTS attempts INTEGER NOT NULL"
                   " DEFAULT 0")
        return
    cols = {r[1] for r in db.execute("PRAGMA table_info(jobs)").fetchall()}
    if "owner" not in cols:
        db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")
        db.execute("ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION NOT NULL DEFAULT 0")
    if "attempts" not in cols:
        db.execute("ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
