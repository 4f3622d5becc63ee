from __future__ import annotations

import time

import pytest

from services.ingest.dedupe import SeenIds


def test_reserve_confirm_release() -> None:
    seen = SeenIds(window_s=60, max_ids=1000)
    assert seen.reserve("x:1")
    assert not seen.reserve("x:1")  # in flight counts as seen
    seen.release("x:1")
    assert seen.reserve("x:1")
    seen.confirm("x:1")
    assert "x:1" in seen
    assert not seen.reserve("x:1")


def test_memory_is_bounded_oldest_evicted() -> None:
    seen = SeenIds(window_s=3600, max_ids=1000)
    for n in range(5000):
        seen.add(f"x:{n}")
    assert len(seen) == 1000
    assert "x:0" not in seen
    assert "x:4999" in seen


def test_ids_older_than_the_window_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = SeenIds(window_s=10, max_ids=1000)
    seen.add("x:old", at=time.time() - 11)
    assert "x:old" not in seen
    seen.add("x:new")
    assert len(seen) == 1  # the expired one was evicted
    clock = time.time() + 20
    monkeypatch.setattr(time, "time", lambda: clock)
    assert "x:new" not in seen
