"""Data loading, splits and metrics: pure functions, no model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.triage.classifier.data import (
    MISSING,
    bucket,
    data_dir,
    load_dailydialog,
    load_davidson,
    looks_like_statement,
    normalise_text,
)
from services.triage.classifier.metrics import (
    best_threshold,
    binary_report,
    expected_calibration_error,
    fit_temperature,
    robust_threshold,
)
from services.triage.classifier.model import text_features

DATA = data_dir()
needs_data = pytest.mark.skipif(
    not (DATA / "dailydialog").is_dir(), reason=f"training data not at {DATA}"
)


def test_normalise_text_masks_handles_links_and_entities() -> None:
    assert normalise_text("RT @Some_One: you &amp; me https://t.co/x  now") == (
        "@user: you & me URL now"
    )
    assert normalise_text("@a @b hi") == "@user @user hi"
    assert normalise_text("") == ""


def test_statement_heuristic() -> None:
    assert looks_like_statement("@user I love this")
    assert not looks_like_statement("@user why would you say that")
    assert not looks_like_statement("so that is it?")


def test_text_features_ignore_trailing_emoji_and_links() -> None:
    feats = text_features(["how are you? 😀", "fine. what? no", "nothing", ""])
    assert feats.tolist() == [[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]


def test_bucket_is_deterministic_and_seeded() -> None:
    assert bucket("x", 1) == bucket("x", 1)
    assert bucket("x", 1) != bucket("x", 2)
    assert 0.0 <= bucket("y", 3) < 1.0


@needs_data
def test_dailydialog_split_is_by_dialogue_and_deterministic() -> None:
    train, val = load_dailydialog(DATA, seed=13)
    again_train, again_val = load_dailydialog(DATA, seed=13)
    assert [e.text for e in val] == [e.text for e in again_val]
    assert len(train) == len(again_train)
    assert 0.1 < len(val) / (len(train) + len(val)) < 0.3
    assert all(e.question in (0, 1) for e in val)
    assert {e.source for e in val} == {"dailydialog"}
    stripped = [e for e in train if e.source == "dailydialog-noqmark"]
    assert stripped
    assert all("?" not in e.text and e.question == 1 for e in stripped)


@needs_data
def test_davidson_held_out_is_disjoint_from_train() -> None:
    train, val = load_davidson(DATA, seed=13)
    # split by row; the data set itself repeats a few tweets
    assert len({e.text for e in train} & {e.text for e in val}) < 10
    assert all(e.hate <= e.offensive for e in [*train, *val])
    assert all(e.question == MISSING for e in val)


def test_binary_report_by_hand() -> None:
    y = np.array([1, 1, 0, 0, 0])
    prob = np.array([0.9, 0.2, 0.8, 0.1, 0.1])
    r = binary_report(y, prob, 0.5)
    assert r.positive.precision == pytest.approx(0.5)
    assert r.positive.recall == pytest.approx(0.5)
    assert r.negative.f1 == pytest.approx(2 / 3)
    assert r.macro_f1 == pytest.approx((0.5 + 2 / 3) / 2)


def test_calibration_helpers() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=4000) * 3
    y = (rng.random(4000) < 1 / (1 + np.exp(-logits / 3))).astype(np.int64)
    assert fit_temperature(y, logits) == pytest.approx(3.0, rel=0.15)
    perfect = np.array([0.0, 1.0])
    assert expected_calibration_error(np.array([0, 1]), perfect) == pytest.approx(0.0)
    assert 0.3 <= best_threshold(y, 1 / (1 + np.exp(-logits / 3)), macro=True) <= 0.7


def test_robust_threshold_serves_the_worse_of_two_shifted_sets() -> None:
    """Set A separates at 0.4, set B (profane non-hate scoring high) only at 0.7:
    the threshold best for A alone fails B; the robust one serves both."""
    y_a = np.array([0] * 50 + [1] * 50, dtype=np.int64)
    p_a = np.concatenate([np.full(50, 0.35), np.linspace(0.45, 0.95, 50)])
    y_b = np.array([0] * 80 + [1] * 20, dtype=np.int64)
    p_b = np.concatenate([np.linspace(0.1, 0.65, 80), np.full(20, 0.75)])
    only_a = best_threshold(y_a, p_a, macro=True)
    assert only_a <= 0.45
    assert binary_report(y_b, p_b, only_a).macro_f1 < 0.7
    t = robust_threshold([(y_a, p_a), (y_b, p_b)])

    def worst(threshold: float) -> float:
        return min(
            binary_report(y_a, p_a, threshold).macro_f1,
            binary_report(y_b, p_b, threshold).macro_f1,
        )

    assert t > only_a
    assert worst(t) > worst(only_a) + 0.1
    assert worst(t) >= max(worst(g) for g in np.arange(0.30, 0.8001, 0.05)) - 1e-9


def test_data_dir_prefers_argument_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_DATA_DIR", "/somewhere")
    assert data_dir("/else") == Path("/else")
    assert data_dir() == Path("/somewhere")
