"""The safety gate: whether a retrained candidate may replace the live model.

Promoted only when both hold, measured in the same run on the same texts
(:func:`services.triage.classifier.campaign.measure`):

1. **better on the campaign**: on the held-back slice of the campaign's most
   recent labels (never trained on, at least ``min_holdout`` of them), the
   candidate's macro-F1 (mean over offensive and hate) beats the live model's
   by at least ``min_gain``;
2. **no worse elsewhere**: on every standard validation set's headline figure
   (OLID offensive, HatEval hate, Davidson hate and offensive) the candidate is
   at most ``tolerance`` below the live model.

Otherwise it stays a candidate, with every failed check as its reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Defaults, stated where the gate is shown (the model page, ``GET /api/model``).
MIN_GAIN = 0.01
TOLERANCE = 0.02
MIN_HOLDOUT = 20


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    live: float | None
    candidate: float | None
    passed: bool
    rule: str


@dataclass(frozen=True, slots=True)
class Verdict:
    promote: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    min_gain: float = MIN_GAIN
    tolerance: float = TOLERANCE

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    live: dict[str, Any],
    candidate: dict[str, Any],
    *,
    min_gain: float = MIN_GAIN,
    tolerance: float = TOLERANCE,
    min_holdout: int = MIN_HOLDOUT,
) -> Verdict:
    """The gate's verdict on ``candidate`` against ``live`` (both :func:`measure` reports)."""
    checks: list[Check] = []
    held_live = live.get("holdout", {})
    held_cand = candidate.get("holdout", {})
    n = int(held_cand.get("n") or 0)
    before, after = held_live.get("macro_f1"), held_cand.get("macro_f1")
    if n < min_holdout or before is None or after is None:
        checks.append(
            Check(
                "campaign holdout",
                before,
                after,
                passed=False,
                rule=f"needs at least {min_holdout} held-back labels with both classes (has {n})",
            )
        )
    else:
        checks.append(
            Check(
                f"campaign holdout macro-F1 (n={n})",
                before,
                after,
                passed=after >= before + min_gain,
                rule=f"at least +{min_gain:.2f} over live",
            )
        )
    for name, value in sorted(live.get("headline", {}).items()):
        new = candidate.get("headline", {}).get(name)
        checks.append(
            Check(
                name,
                value,
                new,
                passed=new is not None and new >= value - tolerance,
                rule=f"no more than {tolerance:.2f} below live",
            )
        )
    failed = [c for c in checks if not c.passed]
    if failed:
        reason = "; ".join(f"{c.name}: {_figures(c)} ({c.rule})" for c in failed)
    else:
        reason = "better on the campaign holdout and within tolerance on every validation set"
    return Verdict(not failed, reason, checks, min_gain, tolerance)


def _figures(check: Check) -> str:
    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return f"live {show(check.live)}, candidate {show(check.candidate)}"
