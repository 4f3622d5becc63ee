"""The worker's stream entrypoints, thin: a batch of ``mentions.raw`` events →
:class:`~services.triage.worker.batch.BatchProcessor` → acked only once its
outputs are acknowledged; a ``replies.requested`` record → its cluster marked
answered; a batch of ``replies.received`` (the replies under our published answers)
→ :class:`~services.triage.worker.replies.ReplyProcessor`. The delivery guarantees
are in the triage README ("The stream worker")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

from faust.exceptions import ConsumerNotStarted

from services.common.codec import DecodeError, decode
from services.common.epoch import Sent, SentLog
from services.common.messages import PublishReply
from services.triage.worker import metrics
from services.triage.worker.batch import BatchProcessor, Decider, Incoming, Outgoing, Sink
from services.triage.worker.replies import ReplyProcessor
from services.triage.worker.take import take_waiting

log = logging.getLogger(__name__)

Agent = Callable[[Any], Awaitable[None]]


def classify_mentions(
    app: Any, processor: BatchProcessor, batch_size: int, within_s: float
) -> Agent:
    """The agent on ``mentions.raw``: batches taken without acking (:func:`batches`),
    acked once handled (outputs or dead letters acknowledged by the broker)."""

    async def agent(stream: Any) -> None:
        async for events in batches(stream, batch_size, within_s):
            if await handle_batch(processor, events):
                for event in events:
                    await stream.ack(event)
                record_lag(app, events)

    return agent


def judge_replies(processor: ReplyProcessor, batch_size: int, within_s: float) -> Agent:
    """The agent on ``replies.received``: batches acked once their outputs (or dead
    letters) are acknowledged; a batch that fails as a whole is taken again."""

    async def agent(stream: Any) -> None:
        async for events in batches(stream, batch_size, within_s):
            try:
                await processor.process([incoming(event) for event in events])
            except Exception:  # nothing acked: the batch comes again after a restart
                log.exception("judging %d replies failed", len(events))
                continue
            for event in events:
                await stream.ack(event)

    return agent


def batches(stream: Any, batch_size: int, within_s: float) -> AsyncGenerator[list[Any], None]:
    """The stream's events in dynamic batches (:func:`~.take.take_waiting`), registered
    with the stream as faust's own ``take`` generators are, so that stopping the stream
    closes it."""
    taken = take_waiting(stream, batch_size, within_s)
    active = getattr(stream, "_active_agens", None)
    if active is not None:
        active.add(taken)
    return taken


def note_approvals(decider: Decider) -> Agent:
    """The agent on ``replies.requested`` (:func:`note_approval` per record)."""

    async def agent(stream: Any) -> None:
        async for value in stream:
            note_approval(decider, value)

    return agent


async def handle_batch(processor: BatchProcessor, events: Sequence[Any]) -> bool:
    """Process one batch; True when it may be acked (outputs or dead letters are in)."""
    batch = [incoming(event) for event in events]
    try:
        report = await processor.process(batch)
    except Exception as exc:
        log.exception("processing a batch of %d records failed; dead-lettering it", len(batch))
        return await processor.dead_letter_all(batch, f"{type(exc).__name__}: {exc}")
    log.debug(
        "batch of %d: %d classified, %d quarantined, %d prejudged, %d cache hits, "
        "%d model texts, dead letters %s",
        report.size,
        report.classified,
        report.quarantined,
        report.prejudged,
        report.cache_hits,
        report.model_texts,
        report.dead_lettered,
    )
    return True


def note_approval(decider: Decider, value: bytes | None) -> None:
    """One record of ``replies.requested``: the answer approved for its question
    serves the question's whole cluster, so the cluster counts as answered and
    later near-duplicates are dropped (rule ``answered_cluster``). A record that
    cannot be decoded is the publisher's to dead-letter: here it is only counted."""
    try:
        request = decode(PublishReply, value)
    except DecodeError as exc:
        metrics.APPROVALS.labels("undecodable").inc()
        log.warning("replies.requested: undecodable record skipped: %s", exc)
        return
    cluster_id = decider.answer_approved(request.mention_id)
    metrics.APPROVALS.labels("marked" if cluster_id else "unknown").inc()
    if cluster_id:
        log.info("cluster %s answered (reply to %s requested)", cluster_id, request.mention_id)


def record_lag(app: Any, events: Sequence[Any]) -> None:
    """``triage_consumer_lag``: how far each partition's end is past the last record done."""
    last: dict[Any, int] = {}
    for event in events:
        last[event.message.tp] = event.message.offset
    for tp, offset in last.items():
        try:
            highwater = app.consumer.highwater(tp)
        except (AttributeError, KeyError, RuntimeError, ConsumerNotStarted):  # no live consumer
            return
        if highwater is not None:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - offset - 1)
            )


def incoming(event: Any) -> Incoming:
    """A faust event as the processing core sees it: the record's own bytes."""
    message = event.message
    return Incoming(
        key=message.key,
        value=message.value,
        partition=message.partition,
        offset=message.offset,
        timestamp=message.timestamp,
    )


class FaustSink(Sink):
    """Produces through the faust app's producer and waits for every acknowledgement;
    with a :class:`SentLog`, the records are written to it first, in one transaction
    (broker epochs)."""

    def __init__(self, app: Any, sent: SentLog | None = None) -> None:
        self.app = app
        self.sent = sent

    async def send(self, records: Sequence[Outgoing]) -> list[BaseException | None]:
        results: list[BaseException | None] = [None] * len(records)
        waiting: list[tuple[int, asyncio.Future[Any]]] = []
        if self.sent is not None:
            self.sent.record_many([Sent(r.topic, r.key, r.value) for r in records])
        for index, record in enumerate(records):
            try:
                future = await self.app.producer.send(
                    record.topic, record.key, record.value, None, None, None
                )
            except Exception as exc:  # reported per record; the caller decides
                results[index] = exc
            else:
                waiting.append((index, future))
        outcomes = await asyncio.gather(*(f for _, f in waiting), return_exceptions=True)
        for (index, _), outcome in zip(waiting, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                results[index] = outcome
        return results
