"""The claim loop: take the next job from the table (one conditional UPDATE: two
workers never both win), run it in a thread, report its progress and keep its lease
every few seconds, record its result — or its error, tried again with backoff. A
job cancelled or taken by another worker meanwhile is stopped at its next report,
and one running past ``MEDIA_JOB_TIMEOUT_S`` is stopped and failed for good; a
worker that dies leaves a lease that runs out, and the job is claimed again. The
database out of reach while a result is recorded (a Postgres restart, SQLite locked)
is waited out while the lease holds; nothing but cancellation ends the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import database_unreachable
from services.common.jobs import Job, JobState, JobTable
from services.media import metrics
from services.media.config import MediaSettings
from services.media.exceptions import PermanentJobError

log = logging.getLogger(__name__)

Handler = Callable[[Job, Callable[[float], None], Callable[[], bool]], dict[str, Any]]
T = TypeVar("T")

#: Longest wait between two tries of recording a job's result (s).
WRITE_RETRY_MAX_S = 10.0
#: Longest wait to give a job back when the worker stops (within the exit deadline).
RELEASE_TIMEOUT_S = 3.0


def worker_id() -> str:
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class _Run:
    """One job as this worker does it."""

    job: Job
    #: When it started (monotonic s).
    started: float
    #: Until when (monotonic s) its lease holds as far as this worker knows.
    held_until: float
    #: What the handler last reported (0-1).
    progress: float = 0.0
    #: Tells the handler's thread to stop (cancelled, taken over, timed out, shutdown).
    stop: threading.Event = field(default_factory=threading.Event)
    #: It ran past ``job_timeout_s``.
    timed_out: threading.Event = field(default_factory=threading.Event)

    def report(self, value: float) -> None:
        self.progress = value


class Worker:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        jobs: JobTable,
        handler: Handler,
        settings: MediaSettings,
        kinds: Sequence[str],
    ) -> None:
        self.engine = engine
        self.jobs = jobs
        self.handler = handler
        self.settings = settings
        self.kinds = tuple(kinds)
        self.owner = worker_id()
        self.current: dict[int, Job] = {}

    async def run(self) -> None:
        """Claim and do jobs until cancelled: an error of one job (or of a claim) is
        logged, and the next comes after a pause."""
        while True:
            try:
                job = await self.jobs.claim(
                    self.engine, self.owner, kinds=self.kinds, lease_s=self.settings.lease_s
                )
            except Exception as exc:  # the outermost handler of one claim
                if database_unreachable(exc):
                    log.warning("could not claim a job: %s: %s", type(exc).__name__, exc)
                else:
                    log.exception("could not claim a job")
                await asyncio.sleep(self.settings.poll_s * 5)
                continue
            if job is None:
                await asyncio.sleep(self.settings.poll_s)
                continue
            try:
                await self.do(job)
            except Exception:  # the outermost handler of one job
                # Its lease runs out, and it is claimed again (or failed after its tries).
                log.exception("job %d (%s %s): the worker failed", job.id, job.kind, job.subject)
                metrics.JOBS.labels(job.kind, "error").inc()
                await asyncio.sleep(self.settings.poll_s * 5)

    async def do(self, job: Job) -> JobState | None:
        """One job, start to end; the state it was left in."""
        log.info("job %d (%s %s, try %d) started", job.id, job.kind, job.subject, job.attempts)
        self.current[job.id] = job
        run = _Run(job, started=time.monotonic(), held_until=0.0)
        # Until when (monotonic s) the job's lease holds as far as this worker knows:
        # its claim (just before ``started``), then each heartbeat, plus the lease.
        run.held_until = run.started + self.settings.lease_s
        beat = asyncio.create_task(self._heartbeat(run))
        state: JobState | None
        try:
            result = await self._handle(job, run.report, run.stop)
        except Exception as exc:  # every error of a job is recorded on the job
            error: Exception = exc
            if run.timed_out.is_set():
                limit = self.settings.job_timeout_s
                error = PermanentJobError(f"stopped after {limit:.0f} s (MEDIA_JOB_TIMEOUT_S)")
            cancelled = run.stop.is_set() and not run.timed_out.is_set()
            state = await self._failed(job, error, cancelled, run.held_until)
        else:
            state = await self._succeeded(run, result)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self.current.pop(job.id, None)
        return state

    async def _heartbeat(self, run: _Run) -> None:
        """Every ``heartbeat_s``: the job's progress written and its lease kept; the
        work told to stop when the job was cancelled or taken over, or ran past
        ``job_timeout_s`` (its lease still kept while the thread stops)."""
        job = run.job
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            sent = time.monotonic()
            if not run.stop.is_set() and sent - run.started > self.settings.job_timeout_s:
                log.warning(
                    "job %d (%s %s) ran past MEDIA_JOB_TIMEOUT_S (%.0f s): stopping it",
                    job.id, job.kind, job.subject, self.settings.job_timeout_s,
                )  # fmt: skip
                run.timed_out.set()
                run.stop.set()
            try:
                kept = await self.jobs.heartbeat(
                    self.engine,
                    job,
                    progress=run.progress,
                    note=f"{run.progress:.0%}",
                    lease_s=self.settings.lease_s,
                )
            except Exception:
                log.warning("job %d: heartbeat failed", job.id)
                continue
            if not kept:
                log.info("job %d was cancelled or taken over: stopping it", job.id)
                run.stop.set()
                return
            run.held_until = sent + self.settings.lease_s

    async def _succeeded(self, run: _Run, result: dict[str, Any]) -> JobState | None:
        """Record the result (one done just as its time ran out stands)."""
        job = run.job
        elapsed = time.monotonic() - run.started
        if (run.stop.is_set() and not run.timed_out.is_set()) or not await self._recorded(
            job, "result", lambda: self.jobs.finish(self.engine, job, result), run.held_until
        ):
            metrics.JOBS.labels(job.kind, "lost").inc()
            return None
        metrics.JOBS.labels(job.kind, "done").inc()
        metrics.JOB_SECONDS.labels(job.kind).observe(elapsed)
        seconds = result.get("duration_s") or result.get("audio_s")
        if isinstance(seconds, int | float) and elapsed > 0:
            metrics.SPEED.labels(job.kind).set(seconds / elapsed)
        log.info("job %d (%s %s) done in %.1f s", job.id, job.kind, job.subject, elapsed)
        return JobState.DONE

    async def _handle(
        self, job: Job, report: Callable[[float], None], stop: threading.Event
    ) -> dict[str, Any]:
        """The handler's answer, in a thread. The worker stopped meanwhile (a shutdown):
        the thread, which runs on unless told to, is told to stop, and the job is given
        back rather than left running until its lease runs out."""
        try:
            return await asyncio.to_thread(self.handler, job, report, stop.is_set)
        except asyncio.CancelledError:
            stop.set()
            await self._release(job)
            raise

    async def _release(self, job: Job) -> None:
        """Queue ``job`` again for another worker, within a shutdown's few seconds; if the
        database does not answer, its lease runs out instead."""
        try:
            released = await asyncio.wait_for(
                self.jobs.release(self.engine, job), timeout=RELEASE_TIMEOUT_S
            )
        except Exception as exc:  # the job's lease runs out instead
            log.warning("job %d: not given back (%s: %s)", job.id, type(exc).__name__, exc)
            return
        if released:
            log.info("job %d (%s %s) given back: the worker stops", job.id, job.kind, job.subject)
            metrics.JOBS.labels(job.kind, "released").inc()

    async def _recorded(
        self, job: Job, what: str, write: Callable[[], Awaitable[T]], held_until: float
    ) -> T | None:
        """``write()``'s answer, tried again with a doubling wait while the database is
        out of reach, until the lease held when the job ended (monotonic ``held_until``)
        runs out; then None, and the job is claimed again (the conditional UPDATE is the
        lease check: a write after another worker took the job changes nothing)."""
        wait = self.settings.poll_s
        while True:
            try:
                return await write()
            except Exception as exc:
                if not database_unreachable(exc):
                    raise
                if held_until - time.monotonic() <= wait:
                    log.warning(
                        "job %d: its %s not recorded (%s: %s) and its lease runs out:"
                        " it will be claimed again",
                        job.id,
                        what,
                        type(exc).__name__,
                        exc,
                    )
                    return None
                log.warning(
                    "job %d: its %s not recorded (%s: %s); again in %.1f s",
                    job.id,
                    what,
                    type(exc).__name__,
                    exc,
                    wait,
                )
            await asyncio.sleep(wait)
            wait = min(WRITE_RETRY_MAX_S, wait * 2)

    async def _failed(
        self, job: Job, exc: Exception, stopped: bool, held_until: float
    ) -> JobState | None:
        if stopped:
            metrics.JOBS.labels(job.kind, "cancelled").inc()
            return None
        permanent = isinstance(exc, PermanentJobError)
        retry_in = None if permanent else self.settings.retry_initial_s * 2 ** (job.attempts - 1)
        message = f"{type(exc).__name__}: {exc}" if not permanent else str(exc)
        state = await self._recorded(
            job,
            "error",
            lambda: self.jobs.fail(self.engine, job, message, retry_in_s=retry_in),
            held_until,
        )
        metrics.JOBS.labels(job.kind, "retry" if state == JobState.QUEUED else "failed").inc()
        if permanent:
            log.warning("job %d (%s %s) failed: %s", job.id, job.kind, job.subject, exc)
        else:
            log.exception(
                "job %d (%s %s) try %d failed", job.id, job.kind, job.subject, job.attempts
            )
        return state
