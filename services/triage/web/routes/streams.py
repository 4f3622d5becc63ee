"""Server-Sent Event streams: the moderators' live queue and each team's new
assignments. Both read the database (the question events table and the
assignments), so any web replica serves any client, and a reconnecting client
resumes from its ``Last-Event-ID`` without missing anything."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from services.triage.web import metrics
from services.triage.web.deps import TriageRuntime
from services.triage.web.schemas import event_view, feed_entry
from services.triage.web.store import Actor

#: How often a stream looks for news (seconds).
POLL_S = 1.0


async def _pause(runtime: TriageRuntime) -> bool:
    """Wait one poll interval; False once the server is stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(runtime.stopping.wait(), timeout=POLL_S)
    return not runtime.stopping.is_set()


async def event_stream(runtime: TriageRuntime, cursor: int | None) -> AsyncIterator[dict[str, Any]]:
    """Question events after ``cursor`` (from now on when None), as ``question`` events."""
    metrics.SSE_CLIENTS.inc()
    try:
        if cursor is None:
            cursor = await runtime.store.questions.last_event_id()
        yield {"event": "hello", "id": str(cursor), "data": "{}"}
        while True:
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
    runtime: TriageRuntime, slug: str, actor: Actor, cursor: int
) -> AsyncIterator[dict[str, Any]]:
    """The team's assignments with an id above ``cursor``, as ``assignment`` events."""
    metrics.SSE_CLIENTS.inc()
    try:
        while True:
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
