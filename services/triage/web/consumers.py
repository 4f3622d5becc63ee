"""The triage web's stream side: two consumers and the outbox relay.

- ``mentions.classified`` → a question in the database (idempotent on the
  mention id: a redelivered record changes nothing).
- ``replies.published`` / ``replies.failed`` → the reply's outcome on the
  question's timeline.
- ``replies.classified`` / ``replies.moderated`` → the replies under our published
  answers, the hides the rules ask (signed commands on ``replies.action``), alerts,
  and what the publisher did (:class:`~services.triage.web.store.Protection`).
- The outbox relay sends what the web's transactions wrote to the ``outbox``
  table (``questions.assigned``, ``answers.recorded``, ``replies.requested``)
  and marks it sent once the broker acknowledged it. A crash between the two
  sends it again: consumers dedupe on the message's own ids.

Both consumers run in :class:`services.common.consume.ConsumeLoop`
(:func:`consume_loop`): a record is committed only after its effect is in the
database; one that cannot be decoded goes to ``<topic>.dlq`` with its bytes
(stage ``triage-web.decode``); while the database is down the same record is
tried again with a doubling wait (nothing skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from services.common import topics
from services.common.codec import decode
from services.common.consume import ConsumeLoop, Record, RecordHandler, doubling_backoff
from services.common.db import database_unreachable
from services.common.dlq import DeadLetters, Sender
from services.common.kafka import KafkaSettings
from services.common.messages import (
    MentionClassified,
    ReplyClassified,
    ReplyFailed,
    ReplyModerated,
    ReplyPublished,
)
from services.triage.rules import RulesFile
from services.triage.web import metrics
from services.triage.web.models import OutboxMessage
from services.triage.web.store import TriageStore

log = logging.getLogger(__name__)

#: First and longest wait before retrying a record after a database failure (s).
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 30.0
#: Sent outbox rows are kept this long (audit of what was announced), then pruned.
OUTBOX_KEEP = timedelta(days=7)


#: ``topic`` label of each consumer's metrics.
CLASSIFIED = topics.MENTIONS_CLASSIFIED
REPLIES = f"{topics.REPLIES_PUBLISHED},{topics.REPLIES_FAILED}"
PROTECTION = f"{topics.REPLIES_CLASSIFIED},{topics.REPLIES_MODERATED}"


def consume_loop(
    consumer: AIOKafkaConsumer, handle: RecordHandler, *, name: str, producer: Sender
) -> ConsumeLoop:
    """The web's consume loop: dead letters with stage ``triage-web.*``, the
    database's outages (:func:`~services.common.db.database_unreachable`; any other
    database error is about the record: retrying would never end) waited out with a
    doubling wait; metrics labelled ``name``."""

    def counted(_record: Record, _step: str) -> None:
        metrics.DEAD_LETTERS.labels(name).inc()
        metrics.MESSAGES_IN.labels(name, "dead_letter").inc()

    return ConsumeLoop(
        consumer,
        handle,
        name=name,
        dead_letters=DeadLetters(producer, "triage-web", counted),
        retry_if=database_unreachable,
        backoff=doubling_backoff(RETRY_INITIAL_S, RETRY_MAX_S),
        lag=metrics.CONSUMER_LAG,
    )


class RecordHandlers:
    """Decode → store, each record counted by outcome (stored, duplicate)."""

    def __init__(self, store: TriageStore, rules: RulesFile | None = None) -> None:
        self.store = store
        self.rules = rules

    async def classified(self, record: Record) -> None:
        metrics.MESSAGES_IN.labels(CLASSIFIED, await self._classified(record)).inc()

    async def reply_outcome(self, record: Record) -> None:
        metrics.MESSAGES_IN.labels(REPLIES, await self._reply_outcome(record)).inc()

    async def protection(self, record: Record) -> None:
        metrics.MESSAGES_IN.labels(PROTECTION, await self._protection(record)).inc()

    async def _protection(self, record: Record) -> str:
        """A judged reply under one of our answers (stored once; the hide the rules
        ask, signed, to the outbox), or what the publisher did with an action."""
        if record.topic.endswith(topics.REPLIES_MODERATED):
            event = decode(ReplyModerated, record.value or b"")
            return "stored" if await self.store.protection.moderated(event) else "unknown"
        message = decode(ReplyClassified, record.value or b"")
        assert self.rules is not None
        stored = await self.store.protection.ingest(message, self.rules.current().protection)
        if stored is None:
            return "duplicate"
        for alert in stored.alerts:
            metrics.PROTECTION_ALERTS.labels(alert.kind).inc()
        return "stored"

    async def _classified(self, record: Record) -> str:
        message = decode(MentionClassified, record.value or b"")
        question = await self.store.questions.ingest(message)
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

    async def _reply_outcome(self, record: Record) -> str:
        outcome: BaseModel
        if record.topic.endswith(topics.REPLIES_PUBLISHED):
            outcome = decode(ReplyPublished, record.value or b"")
        else:
            outcome = decode(ReplyFailed, record.value or b"")
        assert isinstance(outcome, ReplyPublished | ReplyFailed)
        changed = await self.store.answers.reply_outcome(outcome)
        return "stored" if changed else "duplicate"


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

    async def on_new_epoch(self, old: str, new: str) -> None:
        """The broker lost its records (a new epoch, also one that came while this
        process was down): the commands whose outcome has not come back are sent
        again (:meth:`~services.triage.web.store.outbox.Outbox.requeue_awaited`).
        Raises what the database raised: the producer's epoch watch then asks again
        at its next look, the new epoch not yet noted."""
        count = await self.store.outbox.requeue_awaited()
        log.warning(
            "broker epoch %s replaced %s: %d command(s) awaiting an outcome sent again",
            new,
            old,
            count,
        )
        self.wake()

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
        sent = await self.store.outbox.relay(self._send)
        metrics.OUTBOX_PENDING.set(await self.store.outbox.backlog())
        if not sent:
            self._since_prune += 1
            if self._since_prune >= 1000:
                self._since_prune = 0
                await self.store.outbox.prune(OUTBOX_KEEP)
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
