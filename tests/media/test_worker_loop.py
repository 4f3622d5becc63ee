"""The media worker's claim loop outlives the database going away at the end of a job
(a Postgres restart, SQLite locked past its busy timeout): the result is recorded on a
later try while the lease holds, else given up; an unexpected error of one job is
logged and the next job done; cancellation still stops the loop at once. (Unit tests:
a job table on SQLite whose writes fail on cue, no FFmpeg.)"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import MetaData
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.common.db import make_engine
from services.common.jobs import Job, JobState, JobTable, jobs_table
from services.media.config import MediaSettings
from services.media.worker import Worker

pytestmark = pytest.mark.timeout(30)

KIND = "loop-test"


def locked() -> OperationalError:
    return OperationalError("UPDATE media_jobs", {}, sqlite3.OperationalError("database is locked"))


class FlakyJobs(JobTable):
    """The real job table, whose ``finish`` and ``fail`` raise what ``failures`` holds
    first (one per call), then write."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.finish_failures: list[BaseException] = []
        self.fail_failures: list[BaseException] = []
        self.finish_calls = 0
        self.fail_calls = 0

    async def finish(self, engine: AsyncEngine, job: Job, result: dict[str, Any]) -> bool:
        self.finish_calls += 1
        if self.finish_failures:
            raise self.finish_failures.pop(0)
        return await super().finish(engine, job, result)

    async def fail(
        self, engine: AsyncEngine, job: Job, error: str, *, retry_in_s: float | None
    ) -> JobState | None:
        self.fail_calls += 1
        if self.fail_failures:
            raise self.fail_failures.pop(0)
        return await super().fail(engine, job, error, retry_in_s=retry_in_s)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    yield engine
    await engine.dispose()


@pytest.fixture
async def jobs(engine: AsyncEngine) -> FlakyJobs:
    metadata = MetaData()
    table = jobs_table(metadata)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return FlakyJobs(table)


def _settings(tmp_path: Path, **overrides: Any) -> MediaSettings:
    settings = MediaSettings(
        media_dir=tmp_path / "media",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}",
        heartbeat_s=0.05,
        poll_s=0.05,
        retry_initial_s=0,
    )
    return settings.model_copy(update=overrides)  # lease_s below its floor in some tests


def _render(job: Job, report: Any, stopped: Any) -> dict[str, Any]:
    if job.payload.get("broken"):
        raise OSError("disk hiccup")
    return {"path": f"renditions/{job.key}.mp4"}


def _worker(engine: AsyncEngine, jobs: JobTable, settings: MediaSettings) -> Worker:
    return Worker(engine=engine, jobs=jobs, handler=_render, settings=settings, kinds=(KIND,))


async def _ask(engine: AsyncEngine, jobs: JobTable, key: str, **payload: Any) -> None:
    async with async_sessionmaker(engine)() as session:
        await jobs.enqueue(session, KIND, key, subject="answer-1", payload=payload)
        await session.commit()


async def _job(engine: AsyncEngine, jobs: JobTable, key: str) -> Job:
    async with async_sessionmaker(engine)() as session:
        job = await jobs.get(session, KIND, key)
    assert job is not None
    return job


async def _until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, "the worker did not get there in time"
        await asyncio.sleep(0.02)


def _count(outcome: str) -> float:
    value = REGISTRY.get_sample_value("media_jobs_total", {"kind": KIND, "outcome": outcome})
    return value or 0.0


def _until_stopped(seconds: float, seen_stop: threading.Event, began: threading.Event) -> Any:
    """A handler that works ``seconds`` unless told to stop (then it says so and fails)."""

    def handler(job: Job, report: Any, stopped: Any) -> dict[str, Any]:
        began.set()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if stopped():
                seen_stop.set()
                raise RuntimeError("stopped")
            time.sleep(0.01)
        return {"path": "late"}

    return handler


