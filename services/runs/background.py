"""Long requests run in the background and answer with a job id to poll (video over MCP and gradio_client, grids).

A job is one call of a surface's function in a thread of its own; the surface still hands its paid run to the one
runner, so nothing here charges, stores or refunds. The job id is also the paid run's idempotency key: after a restart
the job's outcome is read back from the generations table (done with its files, or failed and refunded), and asking
again never pays twice.

Starting waits a moment (`settle_s`) so that what is refused before any work (a missing token, members-only, not
enough credits, the visitor's share of run slots) is the caller's error at once, not a job that fails later.
A visitor has at most `per_visitor` jobs running; a job is visible only to the account that started it.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import UserError

log = logging.getLogger(__name__)

KEEP_FINISHED = 200  # finished jobs kept in memory (older ones are read back from the database by their key)


class JobRefused(UserError, LookupError):
    pass


@dataclass
class Job:
    id: str
    account_id: str
    endpoint: str
    started: float = field(default_factory=time.time)
    state: str = "running"  # running | done | error
    done: float = 0.0
    total: float = 0.0
    desc: str = "Queued"
    result: Any = None
    error: str = ""
    seconds: float | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    stepping: threading.Event = field(default_factory=threading.Event)  # the pipeline has taken a step

    def view(self) -> dict[str, Any]:
        return {"job_id": self.id, "endpoint": self.endpoint, "state": self.state, "done": self.done, "total": self.total,
                "progress": self.desc, "seconds": self.seconds, "error": self.error}


class Progress:
    """What a surface's progress callback becomes in a job: gradio's `progress(value, desc=..., unit=...)` shape,
    where value is a fraction or (done, total)."""

    def __init__(self, job: Job):
        self.job = job

    def __call__(self, value: Any = None, desc: str | None = None, total: Any = None, unit: str = "steps", **_: Any) -> None:
        if isinstance(value, tuple) and len(value) == 2:
            self.job.done, self.job.total = float(value[0] or 0), float(value[1] or 0)
            if self.job.done > 0:
                self.job.stepping.set()
        elif isinstance(value, (int, float)):
            self.job.done, self.job.total = float(value), 1.0
        if desc:
            self.job.desc = str(desc)


class Background:
    def __init__(self, lookup: Callable[[str, str], Any], per_visitor: int = 4, settle_s: float = 3.0):
        """`lookup(account_id, key)`: the finished paid run recorded under an idempotency key (a History record) or None."""
        self.lookup = lookup
        self.per_visitor = per_visitor
        self.settle_s = settle_s
        self._jobs: OrderedDict[tuple[str, str], Job] = OrderedDict()  # (account id, job id) -> job
        self._lock = threading.Lock()

    @staticmethod
    def new_id(endpoint: str) -> str:
        return f"{endpoint}-{secrets.token_urlsafe(12)}"

    def start(self, account_id: str, endpoint: str, work: Callable[[Progress], Any], job_id: str | None = None) -> Job:
        """Run `work(progress)` in the background as the account's job. A UserError raised before the job settles
        (refused before any work) is raised here, and no job is kept. Starting again with a job id the account already
        has (a retried call with the same idempotency key) returns that job."""
        job = Job(job_id or self.new_id(endpoint), account_id, endpoint)
        with self._lock:
            known = self._jobs.get((account_id, job.id))
            if known is not None:
                return known
            running = [j for j in self._jobs.values() if j.account_id == account_id and j.state == "running"]
            if len(running) >= self.per_visitor:
                raise JobRefused(f"You already have {len(running)} jobs running; poll /job until one is done before starting another.")
            self._jobs[(account_id, job.id)] = job

        def run() -> None:
            try:
                job.result = work(Progress(job))
                job.state = "done"
            except UserError as exc:
                job.error, job.state = str(exc), "error"
            except Exception as exc:  # noqa: BLE001 - the surface turns a visitor's mistake into a UserError
                log.exception("background job %s failed", job.id)
                job.error = f"The job failed ({type(exc).__name__}); it was refunded. Try again or pick another model."
                job.state = "error"
            finally:
                job.seconds = round(time.time() - job.started, 2)
                job.finished.set()
                self._trim()

        threading.Thread(target=run, name=f"job-{endpoint}", daemon=True).start()
        deadline = time.monotonic() + self.settle_s
        while time.monotonic() < deadline and not job.finished.is_set() and not job.stepping.is_set():
            job.finished.wait(0.05)
        if job.finished.is_set() and job.state == "error":  # refused before any work: the caller's error, no job
            with self._lock:
                self._jobs.pop((account_id, job.id), None)
            raise JobRefused(job.error)
        return job

    def _trim(self) -> None:
        with self._lock:
            finished = [k for k, j in self._jobs.items() if j.state != "running"]
            for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[key]

    def get(self, account_id: str, job_id: str) -> dict[str, Any]:
        """The job's state, progress and (once done) result; read back from the database after a restart."""
        with self._lock:
            job = self._jobs.get((account_id, job_id))
        if job is not None:
            return {**job.view(), "result": job.result if job.state == "done" else None}
        record = self.lookup(account_id, job_id)
        if record is None:
            raise JobRefused(f"No job {job_id!r} for this session (jobs are kept per session; one that never started "
                             "its run before a restart was not charged).")
        state = {"done": "done", "running": "running"}.get(record.status, "error")  # running: on another instance
        return {"job_id": job_id, "endpoint": job_id.split("-", 1)[0], "state": state, "done": 1, "total": 1,
                "progress": record.status, "seconds": None,
                "error": "" if state != "error" else f"It ended as {record.status} ({record.error or 'no detail'}) and was refunded.",
                "result": {"record": record} if state == "done" else None}

    def wait(self, account_id: str, job_id: str, timeout_s: float) -> dict[str, Any]:
        """Block until the job ends (tests, the CLI)."""
        with self._lock:
            job = self._jobs.get((account_id, job_id))
        if job is not None:
            job.finished.wait(timeout_s)
        return self.get(account_id, job_id)
