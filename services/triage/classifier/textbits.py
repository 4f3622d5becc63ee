"""The parts of a mention's text that only address, tag or link (shared by the
classifier's question cues and the worker's text helpers), and a language tag's
primary subtag."""

from __future__ import annotations

import functools
import re

URL_RE = r"(?:https?://|www\.)\S+"
MENTION_RE = r"(?<![\w@])@\w+(?:[.\-]\w+)*(?:@[\w\-]+(?:\.[\w\-]+)+)?"
HASHTAG_RE = r"(?<![\w#&])#\w+"
#: The characters a match of each can start with (either case: the links are matched
#: ignoring case).
URL_FIRST = "hHwW"
MENTION_FIRST = "@"
HASHTAG_FIRST = "#"


def searching(first: str, pattern: str) -> str:
    """``pattern`` behind a lookahead for the characters ``first`` its matches start
    with: a search then tries the pattern only where one of them stands, not every
    alternative at every position (``content_words`` over tweets: 2.5 against 7.3 us).
    The same matches."""
    return f"(?=[{first}])(?:{pattern})"


_NOT_CONTENT = re.compile(
    searching(URL_FIRST + MENTION_FIRST + HASHTAG_FIRST, f"{URL_RE}|{MENTION_RE}|{HASHTAG_RE}"),
    re.IGNORECASE,
)


def content_words(text: str) -> str:
    """The text without @mentions, links and hashtags (what "empty" looks at)."""
    return _NOT_CONTENT.sub(" ", text)


@functools.lru_cache(maxsize=1024)
def language(lang: str | None) -> str:
    """The primary language subtag, lower case (``en-GB`` -> ``en``); "" when unknown.
    Cached: a stream has a few dozen tags, asked several times a mention."""
    return re.split(r"[-_]", lang, maxsplit=1)[0].lower() if lang else ""
