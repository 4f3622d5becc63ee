"""A durable job table: work that takes minutes (a rendition, a transcript) queued in
a service's database, claimed by workers with one conditional ``UPDATE`` (two workers
never both win, on SQLite and Postgres alike), with progress, a lease that a crashed
worker's job runs out of, retries with backoff, and a result.

The table is defined once here (:func:`jobs_table`) and put in the owning service's
metadata, so its migrations create it; a worker builds the same table on a metadata
of its own. ``(kind, key)`` is unique: a job asked for twice is one job, and a
finished job is its result's cache.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ColumnElement,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.common.db import UtcDateTime
from services.common.messages import utcnow


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


def jobs_table(metadata: MetaData, name: str = "media_jobs") -> Table:
    """The job table, in ``metadata``."""
    states = ", ".join(f"'{s.value}'" for s in JobState)
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("kind", String(32), nullable=False),
        #: What the job is about and how it is made: the cache key within its kind.
        Column("key", String(200), nullable=False),
        #: What people know it by (an answer id), for logs and pages.
        Column("subject", String(64), nullable=False, default=""),
        Column("payload_json", Text, nullable=False, default="{}"),
        Column("state", String(16), nullable=False),
        #: Lower first.
        Column("priority", Integer, nullable=False, default=0),
        #: Claims so far (a worker that died mid-job used one).
        Column("attempts", Integer, nullable=False, default=0),
        Column("max_attempts", Integer, nullable=False, default=3),
        Column("progress", Float, nullable=False, default=0.0),
        Column("note", String(200), nullable=False, default=""),
        Column("owner", String(64)),
        Column("lease_until", UtcDateTime()),
        Column("run_after", UtcDateTime(), nullable=False),
        Column("result_json", Text),
        Column("error", Text),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
        Column("finished_at", UtcDateTime()),
        #: Set by the owning service once it took the result in.
        Column("applied_at", UtcDateTime()),
        UniqueConstraint("kind", "key"),
        CheckConstraint(f"state IN ({states})", name="state"),
        Index(f"ix_{name}_state_priority_id", "state", "priority", "id"),
        Index(f"ix_{name}_subject", "subject"),
    )


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    key: str
    subject: str
    payload: dict[str, Any]
    state: JobState
    priority: int
    attempts: int
    max_attempts: int
    progress: float
    note: str
    owner: str | None
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    applied_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(
            id=row.id,
            kind=row.kind,
            key=row.key,
            subject=row.subject,
            payload=json.loads(row.payload_json or "{}"),
            state=JobState(row.state),
            priority=row.priority,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            progress=row.progress,
            note=row.note,
            owner=row.owner,
            result=json.loads(row.result_json) if row.result_json else None,
            error=row.error,
            created_at=row.created_at,
            updated_at=row.updated_at,
            finished_at=row.finished_at,
            applied_at=row.applied_at,
        )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


class JobTable:
    """The job table's queries. Producers call the ``session`` methods inside their own
    transaction; workers call the others, one transaction each."""

    def __init__(self, table: Table, clock: Any = utcnow) -> None:
        self.table = table
        self.clock = clock

    # --- asking for work (inside the caller's transaction) ---------------------------

    async def get(self, session: AsyncSession, kind: str, key: str) -> Job | None:
        t = self.table
        row = (await session.execute(select(t).where(t.c.kind == kind, t.c.key == key))).first()
        return Job.from_row(row) if row is not None else None

    async def by_keys(
        self, session: AsyncSession, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Job]:
        if not pairs:
            return {}
        t = self.table
        condition = or_(*(and_(t.c.kind == k, t.c.key == v) for k, v in pairs))
        rows = (await session.execute(select(t).where(condition))).all()
        return {(r.kind, r.key): Job.from_row(r) for r in rows}

    async def enqueue(
        self,
        session: AsyncSession,
        kind: str,
        key: str,
        *,
        subject: str = "",
        payload: dict[str, Any] | None = None,
        priority: int = 0,
        max_attempts: int = 3,
        again: bool = False,
    ) -> Job:
        """The job ``(kind, key)``: queued now, or the one already asked for (whatever
        its state: a finished one is the cache). ``again``: a failed or cancelled one
        is queued anew, its attempts reset."""
        t = self.table
        now = self.clock()
        existing = await self.get(session, kind, key)
        if existing is None:
            try:
                async with session.begin_nested():
                    await session.execute(
                        insert(t).values(
                            kind=kind,
                            key=key,
                            subject=subject,
                            payload_json=_json(payload or {}),
                            state=JobState.QUEUED.value,
                            priority=priority,
                            attempts=0,
                            max_attempts=max_attempts,
                            progress=0.0,
                            note="waiting",
                            run_after=now,
                            created_at=now,
                            updated_at=now,
                        )
                    )
            except IntegrityError:
                pass  # asked for at the same moment by another request: that one stands
        elif again and existing.state in (JobState.FAILED, JobState.CANCELLED):
            await session.execute(
                update(t)
                .where(t.c.id == existing.id, t.c.state == existing.state.value)
                .values(
                    state=JobState.QUEUED.value,
                    attempts=0,
                    progress=0.0,
                    note="waiting",
                    error=None,
                    run_after=now,
                    updated_at=now,
                    applied_at=None,
                    subject=subject or existing.subject,
                    payload_json=_json(payload) if payload is not None else t.c.payload_json,
                )
            )
        job = await self.get(session, kind, key)
        assert job is not None
        return job

    async def cancel(self, session: AsyncSession, kind: str, keys: Sequence[str]) -> int:
        """Cancel queued or running jobs (a running one stops at its next heartbeat)."""
        if not keys:
            return 0
        t = self.table
        result = await session.execute(
            update(t)
            .where(
                t.c.kind == kind,
                t.c.key.in_(keys),
                t.c.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]),
            )
            .values(state=JobState.CANCELLED.value, note="cancelled", updated_at=self.clock())
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def unapplied(self, session: AsyncSession, limit: int = 50) -> list[Job]:
        """Finished or failed jobs whose result the owner has not taken in yet."""
        t = self.table
        rows = await session.execute(
            select(t)
            .where(
                t.c.state.in_([JobState.DONE.value, JobState.FAILED.value]),
                t.c.applied_at.is_(None),
            )
            .order_by(t.c.finished_at, t.c.id)
            .limit(limit)
        )
        return [Job.from_row(r) for r in rows.all()]

    async def mark_applied(self, session: AsyncSession, job_id: int) -> None:
        t = self.table
        await session.execute(update(t).where(t.c.id == job_id).values(applied_at=self.clock()))

    # --- doing the work (a worker; one transaction each) -----------------------------

    def _claimable(self, now: datetime) -> ColumnElement[bool]:
        t = self.table
        return or_(
            and_(t.c.state == JobState.QUEUED.value, t.c.run_after <= now),
            and_(t.c.state == JobState.RUNNING.value, t.c.lease_until < now),
        )

    async def claim(
        self, engine: AsyncEngine, owner: str, *, kinds: Sequence[str], lease_s: float
    ) -> Job | None:
        """The next job to do, now this worker's until its lease runs out; None when
        there is none. A job whose worker died (its lease ran out) is claimed again; one
        that used every attempt that way is failed instead."""
        t = self.table
        async with engine.begin() as connection:
            now = self.clock()
            candidates = (
                await connection.execute(
                    select(t.c.id, t.c.attempts, t.c.max_attempts, t.c.state)
                    .where(self._claimable(now), t.c.kind.in_(kinds))
                    .order_by(t.c.priority, t.c.id)
                    .limit(8)
                )
            ).all()
        for candidate in candidates:
            async with engine.begin() as connection:
                now = self.clock()
                if candidate.attempts >= candidate.max_attempts:
                    await connection.execute(
                        update(t)
                        .where(t.c.id == candidate.id, self._claimable(now))
                        .values(
                            state=JobState.FAILED.value,
                            error=f"gave up after {candidate.attempts} tries"
                            " (the worker stopped during each)",
                            note="failed",
                            finished_at=now,
                            updated_at=now,
                            owner=None,
                        )
                    )
                    continue
                won = await connection.execute(
                    update(t)
                    .where(t.c.id == candidate.id, self._claimable(now))
                    .values(
                        state=JobState.RUNNING.value,
                        owner=owner,
                        lease_until=now + timedelta(seconds=lease_s),
                        attempts=t.c.attempts + 1,
                        progress=0.0,
                        note="started",
                        updated_at=now,
                    )
                )
                if won.rowcount != 1:
                    continue  # another worker was first
                row = (await connection.execute(select(t).where(t.c.id == candidate.id))).one()
                return Job.from_row(row)
        return None

    async def heartbeat(
        self,
        engine: AsyncEngine,
        job: Job,
        *,
        progress: float,
        note: str,
        lease_s: float,
    ) -> bool:
        """Say how far the job is and keep it; False when it is no longer this worker's
        (cancelled, or its lease ran out and another worker took it): stop."""
        now = self.clock()
        return await self._update_own(
            engine,
            job,
            progress=max(0.0, min(1.0, progress)),
            note=note[:200],
            lease_until=now + timedelta(seconds=lease_s),
            updated_at=now,
        )

    async def finish(self, engine: AsyncEngine, job: Job, result: dict[str, Any]) -> bool:
        """Done, with its result (False: no longer this worker's; the result is dropped)."""
        now = self.clock()
        return await self._update_own(
            engine,
            job,
            state=JobState.DONE.value,
            result_json=_json(result),
            progress=1.0,
            note="done",
            error=None,
            finished_at=now,
            updated_at=now,
            lease_until=None,
            applied_at=None,
        )

    async def fail(
        self, engine: AsyncEngine, job: Job, error: str, *, retry_in_s: float | None
    ) -> JobState | None:
        """This try failed: queued again after ``retry_in_s`` while attempts remain (and
        the error may pass), else failed for good. The state it is left in (None: it was
        no longer this worker's)."""
        again = retry_in_s is not None and job.attempts < job.max_attempts
        now = self.clock()
        values: dict[str, Any] = {
            "error": error[:4000],
            "updated_at": now,
            "owner": None,
            "lease_until": None,
        }
        if again:
            assert retry_in_s is not None
            values |= {
                "state": JobState.QUEUED.value,
                "run_after": now + timedelta(seconds=retry_in_s),
                "note": f"try {job.attempts} failed; again in {retry_in_s:.0f} s",
            }
        else:
            values |= {"state": JobState.FAILED.value, "note": "failed", "finished_at": now}
        if not await self._update_own(engine, job, **values):
            return None
        return JobState.QUEUED if again else JobState.FAILED

    async def release(self, engine: AsyncEngine, job: Job) -> bool:
        """Give the job back: its worker stops (a shutdown), not the job. Queued again at
        once, the try it was on not counted (False: no longer this worker's)."""
        now = self.clock()
        return await self._update_own(
            engine,
            job,
            state=JobState.QUEUED.value,
            attempts=self.table.c.attempts - 1,
            owner=None,
            lease_until=None,
            run_after=now,
            progress=0.0,
            note="waiting (its worker stopped)",
            updated_at=now,
        )

    async def _update_own(self, engine: AsyncEngine, job: Job, **values: Any) -> bool:
        """Set ``values`` on ``job`` while it is still running as this worker's (the
        conditional UPDATE is the lease check); False when it is no longer."""
        t = self.table
        async with engine.begin() as connection:
            result = await connection.execute(
                update(t)
                .where(
                    t.c.id == job.id, t.c.owner == job.owner, t.c.state == JobState.RUNNING.value
                )
                .values(**values)
            )
            return bool(result.rowcount == 1)

    async def counts(self, engine: AsyncEngine) -> dict[tuple[str, str], int]:
        """Jobs by (kind, state), for the metrics."""
        t = self.table
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(t.c.kind, t.c.state, func.count()).group_by(t.c.kind, t.c.state)
            )
            return {(kind, state): int(n) for kind, state, n in rows.all()}
