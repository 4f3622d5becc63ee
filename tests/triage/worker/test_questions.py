"""How the decisions use the question cues (not on "?" alone; the cues themselves:
tests/triage/classifier/test_questions.py)."""

from __future__ import annotations

import pytest

from services.common.messages import Decision
from services.triage.config import PACKAGE_DIR
from services.triage.rules import RulesFile
from services.triage.worker.domain import Triage
from tests.triage.worker.helpers import (
    NOW,
    MentionFactory,
    PredictionFactory,
    TriageFactory,
    reason,
)

# --- in the decisions ----------------------------------------------------------------


def test_a_german_question_without_question_mark_is_a_question(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    mention = mention_factory(text="Wann öffnet die Schule wieder", lang="de")

    result = triage().decide(mention, prediction(question=0.2, relevance=1.0), now=NOW)

    assert (result.decision, result.rule) == (Decision.REVIEW, "review_low_confidence")
    # The score carried on is the decision's (the threshold, below auto-assign's 0.9);
    # the head's own is kept in the cue's reason.
    assert result.scores.question == pytest.approx(0.5)
    assert "question 0.20 < 0.50 but interrogative 'wann' (de)" in reason(result, "question_cue")
    assert result.priority > 25  # not capped as a non-question


def test_english_keeps_the_question_heads_word(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    mention = mention_factory(text="what a lovely video", lang="en")

    result = triage().decide(mention, prediction(question=0.2, relevance=1.0), now=NOW)

    assert (result.decision, result.rule) == (Decision.REVIEW, "not_question")


def test_question_cues_can_be_switched_off(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    mention = mention_factory(text="Wann öffnet die Schule wieder", lang="de")
    rules = {"decisions": {"question_cues": {"enabled": False}}}

    result = triage(**rules).decide(mention, prediction(question=0.2, relevance=1.0), now=NOW)

    assert result.rule == "not_question"


def test_a_cue_adds_nothing_when_the_score_already_says_question(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    mention = mention_factory(text="Wann öffnet die Schule wieder", lang="de")

    result = triage().decide(mention, prediction(question=0.95, relevance=1.0), now=NOW)

    assert all(part.factor != "question_cue" for part in result.reasons)


def test_with_the_shipped_rules_a_german_question_goes_to_a_german_speaking_team(
    mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    triage = Triage(RulesFile(PACKAGE_DIR / "rules.yaml", check_every_s=0.0), "fake-1")
    mention = mention_factory(text="Wann öffnet die Schule wieder", lang="de")

    result = triage.decide(mention, prediction(question=0.3, relevance=0.9), now=NOW)

    assert result.team == "kalobeyei-c"
    assert result.rule == "review_low_confidence"  # a question by its cue, routed by language
