"""A Postgres restart under a consume loop: the record whose handler met it (a plain
``DBAPIError`` with asyncpg) waits and is tried again, never dead-lettered, in the
loop of each service that consumes into a database; a record the database refuses
is still dead-lettered."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg.exceptions  # type: ignore[import-untyped]
import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError
from sqlalchemy.exc import IntegrityError

from services.common.consume import ConsumeLoop, RecordHandler, doubling_backoff
from services.common.db import database_unreachable
from services.common.dlq import DeadLetters, Sender
from services.publish import agents as publish_agents
from services.triage.web import consumers as triage_consumers
from tests.common.test_consume import WEB_TP, Producer, ReplayingConsumer, record
from tests.common.test_db_unreachable import adapted

LoopFactory = Callable[
    [ReplayingConsumer, RecordHandler, Producer, Callable[[], float]], ConsumeLoop
]


def _common(
    consumer: ReplayingConsumer, handle: RecordHandler, producer: Sender, clock: Callable[[], float]
) -> ConsumeLoop:
    return ConsumeLoop(
        consumer,
        handle,
        name=WEB_TP.topic,
        dead_letters=DeadLetters(producer, "triage-web"),
        retry_if=database_unreachable,
        backoff=doubling_backoff(0.5, 30.0),
        clock=clock,
    )


def _triage_web(
    consumer: ReplayingConsumer, handle: RecordHandler, producer: Sender, clock: Callable[[], float]
) -> ConsumeLoop:
    loop = triage_consumers.consume_loop(
        consumer,
        handle,
        name=WEB_TP.topic,
        producer=producer,
    )
    loop.clock = clock
    return loop


def _publisher(
    consumer: ReplayingConsumer, handle: RecordHandler, producer: Sender, clock: Callable[[], float]
) -> ConsumeLoop:
    return publish_agents.consume_loop(
        consumer,
        handle,
        name=WEB_TP.topic,
        producer=producer,
        clock=clock,
    )


LOOPS = [
    pytest.param(_common, id="retry_if"),
    pytest.param(_triage_web, id="triage-web"),
    pytest.param(_publisher, id="publish"),
]


@pytest.mark.parametrize("make", LOOPS)
@pytest.mark.parametrize(
    "restart",
    [
        asyncpg.exceptions.AdminShutdownError(
            "terminating connection due to administrator command"
        ),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_a_postgres_restart_makes_the_record_wait_not_a_dead_letter(
    make: LoopFactory, restart: Exception
) -> None:
    calls = {0: 0, 1: 0}

    async def handle(rec: ConsumerRecord[bytes, bytes]) -> None:
        calls[rec.offset] += 1
        if rec.offset == 0 and calls[0] < 3:  # Postgres restarting twice, then back
            raise adapted(restart)

    now = [0.0]
    consumer = ReplayingConsumer([record(0, WEB_TP.topic), record(1, WEB_TP.topic)])
    producer = Producer()
    loop = make(consumer, handle, producer, lambda: now[0])
    waits = []
    for _ in range(6):
        await loop.run_once()
        if loop.deferred:
            waits.append(loop.deferred[WEB_TP] - now[0])
            now[0] = loop.deferred[WEB_TP]  # the wait passes
    assert calls == {0: 3, 1: 1}  # the same record tried until stored
    assert len(waits) == 2
    assert producer.sent == []  # nothing dead-lettered
    assert consumer.commits == [1, 2]  # nothing committed past the record waiting


@pytest.mark.parametrize("make", LOOPS)
async def test_a_record_the_database_refuses_is_still_dead_lettered(make: LoopFactory) -> None:
    async def handle(rec: ConsumerRecord[bytes, bytes]) -> None:
        raise adapted(
            asyncpg.exceptions.UniqueViolationError("duplicate key value"), IntegrityError
        )

    consumer = ReplayingConsumer([record(0, WEB_TP.topic)])
    producer = Producer()
    loop = make(consumer, handle, producer, lambda: 0.0)
    await loop.run_once()
    assert not loop.deferred
    assert [topic for topic, _ in producer.sent] == [f"{WEB_TP.topic}.dlq"]
    assert consumer.commits == [1]


async def test_the_publisher_also_waits_out_the_broker() -> None:
    assert publish_agents.infra_unreachable(KafkaConnectionError("no broker"))
    assert publish_agents.infra_unreachable(
        adapted(asyncpg.exceptions.AdminShutdownError("shutting down"))
    )
    assert not publish_agents.infra_unreachable(ValueError("bad value"))
