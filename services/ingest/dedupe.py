"""Remember which mention ids were already produced, in bounded memory.

The memory is rebuilt from the broker's own data: on start, ingest reads the
keys of ``mentions.raw`` from ``now - window`` (by timestamp) and keeps tailing
the topic, so a restarted ingest, or a second replica, knows what the others
produced. No extra store, and the dedupe state has exactly the durability of
the topic it protects (a wiped broker has no duplicates left to protect).
Until the rebuild has caught up (:class:`TailReadiness`), nothing may be produced:
the sink waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.common.kafka import KafkaSettings, make_consumer

log = logging.getLogger(__name__)


class ReadinessCheck(Protocol):
    """Is ingest able to tell duplicates apart yet (dedupe memory rebuilt)?"""

    async def wait(self, timeout: float) -> bool:
        """True once ready; waits at most ``timeout`` seconds."""
        ...


class SeenIds:
    """Ids seen within ``window_s`` seconds, at most ``max_ids`` of them (oldest evicted)."""

    def __init__(self, window_s: float, max_ids: int) -> None:
        self.window_s = window_s
        self.max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._pending: set[str] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, mention_id: object) -> bool:
        if mention_id in self._pending:
            return True
        at = self._seen.get(mention_id)  # type: ignore[call-overload]
        return at is not None and at >= time.time() - self.window_s

    def reserve(self, mention_id: str) -> bool:
        """Claim an id before producing it; False if already seen or in flight."""
        if mention_id in self:
            return False
        self._pending.add(mention_id)
        return True

    def release(self, mention_id: str) -> None:
        """Give a reservation back (the produce failed; a retry may try again)."""
        self._pending.discard(mention_id)

    def confirm(self, mention_id: str, at: float | None = None) -> None:
        self._pending.discard(mention_id)
        self.add(mention_id, at)

    def add(self, mention_id: str, at: float | None = None) -> None:
        at = time.time() if at is None else at
        previous = self._seen.get(mention_id)
        if previous is not None and previous >= at:
            return
        self._seen[mention_id] = at
        self._seen.move_to_end(mention_id)
        self._evict()

    def _evict(self) -> None:
        horizon = time.time() - self.window_s
        while self._seen:
            oldest_id, oldest_at = next(iter(self._seen.items()))
            if len(self._seen) > self.max_ids or oldest_at < horizon:
                del self._seen[oldest_id]
            else:
                break


class TopicTail:
    """Feeds :class:`SeenIds` from the keys of a topic, starting ``window`` ago.

    ``caught_up`` is set once the reader has reached the end offsets it saw at
    start: before that, ingest cannot tell a duplicate from a new mention.
    """

    def __init__(self, settings: KafkaSettings, topic: str, seen: SeenIds) -> None:
        self.settings = settings
        self.topic = topic
        self.seen = seen
        self.caught_up = asyncio.Event()
        self.read = 0

    async def run(self) -> None:
        while True:
            consumer = make_consumer(self.settings, group_id=None, enable_auto_commit=False)
            try:
                await consumer.start()
                await self._follow(consumer)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                log.warning("dedupe tail of %s interrupted (%s); reconnecting", self.topic, exc)
                await asyncio.sleep(1.0)
            finally:
                await consumer.stop()

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        partitions = consumer.partitions_for_topic(self.topic)
        while not partitions:
            await consumer.force_metadata_update()
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await asyncio.sleep(0.5)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        since_ms = int((time.time() - self.seen.window_s) * 1000)
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        targets = {tp: end for tp, end in ends.items() if end > 0}
        await self._check_caught_up(consumer, targets)
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for record in records:
                    if record.key:
                        self.seen.add(
                            record.key.decode("utf-8", "replace"), record.timestamp / 1000
                        )
                        self.read += 1
            await self._check_caught_up(consumer, targets)

    async def _check_caught_up(
        self, consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int]
    ) -> None:
        if self.caught_up.is_set():
            return
        positions = [await consumer.position(tp) for tp in targets]
        if all(pos >= end for pos, end in zip(positions, targets.values(), strict=True)):
            log.info("dedupe memory rebuilt from %s: %d ids", self.topic, len(self.seen))
            self.caught_up.set()


class TailReadiness:
    """Ready once the tail has caught up, and for as long as it keeps running."""

    def __init__(self, tail: TopicTail, task: asyncio.Task[None] | None = None) -> None:
        self.tail = tail
        self.task = task

    async def wait(self, timeout: float) -> bool:
        if self.task is not None and self.task.done():
            return False  # the tail died: duplicates can no longer be told apart
        if self.tail.caught_up.is_set() or timeout <= 0:
            return self.tail.caught_up.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.tail.caught_up.wait(), timeout)
        return self.tail.caught_up.is_set()
