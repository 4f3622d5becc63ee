"""Obfuscated spellings of abusive words and group names are restored; ordinary text is not."""

from __future__ import annotations

import pytest

from services.triage.classifier.data import normalise_text
from services.triage.classifier.deobfuscate import deobfuscate


@pytest.mark.parametrize(
    ("text", "restored"),
    [
        ("you 1d10t!!!", "you idiot!!!"),  # leet, trailing punctuation kept
        ("k1ll all the imm1gr4nts", "kill all the immigrants"),
        ("i d i o t s", "idiots"),  # spaced letters
        ("f.u.c.k them", "fuck them"),
        ("m u s l i m s are vermin", "muslims are vermin"),
        ("f*ck them", "fuck them"),  # masked letters
        ("such an a**hole", "such an asshole"),
        ("those idoits", "those idiots"),  # swapped letters
        ("they are parasties", "they are parasites"),
        ("they are disgustng", "they are disgusting"),  # a dropped letter
        ("stuuupid", "stupid"),  # elongated
        ("#r3fug33s welcome", "#refugees welcome"),
    ],
)
def test_obfuscations_are_restored(text: str, restored: str) -> None:
    assert deobfuscate(text) == restored


@pytest.mark.parametrize(
    "text",
    [
        "Proud to stand with refugees today and every day.",
        "2nd place for R2-D2 in the A B C quiz",
        "Africa, form, depot, seeker",  # real words a swap or a dropped letter would "fix"
        "I a m here",
        "$100 b4 l8r 2019",
        "*as if",
        "What is school like in Kakuma?",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert deobfuscate(text) == text


def test_normalisation_deobfuscates_for_training_and_inference_alike() -> None:
    assert normalise_text("@someone r e f u g e e s are  s c u m") == "@user refugees are scum"
