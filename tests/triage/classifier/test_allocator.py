"""glibc's malloc settings for the transformer's process (classifier/allocator.py)."""

from __future__ import annotations

import subprocess
import sys
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


_ROUNDS = """
import ctypes, resource, sys, threading
from services.triage.classifier.allocator import keep_large_blocks
if sys.argv[1] == "tuned":
    assert keep_large_blocks()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS.split()]


libc.mallinfo2.restype = Info
SIZE = 8 << 20


def one_round():
    blocks = [libc.malloc(SIZE) for _ in range(6)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for block in blocks:
        libc.memset(block, 1, SIZE)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    for block in blocks:
        libc.free(block)
    return faults, libc.mallinfo2().fordblks


rounds = []
thread = threading.Thread(target=lambda: rounds.extend(one_round() for _ in range(5)))
thread.start()
thread.join()
for faults, kept in rounds:
    print(faults, kept)
"""


def _rounds(tuned: bool) -> list[tuple[int, int]]:
    """Five rounds in which a thread (as the classifier's) allocates six 8 MB blocks,
    writes them and frees them all, as a forward pass does with its layers' tensors,
    in a fresh process (the settings are process-wide): each round's minor page
    faults and the free bytes glibc's arenas keep after it. glibc's dynamic
    thresholds rise to the block size (trim at 16 MB), so each round gives the 48 MB
    back and faults it in again; the settings keep it."""
    out = subprocess.run(
        [sys.executable, "-c", _ROUNDS, "tuned" if tuned else "plain"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [(int(line.split()[0]), int(line.split()[1])) for line in out.stdout.splitlines()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_blocks_are_kept_and_reused_instead_of_faulted_in_again() -> None:
    """Measured: glibc's defaults keep under 16 MB of the 48 MB and fault 12,250 pages
    in every round; with the settings the first round's faults only. Faults are
    counted in 4 KB pages here, fewer where huge pages back the heap: the kept bytes
    are the check that does not depend on that."""
    blocks = 6 * (8 << 20)
    plain, tuned = _rounds(False), _rounds(True)
    assert all(kept < blocks // 2 for _, kept in plain[1:]), plain
    assert all(kept >= blocks for _, kept in tuned), tuned
    assert all(faults < blocks // 4096 // 20 for faults, _ in tuned[1:]), tuned
