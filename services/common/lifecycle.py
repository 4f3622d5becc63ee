"""Every service stops promptly, whatever state its broker or database is in.

- :func:`exit_deadline` — once a stop is asked for (SIGTERM, SIGINT), the
  process has ``EXIT_DEADLINE_S`` to stop gracefully; after that it exits
  anyway (a Kafka client waiting for a broker that is gone, a consumer thread
  that died, a database that does not answer: nothing may hold it). Nothing is
  lost by that exit: every consumer commits only what it finished, every
  producer's records are acknowledged or sent again.
- :func:`die_with_parent` — Linux: the process gets SIGTERM when its parent
  dies (``prctl(PR_SET_PDEATHSIG)``), so a supervisor killed with SIGKILL leaves
  nothing behind; :func:`pdeathsig_preexec` does the same for a child before it
  execs (what a supervisor passes to ``subprocess.Popen``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Seconds between the first stop signal and the forced exit (services must be
#: gone within 10 s of SIGTERM).
EXIT_DEADLINE_S = 8.0
#: ``prctl`` option: signal sent to this process when its parent dies.
PR_SET_PDEATHSIG = 1

_armed = threading.Lock()
#: The armed timer, if any (one per process).
_timers: list[threading.Timer] = []


def exit_deadline(
    signum: int = signal.SIGTERM,
    deadline_s: float = EXIT_DEADLINE_S,
    exit_: Callable[[int], None] = os._exit,
) -> None:
    """Arm (once) a timer that ends the process ``deadline_s`` from now with
    status ``128 + signum``: call it where a service starts to stop."""
    with _armed:
        if _timers:
            return

        def expire() -> None:
            sys.stderr.write(
                f"still running {deadline_s:.0f} s after signal {signum}: exiting now\n"
            )
            sys.stderr.flush()
            exit_(128 + signum)

        timer = threading.Timer(deadline_s, expire)
        timer.daemon = True
        timer.start()
        _timers.append(timer)


def _disarm() -> None:
    """Tests: forget an armed timer (cancelled)."""
    with _armed:
        for timer in _timers:
            timer.cancel()
        _timers.clear()


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def _prctl_pdeathsig(signum: int) -> bool:
    prctl = _prctl()
    return prctl is not None and int(prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0


def die_with_parent(signum: int = signal.SIGTERM) -> bool:
    """Get ``signum`` when the parent process dies (Linux; False elsewhere). If the
    parent is already gone (adopted by init, or by a subreaper), nothing would
    ever come: the signal is sent at once."""
    parent = os.getppid()
    if not _prctl_pdeathsig(signum):
        return False
    if parent == 1:
        return True  # started by init itself (a container's PID 1 has ppid 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)
    return True


def pdeathsig_preexec(signum: int = signal.SIGTERM, *, nice: int = 0) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child (whatever it execs) gets
    ``signum`` when the process that started it dies, and runs ``nice`` steps below
    its parent's CPU priority. Kept to async-signal-safe work (setpriority, prctl,
    getppid)."""
    parent = os.getpid()
    prctl = _prctl()  # looked up here: the child only calls it

    def preexec() -> None:
        if nice:
            os.nice(nice)
        if prctl is None:
            return
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os.kill(os.getpid(), signum)

    return preexec


__all__ = [
    "EXIT_DEADLINE_S",
    "die_with_parent",
    "exit_deadline",
    "pdeathsig_preexec",
]