async def _stopped(task: asyncio.Task[None]) -> None:
    """Cancel the loop: it ends at once, cancelled (not by an error of its own)."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=1.0)
    assert task.cancelled()


async def test_a_result_the_database_was_away_for_is_recorded_on_a_later_try(
    engine: AsyncEngine, jobs: FlakyJobs, tmp_path: Path
) -> None:
    jobs.finish_failures = [locked()]
    await _ask(engine, jobs, "first")
    await _ask(engine, jobs, "second")
    worker = _worker(engine, jobs, _settings(tmp_path))

    running = asyncio.create_task(worker.run())

    async def both_done() -> bool:
        return await jobs.counts(engine) == {(KIND, "done"): 2}

    await _until(both_done)
    assert not running.done()  # the loop lives on
    assert jobs.finish_calls == 3  # the first result twice, the second once
    first = await _job(engine, jobs, "first")
    assert (first.state, first.result) == (JobState.DONE, {"path": "renditions/first.mp4"})
    assert first.attempts == 1  # recorded by the try that made it, not done again
    await _stopped(running)


async def test_the_error_of_a_try_the_database_was_away_for_is_recorded_on_a_later_try(
    engine: AsyncEngine, jobs: FlakyJobs, tmp_path: Path
) -> None:
    jobs.fail_failures = [OSError("connection reset by peer")]
    await _ask(engine, jobs, "broken", broken=True)
    worker = _worker(engine, jobs, _settings(tmp_path))
    job = await jobs.claim(engine, worker.owner, kinds=[KIND], lease_s=30)
    assert job is not None

    assert await worker.do(job) == JobState.QUEUED  # tried again later, as any error

    assert jobs.fail_calls == 2
    queued = await _job(engine, jobs, "broken")
    assert queued.error == "OSError: disk hiccup"


async def test_a_result_not_recorded_before_the_lease_runs_out_is_given_up(
    engine: AsyncEngine, jobs: FlakyJobs, tmp_path: Path
) -> None:
    jobs.finish_failures = [locked() for _ in range(100)]  # away for good
    await _ask(engine, jobs, "first")
    worker = _worker(engine, jobs, _settings(tmp_path, lease_s=0.5, heartbeat_s=60))
    job = await jobs.claim(engine, worker.owner, kinds=[KIND], lease_s=0.5)
    assert job is not None
    lost = _count("lost")
    started = time.monotonic()

    assert await worker.do(job) is None

    assert time.monotonic() - started < 0.5  # given up within the lease
    assert 2 <= jobs.finish_calls < 10  # with waits between tries
    assert _count("lost") == lost + 1
    assert (await _job(engine, jobs, "first")).state == JobState.RUNNING  # claimed again later


async def test_an_unexpected_error_of_one_job_does_not_end_the_loop(
    engine: AsyncEngine, jobs: FlakyJobs, tmp_path: Path
) -> None:
    jobs.finish_failures = [RuntimeError("a bug in the result's write")]
    await _ask(engine, jobs, "first")
    await _ask(engine, jobs, "second")
    worker = _worker(engine, jobs, _settings(tmp_path))
    errors = _count("error")

    running = asyncio.create_task(worker.run())

    async def second_done() -> bool:
        return (await _job(engine, jobs, "second")).state == JobState.DONE

    await _until(second_done)
    assert not running.done()
    assert _count("error") == errors + 1
    # Left running: its lease runs out and it is claimed again.
    assert (await _job(engine, jobs, "first")).state == JobState.RUNNING
    await _stopped(running)


async def test_cancelling_the_loop_stops_it_while_it_waits_for_the_database(
    engine: AsyncEngine, jobs: FlakyJobs, tmp_path: Path
) -> None:
    jobs.finish_failures = [locked() for _ in range(100)]
    await _ask(engine, jobs, "first")
    worker = _worker(engine, jobs, _settings(tmp_path, lease_s=60))
    running = asyncio.create_task(worker.run())

    async def retrying() -> bool:
        return jobs.finish_calls >= 2

    await _until(retrying)
    await _stopped(running)
    assert worker.current == {}


async def test_a_worker_stopped_mid_job_stops_its_work_and_gives_the_job_back(
    engine: AsyncEngine, jobs: FlakyJobs, tmp_path: Path
) -> None:
    """A shutdown (SIGTERM: the loop cancelled) during a job: the job's thread is told to
    stop, and the job is queued again at once without using one of its tries (not left
    running until its lease runs out, a try lost per deploy)."""
    seen_stop = threading.Event()
    began = threading.Event()
    slow = _until_stopped(5, seen_stop, began)

    await _ask(engine, jobs, "long")
    settings = _settings(tmp_path, lease_s=60)
    worker = Worker(engine=engine, jobs=jobs, handler=slow, settings=settings, kinds=(KIND,))
    running = asyncio.create_task(worker.run())
    await asyncio.to_thread(began.wait, 5)

    await _stopped(running)

    assert await asyncio.to_thread(seen_stop.wait, 1.0)  # the thread stopped too
    job = await _job(engine, jobs, "long")
    assert (job.state, job.attempts, job.owner) == (JobState.QUEUED, 0, None)


async def test_a_job_running_past_its_time_limit_is_stopped_and_failed_for_good(
    engine: AsyncEngine, jobs: FlakyJobs, tmp_path: Path
) -> None:
    """A video hours long must not hold a worker for hours: past MEDIA_JOB_TIMEOUT_S the
    thread is told to stop and the job fails at once, saying why (another try would take
    as long); the next job is done."""
    seen_stop = threading.Event()
    long_one = _until_stopped(20, seen_stop, threading.Event())

    def endless(job: Job, report: Any, stopped: Any) -> dict[str, Any]:
        return {"path": "next"} if job.key == "next" else long_one(job, report, stopped)

    await _ask(engine, jobs, "hours-long")
    settings = _settings(tmp_path, lease_s=60, job_timeout_s=0.3)
    worker = Worker(engine=engine, jobs=jobs, handler=endless, settings=settings, kinds=(KIND,))
    running = asyncio.create_task(worker.run())

    async def failed() -> bool:
        return (await _job(engine, jobs, "hours-long")).state == JobState.FAILED

    await _until(failed, timeout_s=5)
    assert seen_stop.is_set()
    job = await _job(engine, jobs, "hours-long")
    assert job.attempts == 1
    assert job.error is not None
    assert "MEDIA_JOB_TIMEOUT_S" in job.error

    await _ask(engine, jobs, "next")

    async def done() -> bool:
        return (await _job(engine, jobs, "next")).state == JobState.DONE

    await _until(done)
    await _stopped(running)
