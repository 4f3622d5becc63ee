"""The parts of a mention's text that only address, tag or link (shared by the
classifier's question cues and the worker's text helpers), and a language tag's
primary subtag."""

from __future__ import annotations

import re

URL_RE = r"(?:https?://|www\.)\S+"
MENTION_RE = r"(?<![\w@])@\w+(?:[.\-]\w+)*(?:@[\w\-]+(?:\.[\w\-]+)+)?"
HASHTAG_RE = r"(?<![\w#&])#\w+"
_NOT_CONTENT = re.compile(f"{URL_RE}|{MENTION_RE}|{HASHTAG_RE}", re.IGNORECASE)


def content_words(text: str) -> str:
    """The text without @mentions, links and hashtags (what "empty" looks at)."""
    return _NOT_CONTENT.sub(" ", text)


def language(lang: str | None) -> str:
    """The primary language subtag, lower case (``en-GB`` -> ``en``); "" when unknown."""
    return re.split(r"[-_]", lang, maxsplit=1)[0].lower() if lang else ""
