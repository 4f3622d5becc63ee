"""The demo replay through the classify CLI and the shipped rules, on the
committed artefacts: supporters and askers reach the review queue (never
quarantine), and the plainest abuse is quarantined (the rest waits in review
with its priority capped: English-only model, and much of the demo's abuse is
contempt for the campaign rather than hate against a group)."""

from __future__ import annotations

import io
import json
from collections import Counter
from typing import Any

import pytest

from services.devstack.demo.generate import DemoMention, generate
from services.triage.classifier import load_classifier
from services.triage.rules import load_rules
from services.triage.worker import classify
from services.triage.worker.config import WorkerSettings

#: The real model on ~700 texts, on shared cores.
pytestmark = pytest.mark.timeout(900)

#: Demo categories written by people who support the campaign or ask it something.
FRIENDLY = ("question", "near_duplicate", "reply", "support")


def demo_decisions() -> list[tuple[str, str, dict[str, Any]]]:
    """(category, text, CLI output record) for every distinct friendly or abusive demo mention."""
    settings = WorkerSettings()
    mentions: dict[str, DemoMention] = {}
    for mention, _ in generate():
        if mention.category in (*FRIENDLY, "abuse"):
            mentions.setdefault(mention.text, mention)
    lines = "".join(
        json.dumps({"id": m.id, "text": m.text, "lang": m.lang}) + "\n" for m in mentions.values()
    )
    classifier = load_classifier(settings, load_rules(settings.rules_path).campaign_examples)
    out = io.StringIO()
    status = classify.main(
        ["--no-progress"],
        classifier=classifier,
        stdin=io.BytesIO(lines.encode("utf-8")),
        stdout=out,
        stderr=io.StringIO(),
    )
    assert status == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    return [(m.category, m.text, r) for m, r in zip(mentions.values(), records, strict=True)]


@pytest.fixture(scope="module")
def decisions() -> list[tuple[str, str, dict[str, Any]]]:
    return demo_decisions()


def test_no_supporter_or_asker_is_quarantined(
    decisions: list[tuple[str, str, dict[str, Any]]],
) -> None:
    quarantined = [
        (category, text, r["rule"])
        for category, text, r in decisions
        if category in FRIENDLY and r["decision"] == "quarantine"
    ]
    assert quarantined == []


def test_demo_abuse_is_quarantined_or_kept_out_of_the_teams_hands(
    decisions: list[tuple[str, str, dict[str, Any]]],
) -> None:
    abuse = Counter(r["decision"] for category, _, r in decisions if category == "abuse")
    assert abuse["quarantine"] >= 0.2 * sum(abuse.values()), abuse
    assert abuse["auto_assign"] == 0, abuse
    quarantined = {text for category, text, r in decisions if r["decision"] == "quarantine"}
    assert any("Go back to your own country" in text for text in quarantined)
