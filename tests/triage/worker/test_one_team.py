"""One OpenMP team per worker process (classifier/thread.py): the real classifier,
loaded as the worker loads it, classifies batches through the processing core and
the campaign is re-embedded after a rules edit, and no thread but the classifier's
starts parallel torch work. libgomp gives each thread that first runs a parallel
region a team of helper threads for as long as it lives, so a second team shows as
new threads of the process; a parallel product on the main thread, the control,
shows one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

_SCRIPT = r"""
import asyncio, os, shutil, tempfile
from pathlib import Path
from datetime import UTC, datetime
import torch
from services.common.codec import encode
from services.common.kafka import KafkaSettings
from services.common.messages import Author, MentionReceived, Platform, Source, mention_id
from services.triage.classifier import load_classifier
from services.triage.classifier.thread import on_classifier_thread
from services.triage.rules import RulesFile
from services.triage.worker.batch import BatchProcessor, Incoming
from services.triage.worker.cache import PredictionCache
from services.triage.worker.config import WorkerSettings
from services.triage.worker.domain import Triage
from tests.bench.bench_classifier import CountingSink

TEXTS = [
    ("en", "@IWelcomeRefugees what do you miss most about home?"),
    ("en", "How do children in the camp go to school?"),
    ("es", "@IWelcomeRefugees ¿qué es lo que más extrañas de tu casa?"),
    ("de", "Was vermisst du am meisten an deiner Heimat?"),
    ("en", "RT @someone: what do you miss most about home?"),
    ("en", "thank you all, stay strong"),
]


def threads():
    return len(os.listdir("/proc/self/task"))


def batch(run):
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    out = []
    for n, (lang, text) in enumerate(TEXTS * 4):
        native = f"{run}-{n}"
        mention = MentionReceived(
            id=mention_id(Platform.X, native), platform=Platform.X, native_id=native,
            author=Author(id=str(n), handle=f"asker{n}"), text=f"{text} {n}", lang=lang,
            created_at=now, received_at=now, source=Source.REPLAY,
        )
        out.append(Incoming(mention.id.encode(), encode(mention)))
    return out


torch.set_num_threads(2)
settings = WorkerSettings()
path = Path(tempfile.mkdtemp()) / "rules.yaml"
shutil.copy(settings.rules_path, path)
rules = RulesFile(path, check_every_s=0)
# As the worker loads it (services/triage/worker/__main__.py): the campaign is embedded.
classifier = on_classifier_thread(load_classifier, settings, rules.current().campaign_examples)
before = threads()
decider = Triage(rules, classifier.version, campaign=classifier)
processor = BatchProcessor(
    kafka=KafkaSettings(), classifier=classifier, decider=decider,
    cache=PredictionCache(1000), sink=CountingSink(),
)
asyncio.run(processor.process(batch("a")))
text = path.read_text(encoding="utf-8")
marker = "  examples:\n"
assert marker in text
path.write_text(
    text.replace(marker, marker + "    - Where do families in the camp get water?\n", 1),
    encoding="utf-8",
)
asyncio.run(processor.process(batch("b")))  # the rules edit: the campaign is re-embedded
assert decider._campaign_texts == tuple(rules.current().campaign_examples), "not re-embedded"
after = threads()
torch.ones(512, 512) @ torch.ones(512, 512)  # the control: a team for the main thread
print(before, after, threads())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/task")
def test_only_the_classifier_thread_runs_parallel_torch_work() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    before, after, control = (int(word) for word in out.stdout.split()[-3:])
    assert after == before, out.stderr[-2000:]
    assert control > after  # the count does show a second team
