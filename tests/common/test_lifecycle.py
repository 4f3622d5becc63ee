"""A stop that hangs still ends within the deadline; a child dies with its parent."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from services.common import lifecycle


def test_the_deadline_ends_a_process_whose_stop_hangs() -> None:
    exited: list[int] = []
    done = threading.Event()

    def fake_exit(code: int) -> None:
        exited.append(code)
        done.set()

    try:
        lifecycle.exit_deadline(signal.SIGTERM, deadline_s=0.05, exit_=fake_exit)
        lifecycle.exit_deadline(signal.SIGTERM, deadline_s=0.05, exit_=fake_exit)  # once
        assert done.wait(5)
        time.sleep(0.1)
    finally:
        lifecycle._disarm()
    assert exited == [128 + signal.SIGTERM]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux")
def test_a_child_started_with_the_preexec_dies_with_its_parent(tmp_path: Path) -> None:
    """A parent (started here) starts a sleeping child with ``pdeathsig_preexec``
    and is SIGKILLed: the child gets SIGTERM."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import subprocess, sys, time
                from services.common.lifecycle import pdeathsig_preexec
                child = subprocess.Popen(
                    [sys.executable, "-c", "import time; time.sleep(60)"],
                    preexec_fn=pdeathsig_preexec(),
                )
                open({str(pid_file)!r}, "w").write(str(child.pid))
                time.sleep(60)
                """
            ),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    parent.kill()
    parent.wait(10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux")
def test_a_service_process_dies_with_its_parent(tmp_path: Path) -> None:
    """``die_with_parent`` in the process itself (what every service does at start)."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import subprocess, sys, time
                code = (
                    "import os, time; from services.common.lifecycle import die_with_parent; "
                    "die_with_parent(); "
                    f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
                )
                subprocess.Popen([sys.executable, "-c", code])
                time.sleep(60)
                """
            ),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())  # written once die_with_parent was called
    parent.kill()
    parent.wait(10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running (a zombie reaped by init counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
