"""The Kafka sink produces nothing before the dedupe memory is rebuilt: a source
started with ingest waits, then is deduped against what the rebuild read from
mentions.raw (a restart does not produce its catch-up again)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest

from services.common import topics
from services.common.bootstrap import ensure_topics
from services.common.kafka import KafkaSettings, make_producer
from services.common.messages import MentionReceived, Platform, Source
from services.ingest.dedupe import SeenIds, TailReadiness, TopicTail
from services.ingest.exceptions import DedupeNotReady
from services.ingest.sink import KafkaMentionSink
from tests.helpers.kafka import read_all

Mentions = Callable[..., MentionReceived]


class FakeProducer:
    """Takes every record at once; remembers the keys."""

    def __init__(self) -> None:
        self.keys: list[bytes] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.keys.append(key)
        sent: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sent.set_result(SimpleNamespace(timestamp=int(time.time() * 1000)))
        return sent


def _sink(
    tail: TopicTail, task: asyncio.Task[None] | None = None, **kwargs: Any
) -> tuple[KafkaMentionSink, FakeProducer]:
    producer = FakeProducer()
    settings = KafkaSettings()
    sink = KafkaMentionSink(
        cast(Any, producer), settings, tail.seen, TailReadiness(tail, task), **kwargs
    )
    return sink, producer


async def test_a_submit_before_the_rebuild_waits_then_dedupes_against_it(
    mention_factory: Mentions,
) -> None:
    tail = TopicTail(KafkaSettings(), "t", SeenIds(3600, 1000))
    sink, producer = _sink(tail)
    before, new = (mention_factory(platform=Platform.MASTODON) for _ in range(2))

    submit = asyncio.create_task(sink.submit([before, new], Source.MASTODON))
    await asyncio.sleep(0.05)
    assert not submit.done()
    assert producer.keys == []

    tail.seen.add(before.id)  # what the rebuild read: produced before the restart
    tail.caught_up.set()
    result = await asyncio.wait_for(submit, 5)

    assert (result.accepted, result.duplicates) == ([new.id], [before.id])
    assert producer.keys == [new.id.encode()]


async def test_a_submit_gives_up_when_the_rebuild_takes_too_long(
    mention_factory: Mentions,
) -> None:
    tail = TopicTail(KafkaSettings(), "t", SeenIds(3600, 1000))
    sink, producer = _sink(tail, ready_wait_s=0.05)
    with pytest.raises(DedupeNotReady, match="not rebuilt"):
        await sink.submit([mention_factory()], Source.X_STREAM)
    assert producer.keys == []
    assert len(tail.seen) == 0  # nothing reserved: a retry may produce it


async def test_a_submit_is_refused_once_the_tail_died(mention_factory: Mentions) -> None:
    tail = TopicTail(KafkaSettings(), "t", SeenIds(3600, 1000))
    tail.caught_up.set()

    async def crash() -> None:
        raise RuntimeError("tail crashed")

    task = asyncio.create_task(crash())
    with contextlib.suppress(RuntimeError):
        await task
    sink, producer = _sink(tail, task)
    with pytest.raises(DedupeNotReady):
        await sink.submit([mention_factory()], Source.X_STREAM)
    assert producer.keys == []


@pytest.mark.integration
async def test_a_restarted_ingest_does_not_produce_again_what_it_produced_before(
    kafka_settings: KafkaSettings, mention_factory: Mentions
) -> None:
    await ensure_topics(kafka_settings, [topics.spec_for(topics.MENTIONS_RAW)])
    topic = kafka_settings.topic(topics.MENTIONS_RAW)
    producer = make_producer(kafka_settings)
    await producer.start()
    tail_task: asyncio.Task[None] | None = None
    try:
        before, new = (mention_factory(platform=Platform.MASTODON) for _ in range(2))
        first = TopicTail(kafka_settings, topic, SeenIds(3600, 1000))
        first.caught_up.set()  # an empty topic: nothing to rebuild
        await KafkaMentionSink(producer, kafka_settings, first.seen, TailReadiness(first)).submit(
            [before], Source.MASTODON
        )

        # Restarted: the sources start at once, with the same catch-up.
        tail = TopicTail(kafka_settings, topic, SeenIds(3600, 1000))
        readiness = TailReadiness(tail)
        sink = KafkaMentionSink(producer, kafka_settings, tail.seen, readiness)
        submit = asyncio.create_task(sink.submit([before, new], Source.MASTODON))
        await asyncio.sleep(0.2)
        assert not submit.done()
        readiness.task = tail_task = asyncio.create_task(tail.run())
        result = await asyncio.wait_for(submit, 30)

        assert (result.accepted, result.duplicates) == ([new.id], [before.id])
        records = await read_all(kafka_settings, topic)
        assert sorted(r.key for r in records) == sorted([before.id.encode(), new.id.encode()])
    finally:
        if tail_task is not None:
            tail_task.cancel()
            await asyncio.gather(tail_task, return_exceptions=True)
        await producer.stop()
