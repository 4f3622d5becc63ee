"""Binary classification metrics and calibration, in numpy (no scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ClassReport:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class BinaryReport:
    n: int
    threshold: float
    macro_f1: float
    positive: ClassReport
    negative: ClassReport
    ece: float
    brier: float
    nll: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _class_report(y: IntArray, pred: IntArray, cls: int) -> ClassReport:
    tp = int(np.sum((pred == cls) & (y == cls)))
    fp = int(np.sum((pred == cls) & (y != cls)))
    fn = int(np.sum((pred != cls) & (y == cls)))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return ClassReport(precision=p, recall=r, f1=f1, support=int(np.sum(y == cls)))


def expected_calibration_error(y: IntArray, prob: FloatArray, bins: int = 10) -> float:
    """ECE with equal-width bins on the positive-class probability."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if np.any(sel):
            total += float(np.sum(sel)) * abs(float(np.mean(prob[sel])) - float(np.mean(y[sel])))
    return total / max(len(y), 1)


def binary_report(y: IntArray, prob: FloatArray, threshold: float = 0.5) -> BinaryReport:
    y = np.asarray(y, dtype=np.int64)
    prob = np.clip(np.asarray(prob, dtype=np.float64), 1e-7, 1 - 1e-7)
    pred = (prob >= threshold).astype(np.int64)
    pos = _class_report(y, pred, 1)
    neg = _class_report(y, pred, 0)
    nll = float(-np.mean(y * np.log(prob) + (1 - y) * np.log(1 - prob))) if len(y) else 0.0
    return BinaryReport(
        n=len(y),
        threshold=threshold,
        macro_f1=(pos.f1 + neg.f1) / 2,
        positive=pos,
        negative=neg,
        ece=expected_calibration_error(y, prob),
        brier=float(np.mean((prob - y) ** 2)) if len(y) else 0.0,
        nll=nll,
    )


def sigmoid(x: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return out


def fit_temperature(y: IntArray, logits: FloatArray) -> float:
    """The temperature T minimising the NLL of ``sigmoid(logits / T)`` (grid, then refine)."""

    def nll(t: float) -> float:
        p = np.clip(sigmoid(logits / t), 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    best = float(min(grid, key=nll))
    fine = np.linspace(best * 0.9, best * 1.1, 21)
    return float(min(fine, key=nll))


def best_threshold(
    y: IntArray, prob: FloatArray, *, macro: bool, grid: FloatArray | None = None
) -> float:
    """The threshold on a coarse grid (0.30-0.70 by 0.05) with the best (macro-)F1.

    Coarse on purpose: a fine search over one validation set overfits it.
    """
    grid = np.arange(0.30, 0.7001, 0.05) if grid is None else grid

    def score(t: float) -> float:
        r = binary_report(y, prob, float(t))
        return r.macro_f1 if macro else r.positive.f1

    return round(float(max(grid, key=score)), 2)


def robust_threshold(
    sets: Sequence[tuple[IntArray, FloatArray]], grid: FloatArray | None = None
) -> float:
    """The threshold on a coarse grid (0.30-0.80 by 0.05) whose *worst* macro-F1
    over ``sets`` (labels, probabilities) is best.

    For a task whose data shifts (hate: HatEval's val->test shift, Davidson's
    profane-but-not-hate tweets), one threshold must serve several
    distributions; tuning it on one of them overfits that one.
    """
    grid = np.arange(0.30, 0.8001, 0.05) if grid is None else grid

    def worst(t: float) -> float:
        return min(binary_report(y, prob, float(t)).macro_f1 for y, prob in sets)

    return round(float(max(grid, key=worst)), 2)


#: The headline numbers: (name, set/task, which figure of its report).
HEADLINE = (
    ("olid/offensive macro-F1", "olid/offensive", "macro_f1"),
    ("hateval/hate macro-F1", "hateval/hate", "macro_f1"),
    ("davidson/hate macro-F1", "davidson/hate", "macro_f1"),
    ("davidson/offensive macro-F1", "davidson/offensive", "macro_f1"),
    ("dailydialog/question F1", "dailydialog/question", "positive_f1"),
)


def headline(sets: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of the sets measured (a retrain measures no question set)."""
    out: dict[str, float] = {}
    for name, key, figure in HEADLINE:
        if key in sets:
            report = sets[key]
            value = report["positive"]["f1"] if figure == "positive_f1" else report[figure]
            out[name] = float(value)
    return out
