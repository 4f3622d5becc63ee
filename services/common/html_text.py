"""Mastodon's HTML ``content`` as plain text: what ingest reads a status as, and
what the publisher's watcher reads a reply under an answer as. Pure."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _TextExtractor(HTMLParser):
    """Plain text of Mastodon's sanitised status HTML."""

    _BLOCKS = frozenset({"p", "div", "blockquote", "pre", "li", "h1", "h2", "h3", "h4", "h5", "h6"})
    _SKIP = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._pre = 0
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "pre":
            self._pre += 1
        elif tag in self._SKIP:
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._BLOCKS:
            self.parts.append("\n\n")
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag in self._SKIP:
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        # Outside <pre>, a raw line break in HTML source is just a space.
        self.parts.append(data if self._pre else re.sub(r"[\r\n]+", " ", data))


def html_to_text(content: str) -> str:
    """``<br>`` becomes a newline, a closed paragraph a blank line, other tags go,
    entities are unescaped (``&amp;`` -> ``&``)."""
    parser = _TextExtractor()
    parser.feed(content)
    parser.close()
    lines = [line.rstrip() for line in "".join(parser.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


__all__ = ["html_to_text"]
