"""The classifier's one thread (classifier/thread.py) and the worker's use of it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from services.triage.classifier.base import Prediction
from services.triage.classifier.thread import on_classifier_thread, run_on_classifier_thread
from services.triage.worker.batch import classify_in_thread


def _name() -> str:
    return threading.current_thread().name


def test_calls_run_on_one_thread_that_is_not_the_callers() -> None:
    first = on_classifier_thread(_name)
    assert first.startswith("classifier")
    assert first != _name()
    assert on_classifier_thread(_name) == first
    assert asyncio.run(run_on_classifier_thread(_name)) == first


def test_a_call_from_the_thread_itself_runs_at_once_instead_of_waiting_on_itself() -> None:
    assert on_classifier_thread(on_classifier_thread, _name) == on_classifier_thread(_name)


def test_arguments_results_and_errors_pass_through() -> None:
    assert on_classifier_thread(divmod, 7, 2) == (3, 1)
    with pytest.raises(ValueError, match="not a number"):
        on_classifier_thread(int, "not a number")


class Recording:
    version = "recording"

    def __init__(self) -> None:
        self.threads: list[str] = []

    def classify(
        self, texts: list[str], languages: list[str | None] | None = None
    ) -> list[Prediction]:
        self.threads.append(_name())
        return []


def test_the_worker_classifies_every_batch_on_the_classifier_thread() -> None:
    classifier = Recording()

    async def batches() -> None:
        for _ in range(3):
            await classify_in_thread(classifier, ["a"], None)  # type: ignore[arg-type]

    asyncio.run(batches())
    assert classifier.threads == [on_classifier_thread(_name)] * 3
