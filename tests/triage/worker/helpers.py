"""Fakes for the stream worker's tests: a classifier, a decider and a sink.

No model, no rules file: the worker only sees the ``Classifier``, ``Decider``
and ``Sink`` protocols.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from services.common.messages import (
    Decision,
    MentionClassified,
    MentionReceived,
    PriorityReason,
    Scores,
)
from services.triage.classifier.base import Prediction
from services.triage.worker.batch import Outgoing

#: Texts containing this word score as offensive (and are quarantined by FakeDecider).
ABUSIVE = "idiot"
#: Texts containing this word make FakeClassifier raise (for the whole call).
POISON = "boom"
#: Texts containing this tag are dropped by FakeDecider.prejudge (no model).
SPAM = "#spam"


class FakeClassifier:
    """Deterministic scores; records every call; optional delay, poison, gate."""

    version = "fake-1"

    def __init__(self, *, delay_s: float = 0.0, per_text_s: float = 0.0) -> None:
        self.calls: list[list[str]] = []
        self.delay_s = delay_s
        self.per_text_s = per_text_s
        self.fail_next_calls = 0
        #: When set, classify waits for ``gate`` (and sets ``entered`` first).
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        with self._lock:
            self.calls.append(list(texts))
            fail = self.fail_next_calls > 0
            if fail:
                self.fail_next_calls -= 1
        if self.gate is not None:
            self.entered.set()
            self.gate.wait(timeout=30)
        if self.delay_s or self.per_text_s:
            time.sleep(self.delay_s + self.per_text_s * len(texts))
        if fail:
            raise RuntimeError("the model fell over")
        if any(POISON in t for t in texts):
            raise ValueError(f"cannot classify a text with {POISON!r}")
        return [self._predict(t) for t in texts]

    @staticmethod
    def _predict(text: str) -> Prediction:
        return Prediction(
            offensive=0.95 if ABUSIVE in text else 0.05,
            hate=0.0,
            question=0.9 if "?" in text else 0.1,
            relevance=0.7,
            embedding=np.zeros(4, dtype=np.float32),
        )

    @property
    def texts_seen(self) -> list[str]:
        return [t for call in self.calls for t in call]


class FakeDecider:
    """Quarantines offensive mentions, reviews the rest; drops #spam without the model."""

    def __init__(self) -> None:
        self.fail_decide_for: set[str] = set()
        self.fail_prejudge_for: set[str] = set()
        self.fail_text_for: set[str] = set()
        #: Mentions whose reply was requested, in order.
        self.approved: list[str] = []

    def answer_approved(self, mention_id: str) -> str | None:
        self.approved.append(mention_id)
        return f"c-{mention_id}"

    def prejudge(self, mention: MentionReceived, *, now: datetime) -> MentionClassified | None:
        if mention.id in self.fail_prejudge_for:
            raise KeyError("prejudge bug")
        if SPAM in mention.text:
            return self._classified(
                mention,
                Scores(offensive=0, hate=0, question=0, relevance=0),
                Decision.DROP,
                "spam",
                now,
            )
        return None

    def decide(
        self, mention: MentionReceived, prediction: Prediction, *, now: datetime
    ) -> MentionClassified:
        if mention.id in self.fail_decide_for:
            raise ZeroDivisionError("decide bug")
        scores = Scores(
            offensive=prediction.offensive,
            hate=prediction.hate,
            question=prediction.question,
            relevance=prediction.relevance,
        )
        decision = Decision.QUARANTINE if prediction.offensive > 0.5 else Decision.REVIEW
        return self._classified(mention, scores, decision, "fake", now)

    def text_for_model(self, mention: MentionReceived) -> str:
        if mention.id in self.fail_text_for:
            raise UnicodeError("text bug")
        return mention.text

    @staticmethod
    def _classified(
        mention: MentionReceived, scores: Scores, decision: Decision, rule: str, now: datetime
    ) -> MentionClassified:
        return MentionClassified(
            mention=mention,
            scores=scores,
            priority=50,
            reasons=(PriorityReason(factor="fake", points=50),),
            decision=decision,
            model_version=FakeClassifier.version,
            rule=rule,
            classified_at=now,
        )


class ListSink:
    """Keeps what it is sent; ``errors`` maps a topic suffix to the errors its records get."""

    def __init__(self) -> None:
        self.records: list[Outgoing] = []
        self.calls = 0
        self.errors: dict[str, list[BaseException]] = {}

    async def send(self, records: Sequence[Outgoing]) -> list[BaseException | None]:
        self.calls += 1
        results: list[BaseException | None] = []
        for record in records:
            queued = next(
                (errs for suffix, errs in self.errors.items() if record.topic.endswith(suffix)),
                None,
            )
            if queued:
                results.append(queued.pop(0))
            else:
                self.records.append(record)
                results.append(None)
        return results

    def on(self, suffix: str) -> list[Outgoing]:
        return [r for r in self.records if r.topic.endswith(suffix)]
