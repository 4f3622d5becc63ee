"""Timed subtitles, pure: cues from speech-to-text segments, from an edited text
(timed over the speech again), from a WebVTT or SRT file a team provides; cues cut
with the video; written out as WebVTT or SRT."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Longest cue on screen: two lines of about 42 characters, at most 7 seconds.
MAX_CHARS = 84
MAX_CUE_S = 7.0
MIN_CUE_S = 0.8

_TIMESTAMP = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")
_TAG = re.compile(r"<[^>]+>")


class SubtitleError(ValueError):
    """A subtitle file that cannot be read (says where)."""


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str

    def as_tuple(self) -> tuple[float, float, str]:
        return (self.start, self.end, self.text)


def _split_text(text: str, max_chars: int = MAX_CHARS) -> list[str]:
    """Pieces of at most ``max_chars``, cut after a sentence where one ends, else at a word."""
    words = text.split()
    pieces: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if len(candidate) > max_chars and current:
            pieces.append(current)
            current = word
        else:
            current = candidate
        if current.endswith((".", "?", "!", "؟", "。")) and len(current) > max_chars // 2:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces


def spread(text: str, start: float, end: float) -> list[Cue]:
    """``text`` over ``start``-``end``: cut into cues, each timed by its share of the
    characters (what an edit of a transcript gets: the speech's span, timed again)."""
    pieces = _split_text(text)
    if not pieces or end <= start:
        return []
    total = sum(len(p) for p in pieces)
    cues = []
    at = start
    for piece in pieces:
        length = (end - start) * len(piece) / total
        cues.append(Cue(round(at, 3), round(at + length, 3), piece))
        at += length
    return cues


def from_segments(segments: Iterable[tuple[float, float, str]]) -> list[Cue]:
    """Cues from speech-to-text segments: long segments cut by :func:`spread`."""
    cues: list[Cue] = []
    for start, end, said in segments:
        text = " ".join(said.split())
        if not text or end <= start:
            continue
        if len(text) <= MAX_CHARS and end - start <= MAX_CUE_S:
            cues.append(Cue(round(start, 3), round(end, 3), text))
        else:
            cues.extend(spread(text, start, end))
    return cues


def retime(text: str, previous: Sequence[Cue], duration_s: float) -> list[Cue]:
    """Cues for an edited text: over the span the old cues covered (the speech), or the
    whole video when there were none."""
    if previous:
        return spread(text, previous[0].start, previous[-1].end)
    return spread(text, 0.0, duration_s)


def cut(cues: Iterable[Cue], start: float, end: float) -> list[Cue]:
    """The cues of the part ``start``-``end`` of the video, timed from its new start."""
    kept = []
    for cue in cues:
        if cue.end <= start or cue.start >= end:
            continue
        kept.append(
            Cue(
                round(max(cue.start, start) - start, 3),
                round(min(cue.end, end) - start, 3),
                cue.text,
            )
        )
    return kept


def text_of(cues: Iterable[Cue]) -> str:
    return " ".join(c.text.replace("\n", " ") for c in cues).strip()


# --- files -----------------------------------------------------------------------


def _seconds(match: re.Match[str]) -> float:
    hours, minutes, seconds, fraction = match.groups()
    return (
        int(hours or 0) * 3600
        + int(minutes) * 60
        + int(seconds)
        + int(fraction.ljust(3, "0")) / 1000
    )


def parse(text: str) -> list[Cue]:
    """Cues of a WebVTT or SRT file (styling tags dropped). ``SubtitleError`` when there
    is no cue, or a timing line cannot be read."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff").split("\n")
    # WebVTT escapes & < > in cue text (&amp; &lt; &gt;, &nbsp;, numeric); SRT does not.
    webvtt = lines[0].startswith("WEBVTT")
    cues: list[Cue] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if "-->" in line:
            left, _, right = line.partition("-->")
            start, end = _TIMESTAMP.search(left), _TIMESTAMP.search(right)
            if start is None or end is None:
                raise SubtitleError(f"line {index + 1}: cannot read the times in {line.strip()!r}")
            index += 1
            body = []
            while index < len(lines) and lines[index].strip():
                body.append(_TAG.sub("", lines[index]).strip())
                index += 1
            cue_text = "\n".join(b for b in body if b)
            if webvtt:
                cue_text = html.unescape(cue_text)
            if cue_text and _seconds(end) > _seconds(start):
                cues.append(Cue(round(_seconds(start), 3), round(_seconds(end), 3), cue_text))
        index += 1
    if not cues:
        raise SubtitleError("no cue found: is it a WebVTT (.vtt) or SRT (.srt) file?")
    return sorted(cues, key=lambda c: c.start)


def _stamp(seconds: float, separator: str) -> str:
    millis = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{separator}{millis:03d}"


def _vtt_text(text: str) -> str:
    """Cue text as WebVTT writes it: ``&`` ``<`` ``>`` escaped (no tag opened, no
    ``-->`` to start a new cue)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: Iterable[Cue]) -> str:
    blocks = ["WEBVTT", ""]
    for cue in cues:
        timing = f"{_stamp(cue.start, '.')} --> {_stamp(cue.end, '.')}"
        blocks += [timing, _vtt_text(cue.text), ""]
    return "\n".join(blocks)


def to_srt(cues: Iterable[Cue]) -> str:
    blocks = []
    for number, cue in enumerate(cues, start=1):
        blocks += [
            str(number),
            f"{_stamp(cue.start, ',')} --> {_stamp(cue.end, ',')}",
            cue.text,
            "",
        ]
    return "\n".join(blocks)


def min_length(cues: Iterable[Cue]) -> list[Cue]:
    """Each cue on screen long enough to read (``MIN_CUE_S``), never over the next one."""
    ordered = sorted(cues, key=lambda c: c.start)
    out = []
    for i, cue in enumerate(ordered):
        limit = ordered[i + 1].start if i + 1 < len(ordered) else cue.start + MIN_CUE_S
        out.append(Cue(cue.start, max(cue.end, min(cue.start + MIN_CUE_S, limit)), cue.text))
    return out
