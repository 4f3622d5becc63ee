"""A topic may come back from a memory-only broker's restart with another partition
count than it had (Tansu creates 4 partitions for a topic a client asks for first,
the bootstrap the configured 3). A producer still holding the old epoch's counts
would send to a partition the topic no longer has, which Tansu acknowledges and no
consumer is ever given: lost. At a new epoch the producer reads the metadata again
before it sends anything (integration: a Tansu broker of its own)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import NewTopic

from services.common.kafka import KafkaSettings, ResendingProducer, make_admin, make_producer
from services.devstack.broker import EmbeddedBroker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOPIC = "replies.requested"


async def _read_all(kafka: KafkaSettings, expected: int) -> tuple[set[bytes], set[int]]:
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=kafka.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: set[bytes] = set()
    try:
        deadline = time.monotonic() + 10
        while len(seen) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            seen |= {r.value or b"" for records in batch.values() for r in records}
        return seen, set(consumer.partitions_for_topic(TOPIC) or ())
    finally:
        await consumer.stop()


async def _recreate(kafka: KafkaSettings, partitions: int) -> None:
    admin = make_admin(kafka)
    await admin.start()
    try:
        if TOPIC in await admin.list_topics():
            await admin.delete_topics([TOPIC])
        await admin.create_topics([NewTopic(TOPIC, partitions, 1)])
    finally:
        await admin.close()


async def test_a_producer_sends_to_the_partitions_the_new_epoch_has(tmp_path: Path) -> None:
    port = free_port()
    kafka = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{port}",
        topic_prefix="",
        request_timeout_ms=3000,
        resend_log=tmp_path / "sent.db",
        epoch_poll_s=3600,  # the test says when the producer looks (check() below)
    )
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log").start()
    producer = make_producer(kafka)
    assert isinstance(producer, ResendingProducer)
    await producer.start()
    try:
        # First epoch: the topic made by the producer's first send (4 partitions).
        for n in range(20):
            await producer.send_and_wait(TOPIC, f"old-{n}".encode(), key=f"q{n}".encode())
        assert len(producer.client.cluster.partitions_for_topic(TOPIC)) == 4

        broker.stop()
        broker.start()
        await asyncio.sleep(0.3)  # the producer may make it again on reconnecting: 4
        await _recreate(kafka, partitions=3)  # as if the bootstrap was first: 3
        assert await producer.epoch.check()  # the new epoch: its window sent again
        for n in range(20):
            await producer.send_and_wait(TOPIC, f"new-{n}".encode(), key=f"q{n}".encode())
    finally:
        await producer.stop()
    try:
        seen, partitions = await _read_all(kafka, 40)
    finally:
        broker.stop()
    assert partitions == {0, 1, 2}  # the topic did come back with another count
    assert seen == {f"{era}-{n}".encode() for era in ("old", "new") for n in range(20)}
