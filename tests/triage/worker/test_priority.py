"""Priority: its named parts, the cap and the clamp."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.messages import Scores
from services.triage.rules import PriorityWeights
from services.triage.worker.clusters import ClusterAssignment
from services.triage.worker.priority import priority_parts, settle
from tests.triage.worker.helpers import (
    NOW,
    RULES,
    MentionFactory,
    PredictionFactory,
    TriageFactory,
)

# --- priority ----------------------------------------------------------------------------

WEIGHTS = PriorityWeights.model_validate(RULES["priority"])


def scores(**overrides: float) -> Scores:
    fields = {"offensive": 0.0, "hate": 0.0, "question": 1.0, "relevance": 1.0, **overrides}
    return Scores(**fields)


def parts_of(**kwargs: Any) -> dict[str, float]:
    args: dict[str, Any] = {
        "followers": None,
        "age_minutes": 0.0,
        "cluster": None,
        "weights": WEIGHTS,
    }
    args.update(kwargs)
    s = args.pop("scores", scores())
    return {p.factor: p.points for p in priority_parts(s, **args)}


def test_question_and_relevance_scale_their_weights() -> None:
    parts = parts_of(scores=scores(question=0.5, relevance=0.4))

    assert parts["question"] == 17.5
    assert parts["relevance"] == 10.0


def test_not_abusive_rewards_clean_and_penalises_abuse() -> None:
    assert parts_of(scores=scores())["not_abusive"] == 15.0
    assert parts_of(scores=scores(offensive=0.5))["not_abusive"] == 7.5 - 15.0
    assert parts_of(scores=scores(hate=1.0))["not_abusive"] == -30.0


def test_reach_is_logarithmic_and_capped() -> None:
    assert parts_of(followers=None)["reach"] == 0.0
    assert parts_of(followers=0)["reach"] == 0.0
    assert parts_of(followers=316)["reach"] == pytest.approx(5.0, abs=0.01)
    assert parts_of(followers=100_000)["reach"] == 10.0
    assert parts_of(followers=10**9)["reach"] == 10.0


def test_freshness_halves_every_half_life() -> None:
    assert parts_of(age_minutes=0)["freshness"] == 10.0
    assert parts_of(age_minutes=360)["freshness"] == 5.0
    assert parts_of(age_minutes=720)["freshness"] == 2.5
    assert parts_of(age_minutes=-30)["freshness"] == 10.0  # clock skew: counted as new


def test_novelty_new_question_and_many_askers() -> None:
    def novelty(size: int, *, new: bool) -> float:
        cluster = ClusterAssignment("c-1", size, new=new, how="new" if new else "similar")
        return parts_of(cluster=cluster)["novelty"]

    assert novelty(1, new=True) == 6.0
    assert novelty(2, new=False) == 4.0  # asked twice: below a brand-new question
    assert novelty(4, new=False) == 8.0  # asked by four: above it
    assert novelty(1000, new=False) == 12.0  # capped
    assert "novelty" not in parts_of(cluster=None)


def test_settle_clamps_above_100_and_lists_the_clamp() -> None:
    high = PriorityWeights.model_validate({**RULES["priority"], "question": 100})
    parts = priority_parts(scores(), followers=None, age_minutes=0, cluster=None, weights=high)

    priority, settled = settle(parts, cap=None, cap_why="")

    assert priority == 100
    assert settled[-1].factor == "clamp"
    assert sum(p.points for p in settled) == pytest.approx(100)


def test_settle_clamps_below_zero() -> None:
    parts = priority_parts(
        scores(question=0.0, relevance=0.0, hate=1.0),
        followers=None,
        age_minutes=10**6,
        cluster=None,
        weights=WEIGHTS,
    )

    priority, settled = settle(parts, cap=None, cap_why="")

    assert priority == 0
    assert settled[-1].factor == "clamp"
    assert sum(p.points for p in settled) == pytest.approx(0, abs=0.01)


def test_priority_is_the_sum_of_its_parts(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    mention = mention_factory(author={"id": "1", "handle": "a", "followers": 316})

    result = triage().decide(mention, prediction(question=0.8, relevance=0.7), now=NOW)

    assert result.priority == round(sum(r.points for r in result.reasons))
    factors = [r.factor for r in result.reasons]
    assert factors == [
        "question",
        "relevance",
        "not_abusive",
        "reach",
        "freshness",
        "novelty",
        "team",
        "decision",
    ]
    expected = 35 * 0.8 + 25 * 0.7 + 15 * 0.99 - 30 * 0.01 + 5.0 + 10 * 0.5 ** (10 / 360) + 6
    assert result.priority == round(expected)
