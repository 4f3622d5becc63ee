"""Reading line-oriented input (JSONL files, stdin) in bounded memory.

Hostile input can hold a line of gigabytes; :func:`read_lines` never keeps
more than ``max_bytes`` of one: an over-long line is skipped and reported as
:class:`TooLong` in its place, so a caller can answer it with an error and go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO


@dataclass(frozen=True, slots=True)
class TooLong:
    """A line over the limit; its bytes were skipped, not kept."""

    size: int


def read_lines(stream: IO[bytes], max_bytes: int) -> Iterator[bytes | TooLong]:
    """The lines of a binary stream (with their newline), one at a time."""
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        if len(line) <= max_bytes or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        while line and not line.endswith(b"\n"):  # skip the rest of the long line
            line = stream.readline(max_bytes)
            size += len(line)
        yield TooLong(size)
