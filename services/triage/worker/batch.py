"""The worker's processing core: a batch of ``mentions.raw`` records in, their
outputs acknowledged by the broker out — decode, prejudge (no model needed),
the prediction cache, one classifier call for the rest (bisected on failure so
only poisoned texts are dead-lettered), decide, produce. Plain async code, no
faust (:mod:`.agents` feeds it and acks). The ``stage`` of a dead letter says
where an input stopped; the delivery guarantees are in the triage README.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from services.common import topics
from services.common.codec import DecodeError, decode, encode, encode_key
from services.common.dlq import letter_for
from services.common.kafka import KafkaSettings
from services.common.langid import with_language
from services.common.messages import Decision, MentionClassified, MentionReceived, utcnow
from services.triage.classifier.base import Classifier, Prediction
from services.triage.classifier.textbits import language
from services.triage.classifier.thread import run_on_classifier_thread
from services.triage.worker import metrics
from services.triage.worker.cache import PredictionCache, cache_key
from services.triage.worker.live_model import LiveModel
from services.triage.worker.multilingual import MultilingualEmbedder

log = logging.getLogger(__name__)

#: Kafka error codes that blame the record itself: retrying cannot help.
_REFUSED_ERRNOS = frozenset({2, 10, 18, 87})  # corrupt, too large, list too large, invalid
#: Backoff between produce attempts while the broker is unavailable (seconds).
PRODUCE_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


class Decider(Protocol):
    """The decisions the worker needs (implemented by ``services.triage.worker.domain.Triage``)."""

    def prejudge(self, mention: MentionReceived, *, now: datetime) -> MentionClassified | None:
        """A decision without the model, or None when the model is needed."""
        ...

    def decide(
        self, mention: MentionReceived, prediction: Prediction, *, now: datetime
    ) -> MentionClassified: ...

    def text_for_model(self, mention: MentionReceived) -> str: ...

    def answer_approved(self, mention_id: str) -> str | None:
        """A reply to the mention was requested: its cluster is answered (its id)."""
        ...

    def use_model(self, classifier: Classifier) -> None:
        """Decide with ``classifier``'s version (and relevance) from now on."""
        ...

    def wants_multilingual_embedding(
        self, mention: MentionReceived, prediction: Prediction
    ) -> bool:
        """The mention will be clustered and lacks its e5 embedding."""
        ...


@dataclass(frozen=True, slots=True)
class Incoming:
    """One record of ``mentions.raw``, as it came from the broker."""

    key: bytes | None
    value: bytes | None
    partition: int | None = None
    offset: int | None = None
    #: The record's timestamp (seconds since the epoch), for end-to-end latency.
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce; ``source`` is the index of its input in the batch."""

    topic: str
    key: bytes | None
    value: bytes
    source: int


class Sink(Protocol):
    async def send(self, records: Sequence[Outgoing]) -> list[BaseException | None]:
        """Produce every record and wait for the broker's acknowledgements.

        One entry per record, in order: None when acknowledged, else its error.
        """
        ...


@dataclass
class BatchReport:
    """What happened to one batch (for logs and tests)."""

    size: int = 0
    classified: int = 0
    quarantined: int = 0
    prejudged: int = 0
    cache_hits: int = 0
    model_texts: int = 0
    dead_lettered: dict[str, int] = field(default_factory=dict)
    lost: int = 0


@dataclass
class _Pending:
    """A decoded mention on its way through the stages."""

    index: int
    mention: MentionReceived
    text: str = ""
    key: str = ""

    @property
    def lang(self) -> str | None:
        """The mention's language (primary subtag): what the classifier routes by."""
        return language(self.mention.lang) or None


def model_key(text: str, lang: str | None) -> str:
    """The prediction cache's key: the text's (:func:`cache_key`) and its language
    (a multilingual classifier routes by it)."""
    return f"{lang or ''}:{cache_key(text)}"


class ClassifierContractError(RuntimeError):
    """The classifier returned a different number of predictions than texts."""


