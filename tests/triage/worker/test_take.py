"""Dynamic batches from a faust stream (worker/take.py) in an agent's test context;
the worker's agent on it is in test_dynamic_batching.py."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import faust

from services.triage.worker.take import take_waiting, waiting
from tests.triage.worker.test_agents import close_idle_consumer, eventually


def test_waiting_counts_the_channel_s_queue_and_is_zero_without_one() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(3):
        queue.put_nowait(n)
    assert waiting(SimpleNamespace(channel=SimpleNamespace(queue=queue))) == 3
    assert waiting(SimpleNamespace()) == 0
    assert waiting(SimpleNamespace(channel=SimpleNamespace(queue=None))) == 0


def agent_taking(batches: list[list[Any]], states: list[tuple[bool, int]]) -> Any:
    app = faust.App(
        f"take-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:9", autodiscover=False
    )

    async def agent(stream: Any) -> None:
        processors = len(stream._processors)
        taken = take_waiting(stream, 3, 0.01)
        async for events in taken:
            states.append((stream.enable_acks, len(stream._processors) - processors))
            batches.append([event.value for event in events])
            for event in events:
                await stream.ack(event)
            if sum(len(batch) for batch in batches) >= 7:
                break
        await taken.aclose()
        states.append((stream.enable_acks, len(stream._processors) - processors))

    return app.agent(name="taking")(agent)


async def test_batches_are_cut_at_the_cap_and_closing_gives_the_stream_back() -> None:
    batches: list[list[Any]] = []
    states: list[tuple[bool, int]] = []
    agent = agent_taking(batches, states)
    async with agent.test_context() as context:
        for n in range(7):
            await context.put(n, wait=False)
        await eventually(lambda: len(states) == 4)
    close_idle_consumer(SimpleNamespace(app=agent.app))  # type: ignore[arg-type]
    assert sorted(value for batch in batches for value in batch) == list(range(7))
    assert max(len(batch) for batch in batches) == 3
    assert batches[0] == [0, 1, 2]
    # While batches are taken the caller acks and one processor gathers them; after
    # the generator is closed the stream acks as before and the processor is gone.
    assert states[:3] == [(False, 1)] * 3
    assert states[3] == (True, 0)
