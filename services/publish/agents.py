"""Stream entrypoints: decode → call the use case → produce. The record handlers
of the publisher's consumers — ``replies.requested`` (:meth:`Publisher.handle`,
then ``replies.published`` / ``replies.failed``), ``mentions.raw`` (engagements
and "stop" replies), ``consent.withdrawn`` (take-downs), ``speakers.paused``
(pauses and resumes: the replies held for a person resumed are requested again),
``replies.action`` (hide / unhide) — and the sweep behind take-downs and resumes.
They run in the common :class:`~services.common.consume.ConsumeLoop`
(:func:`consume_loop`: the publisher's dead letters, metrics and waits); the
delivery guarantees are in the publish README.

Commands (``replies.requested``, ``consent.withdrawn``, ``speakers.paused``,
``replies.action``) are obeyed only when the triage web signed them
(:mod:`services.common.signing`), checked before anything else; a request is also
screened (:meth:`Publisher.screen`) before the ledger opens it. What is refused is
dead-lettered at stage ``publish.verify`` and counted in
``publish_rejected_commands_total``; never posted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from services.common import topics
from services.common.codec import decode, encode, encode_key
from services.common.consume import ConsumeLoop, Record, RecordHandler, fixed_backoff
from services.common.db import database_unreachable
from services.common.dlq import DeadLetters, Sender
from services.common.kafka import KafkaSettings
from services.common.messages import (
    ConsentWithdrawn,
    MentionReceived,
    ModerateReply,
    PublishReply,
    ReplyPublished,
    SpeakerPaused,
)
from services.common.signing import CommandKeys, SignatureError
from services.publish import metrics
from services.publish.exceptions import CommandRejected
from services.publish.outcomes import Done, Outcome, Retry
from services.publish.protector import Protector
from services.publish.publisher import Publisher

log = logging.getLogger(__name__)

#: Wait after a database or broker failure before the same record is tried again (s).
INFRA_BACKOFF_S = 5.0


def infra_unreachable(exc: BaseException) -> bool:
    """What makes a record wait and be tried again, rather than be dead-lettered: the
    database (:func:`~services.common.db.database_unreachable`, a Postgres restart
    included) or the broker out of reach. Not a DataError, an IntegrityError or any
    other error about the record itself: tried again it fails again, and the
    partition behind it would stop for good."""
    return isinstance(exc, KafkaError) or database_unreachable(exc)


def _count_dead_letter(record: Record, step: str) -> None:
    metrics.DEAD_LETTERS.labels(record.topic, step).inc()


def consume_loop(
    consumer: AIOKafkaConsumer,
    handle: RecordHandler,
    *,
    name: str,
    producer: Sender,
    poll_timeout_ms: int = 1000,
    clock: Callable[[], float] = time.time,
) -> ConsumeLoop:
    """The publisher's consume loop: dead letters with stage ``publish.*``, a
    database or broker failure waited out :data:`INFRA_BACKOFF_S` at a time."""
    return ConsumeLoop(
        consumer,
        handle,
        name=name,
        dead_letters=DeadLetters(producer, "publish", _count_dead_letter),
        retry_if=infra_unreachable,
        backoff=fixed_backoff(INFRA_BACKOFF_S),
        lag=metrics.CONSUMER_LAG,
        poll_timeout_ms=poll_timeout_ms,
        clock=clock,
    )


class Agents:
    """The record handlers of the publisher's consumers, and its sweeps."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        producer: Sender,
        kafka: KafkaSettings,
        keys: CommandKeys,
        protector: Protector | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.protector = protector
        self.publisher = publisher
        self.producer = producer
        self.kafka = kafka
        self.keys = keys
        self.clock = clock

    def _verified(self, topic: str, record: Record) -> None:
        """Raise :class:`SignatureError` (counted) unless the triage web signed it."""
        try:
            self.keys.verify(topic, record.value)
        except SignatureError as exc:
            metrics.REJECTED_COMMANDS.labels(topic, exc.reason).inc()
            log.warning("%s[%d]@%d refused: %s", topic, record.partition, record.offset, exc)
            raise

    # -- replies.requested ---------------------------------------------------------

    async def on_reply_requested(self, record: Record) -> float | None:
        self._verified(topics.REPLIES_REQUESTED, record)
        request = decode(PublishReply, record.value)
        rejection = await self.publisher.screen(request)
        if rejection is not None:
            # Signed by the web, so the web waits for an outcome: it hears it, then
            # the record is dead-lettered (again on a redelivery: both are idempotent).
            await self.producer.send_and_wait(
                self.kafka.topic(topics.REPLIES_FAILED),
                encode(rejection.failed(request)),
                key=encode_key(request.question_id),
            )
            metrics.REJECTED_COMMANDS.labels(topics.REPLIES_REQUESTED, rejection.reason).inc()
            log.warning("reply %s refused: %s", request.reply_id, rejection.message)
            raise CommandRejected(rejection.reason, rejection.message)
        outcome = await self.publisher.handle(request, command=record.value)
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
        await self.publisher.observe_mention(decode(MentionReceived, record.value))
        return None

    # -- consent.withdrawn ---------------------------------------------------------------

    async def on_consent_withdrawn(self, record: Record) -> float | None:
        self._verified(topics.CONSENT_WITHDRAWN, record)
        event = decode(ConsentWithdrawn, record.value)
        return await self._settle(await self.publisher.withdraw(event), event.speaker_ref)

    async def sweep_take_downs(self, every_s: float) -> None:
        """Forever, from start: take down the published replies whose consent was
        withdrawn (:meth:`Publisher.take_down_withdrawn`), and request again the
        replies still held for a person resumed (:meth:`release_held`: a publisher
        stopped between a resume and its requests). A failed sweep is logged and the
        next one comes as usual: this loop must not die."""
        while True:
            try:
                count = await self.publisher.take_down_withdrawn()
                released = await self.release_held()
            except (SQLAlchemyError, OSError, KafkaError) as exc:
                log.warning("take-down sweep failed: %s; next in %.0f s", exc, every_s)
            except Exception:  # the outermost handler of one sweep
                log.exception("take-down sweep failed; next in %.0f s", every_s)
            else:
                if count:
                    log.info("take-down sweep: %d replies taken down", count)
                if released:
                    log.info("sweep: %d held replies requested again", released)
            await asyncio.sleep(every_s)

    # -- speakers.paused -----------------------------------------------------------------

    async def on_speaker_paused(self, record: Record) -> float | None:
        """A signed pause or resume of a person → the ledger (the latest decision wins);
        on resume, the replies held for them are requested again."""
        self._verified(topics.SPEAKERS_PAUSED, record)
        event = decode(SpeakerPaused, record.value)
        await self.publisher.pause(event)
        await self.release_held(event.speaker_ref)  # a resume's, also when redelivered
        return None

    async def release_held(self, speaker_ref: str | None = None) -> int:
        """Request again, as the triage web signed them, the replies held for a person no
        longer paused (``speaker_ref``, or anyone): each goes back on
        ``replies.requested`` under its question, and is handled like any request (the
        governor, the rate limits, at most once). A held reply is let go only once the
        broker has its request; how many were."""
        released = 0
        ledger = self.publisher.ledger
        for held in await ledger.held_for_resumed(speaker_ref):
            if held.command is not None:
                await self.producer.send_and_wait(
                    self.kafka.topic(topics.REPLIES_REQUESTED),
                    held.command,
                    key=encode_key(held.question_id),
                )
            else:
                log.warning(
                    "reply %s was held without its command: it is not requested again",
                    held.reply_id,
                )
            if await ledger.release(held.reply_id):
                released += 1
                metrics.RELEASED.inc()
        return released

    # -- protection: replies.action, and the watcher -----------------------------------

    async def on_reply_action(self, record: Record) -> float | None:
        """A signed hide / unhide command → the platform → ``replies.moderated``."""
        self._verified(topics.REPLIES_ACTION, record)
        command = decode(ModerateReply, record.value)
        assert self.protector is not None
        outcome = await self.protector.moderate(command)
        if isinstance(outcome, Retry):
            log.info("action %s put off: %s", command.action_id, outcome.reason)
            return outcome.at
        await self.producer.send_and_wait(
            self.kafka.topic(topics.REPLIES_MODERATED),
            encode(outcome.message),
            key=encode_key(command.reply_id),
        )
        await self.protector.ledger.mark_action_announced(command.action_id)
        return None

    async def watch_replies(self, every_s: float) -> None:
        """Forever, from start: read the replies under the watched answers, then
        announce on ``replies.received`` every kept reply not announced yet (those a
        killed watcher kept but did not announce, first). A failed round is logged and
        the next one comes as usual: this loop must not die."""
        assert self.protector is not None
        while True:
            try:
                await self._announce_seen()
                new = await self.protector.sweep()
                if new:
                    log.info("protection: %d new replies under our answers", new)
                    await self._announce_seen()
            except Exception as exc:  # the outermost handler of one round
                if infra_unreachable(exc):
                    log.warning("protection watch failed: %s; next in %.0f s", exc, every_s)
                else:
                    log.exception("protection watch failed; next in %.0f s", every_s)
            await asyncio.sleep(every_s)

    async def _announce_seen(self) -> None:
        assert self.protector is not None
        for row in await self.protector.ledger.unannounced():
            await self.producer.send_and_wait(
                self.kafka.topic(topics.REPLIES_RECEIVED),
                row.payload.encode("utf-8"),
                key=encode_key(row.answer_post_id),
            )
            await self.protector.ledger.mark_announced(row.reply_key)

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
