"""Priority (0-100) as the sum of named, explainable parts (:func:`priority_parts`),
a cap or the clamp listed as a part too (:func:`settle`), and the classifier's
scores made safe to add up (:func:`scores_of`)."""

from __future__ import annotations

import math

from services.common.messages import PriorityReason, Scores
from services.triage.classifier.base import Prediction
from services.triage.rules import PriorityWeights
from services.triage.worker.clusters import ClusterAssignment

_MAX_DETAIL = 512
#: An unknown (non-finite) probability from a classifier counts as this: never auto-assigned.
UNKNOWN = 0.5


def reason(factor: str, points: float, detail: str) -> PriorityReason:
    return PriorityReason(factor=factor, points=round(points, 2), detail=detail[:_MAX_DETAIL])


def priority_parts(
    scores: Scores,
    *,
    followers: int | None,
    age_minutes: float,
    cluster: ClusterAssignment | None,
    weights: PriorityWeights,
    offensive_counts: bool = True,
) -> list[PriorityReason]:
    """The explainable parts of a priority, before any cap or clamp.

    - ``question``: weight x question score.
    - ``relevance``: weight x relevance to the campaign.
    - ``not_abusive``: points x (1 - abuse) - penalty x abuse, abuse = max(offensive, hate),
      or hate alone when the rules found the offensive score is not abuse of anyone
      (``offensive_counts`` false: on the campaign's subject, or aimed at no one).
    - ``reach``: points x log(1 + followers) / log(1 + followers_for_max), at most points.
    - ``freshness``: points x 0.5 ^ (age / half-life); a future ``created_at`` counts as new.
    - ``novelty``: a new question gets ``new_question``; one joining a cluster of
      k askers gets ``per_doubling`` x log2(k), at most ``max_askers`` (demand: one
      answer serves them all). Absent for mentions that are not clustered.
    """
    parts = [
        reason("question", weights.question * scores.question, f"question {scores.question:.2f}"),
        reason(
            "relevance", weights.relevance * scores.relevance, f"relevance {scores.relevance:.2f}"
        ),
    ]
    abuse = max(scores.offensive, scores.hate) if offensive_counts else scores.hate
    na = weights.not_abusive
    counted = "" if offensive_counts else " (offensive not counted: not abuse of anyone)"
    parts.append(
        reason(
            "not_abusive",
            na.points * (1.0 - abuse) - na.penalty * abuse,
            f"offensive {scores.offensive:.2f}, hate {scores.hate:.2f}{counted}",
        )
    )
    reach = weights.reach
    if followers is None:
        parts.append(reason("reach", 0.0, "followers unknown"))
    else:
        share = min(1.0, math.log1p(followers) / math.log1p(reach.followers_for_max))
        parts.append(reason("reach", reach.points * share, f"{followers} followers"))
    fresh = weights.freshness
    age = max(0.0, age_minutes)
    decay = 0.5 ** (age / fresh.half_life_minutes)
    parts.append(reason("freshness", fresh.points * decay, f"{_age_text(age_minutes)} old"))
    if cluster is not None:
        nov = weights.novelty
        if cluster.new:
            parts.append(
                reason("novelty", nov.new_question, f"new question ({cluster.cluster_id})")
            )
        else:
            points = min(nov.max_askers, nov.per_doubling * math.log2(cluster.size))
            parts.append(
                reason(
                    "novelty",
                    points,
                    f"asked by {cluster.size} in {cluster.cluster_id} ({cluster.how} match)",
                )
            )
    return parts


def _age_text(minutes: float) -> str:
    if minutes < 0:
        return f"{-minutes:.0f} min in the future (clock skew), counted as 0 min"
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def settle(
    parts: list[PriorityReason], *, cap: int | None, cap_why: str
) -> tuple[int, list[PriorityReason]]:
    """Apply an optional cap and the 0-100 clamp, each listed as a part; the
    result's points add up to the priority (to rounding)."""
    parts = list(parts)
    total = sum(p.points for p in parts)
    if cap is not None and total > cap:
        parts.append(reason("cap", cap - total, f"{cap_why}: at most {cap}"))
        total = cap
    if total > 100:
        parts.append(reason("clamp", 100 - total, "sum above 100"))
        total = 100
    elif total < 0:
        parts.append(reason("clamp", -total, "sum below 0"))
        total = 0
    return max(0, min(100, round(total))), parts


def _probability(value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        return UNKNOWN
    return min(1.0, max(0.0, value))


def scores_of(prediction: Prediction) -> Scores:
    """The classifier's scores, clamped to [0, 1]; a NaN counts as unknown (0.5)."""
    return Scores(
        offensive=_probability(prediction.offensive),
        hate=_probability(prediction.hate),
        question=_probability(prediction.question),
        relevance=_probability(prediction.relevance),
    )
