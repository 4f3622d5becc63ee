"""Server-Sent Event streams: the moderators' live queue and each team's new
assignments. Both read the database (the question events table and the
assignments), so any web replica serves any client, and a reconnecting client
resumes from its ``Last-Event-ID`` without missing anything.

A stream outlives the request that checked its session, so it checks again
every :data:`RECHECK_S` and ends once the session is gone (logout, a password
reset, the person or their team deactivated, a role changed)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from services.triage.web import metrics
from services.triage.web.auth import Principal
from services.triage.web.deps import TriageRuntime
from services.triage.web.schemas import event_view, feed_entry

#: How often a stream looks for news (seconds).
POLL_S = 1.0
#: How often a stream checks that its session still holds (seconds).
RECHECK_S = 10.0


async def _pause(runtime: TriageRuntime) -> bool:
    """Wait one poll interval; False once the server is stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(runtime.stopping.wait(), timeout=POLL_S)
    return not runtime.stopping.is_set()


class _Session:
    """The stream's session, checked again at most every :data:`RECHECK_S`."""

    def __init__(self, runtime: TriageRuntime, principal: Principal) -> None:
        self.runtime = runtime
        self.principal = principal
        self.checked = time.monotonic()

    async def holds(self) -> bool:
        if time.monotonic() - self.checked < RECHECK_S:
            return True
        self.checked = time.monotonic()
        return await self.runtime.accounts.still_valid(self.principal)


async def event_stream(
    runtime: TriageRuntime, principal: Principal, cursor: int | None
) -> AsyncIterator[dict[str, Any]]:
    """Question events after ``cursor`` (from now on when None), as ``question`` events."""
    metrics.SSE_CLIENTS.inc()
    session = _Session(runtime, principal)
    try:
        if cursor is None:
            cursor = await runtime.store.questions.last_event_id()
        yield {"event": "hello", "id": str(cursor), "data": "{}"}
        while await session.holds():
            events = await runtime.store.questions.events_after(cursor)
            for event in events:
                cursor = event.id
                yield {
                    "event": "question",
                    "id": str(event.id),
                    "data": event_view(event).model_dump_json(),
                }
            if not events and not await _pause(runtime):
                return
    finally:
        metrics.SSE_CLIENTS.dec()


async def feed_stream(
    runtime: TriageRuntime, slug: str, principal: Principal, cursor: int
) -> AsyncIterator[dict[str, Any]]:
    """The team's assignments with an id above ``cursor``, as ``assignment`` events."""
    metrics.SSE_CLIENTS.inc()
    session = _Session(runtime, principal)
    actor = principal.actor
    try:
        while await session.holds():
            items = await runtime.store.teams.feed(slug, actor, after=cursor, limit=50)
            now = runtime.store.clock()
            for item in items:
                cursor = item.assignment.id
                yield {
                    "event": "assignment",
                    "id": str(cursor),
                    "data": feed_entry(item, actor.user_id, now).model_dump_json(),
                }
            if not items and not await _pause(runtime):
                return
    finally:
        metrics.SSE_CLIENTS.dec()
