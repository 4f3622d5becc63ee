"""The safety gate on measured reports: better on the campaign holdout, no worse than
live within the tolerance on every standard validation set, else refused with why."""

from __future__ import annotations

from typing import Any

from services.triage.classifier import gate

HEADLINE = {"olid/offensive macro-F1": 0.76, "hateval/hate macro-F1": 0.65}


def report(
    holdout: float | None, n: int = 300, headline: dict[str, float] | None = None
) -> dict[str, Any]:
    return {"holdout": {"n": n, "macro_f1": holdout}, "headline": {**HEADLINE, **(headline or {})}}


def test_better_on_the_campaign_and_within_tolerance_is_promoted() -> None:
    verdict = gate.judge(report(0.60), report(0.70, headline={"hateval/hate macro-F1": 0.64}))
    assert verdict.promote
    assert all(c.passed for c in verdict.checks)
    assert len(verdict.checks) == 3


def test_no_better_on_the_campaign_is_refused() -> None:
    verdict = gate.judge(report(0.70), report(0.705))
    assert not verdict.promote
    assert verdict.reason == (
        "campaign holdout macro-F1 (n=300): live 0.700, candidate 0.705 (at least +0.01 over live)"
    )


def test_worse_on_a_validation_set_is_refused_even_when_better_on_the_campaign() -> None:
    verdict = gate.judge(report(0.60), report(0.90, headline={"olid/offensive macro-F1": 0.70}))
    assert not verdict.promote
    assert verdict.reason == (
        "olid/offensive macro-F1: live 0.760, candidate 0.700 (no more than 0.02 below live)"
    )


def test_the_tolerance_and_gain_are_settings() -> None:
    candidate = report(0.62, headline={"olid/offensive macro-F1": 0.70})
    assert gate.judge(report(0.60), candidate, tolerance=0.1, min_gain=0.02).promote
    assert not gate.judge(report(0.60), candidate, tolerance=0.1, min_gain=0.03).promote


def test_too_few_held_back_labels_is_refused() -> None:
    verdict = gate.judge(report(0.5, n=5), report(0.9, n=5))
    assert not verdict.promote
    assert "needs at least 20 held-back labels" in verdict.reason
    assert not gate.judge(report(None), report(None)).promote
