"""Stream entrypoints: decode → call the use case → produce → commit.

Three consumers, each with its own group:

- ``replies.requested`` (group ``publish``): :meth:`Publisher.handle`, then
  ``replies.published`` / ``replies.failed``. Keyed by question id, so one
  question is handled by one publisher at a time (scale-out by partitions).
- ``mentions.raw`` (group ``publish-mentions``): engagements and "stop" replies.
- ``consent.withdrawn`` (group ``publish-consent``): takes published replies down.

Beside them, a sweep (:meth:`Agents.sweep_take_downs`) takes down any published
reply a withdrawal covers that is still up (a take-down that failed, or a
publisher killed between publishing a reply and taking it down).

Delivery: the offset of a record is committed only after its outcome is durable
in the ledger and its output acknowledged by the broker (at-least-once out; the
ledger makes a redelivered request repeat the outcome, never the post). A record
that must wait (rate-limited account, retry backoff, database or broker down)
pauses its partition and is read again from the same offset when the wait is
over: nothing after it on that partition is committed meanwhile, other
partitions keep flowing, and the consumer keeps polling (no busy loop, no
eviction from the group). A record that cannot be decoded goes to
``<topic>.dlq`` with its bytes; so does one whose handling raised an
unexpected error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from services.common import topics
from services.common.codec import DecodeError, decode, encode, encode_key
from services.common.dlq import Sender, dead_letter, send_dead_letter
from services.common.kafka import KafkaSettings
from services.common.messages import (
    ConsentWithdrawn,
    MentionReceived,
    PublishReply,
    ReplyPublished,
)
from services.publish import metrics
from services.publish.publisher import Done, Outcome, Publisher, Retry

log = logging.getLogger(__name__)

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
#: Handles one record: None when done (commit it), else when to read it again (epoch s).
RecordHandler = Callable[[Record], Awaitable[float | None]]

#: Wait after a database or broker failure before the same record is tried again (s).
INFRA_BACKOFF_S = 5.0


class PartitionLoop:
    """Feeds records to ``handle`` one at a time per partition and commits each one
    it finishes; a record ``handle`` puts off pauses its partition until then."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        handle: RecordHandler,
        *,
        name: str,
        poll_timeout_ms: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.consumer = consumer
        self.handle = handle
        self.name = name
        self.poll_timeout_ms = poll_timeout_ms
        self.clock = clock
        #: Paused partitions and when to read them again.
        self.deferred: dict[TopicPartition, float] = {}
        #: The offset each paused partition is held at (the record put off).
        self.held: dict[TopicPartition, int] = {}

    async def run(self) -> None:
        log.info("%s consumer running", self.name)
        while True:
            await self.run_once()

    async def run_once(self) -> None:
        """One poll and the records it brought."""
        self._resume_due()
        batch = await self.consumer.getmany(timeout_ms=self._poll_timeout_ms())
        for tp, records in batch.items():
            for record in records:
                if tp in self.deferred:
                    # Either the rest of the batch after the record just put off, or a
                    # rebalance that kept the partition here un-paused it and read on
                    # from the last commit: back onto the deferred record, paused, or
                    # the records after it would be committed past.
                    self.consumer.pause(tp)
                    self.consumer.seek(tp, self.held[tp])
                    break
                await self._one(tp, record)

    async def _one(self, tp: TopicPartition, record: Record) -> None:
        retry_at = await self.handle(record)
        if retry_at is not None:
            self.consumer.pause(tp)
            self.consumer.seek(tp, record.offset)
            self.deferred[tp] = retry_at
            self.held[tp] = record.offset
            log.info(
                "%s: %s[%d]@%d put off for %.1f s",
                self.name,
                tp.topic,
                tp.partition,
                record.offset,
                retry_at - self.clock(),
            )
            return
        try:
            await self.consumer.commit({tp: record.offset + 1})
        except (CommitFailedError, KafkaError) as exc:
            # Rebalanced away or the broker is gone: the record comes again, and the
            # ledger turns the repeat into the same outcome.
            log.warning(
                "%s: commit of %s[%d]@%d failed: %s",
                self.name,
                tp.topic,
                tp.partition,
                record.offset,
                exc,
            )
        highwater = self.consumer.highwater(tp)
        if highwater is not None:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - record.offset - 1)
            )

    def _resume_due(self) -> None:
        now = self.clock()
        assigned = self.consumer.assignment()
        for tp, at in list(self.deferred.items()):
            if tp not in assigned:  # revoked: the new owner reads it from the commit
                del self.deferred[tp]
                del self.held[tp]
            elif at <= now:
                del self.deferred[tp]
                del self.held[tp]
                self.consumer.resume(tp)

    def _poll_timeout_ms(self) -> int:
        if not self.deferred:
            return self.poll_timeout_ms
        soonest = (min(self.deferred.values()) - self.clock()) * 1000
        return int(min(self.poll_timeout_ms, max(10.0, soonest)))


