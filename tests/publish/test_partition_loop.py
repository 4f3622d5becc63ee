"""PartitionLoop on a scripted consumer: a deferred record is never skipped,
also when a rebalance hands the partition back un-paused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from services.publish.agents import PartitionLoop

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
