"""glibc's malloc settings for the transformer's process (classifier/allocator.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from services.triage.classifier import allocator

ROOT = Path(__file__).resolve().parents[3]


class Recorder:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def __call__(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return self.answer


def test_both_thresholds_are_set_the_mmap_one_at_most_glibcs_ceiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder()
    monkeypatch.setattr(allocator, "_mallopt", lambda: recorder)
    assert allocator.keep_large_blocks(16)
    assert recorder.calls == [(-3, 16 << 20), (-1, 256 << 20)]
    recorder.calls.clear()
    assert allocator.keep_large_blocks(64)
    assert recorder.calls[0] == (-3, 32 << 20)


def test_zero_leaves_glibcs_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(allocator, "_mallopt", lambda: recorder)
    assert not allocator.keep_large_blocks(0)
    assert recorder.calls == []


def test_another_c_library_or_a_refusal_is_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_mallopt", lambda: None)
    assert not allocator.keep_large_blocks()
    refusing = Recorder(answer=0)
    monkeypatch.setattr(allocator, "_mallopt", lambda: refusing)
    assert not allocator.keep_large_blocks()


def _faults(tuned: bool) -> int:
    """Minor page faults of a thread that allocates and frees 2-28 MB tensors, as a
    forward pass does, in a fresh process (the settings are process-wide)."""
    script = textwrap.dedent(
        f"""
        import resource, threading
        from services.triage.classifier.allocator import keep_large_blocks
        if {tuned}:
            assert keep_large_blocks()
        import torch

        def work():
            for i in range(60):
                a = torch.ones(1_000_000 + (i % 7) * 700_000)
                b = torch.ones(500_000 + (i % 5) * 900_000)
                del a, b

        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_blocks_are_reused_instead_of_faulted_in_again() -> None:
    """Measured here: ~116,000 faults with glibc's defaults, ~35,000 with the settings."""
    plain, tuned = _faults(False), _faults(True)
    assert tuned < plain / 2
