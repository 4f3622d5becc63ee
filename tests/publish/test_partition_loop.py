"""PartitionLoop on a scripted consumer: a deferred record is never skipped,
also when a rebalance hands the partition back un-paused. And the take-down
sweep's loop, which a failed sweep must not end."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, cast

from aiokafka import ConsumerRecord, TopicPartition
from sqlalchemy.exc import OperationalError

from services.common.kafka import KafkaSettings
from services.publish.agents import Agents, PartitionLoop

TP = TopicPartition("replies.requested", 0)


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=TP.topic, partition=0, offset=offset, timestamp=0, timestamp_type=0,
        key=b"k", value=b"v", checksum=None, serialized_key_size=1,
        serialized_value_size=1, headers=(),
    )  # fmt: skip


@dataclass
class ScriptedConsumer:
    """Hands out ``polls`` one per ``getmany``; records what the loop did."""

    polls: list[list[ConsumerRecord[bytes, bytes]]]
    paused: set[TopicPartition] = field(default_factory=set)
    seeks: list[int] = field(default_factory=list)
    commits: list[int] = field(default_factory=list)

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, Any]:
        return {TP: self.polls.pop(0)} if self.polls else {}

    def pause(self, tp: TopicPartition) -> None:
        self.paused.add(tp)

    def resume(self, tp: TopicPartition) -> None:
        self.paused.discard(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append(offset)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets[TP])

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int:
        return 10


async def test_a_rebalance_that_unpauses_a_deferred_partition_does_not_skip_it() -> None:
    handled: list[int] = []

    async def handle(rec: ConsumerRecord[bytes, bytes]) -> float | None:
        handled.append(rec.offset)
        return 1e12 if rec.offset == 0 else None  # offset 0 must wait (a rate limit)

    # Poll 1: offset 0 is deferred, with 1 behind it in the same batch. Poll 2: a
    # rebalance un-paused the partition and the fetch starts again at the last
    # commit: 0, 1, 2 arrive.
    consumer = ScriptedConsumer(polls=[[record(0), record(1)], [record(0), record(1), record(2)]])
    loop = PartitionLoop(consumer, handle, name="replies", clock=lambda: 0.0)
    await loop.run_once()
    await loop.run_once()
    assert handled == [0]  # nothing after the deferred record was handled
    assert consumer.commits == []  # nor committed past it
    assert TP in consumer.paused
    assert consumer.seeks == [0, 0, 0]  # back on the deferred record each time


class FlakyPublisher:
    """A publisher whose take-down sweeps fail twice (database down, a bug), then work."""

    def __init__(self) -> None:
        self.sweeps = 0

    async def take_down_withdrawn(self) -> int:
        self.sweeps += 1
        if self.sweeps == 1:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))
        if self.sweeps == 2:
            raise RuntimeError("a bug in one sweep")
        return 1


async def test_the_take_down_sweep_outlives_a_failed_sweep() -> None:
    publisher = FlakyPublisher()
    agents = Agents(publisher=publisher, producer=cast(Any, None), kafka=KafkaSettings())  # type: ignore[arg-type]
    sweep = asyncio.create_task(agents.sweep_take_downs(0.01))
    try:
        for _ in range(200):
            if publisher.sweeps >= 4:
                break
            await asyncio.sleep(0.01)
        assert publisher.sweeps >= 4
        assert not sweep.done()
    finally:
        sweep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweep
