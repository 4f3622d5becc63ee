"""A triage worker with the fake model and decisions, run as its own process so
a test can SIGKILL it mid-stream. Configured by the usual ``KAFKA_*`` and
``TRIAGE_*`` variables, plus ``FAKE_PER_TEXT_S`` (seconds of "model" per text)
and ``FAKE_STALL_ON_CALL`` / ``FAKE_STALL_FILE``: that classifier call writes the
file and then hangs, so the test knows a batch is in flight when it kills us.

    python -m tests.triage.worker.stream_worker_main
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from services.common.kafka import KafkaSettings
from services.triage.classifier.base import Prediction
from services.triage.worker.app import create_worker, ensure_worker_topics
from services.triage.worker.config import WorkerSettings
from tests.triage.worker.helpers import FakeClassifier, FakeDecider

#: Short group timeouts: Tansu's join waits about half the session timeout.
TEST_FAUST = {
    "broker_session_timeout": 2.0,
    "broker_heartbeat_interval": 0.5,
    "broker_commit_interval": 0.2,
}


class StallingClassifier(FakeClassifier):
    def __init__(self, per_text_s: float, stall_on: int, stall_file: Path | None) -> None:
        super().__init__(per_text_s=per_text_s)
        self.stall_on = stall_on
        self.stall_file = stall_file

    def classify(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        if len(self.calls) + 1 == self.stall_on and self.stall_file is not None:
            self.stall_file.write_text(f"{len(texts)} texts in flight")
            time.sleep(120)
        return super().classify(texts)


async def main() -> None:
    kafka = KafkaSettings()
    settings = WorkerSettings()
    stall_file = os.environ.get("FAKE_STALL_FILE")
    classifier = StallingClassifier(
        per_text_s=float(os.environ.get("FAKE_PER_TEXT_S", "0")),
        stall_on=int(os.environ.get("FAKE_STALL_ON_CALL", "0")),
        stall_file=Path(stall_file) if stall_file else None,
    )
    worker = create_worker(
        settings,
        kafka,
        classifier=classifier,
        decider=FakeDecider(),
        web_enabled=False,
        faust_overrides=TEST_FAUST,
    )
    await ensure_worker_topics(kafka)
    await worker.app.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
