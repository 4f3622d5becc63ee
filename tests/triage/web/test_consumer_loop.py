"""The web's ConsumerLoop on a scripted consumer: a database outage is waited
out on the same record; an error about the record itself is dead-lettered."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from sqlalchemy.exc import DataError, OperationalError

from services.common.codec import decode
from services.common.messages import DeadLetter
from services.triage.web.consumers import ConsumerLoop

TP = TopicPartition("mentions.classified", 0)


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=TP.topic, partition=0, offset=offset, timestamp=0, timestamp_type=0,
        key=b"k", value=b"{}", checksum=None, serialized_key_size=1,
        serialized_value_size=2, headers=(),
    )  # fmt: skip


class OnePoll:
    def __init__(self, *records: ConsumerRecord[bytes, bytes]) -> None:
        self.records = list(records)
        self.commits: list[int] = []

    async def getmany(self, **_: Any) -> dict[TopicPartition, Any]:
        records, self.records = self.records, []
        return {TP: records} if records else {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets[TP])

    def highwater(self, tp: TopicPartition) -> int:
        return 2


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((topic, value))


async def test_an_outage_is_waited_out_and_a_bad_record_is_dead_lettered() -> None:
    calls: dict[int, int] = {0: 0, 1: 0}
    sleeps: list[float] = []

    async def handle(rec: ConsumerRecord[bytes, bytes]) -> str:
        calls[rec.offset] += 1
        if rec.offset == 0 and calls[0] < 3:  # the database is down twice, then back
            raise OperationalError("SELECT 1", {}, ConnectionError("gone"))
        if rec.offset == 1:  # a value the database will never take
            raise DataError("INSERT", {}, ValueError("value too long"))
        return "stored"

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    consumer, producer = OnePoll(record(0), record(1)), Producer()
    loop = ConsumerLoop(consumer, producer, handle, name=TP.topic, sleep=sleep)
    await loop.run_once()
    assert calls == {0: 3, 1: 1}  # retried until stored; the bad one tried once
    assert sleeps == [0.5, 1.0]
    assert [topic for topic, _ in producer.sent] == ["mentions.classified.dlq"]
    letter = decode(DeadLetter, producer.sent[0][1])
    assert (letter.offset, letter.stage) == (1, "triage-web.handle")
    assert "value too long" in letter.error
    assert consumer.commits == [2]
