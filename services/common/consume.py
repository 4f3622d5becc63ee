"""One Kafka consume loop for every aiokafka consumer: records in order per
partition, each committed once handled, put off without blocking the others.

A handler returns ``None`` when its record is done (committed at once), or the
time (epoch seconds) at which to read it again: its partition is paused and held
at that record, later records of the partition wait, other partitions flow, and
the consumer keeps polling (no busy loop, no eviction from the group). What a
handler raises is settled here, so one bad record never stops the stream:

- :class:`~services.common.codec.DecodeError` — the record goes to
  ``<topic>.dlq`` with stage ``<service>.<step>`` (``decode``; ``verify`` for a
  command refused before anything was done);
- one of ``retry_on``, or one ``retry_if`` says yes to (the database or the broker
  unreachable: :func:`services.common.db.database_unreachable`) — the record is
  put off by ``backoff(attempt)`` and read again;
- anything else — dead-lettered with stage ``<service>.handle``.

A dead letter that cannot be sent puts its record off too: nothing is committed
past a record that is neither handled nor dead-lettered.

When the broker's epoch changes (a memory-only broker restarted empty, and the
producers send their window again: :mod:`services.common.epoch`), the loop reads
the new epoch from its beginning: :func:`consuming` replaces the consumer with a
fresh one; a loop on its own seeks every assigned partition back to offset 0. Either
way, a partition assigned later in that epoch is read from 0 too until a record of
it has been committed there: a record fetched from the old broker and committed
just after the new one came up leaves an old-epoch offset in the new broker's
group, and a rebalance would resume from it, past the records sent again below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import Gauge

from services.common.codec import DecodeError
from services.common.dlq import DeadLetters
from services.common.epoch import EpochWatch
from services.common.kafka import (
    KafkaSettings,
    group_timeouts,
    make_consumer,
    start_when_reachable,
)

log = logging.getLogger(__name__)

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
#: Handles one record: None when done (commit it), else when to read it again (epoch s).
RecordHandler = Callable[[Record], Awaitable[float | None]]


def fixed_backoff(seconds: float) -> Callable[[int], float]:
    """The same wait before every retry."""
    return lambda _attempt: seconds


def doubling_backoff(initial_s: float, max_s: float) -> Callable[[int], float]:
    """``initial_s``, then twice as long each time, at most ``max_s``."""
    return lambda attempt: min(max_s, initial_s * 2**attempt)


#: Wait before the same record is tried again, unless the service says otherwise.
DEFAULT_BACKOFF = fixed_backoff(5.0)


class NewEpoch(Exception):
    """The broker's epoch changed under a loop that asked to be restarted then."""


class JoinStalled(Exception):
    """The consumer has not finished joining its group by the loop's ``join_by``."""


