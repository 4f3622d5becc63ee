"""Where every source hands its mentions: dedupe, then produce to ``mentions.raw``.

Sources (webhook, X, Mastodon, Bluesky, replay) only build :class:`MentionReceived`
values and call :meth:`MentionSink.submit`; this module is the one place that
knows about Kafka, dedupe and the counters. Nothing is produced before the dedupe
memory is rebuilt from the topic: a submit waits for it (a source started with
ingest would otherwise produce again what it produced before a restart).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common import topics
from services.common.codec import encode, encode_key
from services.common.dlq import dead_letter, send_dead_letter
from services.common.kafka import KafkaSettings
from services.common.messages import MentionReceived, Source
from services.ingest import metrics
from services.ingest.dedupe import ReadinessCheck, SeenIds
from services.ingest.exceptions import BrokerUnavailable, DedupeNotReady

log = logging.getLogger(__name__)

#: How long a submit waits for the dedupe memory before giving up (the caller retries).
READY_WAIT_S = 30.0


@dataclass
class SubmitResult:
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


class MentionSink(Protocol):
    async def submit(self, mentions: Sequence[MentionReceived], source: Source) -> SubmitResult:
        """Produce each mention not seen before; raise BrokerUnavailable if Kafka refuses
        (or :class:`DedupeNotReady` while duplicates cannot be told apart yet)."""
        ...

    async def dead_letter(self, *, source: Source, error: str, raw: bytes) -> None:
        """Keep an input that could not be understood, with the reason."""
        ...


class KafkaMentionSink:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        settings: KafkaSettings,
        seen: SeenIds,
        ready: ReadinessCheck,
        *,
        ready_wait_s: float = READY_WAIT_S,
    ) -> None:
        self.producer = producer
        self.settings = settings
        self.seen = seen
        self.ready = ready
        self.ready_wait_s = ready_wait_s
        self.topic = settings.topic(topics.MENTIONS_RAW)

    async def submit(self, mentions: Sequence[MentionReceived], source: Source) -> SubmitResult:
        if mentions and not await self.ready.wait(self.ready_wait_s):
            raise DedupeNotReady(
                "the dedupe memory is not rebuilt from the topic yet; nothing was produced"
            )
        result = SubmitResult()
        fresh: list[MentionReceived] = []
        for mention in mentions:
            if self.seen.reserve(mention.id):
                fresh.append(mention)
            else:
                result.duplicates.append(mention.id)
        try:
            futures = [
                await self.producer.send(self.topic, encode(m), key=encode_key(m.id)) for m in fresh
            ]
            records = await asyncio.gather(*futures)
        except (KafkaError, OSError) as exc:
            for mention in fresh:
                self.seen.release(mention.id)
            log.warning("producing %d mentions failed: %s", len(fresh), exc)
            raise BrokerUnavailable(f"Kafka did not accept the mentions: {exc}") from exc
        except BaseException:
            for mention in fresh:
                self.seen.release(mention.id)
            raise
        for mention, record in zip(fresh, records, strict=True):
            self.seen.confirm(mention.id, record.timestamp / 1000 if record.timestamp > 0 else None)
            result.accepted.append(mention.id)
        metrics.MENTIONS.labels(source.value, "accepted").inc(len(result.accepted))
        metrics.MENTIONS.labels(source.value, "duplicate").inc(len(result.duplicates))
        metrics.MESSAGES_OUT.labels("ingest", topics.MENTIONS_RAW).inc(len(result.accepted))
        metrics.DEDUPE_IDS.set(len(self.seen))
        return result

    async def dead_letter(self, *, source: Source, error: str, raw: bytes) -> None:
        letter = dead_letter(
            topic=topics.MENTIONS_RAW, stage=f"ingest.{source.value}", error=error, value=raw
        )
        try:
            await send_dead_letter(self.producer, letter, physical_topic=self.topic)
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailable(f"Kafka did not accept the dead letter: {exc}") from exc
        metrics.MENTIONS.labels(source.value, "dead_lettered").inc()
