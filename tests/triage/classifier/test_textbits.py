"""What "content" is, and the lookahead that speeds the tag patterns up without
changing a match."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from services.triage.classifier.textbits import (
    HASHTAG_FIRST,
    HASHTAG_RE,
    MENTION_FIRST,
    MENTION_RE,
    URL_FIRST,
    URL_RE,
    content_words,
    language,
    searching,
)

PLAIN = re.compile(f"{URL_RE}|{MENTION_RE}|{HASHTAG_RE}", re.IGNORECASE)
FAST = re.compile(
    searching(URL_FIRST + MENTION_FIRST + HASHTAG_FIRST, f"{URL_RE}|{MENTION_RE}|{HASHTAG_RE}"),
    re.IGNORECASE,
)
#: Pieces the patterns care about, in both cases, with look-alikes: the Kelvin sign
#: and the dotless i fold to ASCII letters when case is ignored.
PIECES = [
    "http://",
    "HTTPS://",
    "Www.",
    "www.",
    "@",
    "#",
    "&#",
    "a",
    "x1",
    "_",
    ".",
    "-",
    " ",
    "\n",
    "é",
    "\u212a",
    "\u0131",
    "h",
    "W",
    "example.org",
    "user",
]


def test_content_words_keeps_only_what_is_said() -> None:
    text = "@UNHCR @a.b-c @me@social.example #Refugees HTTPS://x.org/y www.z.net how are you?"
    assert content_words(text).split() == ["how", "are", "you?"]
    assert content_words("a&#39;b email@host.org").split() == ["a&#39;b", "email@host.org"]
    assert content_words("@UNHCR #welcome https://t.co/x").strip() == ""


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=25))
def test_the_lookahead_finds_the_same_matches(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert [m.span() for m in FAST.finditer(text)] == [m.span() for m in PLAIN.finditer(text)]


def test_the_lookahead_without_ignorecase_is_the_pattern() -> None:
    plain = re.compile(HASHTAG_RE)
    fast = re.compile(searching(HASHTAG_FIRST, HASHTAG_RE))
    for text in ["#a #b&#c x#d ##e", "#", "a #Ünïcode", "&#x; #_1"]:
        assert fast.findall(text) == plain.findall(text)


def test_language_is_the_primary_subtag() -> None:
    assert language("en-GB") == "en"
    assert language("pt_BR") == "pt"
    assert language(None) == ""
