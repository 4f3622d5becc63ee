"""The protection rules on replies under our published answers (pure): what hides,
what is kept, and the escalations — threats, doxxing (a place or the person's name
with hostility), never doxxing without hostility."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from services.common.messages import Escalation, ReplyReceived, ReplyVerdict, Scores
from services.triage.rules import Rules, RulesError, load_rules, parse_rules
from services.triage.worker.protection import judge, speaker_name
from tests.helpers.replies import NOW, reply_received

RULES = Path(__file__).resolve().parents[3] / "services" / "triage" / "rules.yaml"


@pytest.fixture(scope="module")
def rules() -> Rules:
    return load_rules(RULES)


@pytest.fixture
def reply_factory() -> Callable[..., ReplyReceived]:
    def make(text: str, **overrides: Any) -> ReplyReceived:
        return reply_received(text=text, **overrides)

    return make


def scores(offensive: float = 0.0, hate: float = 0.0) -> Scores:
    return Scores(offensive=offensive, hate=hate, question=0.1, relevance=0.3)


def test_a_kind_reply_is_kept(rules: Rules, reply_factory: Callable[..., ReplyReceived]) -> None:
    result = judge(
        reply_factory("What a brave answer, thank you Amina!"),
        scores(0.05, 0.01),
        rules,
        model_version="m",
        now=NOW,
    )
    assert (result.verdict, result.rule, result.escalations) == (ReplyVerdict.KEEP, "clean", ())


@pytest.mark.parametrize(
    ("given", "text", "rule"),
    [
        ((0.2, 0.8), "refugees are vermin", "hate"),
        ((0.9, 0.1), "you are a lying idiot", "offensive"),
    ],
)
def test_hate_or_offensive_aimed_at_someone_hides(
    rules: Rules,
    reply_factory: Callable[..., ReplyReceived],
    given: tuple[float, float],
    text: str,
    rule: str,
) -> None:
    result = judge(reply_factory(text), scores(*given), rules, model_version="m", now=NOW)
    assert (result.verdict, result.rule, result.escalations) == (ReplyVerdict.HIDE, rule, ())


def test_profanity_aimed_at_no_one_is_kept(
    rules: Rules, reply_factory: Callable[..., ReplyReceived]
) -> None:
    result = judge(
        reply_factory("this is so f***ing sad"), scores(0.9), rules, model_version="m", now=NOW
    )
    assert result.verdict is ReplyVerdict.KEEP


@pytest.mark.parametrize(
    "text", ["We will find you.", "I'll kill you", "someone should hang them all", "you will pay"]
)
def test_a_threat_hides_and_escalates_whatever_the_scores(
    rules: Rules, reply_factory: Callable[..., ReplyReceived], text: str
) -> None:
    result = judge(reply_factory(text), scores(0.0, 0.0), rules, model_version="m", now=NOW)
    assert (result.verdict, result.rule) == (ReplyVerdict.HIDE, "threat")
    assert result.escalations == (Escalation.THREAT,)


@pytest.mark.parametrize(
    "text",
    [
        "Amina is a liar and a parasite",
        "she lives in block 7 of Kakuma, go tell her what you think",
    ],
)
def test_the_persons_name_or_place_with_hostility_is_doxxing(
    rules: Rules, reply_factory: Callable[..., ReplyReceived], text: str
) -> None:
    result = judge(reply_factory(text), scores(0.6, 0.1), rules, model_version="m", now=NOW)
    assert (result.verdict, result.rule) == (ReplyVerdict.HIDE, "doxxing")
    assert Escalation.DOXXING in result.escalations


def test_the_persons_name_or_place_without_hostility_is_not_doxxing(
    rules: Rules, reply_factory: Callable[..., ReplyReceived]
) -> None:
    result = judge(
        reply_factory("Greetings to Amina and everyone in Kakuma block 3!"),
        scores(0.1, 0.02),
        rules,
        model_version="m",
        now=NOW,
    )
    assert (result.verdict, result.escalations) == (ReplyVerdict.KEEP, ())


def test_a_blocked_author_is_hidden(
    rules: Rules, reply_factory: Callable[..., ReplyReceived]
) -> None:
    document = yaml.safe_load(RULES.read_text())
    document["block"]["authors"] = ["x:66"]
    blocked = parse_rules(yaml.safe_dump(document).encode())
    result = judge(reply_factory("hello"), scores(), blocked, model_version="m", now=NOW)
    assert (result.verdict, result.rule) == (ReplyVerdict.HIDE, "blocked_author")


def test_protection_off_keeps_everything(reply_factory: Callable[..., ReplyReceived]) -> None:
    document = yaml.safe_load(RULES.read_text())
    document["protection"]["enabled"] = False
    off = parse_rules(yaml.safe_dump(document).encode())
    result = judge(
        reply_factory("I'll kill you"), scores(1.0, 1.0), off, model_version="m", now=NOW
    )
    assert (result.verdict, result.escalations) == (ReplyVerdict.KEEP, ())


def test_a_pile_on_threshold_below_two_is_refused() -> None:
    document = yaml.safe_load(RULES.read_text())
    document["protection"]["pile_on"]["replies"] = 1
    with pytest.raises(RulesError, match="pile_on"):
        parse_rules(yaml.safe_dump(document).encode())


@pytest.mark.parametrize(
    ("ref", "name"),
    [("Amina, filmed in Kakuma", "Amina"), ("speaker-17", None), ("ref 42", None), ("", None)],
)
def test_the_name_a_speaker_ref_starts_with(ref: str, name: str | None) -> None:
    assert speaker_name(ref) == name