@dataclass
class ConsumeLoop:
    """Feeds records to ``handle`` one at a time per partition and commits each one
    it finishes; a record put off pauses its partition until then (module docstring)."""

    consumer: AIOKafkaConsumer
    handle: RecordHandler
    name: str
    dead_letters: DeadLetters
    #: What makes a record wait and be tried again instead of being dead-lettered:
    #: an error of one of these classes ...
    retry_on: tuple[type[BaseException], ...] = ()
    #: ... or one this says yes to (e.g. :func:`~services.common.db.database_unreachable`).
    retry_if: Callable[[BaseException], bool] | None = None
    #: The wait before the next try of a record, by failed tries so far.
    backoff: Callable[[int], float] = DEFAULT_BACKOFF
    lag: Gauge | None = None
    poll_timeout_ms: int = 1000
    clock: Callable[[], float] = time.time
    #: Paused partitions and when to read them again.
    deferred: dict[TopicPartition, float] = field(default_factory=dict)
    #: The offset each paused partition is held at (the record put off).
    held: dict[TopicPartition, int] = field(default_factory=dict)
    #: Failed tries of the record each partition is held at (for ``backoff``).
    attempts: dict[TopicPartition, int] = field(default_factory=dict)
    #: How often (s) the broker's epoch is checked while running (None: never).
    epoch_poll_s: float | None = 1.0
    #: A new broker epoch was seen: read every partition again from its beginning.
    rewind: bool = False
    #: Since a new epoch: the partitions with a record committed in it (None: no new
    #: epoch seen). Any other partition assigned is read from offset 0.
    settled: set[TopicPartition] | None = None
    #: On a new epoch, raise :class:`NewEpoch` (the caller starts a fresh consumer)
    #: instead of seeking this one back (what :func:`consuming` does).
    restart_on_new_epoch: bool = False
    #: How long (s) a join of the consumer's group may take, from the consumer's start
    #: or a rebalance, until it is told its partitions (maybe none); past it,
    #: :class:`JoinStalled` is raised (:func:`consuming` starts a fresh consumer).
    #: None: no limit.
    join_within_s: float | None = None
    #: When (``clock``) the join under way must have finished.
    join_by: float | None = None
    #: Whether the consumer has been told its partitions since its last rebalance.
    joined: bool = False

    async def run(self) -> None:
        log.info("%s consumer running", self.name)
        watching: asyncio.Task[None] | None = None
        if self.epoch_poll_s is not None:
            watch = EpochWatch(client=lambda: self.consumer._client, every_s=self.epoch_poll_s)
            watch.on_new_epoch(self._on_new_epoch)
            watching = asyncio.create_task(watch.run(), name=f"{self.name}-epoch-watch")
        try:
            while True:
                await self.run_once()
        finally:
            if watching is not None:
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching

    async def _on_new_epoch(self, old: str, new: str) -> None:
        log.warning(
            "%s: broker epoch %s replaced %s; reading from the beginning", self.name, new, old
        )
        self.rewind = True
        # What was committed in the last epoch means nothing now, also to a
        # rebalance that comes before the loop gets to the rewind.
        self.settled = set()

    def _rewind(self) -> None:
        """Forget what was put off (those offsets were the old epoch's) and read every
        assigned partition from the beginning."""
        self.rewind = False
        for tp in self.deferred:
            with contextlib.suppress(Exception):
                self.consumer.resume(tp)
        self.deferred.clear()
        self.held.clear()
        self.attempts.clear()
        self.settled = set()
        assigned = self.consumer.assignment()
        for tp in assigned:
            # Offset 0: a new epoch's log starts there (were it trimmed, the
            # consumer's reset policy, earliest, applies).
            self.consumer.seek(tp, 0)
        log.info("%s: read from offset 0: %s", self.name, _names(assigned))

    async def run_once(self) -> None:
        """One poll and the records it brought."""
        if not self.joined and self.join_by is not None and self.clock() > self.join_by:
            raise JoinStalled(f"{self.name}: {_group_state(self.consumer)}")
        if self.rewind:
            if self.restart_on_new_epoch:
                raise NewEpoch(self.name)
            self._rewind()
        self._resume_due()
        batch = await self.consumer.getmany(timeout_ms=self._poll_timeout_ms())
        for tp, records in batch.items():
            for record in records:
                if self.rewind:  # the rest of the batch is the old epoch's
                    log.info("%s: new epoch: the rest of a fetched batch dropped", self.name)
                    return
                if tp not in self.consumer.assignment():
                    # Revoked while an earlier record was handled: the new owner
                    # reads the rest from the last commit.
                    self._forget(tp)
                    break
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
        retry_at = await self._settle(tp, record)
        if tp not in self.consumer.assignment():
            # A rebalance took the partition while the record was handled: nothing
            # here can pause, seek or commit it any more (aiokafka raises); its new
            # owner reads the record again from the last commit (idempotent).
            log.info(
                "%s: %s[%d] revoked while @%d was handled; its new owner reads it again",
                self.name,
                tp.topic,
                tp.partition,
                record.offset,
            )
            self._forget(tp)
            return
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
        self.attempts.pop(tp, None)
        try:
            await self.consumer.commit({tp: record.offset + 1})
            if self.settled is not None:
                self.settled.add(tp)
        except (CommitFailedError, KafkaError) as exc:
            # Rebalanced away or the broker is gone: the record comes again, and the
            # consumers are idempotent.
            log.warning(
                "%s: commit of %s[%d]@%d failed: %s",
                self.name,
                tp.topic,
                tp.partition,
                record.offset,
                exc,
            )
        if self.lag is None or tp not in self.consumer.assignment():
            return  # (revoked during the commit: aiokafka asserts on its highwater)
        highwater = self.consumer.highwater(tp)
        if highwater is not None:
            self.lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - record.offset - 1))

    async def _settle(self, tp: TopicPartition, record: Record) -> float | None:
        """Run the handler; what it raises becomes a dead letter or a wait."""
        try:
            return await self.handle(record)
        except DecodeError as exc:
            return await self._dead_letter(tp, record, exc.step, str(exc))
        except Exception as exc:  # the outermost handler of one record
            if not self._retryable(exc):
                log.exception(
                    "%s: %s[%d]@%d could not be handled",
                    self.name,
                    tp.topic,
                    tp.partition,
                    record.offset,
                )
                return await self._dead_letter(tp, record, "handle", f"{type(exc).__name__}: {exc}")
            wait = self._wait(tp)
            log.warning(
                "%s: %s[%d]@%d: %s: %s; trying again in %.1f s",
                self.name,
                tp.topic,
                tp.partition,
                record.offset,
                type(exc).__name__,
                exc,
                wait,
            )
            return self.clock() + wait

    def _retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` makes its record wait rather than be dead-lettered."""
        if isinstance(exc, self.retry_on):
            return True
        return self.retry_if is not None and self.retry_if(exc)

    async def _dead_letter(
        self, tp: TopicPartition, record: Record, step: str, error: str
    ) -> float | None:
        try:
            await self.dead_letters.send(record, step, error)
        except KafkaError as exc:
            wait = self._wait(tp)
            log.warning("%s: dead-letter send failed (%s); again in %.1f s", self.name, exc, wait)
            return self.clock() + wait
        return None

    def _wait(self, tp: TopicPartition) -> float:
        attempt = self.attempts.get(tp, 0)
        self.attempts[tp] = attempt + 1
        return self.backoff(attempt)

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """A rebalance gave this process ``partitions``: after a new epoch, those not
        yet committed in it are read from its beginning (module docstring)."""
        partitions = set(partitions)
        self.joined = True
        if self.settled is None:
            log.info("%s: assigned %s", self.name, _names(partitions))
            return
        fresh = partitions - self.settled
        for tp in fresh:
            self.consumer.seek(tp, 0)
        log.info(
            "%s: assigned %s; read from offset 0 (new epoch): %s",
            self.name,
            _names(partitions),
            _names(fresh),
        )

    def rejoining(self) -> None:
        """A join of the group begins (start or rebalance): it must finish in time."""
        self.joined = False
        if self.join_within_s is not None:
            self.join_by = self.clock() + self.join_within_s

    def _forget(self, tp: TopicPartition) -> None:
        """Drop what is held for ``tp``, revoked: its new owner reads from the commit."""
        self.deferred.pop(tp, None)
        self.held.pop(tp, None)
        self.attempts.pop(tp, None)

    def _resume_due(self) -> None:
        now = self.clock()
        assigned = self.consumer.assignment()
        for tp, at in list(self.deferred.items()):
            if tp not in assigned:  # revoked: the new owner reads it from the commit
                self._forget(tp)
            elif at <= now:
                del self.deferred[tp]
                del self.held[tp]
                self.consumer.resume(tp)

    def _poll_timeout_ms(self) -> int:
        if not self.deferred:
            return self.poll_timeout_ms
        soonest = (min(self.deferred.values()) - self.clock()) * 1000
        return int(min(self.poll_timeout_ms, max(10.0, soonest)))


def _names(partitions: Iterable[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(partitions)) or "none"


def _group_state(consumer: AIOKafkaConsumer) -> str:
    """What the consumer's group coordinator knows (a stalled join's diagnostic)."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None:
        return "no group coordinator yet"
    return (
        f"group {getattr(coordinator, 'group_id', '?')}, coordinator node "
        f"{getattr(coordinator, 'coordinator_id', '?')}, member "
        f"{getattr(coordinator, 'member_id', '?')!r}, generation "
        f"{getattr(coordinator, 'generation', '?')}"
    )


class _Assignments(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the consume loop (once there is one) which partitions it was given.
    Before there is one, a consumer started for a new epoch reads them from 0."""

    def __init__(self, new_epoch: bool) -> None:
        self.new_epoch = new_epoch
        self.consumer: AIOKafkaConsumer | None = None
        self.loop: ConsumeLoop | None = None
        #: A join finished before the loop existed.
        self.joined = False

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Called as every join of the group begins.
        self.joined = False
        if self.loop is not None:
            self.loop.rejoining()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.joined = True
        if self.loop is not None:
            self.loop.assigned(assigned)
        elif self.new_epoch and self.consumer is not None:
            for tp in assigned:
                self.consumer.seek(tp, 0)


#: Waits before a fresh consumer after the last one failed, by failures in a row (s).
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)

#: How long (s) a consumer may take to finish a join of its group (be told its
#: partitions, maybe none), from its start or a rebalance, before it is replaced by a
#: fresh one. A join takes seconds; a group coordinator that never finishes one
#: (Tansu 0.6.0 refreshes a member's last contact only on heartbeats, which aiokafka
#: stops while it rejoins) would otherwise leave the consumer idle with no error.
JOIN_STALL_S = 60.0


def consuming(
    kafka: KafkaSettings,
    topics: Sequence[str],
    *,
    group: str,
    loop: Callable[[AIOKafkaConsumer], ConsumeLoop],
    startup_timeout_s: float = 120.0,
    first: Callable[[], Awaitable[None]] | None = None,
    **options: Any,
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The body of a background task: a consumer of ``topics`` (logical names) in
    ``group``, started once the broker answers; ``first`` (if any) runs before the
    first poll, then ``loop(consumer)`` until cancelled; the consumer is stopped.
    Should the consumer, ``first`` or the loop fail (a broker blink in ``first``, a
    bug), the failure is logged and a fresh consumer started after a growing wait
    (:data:`RESTART_BACKOFF_S`), ``first`` run again until it has succeeded once: the
    task never ends but by cancellation, or when the broker cannot be reached within
    ``startup_timeout_s`` of the very first start. A consumer that has not finished
    a join of its group :data:`JOIN_STALL_S` after its start or a rebalance is
    replaced too.

    At a new broker epoch the consumer is stopped and a fresh one started, which
    reads every partition it is given from offset 0 until it has committed a record
    of it (the old consumer may have committed an old-epoch offset to the new
    broker). Seeking the old one back was not enough: under load, a consumer that
    had rejoined the new broker's group around the rewind read nothing more."""
    return _Consuming(kafka, topics, group, loop, startup_timeout_s, first, options).run


@dataclass
class _Consuming:
    """:func:`consuming`'s task: one consumer after another."""

    kafka: KafkaSettings
    topics: Sequence[str]
    group: str
    loop: Callable[[AIOKafkaConsumer], ConsumeLoop]
    startup_timeout_s: float
    first: Callable[[], Awaitable[None]] | None
    options: dict[str, Any]
    #: The last consumer stopped at a new broker epoch: the next reads it from 0.
    new_epoch: bool = False
    started: bool = False
    failures: int = 0

    @property
    def names(self) -> str:
        return ",".join(self.topics)

    async def run(self) -> None:
        while True:
            assignments = _Assignments(self.new_epoch)
            consumer = await self._start(assignments)
            if consumer is None:
                continue
            failed = False
            try:
                await self._consume(consumer, assignments)
            except NewEpoch:
                log.warning("%s: a new consumer for the new broker epoch", self.names)
                self.new_epoch = True
            except JoinStalled as exc:
                log.warning(
                    "%s: a join of the group unfinished after %.0f s (%s); a fresh consumer",
                    self.names,
                    JOIN_STALL_S,
                    exc,
                )
            except Exception:  # the task must outlive it: a fresh consumer after a wait
                failed = True
                log.exception("%s: the consumer failed; a fresh one follows", self.names)
            finally:
                await consumer.stop()
            if failed:
                # Whatever it had not committed is read again by the next one.
                backoff = RESTART_BACKOFF_S[min(self.failures, len(RESTART_BACKOFF_S) - 1)]
                await asyncio.sleep(backoff)
                self.failures += 1
            else:
                self.failures = 0

    async def _start(self, assignments: _Assignments) -> AIOKafkaConsumer | None:
        """A started consumer, or None when the broker did not answer in time (after
        the first start; the first start raises)."""

        def make() -> AIOKafkaConsumer:
            consumer = make_consumer(
                self.kafka, group_id=self.group, **group_timeouts(self.kafka), **self.options
            )
            subscribed = [self.kafka.topic(name) for name in self.topics]
            consumer.subscribe(subscribed, listener=assignments)
            assignments.consumer = consumer  # a join may finish before the loop exists
            return consumer

        try:
            consumer = await start_when_reachable(make, timeout_s=self.startup_timeout_s)
        except (KafkaError, OSError):
            if not self.started:
                raise  # the first start: the service is not up (its liveness says so)
            log.warning(
                "%s: no broker for a fresh consumer in %.0f s; trying on",
                self.names,
                self.startup_timeout_s,
            )
            return None
        self.started = True
        return consumer

    async def _consume(self, consumer: AIOKafkaConsumer, assignments: _Assignments) -> None:
        if self.first is not None:
            await self.first()
            self.first = None  # succeeded once: not run again
        looped = self.loop(consumer)
        looped.restart_on_new_epoch = True
        looped.join_within_s = JOIN_STALL_S
        if assignments.joined:
            looped.joined = True
        else:
            looped.rejoining()
        if self.new_epoch:
            looped.settled = set()
        assignments.loop = looped
        await looped.run()


__all__ = [
    "ConsumeLoop",
    "JoinStalled",
    "NewEpoch",
    "Record",
    "RecordHandler",
    "consuming",
    "doubling_backoff",
    "fixed_backoff",
]
