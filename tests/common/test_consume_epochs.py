"""``consuming()`` against a real memory-only broker that is restarted empty (a
new epoch): the consumer is replaced by a fresh one, which reads what is sent to
the new broker from its beginning (integration: a Tansu broker of its own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.common.bootstrap import ensure_topics
from services.common.consume import ConsumeLoop, Record, consuming
from services.common.dlq import DeadLetters
from services.common.kafka import KafkaSettings
from services.devstack.broker import EmbeddedBroker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _send(kafka: KafkaSettings, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(kafka.topic("replies.requested"), value, key=value)
    finally:
        await producer.stop()


def _loops(
    handled: list[bytes], loops: list[ConsumeLoop]
) -> Callable[[AIOKafkaConsumer], ConsumeLoop]:
    """Makes each consumer's loop (listed in ``loops``); what they read goes to ``handled``."""

    async def handle(record: Record) -> None:
        handled.append(record.value or b"")

    def loop(consumer: AIOKafkaConsumer) -> ConsumeLoop:
        made = ConsumeLoop(
            consumer,
            handle,
            name="replies.requested",
            dead_letters=DeadLetters(None, "test"),  # type: ignore[arg-type]
            epoch_poll_s=0.2,
        )
        loops.append(made)
        return made

    return loop


async def _until(condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("timed out")


async def test_a_new_epoch_gets_a_fresh_consumer_that_reads_it_from_the_start(
    tmp_path: Path,
) -> None:
    port = free_port()
    kafka = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{port}", topic_prefix="", request_timeout_ms=3000
    )
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log").start()
    handled: list[bytes] = []
    loops: list[ConsumeLoop] = []
    loop = _loops(handled, loops)

    try:
        await ensure_topics(kafka)
        task = asyncio.create_task(
            consuming(kafka, ["replies.requested"], group="test", loop=loop)()
        )
        try:
            await _send(kafka, b"old-1", b"old-2")
            await _until(lambda: len(handled) == 2, 60)

            broker.stop()  # memory only: everything on it is gone
            broker.start()
            await ensure_topics(kafka)
            await _send(kafka, b"new-1", b"new-2", b"new-3")  # a producer's window
            await _until(lambda: len(handled) == 5, 60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        broker.stop()
    assert sorted(handled[:2]) == [b"old-1", b"old-2"]
    assert sorted(handled[2:]) == [b"new-1", b"new-2", b"new-3"]
    assert len(loops) == 2  # a fresh consumer for the new epoch
    assert loops[1].settled is not None  # which reads what it is given from offset 0


async def test_a_fresh_consumer_started_before_the_topics_are_back_reads_them_soon(
    tmp_path: Path,
) -> None:
    """The fresh consumer for a new epoch may start and join the new broker's group
    before the supervisor has created its topics again: it reads them once they are
    there (and what is sent to them), without a restart of its own."""
    port = free_port()
    kafka = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{port}", topic_prefix="", request_timeout_ms=3000
    )
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log").start()
    handled: list[bytes] = []
    loops: list[ConsumeLoop] = []
    loop = _loops(handled, loops)

    try:
        await ensure_topics(kafka)
        task = asyncio.create_task(
            consuming(kafka, ["replies.requested"], group="test", loop=loop)()
        )
        try:
            await _send(kafka, b"old-1")
            await _until(lambda: len(handled) == 1, 60)

            broker.stop()
            broker.start()
            # The fresh consumer is made and joins while the topics are not there.
            await _until(lambda: len(loops) == 2, 30)
            await asyncio.sleep(3)
            await ensure_topics(kafka)
            await _send(kafka, b"new-1", b"new-2")
            await _until(lambda: len(handled) == 3, 30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        broker.stop()
    assert sorted(handled[1:]) == [b"new-1", b"new-2"]
