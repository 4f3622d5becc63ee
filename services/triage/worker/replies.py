"""The worker's processing core for ``replies.received``: a batch of replies under
our published answers in, their ``replies.classified`` outputs acknowledged by the
broker out — decode, one classifier call (the same model as mentions), judge
(:func:`~services.triage.worker.protection.judge`), produce. What cannot be decoded
or classified goes to ``replies.received.dlq`` with its bytes; the batch is acked
only once every output or dead letter is in."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from services.common import topics
from services.common.codec import DecodeError, decode, encode, encode_key
from services.common.dlq import letter_for
from services.common.messages import ReplyReceived, utcnow
from services.triage.classifier.textbits import language
from services.triage.rules import RulesFile
from services.triage.worker import metrics
from services.triage.worker.batch import BatchProcessor, Incoming, Outgoing, describe
from services.triage.worker.priority import scores_of
from services.triage.worker.protection import judge
from services.triage.worker.text import text_for_model

log = logging.getLogger(__name__)


class ReplyProcessor:
    """Judges batches of ``replies.received`` records with the mention batch
    processor's classifier and producer."""

    def __init__(
        self,
        *,
        batch: BatchProcessor,
        rules: RulesFile,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.batch = batch
        self.rules = rules
        self.now = now
        kafka = batch.kafka
        self.classified_topic = kafka.topic(topics.REPLIES_CLASSIFIED)
        self.dlq_topic = kafka.topic(topics.dlq(topics.REPLIES_RECEIVED))

    async def process(self, records: Sequence[Incoming]) -> int:
        """Judge and produce one batch; returns how many replies were classified."""
        out: list[Outgoing] = []
        decoded: list[tuple[int, ReplyReceived]] = []
        for index, record in enumerate(records):
            try:
                decoded.append((index, decode(ReplyReceived, record.value)))
            except DecodeError as exc:
                out.append(self._dead_letter(record, index, "decode", str(exc)))
        if decoded:
            texts = [text_for_model(reply.text) for _, reply in decoded]
            try:
                predictions = await self.batch.run_classifier(
                    self.batch.classifier, texts, [language(r.lang) or None for _, r in decoded]
                )
            except Exception as exc:  # the model failed on this batch: its letters say so
                log.exception("classifying %d replies failed", len(texts))
                out += [
                    self._dead_letter(records[i], i, "classify", describe(exc)) for i, _ in decoded
                ]
            else:
                rules, now = self.rules.current(), self.now()
                for (index, reply), prediction in zip(decoded, predictions, strict=True):
                    try:
                        classified = judge(
                            reply,
                            scores_of(prediction),
                            rules,
                            model_version=self.batch.classifier.version,
                            now=now,
                        )
                    except Exception as exc:  # this reply only: the rest of the batch goes on
                        log.exception("judging reply %s failed", reply.id)
                        out.append(self._dead_letter(records[index], index, "judge", describe(exc)))
                        continue
                    metrics.REPLY_VERDICTS.labels(classified.verdict.value, classified.rule).inc()
                    out.append(
                        Outgoing(
                            self.classified_topic,
                            encode_key(reply.answer_post_id),
                            encode(classified),
                            index,
                        )
                    )
        for refused, error in await self.batch.send_until_acked(out):
            log.error("the broker refused a %s record (%s)", refused.topic, describe(error))
        return len(decoded)

    def _dead_letter(self, record: Incoming, index: int, stage: str, error: str) -> Outgoing:
        letter = letter_for(
            record, topic=topics.REPLIES_RECEIVED, stage=f"triage.{stage}", error=error
        )
        metrics.DEAD_LETTERS.labels(stage).inc()
        log.warning("dead-lettering a reply at stage %s: %s", stage, error)
        return Outgoing(self.dlq_topic, record.key, encode(letter), index)
