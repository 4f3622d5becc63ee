"""The one thread the classifier's torch work runs on in a process that serves it.

torch's OpenMP runtime (libgomp) gives every thread that starts parallel work a
team of helper threads of its own. On a 2-core machine a second team (the event
loop's thread loading the model, then an executor thread classifying) puts more
threads under libgomp than there are cores, and libgomp then throttles its
spin-waiting for all of them: each of a forward pass's small parallel regions
(about 3,400 per 2,000 tweets: one attention call per run of equal-length texts
per layer) wakes its helper from sleep. Measured on a 2-core Intel Xeon with AMX:
a small elementwise op 7.6 us with one team, 52-64 us with two; the classifier
path over the bench's 2,000 tweets 715-725 / 815-844 / 896-924 tweets/s (unique
/ 20 % repeats / viral) when the model was loaded on the main thread and batches
classified on asyncio's default executor, 747-801 / 965-975 / 1,019-1,058 with
loading and every batch on this one thread.

So the worker loads the classifier here (:func:`on_classifier_thread`), classifies
every batch here (:func:`run_on_classifier_thread`), and swaps in a new live model
here; so does the campaign's re-embedding after a rules edit. A team lives as long
as its thread: nothing else in the process may start parallel torch work on a
thread that stays (the event loop's included): ``tests/triage/worker/test_one_team.py``
counts the process's threads around the worker's batches and a rules edit, which a
second team would add to. ``make bench`` loads and runs its classifier here too,
and its baselines before it on a thread that then ends.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_here = threading.local()


def _mark() -> None:
    _here.classifier = True


#: The classifier's thread (one worker, started on first use, kept for the process).
CLASSIFIER_THREAD = ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="classifier", initializer=_mark
)


def on_classifier_thread(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)`` run on the classifier's thread, waited for (called
    directly when already on it)."""
    if getattr(_here, "classifier", False):
        return function(*args, **kwargs)
    return CLASSIFIER_THREAD.submit(function, *args, **kwargs).result()


async def run_on_classifier_thread(
    function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """``function(*args, **kwargs)`` run on the classifier's thread without blocking the
    event loop."""
    return await asyncio.wrap_future(CLASSIFIER_THREAD.submit(function, *args, **kwargs))
