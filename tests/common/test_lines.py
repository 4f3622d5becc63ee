from __future__ import annotations

import io

from services.common.lines import TooLong, read_lines


def test_an_overlong_line_is_reported_with_its_size_and_skipped() -> None:
    stream = io.BytesIO(b"short\n" + b"x" * 50 + b"\nnext\nlast-without-newline")
    assert list(read_lines(stream, max_bytes=10)) == [
        b"short\n",
        TooLong(51),
        b"next\n",
        TooLong(20),
    ]


def test_lines_of_exactly_the_limit_and_a_last_line_without_newline_are_kept() -> None:
    stream = io.BytesIO(b"0123456789\nabc")
    assert list(read_lines(stream, max_bytes=10)) == [b"0123456789\n", b"abc"]


def test_memory_stays_bounded_on_a_huge_line() -> None:
    class Counting(io.BytesIO):
        largest = 0

        def readline(self, size: int | None = -1, /) -> bytes:
            line = super().readline(size)
            Counting.largest = max(Counting.largest, len(line))
            return line

    stream = Counting(b"y" * 5_000_000 + b"\nok\n")
    assert list(read_lines(stream, max_bytes=1000)) == [TooLong(5_000_001), b"ok\n"]
    assert Counting.largest <= 1001
