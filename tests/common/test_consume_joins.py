"""A consumer whose join of its group does not finish (no partitions told, not even
none) is replaced by a fresh one, from its start or from a rebalance; a fresh
consumer that cannot reach the broker after the first start is tried again instead
of ending the task."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError

from services.common import consume
from services.common.consume import ConsumeLoop, JoinStalled, Record, consuming
from services.common.dlq import DeadLetters
from services.common.kafka import KafkaSettings

TP = TopicPartition("replies.requested", 0)


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=TP.topic, partition=0, offset=offset, timestamp=0, timestamp_type=0,
        key=b"k", value=b"v", checksum=None, serialized_key_size=1,
        serialized_value_size=1, headers=(),
    )  # fmt: skip


@dataclass
class FakeConsumer:
    """Joins (tells its listener its partitions) on start only if ``joins``."""

    joins: bool
    fails_to_start: bool = False
    records: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)
    listener: ConsumerRebalanceListener | None = None
    assigned: set[TopicPartition] = field(default_factory=set)
    stopped: bool = False
    commits: list[int] = field(default_factory=list)

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener) -> None:
        self.listener = listener

    async def start(self) -> None:
        if self.fails_to_start:
            raise KafkaConnectionError("no broker")
        if self.joins:
            assert self.listener is not None
            self.assigned = {TP}
            await self.listener.on_partitions_assigned({TP})

    async def stop(self) -> None:
        self.stopped = True

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, Any]:
        await asyncio.sleep(0.01)
        if self.assigned and self.records:
            return {TP: [self.records.pop(0)]}
        return {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets[TP])


def _loop(handled: list[int]) -> Any:
    async def handle(rec: Record) -> None:
        handled.append(rec.offset)

    def make(consumer: Any) -> ConsumeLoop:
        return ConsumeLoop(
            consumer,
            handle,
            name="replies.requested",
            dead_letters=DeadLetters(None, "test"),  # type: ignore[arg-type]
            epoch_poll_s=None,
            poll_timeout_ms=10,
        )

    return make


def _hand_out(monkeypatch: pytest.MonkeyPatch, consumers: list[FakeConsumer]) -> list[FakeConsumer]:
    """``consuming()`` gets ``consumers`` one after the other (those made so far are
    listed in what this returns); a join may take 0.2 s."""
    made: list[FakeConsumer] = []

    def make_consumer(*args: Any, **kwargs: Any) -> FakeConsumer:
        made.append(consumers[len(made)])
        return made[-1]

    monkeypatch.setattr(consume, "make_consumer", make_consumer)
    monkeypatch.setattr(consume, "JOIN_STALL_S", 0.2)
    return made


async def _until(condition: Any, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_consumer_whose_join_never_finishes_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumers = [
        FakeConsumer(joins=False),  # a join that never finishes
        FakeConsumer(joins=True, records=[record(0), record(1)]),
    ]
    made = _hand_out(monkeypatch, consumers)
    handled: list[int] = []
    task = asyncio.create_task(
        consuming(KafkaSettings(), ["replies.requested"], group="g", loop=_loop(handled))()
    )
    try:
        await _until(lambda: handled == [0, 1])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(made) == 2
    assert made[0].stopped  # it left the group
    assert made[1].commits == [1, 2]


async def test_a_consumer_that_joined_is_not_replaced() -> None:
    consumer = FakeConsumer(joins=False, assigned={TP}, records=[record(0)])
    handled: list[int] = []
    loop = _loop(handled)(consumer)
    loop.join_within_s = 0.05
    loop.assigned({TP})
    await asyncio.sleep(0.1)
    await loop.run_once()
    await loop.run_once()
    assert handled == [0]


async def test_a_rebalance_that_never_finishes_stalls_the_loop() -> None:
    consumer = FakeConsumer(joins=False, assigned={TP})
    loop = _loop([])(consumer)
    loop.join_within_s = 0.05
    loop.assigned({TP})
    await loop.run_once()  # joined: no deadline
    loop.rejoining()  # a rebalance begins ...
    await loop.run_once()  # ... and has time
    await asyncio.sleep(0.1)
    with pytest.raises(JoinStalled, match=r"replies\.requested"):
        await loop.run_once()  # ... and ran out of it
    loop.assigned(set())  # finished, even with nothing given
    await loop.run_once()


async def test_a_fresh_consumer_without_a_broker_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumers = [
        FakeConsumer(joins=False),  # stalls: replaced ...
        FakeConsumer(joins=False, fails_to_start=True),  # ... but the broker is gone ...
        FakeConsumer(joins=True, records=[record(0)]),  # ... and back
    ]
    made = _hand_out(monkeypatch, consumers)

    async def start_when_reachable(make: Any, *, timeout_s: float) -> Any:
        client = make()
        await client.start()
        return client

    monkeypatch.setattr(consume, "start_when_reachable", start_when_reachable)
    handled: list[int] = []
    task = asyncio.create_task(
        consuming(KafkaSettings(), ["replies.requested"], group="g", loop=_loop(handled))()
    )
    try:
        await _until(lambda: handled == [0])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(made) == 3


async def test_the_very_first_start_without_a_broker_ends_the_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def start_when_reachable(make: Any, *, timeout_s: float) -> Any:
        raise KafkaConnectionError("no broker")

    monkeypatch.setattr(consume, "start_when_reachable", start_when_reachable)
    with pytest.raises(KafkaConnectionError):
        await consuming(KafkaSettings(), ["replies.requested"], group="g", loop=_loop([]))()