def record_refused(exc: BaseException) -> bool:
    """True when the broker (or the client) refused the record itself.

    Everything else (timeouts, lost connections, leader changes, missing
    topics, authorisation) is about the broker and is retried.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "errno", None) in _REFUSED_ERRNOS:
            return True
        if type(seen).__name__ in {"MessageSizeTooLargeError", "RecordTooLargeError"}:
            return True
        if isinstance(seen, (TypeError, ValueError)):
            return True
        seen = seen.__cause__
    return False


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


ClassifyRunner = Callable[
    [Classifier, list[str], list[str | None] | None], Awaitable[list[Prediction]]
]


async def classify_in_thread(
    classifier: Classifier, texts: list[str], languages: list[str | None] | None = None
) -> list[Prediction]:
    """Run the (CPU-bound) classifier off the event loop, on its own thread (torch
    releases the GIL; :mod:`services.triage.classifier.thread` says why one thread)."""
    return await run_on_classifier_thread(classifier.classify, texts, languages)


#: Tries of a single text before it is dead-lettered as poisoned.
SINGLE_TEXT_ATTEMPTS = 2


class BatchProcessor:
    """Turns batches of ``mentions.raw`` records into produced outputs."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        classifier: Classifier,
        decider: Decider,
        cache: PredictionCache,
        sink: Sink,
        now: Callable[[], datetime] = utcnow,
        run_classifier: ClassifyRunner = classify_in_thread,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        live: LiveModel | None = None,
    ) -> None:
        self.kafka = kafka
        self.live = live
        self.classifier = classifier
        self.decider = decider
        self.cache = cache
        self.sink = sink
        self.now = now
        self.run_classifier = run_classifier
        self.sleep = sleep
        self.source_topic = kafka.topic(topics.MENTIONS_RAW)
        self.classified_topic = kafka.topic(topics.MENTIONS_CLASSIFIED)
        self.quarantined_topic = kafka.topic(topics.MENTIONS_QUARANTINED)
        self.dlq_topic = kafka.topic(topics.dlq(topics.MENTIONS_RAW))

    async def process(self, batch: Sequence[Incoming]) -> BatchReport:
        report = BatchReport(size=len(batch))
        if not batch:
            return report
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.MESSAGES_IN.labels(topics.MENTIONS_RAW).inc(len(batch))
        now = self.now()
        out: list[Outgoing] = []
        letters: list[Outgoing] = []

        def fail(index: int, stage: str, error: str) -> None:
            letters.append(self._dead_letter(batch[index], index, stage, error))
            report.dead_lettered[stage] = report.dead_lettered.get(stage, 0) + 1

        needs_model: list[_Pending] = []
        for index, record in enumerate(batch):
            try:
                mention = with_language(decode(MentionReceived, record.value))
            except DecodeError as exc:
                fail(index, "decode", str(exc))
                continue
            pending = _Pending(index, mention)
            try:
                early = self.decider.prejudge(mention, now=now)
            except Exception as exc:
                log.exception("prejudge failed for %s", mention.id)
                fail(index, "prejudge", describe(exc))
                continue
            if early is not None:
                out.extend(self._outputs(early, index))
                report.prejudged += 1
                metrics.DECISIONS.labels(early.decision.value, "prejudge").inc()
                continue
            try:
                pending.text = self.decider.text_for_model(mention)
                pending.key = model_key(pending.text, pending.lang)
            except Exception as exc:
                log.exception("preparing the model text failed for %s", mention.id)
                fail(index, "prepare", describe(exc))
                continue
            needs_model.append(pending)

        predictions = await self._predict(needs_model, report, fail)
        for pending in needs_model:
            prediction = predictions.get(pending.key)
            if prediction is None:
                continue  # dead-lettered at the classify stage
            try:
                classified = self.decider.decide(pending.mention, prediction, now=now)
            except Exception as exc:
                log.exception("decide failed for %s", pending.mention.id)
                fail(pending.index, "decide", describe(exc))
                continue
            out.extend(self._outputs(classified, pending.index))
            metrics.DECISIONS.labels(classified.decision.value, "model").inc()

        await self._produce(batch, out, letters, report)
        self._observe_latency(batch)
        return report

    async def dead_letter_all(self, batch: Sequence[Incoming], error: str) -> bool:
        """Dead-letter a whole batch (stage ``worker``): the last resort after a bug.

        True when the dead letters are in (the batch may be acked).
        """
        letters = [self._dead_letter(record, i, "worker", error) for i, record in enumerate(batch)]
        try:
            refused = await self.send_until_acked(letters)
        except Exception:
            log.exception("dead-lettering a failed batch failed too; leaving it unacked")
            return False
        for record, exc in refused:
            log.error(
                "the broker refused the dead letter of %s[%s]@%s (%s)",
                self.source_topic,
                batch[record.source].partition,
                batch[record.source].offset,
                describe(exc),
            )
        return True

    # -- stages ------------------------------------------------------------------------

    async def _follow_the_live_model(self) -> None:
        """Between batches: another version went live, so this batch and the next are
        decided by it (its version on every decision; the cache of the old one's scores
        forgotten)."""
        if self.live is None:
            return
        fresh = await self.live.refresh()
        if fresh is not None:
            self.classifier = fresh
            self.cache.clear()
            self.decider.use_model(fresh)

    async def _predict(
        self,
        pending: list[_Pending],
        report: BatchReport,
        fail: Callable[[int, str, str], None],
    ) -> dict[str, Prediction]:
        """Predictions by cache key: from the cache, else from one classifier call (by
        the model live now: a switch since the last batch is taken up here); the
        questions' e5 embeddings added where the worker clusters across languages."""
        await self._follow_the_live_model()
        found: dict[str, Prediction] = {}
        texts: dict[str, str] = {}
        langs: dict[str, str | None] = {item.key: item.lang for item in pending}
        for item in pending:
            if item.key in found or item.key in texts:
                report.cache_hits += 1
                continue
            cached = self.cache.get(item.key)
            if cached is not None:
                found[item.key] = cached
                report.cache_hits += 1
            else:
                texts[item.key] = item.text
        metrics.CACHE_HITS.inc(report.cache_hits)
        metrics.CACHE_MISSES.inc(len(texts))
        report.model_texts = len(texts)
        if texts:
            keys = list(texts)
            results, errors = await self._classify_bisecting(
                [texts[k] for k in keys], [langs[k] for k in keys]
            )
            for position, prediction in results.items():
                self.cache.put(keys[position], prediction)
                found[keys[position]] = prediction
            failed = {keys[position]: error for position, error in errors.items()}
            for item in pending:
                if item.key in failed:
                    fail(item.index, "classify", failed[item.key])
            metrics.CACHE_ENTRIES.set(len(self.cache))
        await self._embed_questions(pending, found)
        return found

    async def _embed_questions(
        self, pending: list[_Pending], predictions: dict[str, Prediction]
    ) -> None:
        """Add the e5 embedding to the predictions of the questions that lack it (one
        call, cached with the prediction), when the classifier can embed multilingually
        (:mod:`.multilingual`). On failure those questions cluster by exact text only."""
        embedder = self.classifier
        if not isinstance(embedder, MultilingualEmbedder):
            return
        wanted: dict[str, str] = {}
        for item in pending:
            prediction = predictions.get(item.key)
            if (
                prediction is not None
                and item.key not in wanted
                and self.decider.wants_multilingual_embedding(item.mention, prediction)
            ):
                wanted[item.key] = item.text
        if not wanted:
            return
        try:
            rows = await run_on_classifier_thread(
                embedder.embed_multilingual, list(wanted.values())
            )
        except Exception as exc:
            log.warning("multilingual embedding of %d questions failed: %s", len(wanted), exc)
            return
        for key, row in zip(wanted, rows, strict=True):
            predictions[key] = replace(predictions[key], multilingual_embedding=row)
            self.cache.put(key, predictions[key])

    async def _classify_bisecting(
        self, texts: list[str], langs: list[str | None]
    ) -> tuple[dict[int, Prediction], dict[int, str]]:
        """Classify ``texts``; on failure split in halves until the failures are isolated."""
        results: dict[int, Prediction] = {}
        errors: dict[int, str] = {}
        todo: list[list[int]] = [list(range(len(texts)))]
        single_failures: dict[int, int] = {}
        while todo:
            positions = todo.pop()
            try:
                predictions = await self._classify_once(
                    [texts[p] for p in positions], [langs[p] for p in positions]
                )
            except Exception as exc:
                if len(positions) == 1:
                    # A text is poisoned only if it fails again on its own: a transient
                    # failure (one bad call) must not dead-letter a good mention.
                    failures = single_failures.get(positions[0], 0) + 1
                    single_failures[positions[0]] = failures
                    if failures < SINGLE_TEXT_ATTEMPTS:
                        log.warning("classifier failed on one text (%s); retrying", describe(exc))
                        await self.sleep(0.05 * failures)
                        todo.append(positions)
                        continue
                    log.warning("classifier failed on one text: %s", describe(exc))
                    errors[positions[0]] = describe(exc)
                else:
                    log.warning(
                        "classifier failed on %d texts (%s); retrying in halves",
                        len(positions),
                        describe(exc),
                    )
                    middle = len(positions) // 2
                    todo.extend([positions[middle:], positions[:middle]])
                continue
            results.update(zip(positions, predictions, strict=True))
        return results, errors

    async def _classify_once(self, texts: list[str], langs: list[str | None]) -> list[Prediction]:
        started = time.perf_counter()
        predictions = await self.run_classifier(self.classifier, texts, langs)
        metrics.CLASSIFY_SECONDS.observe(time.perf_counter() - started)
        metrics.CLASSIFY_TEXTS.observe(len(texts))
        if len(predictions) != len(texts):
            raise ClassifierContractError(
                f"classifier returned {len(predictions)} predictions for {len(texts)} texts"
            )
        return predictions

    def _outputs(self, classified: MentionClassified, index: int) -> list[Outgoing]:
        key = encode_key(classified.mention.id)
        value = encode(classified)
        records = [Outgoing(self.classified_topic, key, value, index)]
        if classified.decision is Decision.QUARANTINE:
            records.append(Outgoing(self.quarantined_topic, key, value, index))
        return records

    def _dead_letter(self, record: Incoming, index: int, stage: str, error: str) -> Outgoing:
        letter = letter_for(record, topic=topics.MENTIONS_RAW, stage=f"triage.{stage}", error=error)
        metrics.DEAD_LETTERS.labels(stage).inc()
        log.warning(
            "dead-lettering %s[%s]@%s at stage %s: %s",
            self.source_topic,
            record.partition,
            record.offset,
            stage,
            error,
        )
        return Outgoing(self.dlq_topic, record.key, encode(letter), index)

    async def _produce(
        self,
        batch: Sequence[Incoming],
        out: list[Outgoing],
        letters: list[Outgoing],
        report: BatchReport,
    ) -> None:
        refused = await self.send_until_acked(out + letters)
        refused_inputs: dict[int, str] = {}
        for record, error in refused:
            if record.topic == self.dlq_topic:
                report.lost += 1
                log.error(
                    "the broker refused the dead letter of %s[%s]@%s (%s); the original stays "
                    "on %s at that offset",
                    self.source_topic,
                    batch[record.source].partition,
                    batch[record.source].offset,
                    describe(error),
                    self.source_topic,
                )
            else:
                refused_inputs.setdefault(record.source, describe(error))
        if refused_inputs:
            second = [
                self._dead_letter(batch[index], index, "produce", f"output refused: {error}")
                for index, error in refused_inputs.items()
            ]
            report.dead_lettered["produce"] = len(second)
            for record, error in await self.send_until_acked(second):
                report.lost += 1
                log.error(
                    "the broker refused the dead letter of %s[%s]@%s (%s)",
                    self.source_topic,
                    batch[record.source].partition,
                    batch[record.source].offset,
                    describe(error),
                )
        # An input counts as done once all its outputs (or its dead letter) are in.
        done_out = [r for r in out if r.source not in refused_inputs]
        for record in done_out:
            if record.topic == self.classified_topic:
                report.classified += 1
            elif record.topic == self.quarantined_topic:
                report.quarantined += 1

    async def send_until_acked(
        self, records: list[Outgoing]
    ) -> list[tuple[Outgoing, BaseException]]:
        """Produce ``records``, retrying broker trouble; return the ones refused as such."""
        refused: list[tuple[Outgoing, BaseException]] = []
        pending = records
        attempt = 0
        while pending:
            results = await self.sink.send(pending)
            retry: list[Outgoing] = []
            last_error: BaseException | None = None
            for record, error in zip(pending, results, strict=True):
                if error is None:
                    metrics.MESSAGES_OUT.labels(self._logical(record.topic)).inc()
                elif record_refused(error):
                    refused.append((record, error))
                else:
                    retry.append(record)
                    last_error = error
            if retry:
                delay = PRODUCE_BACKOFF_S[min(attempt, len(PRODUCE_BACKOFF_S) - 1)]
                attempt += 1
                metrics.PRODUCE_RETRIES.inc(len(retry))
                log.warning(
                    "%d records not acknowledged (%s); retry %d in %.2fs",
                    len(retry),
                    describe(last_error) if last_error else "?",
                    attempt,
                    delay,
                )
                await self.sleep(delay)
            pending = retry
        return refused

    def _logical(self, physical: str) -> str:
        prefix = self.kafka.topic_prefix
        return physical[len(prefix) :] if prefix and physical.startswith(prefix) else physical

    def _observe_latency(self, batch: Sequence[Incoming]) -> None:
        done = time.time()
        for record in batch:
            if record.timestamp is not None and record.timestamp > 0:
                metrics.END_TO_END_SECONDS.observe(max(0.0, done - record.timestamp))