class Agents:
    """The record handlers of the publisher's three consumers."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        producer: Sender,
        kafka: KafkaSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.publisher = publisher
        self.producer = producer
        self.kafka = kafka
        self.clock = clock

    # -- replies.requested ---------------------------------------------------------

    async def on_reply_requested(self, record: Record) -> float | None:
        request = await self._decode(record, PublishReply)
        if request is None:
            return None
        return await self._guard(record, lambda: self._publish(request))

    async def _publish(self, request: PublishReply) -> float | None:
        outcome = await self.publisher.handle(request)
        return await self._settle(outcome, request.question_id)

    async def announce(self, message: ReplyPublished, key: str) -> None:
        await self.producer.send_and_wait(
            self.kafka.topic(topics.REPLIES_PUBLISHED), encode(message), key=encode_key(key)
        )

    async def reconcile_at_start(self) -> None:
        """Reconcile ``sending`` replies, announcing those found (before consuming)."""
        for message in await self.publisher.reconcile_sending():
            await self.announce(message, message.question_id)
            await self.publisher.ledger.mark_announced(message.reply_id)

    # -- mentions.raw ------------------------------------------------------------------

    async def on_mention(self, record: Record) -> float | None:
        mention = await self._decode(record, MentionReceived)
        if mention is None:
            return None

        async def observe() -> float | None:
            await self.publisher.observe_mention(mention)
            return None

        return await self._guard(record, observe)

    # -- consent.withdrawn ---------------------------------------------------------------

    async def on_consent_withdrawn(self, record: Record) -> float | None:
        event = await self._decode(record, ConsentWithdrawn)
        if event is None:
            return None

        async def withdraw() -> float | None:
            return await self._settle(await self.publisher.withdraw(event), event.speaker_ref)

        return await self._guard(record, withdraw)

    async def sweep_take_downs(self, every_s: float) -> None:
        """Forever, from start: take down the published replies whose consent was
        withdrawn (:meth:`Publisher.take_down_withdrawn`). A failed sweep is logged
        and the next one comes as usual: this loop must not die."""
        while True:
            try:
                count = await self.publisher.take_down_withdrawn()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("take-down sweep failed: %s; next in %.0f s", exc, every_s)
            except Exception:  # the outermost handler of one sweep
                log.exception("take-down sweep failed; next in %.0f s", every_s)
            else:
                if count:
                    log.info("take-down sweep: %d replies taken down", count)
            await asyncio.sleep(every_s)

    # -- shared ----------------------------------------------------------------------------

    async def _settle(self, outcome: Outcome, key: str) -> float | None:
        if isinstance(outcome, Retry):
            log.info("%s put off until %.0f: %s", key, outcome.at, outcome.reason)
            return outcome.at
        assert isinstance(outcome, Done)
        if outcome.message is not None:
            topic = (
                topics.REPLIES_PUBLISHED
                if isinstance(outcome.message, ReplyPublished)
                else topics.REPLIES_FAILED
            )
            await self.producer.send_and_wait(
                self.kafka.topic(topic), encode(outcome.message), key=encode_key(key)
            )
            await self.publisher.ledger.mark_announced(outcome.message.reply_id)
        return None

    async def _guard(
        self, record: Record, work: Callable[[], Awaitable[float | None]]
    ) -> float | None:
        """Run ``work``; infrastructure failures put the record off, anything else
        dead-letters it (one bad record never stops the stream)."""
        try:
            return await work()
        except (SQLAlchemyError, KafkaError, OSError) as exc:
            log.warning(
                "%s[%d]@%d: %s; trying again in %.0f s",
                record.topic,
                record.partition,
                record.offset,
                exc,
                INFRA_BACKOFF_S,
            )
            return self.clock() + INFRA_BACKOFF_S
        except Exception as exc:  # the outermost handler of one record
            log.exception(
                "%s[%d]@%d could not be handled", record.topic, record.partition, record.offset
            )
            return await self._dead_letter(record, "handle", f"{type(exc).__name__}: {exc}")

    async def _decode(self, record: Record, model: type[Any]) -> Any:
        try:
            message = decode(model, record.value)
        except DecodeError as exc:
            await self._dead_letter(record, "decode", str(exc))
            return None
        assert isinstance(message, BaseModel)
        return message

    async def _dead_letter(self, record: Record, stage: str, error: str) -> float | None:
        letter = dead_letter(
            topic=record.topic,
            stage=f"publish.{stage}",
            error=error,
            value=record.value or b"",
            key=record.key,
            partition=record.partition,
            offset=record.offset,
        )
        try:
            await send_dead_letter(self.producer, letter)
        except KafkaError as exc:
            log.warning("could not dead-letter %s@%d: %s", record.topic, record.offset, exc)
            return self.clock() + INFRA_BACKOFF_S
        metrics.DEAD_LETTERS.labels(record.topic, stage).inc()
        return None
