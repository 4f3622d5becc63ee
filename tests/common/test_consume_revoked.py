"""ConsumeLoop and ``consuming()`` when a rebalance takes a partition away while
one of its records is being handled, and when the loop's start fails: the task
lives on (a consumer that asserts and raises on unassigned partitions as aiokafka
does; ``consuming()`` on scripted consumers)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError

from services.common import consume
from services.common.consume import ConsumeLoop, consuming
from services.common.dlq import DeadLetters
from services.common.kafka import KafkaSettings

TP = TopicPartition("replies.requested", 0)


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=TP.topic, partition=0, offset=offset, timestamp=0, timestamp_type=0,
        key=b"k", value=b"{}", checksum=None, serialized_key_size=1,
        serialized_value_size=2, headers=(),
    )  # fmt: skip


class Producer:
    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> None:
        return None


@dataclass
class RevocableConsumer:
    """One partition; what aiokafka does on a partition no longer assigned:
    ``highwater`` asserts, ``pause`` and ``seek`` raise IllegalStateError, a commit
    fails."""

    polls: list[list[ConsumerRecord[bytes, bytes]]]
    assigned: set[TopicPartition] = field(default_factory=lambda: {TP})
    commits: list[int] = field(default_factory=list)
    stopped: bool = False

    def _check(self, tp: TopicPartition) -> None:
        if tp not in self.assigned:
            raise IllegalStateError(f"No current assignment for partition {tp}")

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, Any]:
        await asyncio.sleep(0)
        return {TP: self.polls.pop(0)} if self.polls and self.assigned else {}

    def pause(self, tp: TopicPartition) -> None:
        self._check(tp)

    def resume(self, tp: TopicPartition) -> None:
        self._check(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._check(tp)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if any(tp not in self.assigned for tp in offsets):
            raise CommitFailedError("rebalanced")
        self.commits.extend(offsets.values())

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, tp: TopicPartition) -> int:
        assert tp in self.assigned, "Partition is not assigned"
        return 10

    async def stop(self) -> None:
        self.stopped = True


def _loop(consumer: RevocableConsumer, wait: float | None) -> ConsumeLoop:
    async def handle(rec: ConsumerRecord[bytes, bytes]) -> float | None:
        consumer.assigned.clear()  # the rebalance lands while the record is handled
        return wait

    return ConsumeLoop(
        consumer,
        handle,
        name="replies",
        dead_letters=DeadLetters(Producer(), "publish"),
        clock=lambda: 0.0,
        epoch_poll_s=None,
    )


async def test_a_record_done_after_its_partition_was_revoked_leaves_the_loop_running() -> None:
    consumer = RevocableConsumer(polls=[[record(0), record(1)]])
    loop = _loop(consumer, None)
    await loop.run_once()  # raised AssertionError from highwater before
    assert consumer.commits == []  # the new owner reads it again from the last commit
    await loop.run_once()


async def test_a_record_put_off_after_its_partition_was_revoked_is_not_held() -> None:
    consumer = RevocableConsumer(polls=[[record(0), record(1)]])
    loop = _loop(consumer, 1e12)
    await loop.run_once()  # raised IllegalStateError from pause before
    assert loop.deferred == {}
    assert loop.held == {}
    await loop.run_once()


async def test_consuming_starts_a_fresh_consumer_when_its_first_step_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[RevocableConsumer] = []

    async def start(make: Any, *, timeout_s: float) -> RevocableConsumer:
        consumer = RevocableConsumer(polls=[])
        made.append(consumer)
        return consumer

    monkeypatch.setattr(consume, "start_when_reachable", start)
    monkeypatch.setattr(consume, "RESTART_BACKOFF_S", (0.0,))
    firsts: list[int] = []
    ran = asyncio.Event()

    async def first() -> None:
        firsts.append(1)
        if len(firsts) == 1:
            raise KafkaConnectionError("the broker blinked")

    def loop(consumer: Any) -> ConsumeLoop:
        ran.set()
        return _loop(consumer, None)

    task = asyncio.create_task(
        consuming(KafkaSettings(), ["replies.requested"], group="g", loop=loop, first=first)()
    )
    await asyncio.wait_for(ran.wait(), 5)
    assert len(firsts) == 2  # the failed first step is run again, on a fresh consumer
    assert made[0].stopped
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert made[-1].stopped
