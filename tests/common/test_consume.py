"""ConsumeLoop on scripted consumers: a deferred record is never skipped, also
when a rebalance hands the partition back un-paused; a database outage is waited
out on the same record, and an error about the record itself is dead-lettered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from sqlalchemy.exc import DataError, OperationalError

from services.common.codec import decode
from services.common.consume import ConsumeLoop, doubling_backoff
from services.common.dlq import DeadLetters
from services.common.messages import DeadLetter

TP = TopicPartition("replies.requested", 0)


def record(offset: int, topic: str = TP.topic) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic, partition=0, offset=offset, timestamp=0, timestamp_type=0,
        key=b"k", value=b"{}", checksum=None, serialized_key_size=1,
        serialized_value_size=2, headers=(),
    )  # fmt: skip


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> None:
        self.sent.append((topic, value or b""))


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
    loop = ConsumeLoop(
        consumer,
        handle,
        name="replies",
        dead_letters=DeadLetters(Producer(), "publish"),
        clock=lambda: 0.0,
    )
    await loop.run_once()
    await loop.run_once()
    assert handled == [0]  # nothing after the deferred record was handled
    assert consumer.commits == []  # nor committed past it
    assert TP in consumer.paused
    assert consumer.seeks == [0, 0, 0]  # back on the deferred record each time


WEB_TP = TopicPartition("mentions.classified", 0)


@dataclass
class ReplayingConsumer:
    """One partition read from its position; pause, seek and resume as Kafka does."""

    records: list[ConsumerRecord[bytes, bytes]]
    position: int = 0
    paused: bool = False
    commits: list[int] = field(default_factory=list)

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, Any]:
        if self.paused or self.position >= len(self.records):
            return {}
        batch = self.records[self.position :]
        self.position = len(self.records)
        return {WEB_TP: batch}

    def pause(self, tp: TopicPartition) -> None:
        self.paused = True

    def resume(self, tp: TopicPartition) -> None:
        self.paused = False

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets[WEB_TP])

    def assignment(self) -> set[TopicPartition]:
        return {WEB_TP}

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.records)


async def test_an_outage_is_waited_out_and_a_bad_record_is_dead_lettered() -> None:
    calls: dict[int, int] = {0: 0, 1: 0}

    async def handle(rec: ConsumerRecord[bytes, bytes]) -> None:
        calls[rec.offset] += 1
        if rec.offset == 0 and calls[0] < 3:  # the database is down twice, then back
            raise OperationalError("SELECT 1", {}, ConnectionError("gone"))
        if rec.offset == 1:  # a value the database will never take
            raise DataError("INSERT", {}, ValueError("value too long"))

    now = [0.0]
    consumer = ReplayingConsumer([record(0, WEB_TP.topic), record(1, WEB_TP.topic)])
    producer = Producer()
    loop = ConsumeLoop(
        consumer,
        handle,
        name=WEB_TP.topic,
        dead_letters=DeadLetters(producer, "triage-web"),
        retry_on=(OperationalError,),
        backoff=doubling_backoff(0.5, 30.0),
        clock=lambda: now[0],
    )
    waits = []
    for _ in range(6):
        await loop.run_once()
        if loop.deferred:
            waits.append(loop.deferred[WEB_TP] - now[0])
            now[0] = loop.deferred[WEB_TP]  # the wait passes
    assert calls == {0: 3, 1: 1}  # retried until stored; the bad one tried once
    assert waits == [0.5, 1.0]
    assert consumer.commits == [1, 2]  # nothing committed past a record not done
    assert [topic for topic, _ in producer.sent] == ["mentions.classified.dlq"]
    letter = decode(DeadLetter, producer.sent[0][1])
    assert (letter.offset, letter.stage) == (1, "triage-web.handle")
    assert "value too long" in letter.error


async def test_a_new_broker_epoch_reads_every_partition_again_from_the_beginning() -> None:
    """A memory-only broker restarted: the records put off were the old epoch's, and
    the new one is read from offset 0 (its producers send their window again)."""
    handled: list[int] = []

    async def handle(rec: ConsumerRecord[bytes, bytes]) -> float | None:
        handled.append(rec.offset)
        return 1e12 if rec.offset == 1 else None

    consumer = ReplayingConsumer(records=[record(0, WEB_TP.topic), record(1, WEB_TP.topic)])
    loop = ConsumeLoop(
        consumer,
        handle,
        name="web",
        dead_letters=DeadLetters(Producer(), "triage-web"),
        clock=lambda: 0.0,
    )
    await loop.run_once()
    assert handled == [0, 1]
    assert consumer.paused  # offset 1 put off

    await loop._on_new_epoch("old", "new")
    consumer.records = [record(0, WEB_TP.topic)]  # what was sent again so far
    await loop.run_once()

    assert handled == [0, 1, 0]  # read again from the beginning
    assert not consumer.paused
    assert loop.deferred == {}
    assert loop.held == {}


async def test_a_dead_letter_that_cannot_be_sent_holds_its_record_in_the_publisher() -> None:
    """Issue 17 (Medium 1): the publisher's decode ignored the retry time a failed
    dead letter returned, so the record was committed and lost. In its consume loop
    (the common one) nothing is committed until the letter is acknowledged."""
    from aiokafka.errors import KafkaConnectionError  # noqa: PLC0415 - this test only

    from services.publish.agents import consume_loop  # noqa: PLC0415

    class Flaky(Producer):
        def __init__(self) -> None:
            super().__init__()
            self.down = 2

        async def send_and_wait(
            self, topic: str, value: bytes | None = None, key: bytes | None = None
        ) -> None:
            if self.down:
                self.down -= 1
                raise KafkaConnectionError("broker gone")
            await super().send_and_wait(topic, value, key)

    async def handle(rec: ConsumerRecord[bytes, bytes]) -> None:
        decode(DeadLetter, b"not json")

    now = [0.0]
    consumer = ReplayingConsumer([record(0, WEB_TP.topic), record(1, WEB_TP.topic)])
    producer = Flaky()
    loop = consume_loop(consumer, handle, name="t", producer=producer, clock=lambda: now[0])
    for _ in range(6):
        await loop.run_once()
        assert consumer.commits in ([], [1], [1, 2])
        if loop.deferred:
            now[0] = loop.deferred[WEB_TP]
    assert consumer.commits == [1, 2]
    assert [decode(DeadLetter, v).offset for _, v in producer.sent] == [0, 1]


async def test_the_publisher_retries_only_connection_errors() -> None:
    """Issue 17 (Low 2): a DataError (a value the database will never take) was
    retried for ever and stopped the partition; now it is dead-lettered. A lost
    connection is still waited out."""
    from sqlalchemy.exc import IntegrityError, InterfaceError  # noqa: PLC0415

    from services.publish.agents import consume_loop  # noqa: PLC0415

    calls: dict[int, int] = {0: 0, 1: 0, 2: 0}

    async def handle(rec: ConsumerRecord[bytes, bytes]) -> None:
        calls[rec.offset] += 1
        if rec.offset == 0 and calls[0] < 2:
            raise InterfaceError("SELECT 1", {}, ConnectionError("connection closed"))
        if rec.offset == 1:
            raise DataError("INSERT", {}, ValueError("value too long for varchar(300)"))
        if rec.offset == 2:
            raise IntegrityError("INSERT", {}, ValueError("not null"))

    now = [0.0]
    consumer = ReplayingConsumer([record(i, WEB_TP.topic) for i in range(3)])
    producer = Producer()
    loop = consume_loop(consumer, handle, name="t", producer=producer, clock=lambda: now[0])
    for _ in range(6):
        await loop.run_once()
        if loop.deferred:
            now[0] = loop.deferred[WEB_TP]
    assert calls == {0: 2, 1: 1, 2: 1}
    assert consumer.commits == [1, 2, 3]
    letters = [decode(DeadLetter, v) for _, v in producer.sent]
    assert [(x.offset, x.stage) for x in letters] == [(1, "publish.handle"), (2, "publish.handle")]
    assert "value too long" in letters[0].error


async def test_an_old_epochs_commit_is_not_where_a_rebalance_resumes_the_new_one() -> None:
    """Records fetched from the old broker, still being handled when the new one came
    up: the rest of their batch is dropped, and a rebalance later in the new epoch
    reads a partition from offset 0 (not from an old-epoch commit) until a record of
    the new epoch has been committed."""
    handled: list[int] = []
    loop: ConsumeLoop

    async def handle(rec: ConsumerRecord[bytes, bytes]) -> None:
        handled.append(rec.offset)
        if rec.offset == 2 and len(handled) == 3:  # the watch sees the new broker meanwhile
            await loop._on_new_epoch("old", "new")

    consumer = ReplayingConsumer(records=[record(n, WEB_TP.topic) for n in range(5)])
    loop = ConsumeLoop(
        consumer, handle, name="web", dead_letters=DeadLetters(Producer(), "triage-web")
    )
    await loop.run_once()
    assert handled == [0, 1, 2]  # 3 and 4 were the old epoch's: not handled
    assert consumer.commits == [1, 2, 3]  # 3 may have reached the new broker

    consumer.records = []  # nothing sent again yet
    await loop.run_once()  # the rewind
    assert consumer.position == 0
    consumer.position = 3  # a rebalance: the group resumes from the commit of 3
    loop.assigned({WEB_TP})
    assert consumer.position == 0  # from the beginning of the new epoch instead

    consumer.records = [record(n, WEB_TP.topic) for n in range(2)]  # sent again
    await loop.run_once()
    assert handled == [0, 1, 2, 0, 1]
    consumer.position = 1  # a later rebalance, after a commit in the new epoch
    loop.assigned({WEB_TP})
    assert consumer.position == 1  # that commit is the new epoch's: kept
