"""The functional suite: its cases, and its report through the classify CLI."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from services.triage.classifier.base import Prediction
from services.triage.worker.functional import (
    IMMIGRANT_GROUPS,
    failures,
    load_suite,
    run_suite,
    summarise,
    table,
)

RULES = Path("services/triage/rules.yaml")
#: Measured 0.885 for minilm-l6-top2body-heads-2026.12.04 (0.83 for 2026.12.03; the
#: issue's target is 0.85). A retrain must not fall below this (a small margin for
#: bf16 and for scores that sit near the threshold).
HATEFUL_FLAGGED_FLOOR = 0.86
FLOORS = {
    "min_hateful_flagged": 0.85,
    "max_non_hateful_quarantined": 0.10,
    "max_immigrant_quarantined": 0.05,
}


class KeywordModel:
    """Hate for texts with a slur-like word; offensive for any text naming refugees."""

    version = "keywords-1"

    def classify(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        return [
            Prediction(
                offensive=0.99 if "refugee" in t.lower() else 0.01,
                hate=0.9 if any(w in t.lower() for w in ("vermin", "scum", "rats")) else 0.01,
                question=0.9 if "?" in t else 0.1,
                relevance=0.9 if "refugee" in t.lower() else 0.1,
                embedding=np.full(4, 0.5, dtype=np.float32),
            )
            for t in texts
        ]


def test_the_suite_covers_every_group_in_both_classes() -> None:
    cases = load_suite()
    per = Counter((c.hateful, c.target) for c in cases)
    groups = {c.target for c in cases} - {"none"}
    assert set(IMMIGRANT_GROUPS) <= groups
    for group in groups:
        assert per[(True, group)] >= 30, group
        assert per[(False, group)] >= 25, group
    categories = {c.category for c in cases}
    assert {"implicit", "question", "obfuscated", "threat"} <= categories
    assert {"negated", "counter_quote", "counter_reference", "positive"} <= categories
    assert len({c.text for c in cases}) == len(cases)


def test_the_report_goes_through_the_cli_and_its_rules() -> None:
    cases = [c for c in load_suite() if c.target in ("refugees", "women")]
    outcomes = run_suite(cases, KeywordModel(), RULES)

    summary = summarise(outcomes)

    by_text = {o.case.text: o for o in outcomes}
    # Naming refugees scores offensive 0.99 here, yet on the campaign's subject
    # offensive alone does not quarantine (rules.yaml): only hate does.
    assert by_text["Refugees are wonderful people."].decision == "review"
    assert by_text["Refugees are vermin and should be treated as such."].quarantined
    assert summary["headline"]["immigrant_non_hateful_quarantined"] < 0.2
    assert summary["categories"]["dehumanisation"]["rate"] >= 0.2
    assert "dehumanisation" in table(summary)
    assert any("hateful_flagged" in f for f in failures(summary, FLOORS))


@pytest.mark.timeout(900)
def test_the_committed_model_passes_its_functional_suite() -> None:
    """The committed artefacts and the shipped rules, through the classify CLI."""
    from services.triage.classifier import load_classifier  # noqa: PLC0415 - loads torch
    from services.triage.rules import load_rules  # noqa: PLC0415
    from services.triage.worker.config import WorkerSettings  # noqa: PLC0415

    classifier = load_classifier(WorkerSettings(), load_rules(RULES).campaign_examples)
    summary = summarise(run_suite(load_suite(), classifier, RULES))

    h = summary["headline"]
    assert h["immigrant_non_hateful_quarantined"] <= 0.05, table(summary)
    assert h["non_hateful_quarantined"] <= 0.10, table(summary)
    assert h["hateful_flagged"] >= HATEFUL_FLAGGED_FLOOR, table(summary)
