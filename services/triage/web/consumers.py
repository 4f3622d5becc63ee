"""The triage web's stream side: two consumers and the outbox relay.

- ``mentions.classified`` → a question in the database (idempotent on the
  mention id: a redelivered record changes nothing).
- ``replies.published`` / ``replies.failed`` → the reply's outcome on the
  question's timeline.
- The outbox relay sends what the web's transactions wrote to the ``outbox``
  table (``questions.assigned``, ``answers.recorded``, ``replies.requested``)
  and marks it sent once the broker acknowledged it. A crash between the two
  sends it again: consumers dedupe on the message's own ids.

A record is committed only after its effect is in the database. A record that
cannot be decoded goes to ``<topic>.dlq`` with its bytes; while the database
is down the consumer retries the same record with a backoff (nothing skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from services.common import topics
from services.common.codec import DecodeError, decode
from services.common.dlq import dead_letter, send_dead_letter
from services.common.kafka import KafkaSettings
from services.common.messages import MentionClassified, ReplyFailed, ReplyPublished
from services.triage.web import metrics
from services.triage.web.models import OutboxMessage
from services.triage.web.store import TriageStore

log = logging.getLogger(__name__)

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
Handler = Callable[[Record], Awaitable[str]]

#: First and longest wait before retrying a record after a database failure (s).
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 30.0
#: Sent outbox rows are kept this long (audit of what was announced), then pruned.
OUTBOX_KEEP = timedelta(days=7)


class RecordHandlers:
    """Decode → store. Each returns the outcome label for the metrics."""

    def __init__(self, store: TriageStore) -> None:
        self.store = store

    async def classified(self, record: Record) -> str:
        message = decode(MentionClassified, record.value or b"")
        question = await self.store.ingest(message)
        if question is None:
            log.debug("mention %s already stored", message.mention.id)
            return "duplicate"
        log.info(
            "question %s from mention %s: %s (priority %d)",
            question.id,
            message.mention.id,
            question.status,
            question.priority,
            extra={"mention_id": message.mention.id, "question_id": question.id},
        )
        return "stored"

    async def reply_outcome(self, record: Record) -> str:
        outcome: BaseModel
        if record.topic.endswith(topics.REPLIES_PUBLISHED):
            outcome = decode(ReplyPublished, record.value or b"")
        else:
            outcome = decode(ReplyFailed, record.value or b"")
        assert isinstance(outcome, ReplyPublished | ReplyFailed)
        changed = await self.store.reply_outcome(outcome)
        return "stored" if changed else "duplicate"


class ConsumerLoop:
    """Reads records in order per partition, hands each to ``handle`` and
    commits it once handled (or dead-lettered)."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        handle: Handler,
        *,
        name: str,
        poll_timeout_ms: int = 1000,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.handle = handle
        self.name = name
        self.poll_timeout_ms = poll_timeout_ms
        self.sleep = sleep

    async def run(self) -> None:
        log.info("%s consumer running", self.name)
        while True:
            await self.run_once()

    async def run_once(self) -> None:
        batch = await self.consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=200)
        for tp, records in batch.items():
            for record in records:
                await self._one(tp, record)
            last = records[-1].offset if records else None
            if last is None:
                continue
            try:
                await self.consumer.commit({tp: last + 1})
            except (CommitFailedError, KafkaError) as exc:
                # Rebalanced away or broker gone: the records come again; storing
                # them is idempotent.
                log.warning(
                    "%s: commit of %s[%d] failed: %s", self.name, tp.topic, tp.partition, exc
                )
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                    max(0, highwater - last - 1)
                )

    async def _one(self, tp: TopicPartition, record: Record) -> None:
        wait = RETRY_INITIAL_S
        while True:
            try:
                outcome = await self.handle(record)
            except DecodeError as exc:
                await self._dead_letter(record, "decode", str(exc))
                outcome = "dead_letter"
            except (OperationalError, InterfaceError, OSError) as exc:
                # The database is unreachable: the same record, later. (Any other
                # database error is about this record: retrying would never end.)
                log.warning(
                    "%s: database unavailable at %s[%d]@%d (%s); retrying in %.1fs",
                    self.name,
                    tp.topic,
                    tp.partition,
                    record.offset,
                    type(exc).__name__,
                    wait,
                )
                await self.sleep(wait)
                wait = min(RETRY_MAX_S, wait * 2)
                continue
            except Exception as exc:
                log.exception(
                    "%s: record %s[%d]@%d failed", self.name, tp.topic, tp.partition, record.offset
                )
                await self._dead_letter(record, "handle", f"{type(exc).__name__}: {exc}")
                outcome = "dead_letter"
            metrics.MESSAGES_IN.labels(self.name, outcome).inc()
            return

    async def _dead_letter(self, record: Record, stage: str, error: str) -> None:
        letter = dead_letter(
            topic=record.topic,
            stage=f"triage-web.{stage}",
            error=error[:4000],
            value=record.value or b"",
            key=record.key,
            partition=record.partition,
            offset=record.offset,
        )
        wait = RETRY_INITIAL_S
        while True:
            try:
                await send_dead_letter(self.producer, letter, physical_topic=record.topic)
            except KafkaError as exc:
                log.warning(
                    "%s: dead-letter send failed (%s); retrying in %.1fs", self.name, exc, wait
                )
                await self.sleep(wait)
                wait = min(RETRY_MAX_S, wait * 2)
                continue
            metrics.DEAD_LETTERS.labels(self.name).inc()
            return


class OutboxRelay:
    """Sends outbox rows in id order and marks them sent once acknowledged."""

    def __init__(
        self,
        store: TriageStore,
        producer: AIOKafkaProducer,
        kafka: KafkaSettings,
        *,
        every_s: float = 0.5,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.producer = producer
        self.kafka = kafka
        self.every_s = every_s
        self.sleep = sleep
        self._wake = asyncio.Event()
        self._since_prune = 0

    def wake(self) -> None:
        """Send now (a request just wrote to the outbox) rather than at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        log.info("outbox relay running")
        wait = self.every_s
        while True:
            try:
                sent = await self.run_once()
            except (KafkaError, SQLAlchemyError, OSError) as exc:
                log.warning(
                    "outbox relay: %s: %s; retrying in %.1fs", type(exc).__name__, exc, wait
                )
                await self.sleep(wait)
                wait = min(RETRY_MAX_S, wait * 2)
                continue
            wait = self.every_s
            if sent:
                continue  # more may be waiting
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.every_s)

    async def run_once(self) -> int:
        """Send one batch; returns how many were sent."""
        sent = await self.store.outbox_relay(self._send)
        metrics.OUTBOX_PENDING.set(await self.store.outbox_backlog())
        if not sent:
            self._since_prune += 1
            if self._since_prune >= 1000:
                self._since_prune = 0
                await self.store.outbox_prune(OUTBOX_KEEP)
            return 0
        log.info("outbox: sent %d message(s)", sent)
        return sent

    async def _send(self, rows: Sequence[OutboxMessage]) -> None:
        futures = [
            await self.producer.send(self.kafka.topic(row.topic), row.value, key=row.key)
            for row in rows
        ]
        await asyncio.gather(*futures)
        for row in rows:
            metrics.MESSAGES_OUT.labels(row.topic).inc()
