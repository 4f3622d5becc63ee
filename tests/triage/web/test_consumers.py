"""The triage web's stream side against a real Kafka-protocol broker: the
``mentions.classified`` consumer stores each mention once however often it is
delivered, a malformed record goes to the DLQ without stopping the stream,
and the outbox relay gets what a request wrote onto its topic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.common import topics
from services.common.bootstrap import ensure_topics
from services.common.codec import decode, encode, encode_key
from services.common.kafka import KafkaSettings, group_timeouts, make_consumer, make_producer
from services.common.messages import DeadLetter, MentionReceived, QuestionAssigned
from services.triage.web.consumers import OutboxRelay, RecordHandlers, consume_loop
from services.triage.web.models import Status
from services.triage.web.store import Actor, QuestionFilter, TriageStore
from tests.helpers.db import KINDS
from tests.helpers.kafka import read_all
from tests.triage.web.helpers.store import FakeClock, classified_factory, migrated_store

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def running(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    task = asyncio.ensure_future(coroutine)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TriageStore]:
    async with migrated_store(request.param, tmp_path, FakeClock()) as store:
        yield store


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    names = (topics.MENTIONS_CLASSIFIED, topics.QUESTIONS_ASSIGNED)
    await ensure_topics(
        kafka_settings, [topics.spec_for(n) for n in (*names, *map(topics.dlq, names))]
    )
    producer = make_producer(kafka_settings)
    await producer.start()
    yield producer
    await producer.stop()


async def test_redelivered_and_malformed_records(
    store: TriageStore,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    mention_factory: Callable[..., MentionReceived],
) -> None:
    make = classified_factory(mention_factory)
    topic = kafka_settings.topic(topics.MENTIONS_CLASSIFIED)
    first, second = make(), make()
    for message in (first, first, second):  # the first one delivered twice
        await producer.send_and_wait(topic, encode(message), key=encode_key(message.mention.id))
    await producer.send_and_wait(topic, b"{not json", key=b"bad")
    consumer = make_consumer(
        kafka_settings, topic, group_id="triage-web-test", **group_timeouts(kafka_settings)
    )
    await consumer.start()
    try:
        loop = consume_loop(
            consumer, RecordHandlers(store).classified, name=topic, producer=producer
        )
        async with running(loop.run()):

            async def stored() -> bool:
                _, total = await store.questions.page(QuestionFilter())
                return total == 2

            await eventually(stored)
            dlq = topics.dlq(topic)

            async def dead_lettered() -> bool:
                return bool(await read_all(kafka_settings, dlq, timeout_s=2.0))

            await eventually(dead_lettered)
            letters = await read_all(kafka_settings, dlq)
    finally:
        await consumer.stop()
    rows, total = await store.questions.page(QuestionFilter(statuses=(Status.NEW,)))
    assert total == 2
    assert {r.mention_id for r in rows} == {first.mention.id, second.mention.id}
    letter = decode(DeadLetter, letters[0].value or b"")
    assert letter.stage == "triage-web.decode"


async def test_the_outbox_relay_sends_what_a_request_wrote(
    store: TriageStore,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    mention_factory: Callable[..., MentionReceived],
) -> None:
    question = await store.questions.ingest(classified_factory(mention_factory)())
    assert question is not None
    await store.teams.upsert(
        "kakuma-a", name="A", languages=["en"], capacity=5, actor=Actor.system("t")
    )
    await store.questions.act(
        question.id, "assign", Actor(name="mod1", user_id=None), team="kakuma-a"
    )
    relay = OutboxRelay(store, producer, kafka_settings, every_s=0.05)
    async with running(relay.run()):

        async def drained() -> bool:
            return not await store.outbox.pending()

        await eventually(drained)
    records = await read_all(kafka_settings, kafka_settings.topic(topics.QUESTIONS_ASSIGNED))
    assigned = decode(QuestionAssigned, records[0].value or b"")
    assert (records[0].key, assigned.question_id) == (b"kakuma-a", question.id)
