"""The durable job table, on SQLite and Postgres: a job asked for twice is one job; two
workers claiming at once never both win; a worker's lease keeps its job, a dead
worker's runs out and the job is claimed again; retries, final failures, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.common.jobs import JobState, JobTable, jobs_table
from tests.helpers.db import KINDS, empty_database

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=KINDS)
async def setup(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, JobTable, Clock]]:
    async with empty_database(request.param, tmp_path) as (engine, _, _):
        metadata = MetaData()
        table = jobs_table(metadata)
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        clock = Clock()
        yield engine, JobTable(table, clock=clock), clock


async def _enqueue(engine: AsyncEngine, jobs: JobTable, key: str, **options: object) -> None:
    async with async_sessionmaker(engine)() as session:
        await jobs.enqueue(session, "render", key, subject="a1", payload={"k": key}, **options)  # type: ignore[arg-type]
        await session.commit()


async def test_a_job_asked_for_twice_is_one_job(
    setup: tuple[AsyncEngine, JobTable, Clock],
) -> None:
    engine, jobs, _ = setup
    await _enqueue(engine, jobs, "k1")
    await _enqueue(engine, jobs, "k1")
    assert await jobs.counts(engine) == {("render", "queued"): 1}


async def test_two_workers_claiming_at_once_never_both_win(
    setup: tuple[AsyncEngine, JobTable, Clock],
) -> None:
    engine, jobs, _ = setup
    await _enqueue(engine, jobs, "k1")
    claims = await asyncio.gather(
        *(jobs.claim(engine, f"w{i}", kinds=["render"], lease_s=60) for i in range(4))
    )
    won = [c for c in claims if c is not None]
    assert len(won) == 1
    assert (won[0].state, won[0].attempts, won[0].payload) == (JobState.RUNNING, 1, {"k": "k1"})


async def test_a_dead_worker_s_job_is_claimed_again_after_its_lease(
    setup: tuple[AsyncEngine, JobTable, Clock],
) -> None:
    engine, jobs, clock = setup
    await _enqueue(engine, jobs, "k1", max_attempts=2)
    first = await jobs.claim(engine, "w1", kinds=["render"], lease_s=60)
    assert first is not None
    assert await jobs.heartbeat(engine, first, progress=0.4, note="40%", lease_s=60)
    clock.now += timedelta(seconds=59)
    assert await jobs.claim(engine, "w2", kinds=["render"], lease_s=60) is None  # still kept

    clock.now += timedelta(seconds=61)  # w1 died: no heartbeat
    second = await jobs.claim(engine, "w2", kinds=["render"], lease_s=60)

    assert second is not None
    assert (second.owner, second.attempts) == ("w2", 2)
    assert not await jobs.heartbeat(engine, first, progress=0.5, note="", lease_s=60)  # w1 lost it
    assert not await jobs.finish(engine, first, {"late": True})
    clock.now += timedelta(seconds=61)  # w2 died too: every attempt used
    assert await jobs.claim(engine, "w3", kinds=["render"], lease_s=60) is None
    assert await jobs.counts(engine) == {("render", "failed"): 1}


async def test_a_failed_try_is_retried_after_its_backoff_then_failed_for_good(
    setup: tuple[AsyncEngine, JobTable, Clock],
) -> None:
    engine, jobs, clock = setup
    await _enqueue(engine, jobs, "k1", max_attempts=2)
    job = await jobs.claim(engine, "w1", kinds=["render"], lease_s=60)
    assert job is not None
    assert await jobs.fail(engine, job, "boom", retry_in_s=30) == JobState.QUEUED
    assert await jobs.claim(engine, "w1", kinds=["render"], lease_s=60) is None  # backing off
    clock.now += timedelta(seconds=31)
    again = await jobs.claim(engine, "w1", kinds=["render"], lease_s=60)
    assert again is not None
    assert await jobs.fail(engine, again, "boom again", retry_in_s=30) == JobState.FAILED


async def test_a_cancelled_job_stops_at_its_next_heartbeat_and_is_done_once(
    setup: tuple[AsyncEngine, JobTable, Clock],
) -> None:
    engine, jobs, _ = setup
    await _enqueue(engine, jobs, "k1")
    await _enqueue(engine, jobs, "k2")
    job = await jobs.claim(engine, "w1", kinds=["render"], lease_s=60)
    assert job is not None
    async with async_sessionmaker(engine)() as session:
        assert await jobs.cancel(session, "render", [job.key]) == 1
        await session.commit()
    assert not await jobs.heartbeat(engine, job, progress=0.1, note="", lease_s=60)
    other = await jobs.claim(engine, "w1", kinds=["render"], lease_s=60)
    assert other is not None
    assert await jobs.finish(engine, other, {"uri": "file:///x"})
    async with async_sessionmaker(engine)() as session:
        [done] = await jobs.unapplied(session)
        assert (done.key, done.result) == ("k2", {"uri": "file:///x"})
        await jobs.mark_applied(session, done.id)
        await session.commit()
        assert await jobs.unapplied(session) == []
