"""What the model sees, pure retweets, exact-duplicate keys."""

from __future__ import annotations

import pytest

from services.triage.worker.text import (
    aims_at_someone,
    exact_key,
    is_pure_retweet,
    text_for_model,
)

# --- text helpers ----------------------------------------------------------------------


def test_text_for_model_strips_retweet_prefix_and_addressing() -> None:
    text = "RT @zara16:  @TakeActionCamps What is school like?\n https://t.co/abc #TakeAction…"

    assert text_for_model(text) == "What is school like?"


def test_text_for_model_keeps_inline_hashtags_mentions_and_links() -> None:
    text = "#IWelcome? Ask @amani, see https://x.example/a now 🙏 @TakeActionCamps"

    assert text_for_model(text) == "#IWelcome? Ask @amani, see URL now 🙏"


def test_text_for_model_keeps_a_text_of_tags_only() -> None:
    assert text_for_model("@TakeActionCamps  #IWelcome") == "@TakeActionCamps #IWelcome"


def test_pure_retweet_is_only_a_leading_rt() -> None:
    assert is_pure_retweet("RT @zara16: What is school like?")
    assert not is_pure_retweet("Great question! RT @zara16: What is school like?")
    assert not is_pure_retweet("ART @ the museum: what do you like?")


def test_exact_key_ignores_case_mentions_links_and_punctuation() -> None:
    a = exact_key("@TakeActionCamps What do you miss most about home?? https://t.co/x")
    b = exact_key("what do you miss   most about home @someone_else")

    assert a == b
    assert a != exact_key("What do you miss most about school?")


@pytest.mark.parametrize(
    ("text", "aimed"),
    [
        ("@TakeActionCamps you are an idiot", True),
        ("those people are disgusting", True),
        ("refugees are scum", True),
        ("she is a liar", True),
        ("what a day @bob ruined it", True),
        ("@TakeActionCamps this fucking heat #TakeAction", False),
        ("holy shit that was amazing", False),
        ("my phone is useless junk", False),
    ],
)
def test_aims_at_someone(text: str, aimed: bool) -> None:
    assert aims_at_someone(text) is aimed
