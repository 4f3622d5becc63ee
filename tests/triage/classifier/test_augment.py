"""The counterfactual templates: every group in both classes, nothing borrowed."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import yaml  # type: ignore[import-untyped, unused-ignore]

from services.triage.classifier.augment import (
    GROUPS,
    HATEFUL,
    HATEFUL_REPLIES,
    PROFANE,
    SUPPORTIVE,
    SUPPORTIVE_REPLIES,
    augmented_examples,
    campaign_texts,
)

DEMO = Path("services/devstack/demo/mentions.jsonl")
SUITE = Path("services/triage/classifier/functional_suite.yaml")


def test_every_group_is_named_in_hateful_and_in_supportive_texts() -> None:
    examples = augmented_examples()
    for group in GROUPS:
        named = [e for e in examples if group.plural.lower() in e.text.lower()]
        classes = Counter(e.hate for e in named)
        assert classes[0] >= 20, group
        assert classes[1] >= 20, group
        assert abs(classes[0] - classes[1]) <= 0.4 * len(named), group


def test_labels_are_consistent() -> None:
    for e in augmented_examples():
        assert (e.offensive, e.hate) in {(0, 0), (1, 1), (1, 0)}
        assert e.source == "augment"
        assert e.split == "train"


def test_the_campaigns_own_texts_are_non_abusive_examples() -> None:
    texts = {e.text: e for e in augmented_examples()}
    for text in campaign_texts()[1:]:
        assert any(text.strip() in t for t in texts)


def test_no_demo_mention_is_copied_into_training() -> None:
    """The demo replay check stays honest: its texts are not training data."""
    demo = []
    for line in DEMO.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        text = record.get("text") or record.get("data", {}).get("text", "")
        demo.append(text.lower())
    campaign = {t.lower() for t in campaign_texts()}
    for e in augmented_examples():
        if e.text.lower() in campaign:
            continue
        assert not any(e.text.lower() in d for d in demo), e.text


def _words(template: str) -> list[str]:
    """Lower-case words, every slot ({G}, {one}, {bad}, {vile}) one placeholder word."""
    text = re.sub(r"\{(G|one|bad|vile)\}", " slot ", template)
    return re.findall(r"[a-z']+", text.lower())


def _four_grams(template: str) -> set[tuple[str, ...]]:
    w = _words(template)
    return {tuple(w[i : i + 4]) for i in range(len(w) - 3)}


def test_no_training_template_shares_four_words_in_a_row_with_the_functional_suite() -> None:
    """Training and test wordings are disjoint: the suite measures generalisation,
    not recall of its own sentences (placeholders count as one word)."""
    suite = yaml.safe_load(SUITE.read_text(encoding="utf-8"))["categories"]
    suite_grams: set[tuple[str, ...]] = set()
    for spec in suite.values():
        for text in [*spec.get("templates", []), *spec.get("cases", [])]:
            suite_grams |= _four_grams(str(text))
    training = [*HATEFUL, *HATEFUL_REPLIES, *SUPPORTIVE, *SUPPORTIVE_REPLIES, *PROFANE]
    shared = {t: sorted(_four_grams(t) & suite_grams) for t in training}
    assert {t: g for t, g in shared.items() if g} == {}
    # The check itself can fail: a suite sentence's own wording is caught.
    assert _four_grams("{G} are a swarm of locusts, truly.") & suite_grams
