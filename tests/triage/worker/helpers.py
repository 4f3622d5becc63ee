"""Helpers of the worker's tests: fakes for the stream (a classifier, a decider
and a sink: the worker only sees the ``Classifier``, ``Decider`` and ``Sink``
protocols), and the rules, embeddings and reason readers of the decision tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.messages import (
    Decision,
    MentionClassified,
    MentionReceived,
    PriorityReason,
    Scores,
)
from services.triage.classifier.base import Classifier, Prediction
from services.triage.worker.batch import Outgoing
from services.triage.worker.domain import Triage

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

    def classify(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[Prediction]:
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
        #: The version recorded with each decision (``use_model`` changes it).
        self.model_version = FakeClassifier.version

    def use_model(self, classifier: Classifier) -> None:
        self.model_version = classifier.version

    def wants_multilingual_embedding(
        self, mention: MentionReceived, prediction: Prediction
    ) -> bool:
        """Questions lacking it (the fake clusters nothing, but the batch asks)."""
        return prediction.question >= 0.5 and prediction.multilingual_embedding is None

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

    def _classified(
        self,
        mention: MentionReceived,
        scores: Scores,
        decision: Decision,
        rule: str,
        now: datetime,
    ) -> MentionClassified:
        return MentionClassified(
            mention=mention,
            scores=scores,
            priority=50,
            reasons=(PriorityReason(factor="fake", points=50),),
            decision=decision,
            model_version=self.model_version,
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


# --- decisions: rules, embeddings, reasons -------------------------------------------

CREATED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=10)
DIM = 8

RULES: dict[str, Any] = {
    "schema": 1,
    "campaign": {"description": "Questions to young refugees in Kakuma and Dadaab"},
    "decisions": {
        "quarantine": {"offensive": 0.85, "hate": 0.70},
        "question": 0.5,
        "relevance": 0.3,
        "drop_irrelevant_below": None,
        "low_priority_cap": 25,
        "auto_assign": {
            "enabled": True,
            "question": 0.9,
            "relevance": 0.6,
            "max_offensive": 0.1,
            "max_hate": 0.05,
        },
    },
    "priority": {
        "question": 35,
        "relevance": 25,
        "not_abusive": {"points": 15, "penalty": 30},
        "reach": {"points": 10, "followers_for_max": 100_000},
        "freshness": {"points": 10, "half_life_minutes": 360},
        "novelty": {"new_question": 6, "per_doubling": 4, "max_askers": 12},
    },
    "clusters": {"similarity": 0.86, "max_clusters": 100, "idle_ttl_hours": 72},
    "block": {
        "authors": ["x:@known_troll", "x:666"],
        "keywords": ["parasites"],
        "patterns": [r"\bgo back to your own\b"],
    },
    "spam": {
        "keywords": ["airdrop", "followback"],
        "patterns": [r"\bturned \$\d+ into\b"],
        "max_hashtags": 4,
        "max_links": 1,
    },
    "routing": {"teams": {"en": "kakuma-a", "fr": "dadaab-b"}, "fallback": None},
}


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and key in base else value
    return out


def vec(*xs: float) -> npt.NDArray[np.float32]:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(xs)] = xs
    return v / np.float32(np.linalg.norm(v))


E1 = vec(1.0)
E1_NEAR = vec(1.0, 0.2)  # cosine 0.98 with E1
E2 = vec(0.0, 1.0)  # orthogonal: a different question
MISS = "@TakeActionCamps What do you miss most about home? #IWelcome"
MISS_2 = "what do u miss the most from home"
MISS_FR = "Qu'est-ce qui te manque le plus de ton pays ?"
SCHOOL = "What is school like in Kakuma?"


def reason(result: MentionClassified, factor: str) -> str:
    return next(r.detail for r in result.reasons if r.factor == factor)


def points(result: MentionClassified, factor: str) -> float:
    return next(r.points for r in result.reasons if r.factor == factor)


MentionFactory = Callable[..., MentionReceived]
PredictionFactory = Callable[..., Prediction]
TriageFactory = Callable[..., Triage]
