"""Dynamic batching in the agent on ``mentions.raw`` (``agent.test_context()``, no
broker): a batch is what is waiting, up to the size cap, after a short linger — a
lone mention is answered alone and at once, a backlog fills capped batches."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.common.codec import encode
from services.common.kafka import KafkaSettings
from services.common.messages import MentionReceived
from services.triage.worker.app import TriageWorker, create_worker
from services.triage.worker.config import WorkerSettings
from tests.triage.worker.helpers import FakeClassifier, FakeDecider, ListSink
from tests.triage.worker.stream_worker_main import TEST_FAUST
from tests.triage.worker.test_agents import close_idle_consumer, eventually

Factory = Callable[..., MentionReceived]
Maker = Callable[..., TriageWorker]


@pytest.fixture
def make_worker(tmp_path: Path) -> Iterator[Maker]:
    created: list[TriageWorker] = []

    def make(
        classifier: FakeClassifier,
        sink: ListSink,
        batch_size: int | None = None,
        within_s: float | None = None,
    ) -> TriageWorker:
        defaults = WorkerSettings()
        settings = WorkerSettings(
            worker_group=f"triage-test-{uuid.uuid4().hex[:8]}",
            batch_size=batch_size or defaults.batch_size,
            batch_within_s=within_s or defaults.batch_within_s,
        )
        worker = create_worker(
            settings,
            KafkaSettings(topic_prefix="ctx."),
            classifier=classifier,
            decider=FakeDecider(),
            sink=sink,
            web_enabled=False,
            datadir=tmp_path / settings.worker_group,
            faust_overrides=TEST_FAUST,
        )
        created.append(worker)
        return worker

    yield make
    for worker in created:
        close_idle_consumer(worker)


def test_the_defaults_are_a_big_cap_and_a_short_linger() -> None:
    settings = WorkerSettings()
    assert settings.batch_size == 256
    assert settings.batch_within_s <= 0.01


async def test_a_lone_mention_is_answered_alone_and_at_once(
    make_worker: Maker, mention_factory: Factory
) -> None:
    """A quiet stream: one mention, the default cap of 256 — it is not held back
    waiting for company."""
    classifier, sink = FakeClassifier(), ListSink()
    worker = make_worker(classifier, sink)
    async with worker.agent.test_context() as agent:
        mention = mention_factory()
        started = time.monotonic()
        event = await agent.put(encode(mention), key=mention.id.encode())
        await eventually(lambda: event.message.acked, timeout_s=5)
        elapsed = time.monotonic() - started
    assert classifier.calls == [[mention.text]]
    assert elapsed < 0.25


async def test_a_backlog_fills_batches_up_to_the_cap(
    make_worker: Maker, mention_factory: Factory
) -> None:
    """While one batch is in the model, the next mentions wait; then they go in batches
    of at most the cap, as many as are waiting (not one by one, not a fixed 5)."""
    classifier, sink = FakeClassifier(), ListSink()
    classifier.gate = threading.Event()
    worker = make_worker(classifier, sink, batch_size=8)
    async with worker.agent.test_context() as agent:
        first = mention_factory(text="the first question?")
        # wait=False: the test wrapper's put otherwise waits for the value to be processed
        await agent.put(encode(first), key=first.id.encode(), wait=False)
        assert await asyncio.to_thread(classifier.entered.wait, 5)  # the first batch is in
        later = [mention_factory(text=f"question {n}?") for n in range(20)]
        events = [await agent.put(encode(m), key=m.id.encode(), wait=False) for m in later]
        classifier.gate.set()
        await eventually(lambda: all(e.message.acked for e in events), timeout_s=10)
    sizes = [len(call) for call in classifier.calls]
    assert sizes[0] == 1
    assert sum(sizes) == 21
    assert max(sizes) == 8  # the cap, reached: the backlog was taken in full batches
    assert len(sizes) <= 1 + 4  # 20 waiting in batches of <= 8: 3, maybe 4 with the timing


async def test_what_is_already_waiting_is_taken_in_full_batches_however_short_the_linger(
    make_worker: Maker, mention_factory: Factory
) -> None:
    """600 mentions wait in the stream's channel while a batch is in the model; moving
    them into a batch takes longer than a 1 ms linger (faust's ``noack_take`` cut such
    a backlog into batches of what moved within the linger, a few dozen), yet they go
    in full batches: only the wait for records not yet there is bounded."""
    classifier, sink = FakeClassifier(), ListSink()
    classifier.gate = threading.Event()
    worker = make_worker(classifier, sink, batch_size=256, within_s=0.001)
    async with worker.agent.test_context() as agent:
        first = mention_factory(text="the first question?")
        await agent.put(encode(first), key=first.id.encode(), wait=False)
        assert await asyncio.to_thread(classifier.entered.wait, 5)
        later = [mention_factory(text=f"question {n}?") for n in range(600)]
        events = [await agent.put(encode(m), key=m.id.encode(), wait=False) for m in later]
        classifier.gate.set()
        await eventually(lambda: all(e.message.acked for e in events), timeout_s=20)
    sizes = [len(call) for call in classifier.calls]
    assert sizes == [1, 256, 256, 88]
