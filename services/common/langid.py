"""Which language a mention is written in, when its platform does not say.

py3langid (a naive-Bayes byte n-gram model of 140 languages and varieties,
shipped inside its wheel) with normalised probabilities, restricted to the 114
with a two-letter ISO 639-1 code: its regional varieties (``ary``, ``arz``, ``ext``…)
otherwise split a text's probability (a plain Arabic question scored 0.53 for
``ar`` beside 0.38 for ``arz``), and teams name languages by two letters.

It abstains rather than guess: a text with too few letters once links,
handles, hashtags and emoji are taken out, or whose best language is below
:data:`MIN_CONFIDENCE`, stays undetermined (``None``). The threshold was
measured on the handmade multilingual set in ``tests/common/test_langid.py``.

The model (4.5 MB, decompressed once) is loaded on first use, not at import.
Ingest tags every mention with it; it lives in ``common`` so any service (the
classify CLI's input, the classifier's router) tells languages the same way.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Protocol

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from services.common.messages import LangSource, MentionReceived

#: Below this probability the best language is not recorded. Measured on the handmade
#: set in the tests (restricted to two-letter languages): full sentences in en, fr, de,
#: es, ar, sw, so, it, pt, tr, nl score 0.95-1.0; the most confident wrong answer was
#: "hahaha hahaha" as Sesotho at 0.83; three-to-five-word texts score 0.5-1.0, right.
MIN_CONFIDENCE = 0.85
#: Fewer letters than this (after cleaning) is too little to tell a language.
MIN_LETTERS = 12

_NOISE = re.compile(r"https?://\S+|www\.\S+|[@#][\w.]+|&\w+;")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


class Identifier(Protocol):
    def classify(self, text: str) -> tuple[str, float]: ...

    def rank(self, text: str) -> list[tuple[str, float]]: ...


def clean_for_detection(text: str) -> str:
    """The words of ``text`` a language can be told from: no links, @handles, #tags."""
    return " ".join(_NOISE.sub(" ", text).split())


class LanguageDetector:
    """``detect(text)``: an ISO 639-1 code, or ``None`` when unsure."""

    def __init__(
        self,
        *,
        min_confidence: float = MIN_CONFIDENCE,
        min_letters: int = MIN_LETTERS,
        identifier: Identifier | None = None,
    ) -> None:
        self.min_confidence = min_confidence
        self.min_letters = min_letters
        self._identifier = identifier
        self._lock = threading.Lock()

    def _model(self) -> Identifier:
        with self._lock:
            if self._identifier is None:
                model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                # "zxx" is "no linguistic content": too little text already abstains.
                model.set_languages([c for c in model.labels if len(c) == 2 and c != "zxx"])
                self._identifier = model
            return self._identifier

    def scored(self, text: str) -> tuple[str | None, float]:
        """The best language and its probability; ``None`` when too short to try."""
        words = clean_for_detection(text)
        if len(_LETTER.findall(words)) < self.min_letters:
            return None, 0.0
        lang, confidence = self._model().classify(words)
        return str(lang), float(confidence)

    def probability(self, text: str, lang: str) -> float | None:
        """The model's probability that ``text`` is in ``lang`` (two letters); ``None``
        when too short to try. Informative also where :meth:`detect` abstains: a short
        Spanish question split between es, gl and pt still gives English next to 0."""
        words = clean_for_detection(text)
        if len(_LETTER.findall(words)) < self.min_letters:
            return None
        return float(dict(self._model().rank(words)).get(lang, 0.0))

    def detect(self, text: str) -> str | None:
        lang, confidence = self.scored(text)
        if lang is None or lang == "und" or confidence < self.min_confidence:
            return None
        return lang


@functools.cache
def default_detector() -> LanguageDetector:
    """The process's one detector (its model loaded on the first detection)."""
    return LanguageDetector()


def with_language(mention: MentionReceived) -> MentionReceived:
    """``mention`` with its language detected when it carries none (a producer
    other than ingest, an older message): the classifier routes by language and
    the worker routes questions to a team by it, so an untagged French insult
    must not be scored as English. A tag already there is kept."""
    if mention.lang is not None:
        return mention
    lang = default_detector().detect(mention.text)
    if lang is None:
        return mention
    return mention.model_copy(
        update={
            "lang": lang,
            "lang_source": LangSource.DETECTED,
            "schema_version": max(mention.schema_version, 3),
        }
    )
