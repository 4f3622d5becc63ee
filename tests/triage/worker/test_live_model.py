"""Hot swap: the worker takes a newly live model version up at its next batch, without
a restart; every decision records the version that made it; the old version's cached
scores are not reused; a version that fails to load leaves the running one live; a
rollback is a switch like any other."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from services.common.codec import decode, encode
from services.common.kafka import KafkaSettings
from services.common.messages import Decision, MentionClassified, MentionReceived
from services.triage.classifier import artefacts
from services.triage.classifier.base import Classifier, Prediction
from services.triage.classifier.registry import COMMITTED, Registry
from services.triage.worker.batch import BatchProcessor, Incoming
from services.triage.worker.cache import PredictionCache
from services.triage.worker.domain import Triage
from services.triage.worker.live_model import LiveModel
from tests.triage.learning.helpers import candidate
from tests.triage.worker.helpers import FakeClassifier, ListSink

CODED = "the swarm in Kakuma"


class Versioned:
    """A classifier of one version: the campaign-trained ones know the coded hate."""

    def __init__(self, version: str, knows_the_code: bool) -> None:
        self.version = version
        self.knows_the_code = knows_the_code
        self.calls = 0

    def classify(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        self.calls += 1
        return [
            Prediction(
                offensive=0.9 if self.knows_the_code and CODED in t else 0.05,
                hate=0.9 if self.knows_the_code and CODED in t else 0.01,
                question=0.9 if "?" in t else 0.1,
                relevance=0.7,
                embedding=np.full(4, 0.5, dtype=np.float32),
            )
            for t in texts
        ]


def loader(broken: set[str]) -> Callable[[Path], Classifier]:
    def load(folder: Path) -> Classifier:
        version = artefacts.load_metadata(folder).version
        if version in broken:
            raise RuntimeError("weights do not fit")
        return Versioned(version, knows_the_code=version != FakeClassifier.version)

    return load


async def run_inline(
    classifier: Any, texts: list[str], languages: list[str | None] | None = None
) -> list[Prediction]:
    result: list[Prediction] = classifier.classify(texts, languages)
    return result


def swaps(outcome: str) -> float:
    return REGISTRY.get_sample_value("triage_model_swaps_total", {"outcome": outcome}) or 0.0


async def test_a_promoted_version_decides_the_next_batch(
    tmp_path: Path,
    mention_factory: Callable[..., MentionReceived],
    triage: Callable[..., Triage],
) -> None:
    registry = Registry(tmp_path / "models")
    candidate(registry, "v1")
    candidate(registry, "v2-broken")
    first = Versioned(FakeClassifier.version, knows_the_code=False)
    sink = ListSink()
    processor = BatchProcessor(
        kafka=KafkaSettings(topic_prefix="p."),
        classifier=first,
        decider=triage(),
        cache=PredictionCache(100),
        sink=sink,
        run_classifier=run_inline,
        live=LiveModel(registry, loader({"v2-broken"}), first),
    )
    offset = 0

    async def decide(text: str) -> MentionClassified:
        nonlocal offset
        mention = mention_factory(text=text)
        offset += 1
        await processor.process(
            [Incoming(key=None, value=encode(mention), partition=0, offset=offset)]
        )
        return decode(MentionClassified, sink.records[-1].value)

    before = await decide(f"{CODED} should be fenced in")
    assert (before.model_version, before.decision) == ("fake-1", Decision.REVIEW)

    ok, failed = swaps("ok"), swaps("failed")
    registry.switch("v1", by="admin", why="gate passed")
    after = await decide(f"{CODED} should be fenced in")  # same text: not from the cache
    assert (after.model_version, after.decision) == ("v1", Decision.QUARANTINE)
    assert swaps("ok") == ok + 1

    registry.switch("v2-broken", by="admin", why="gate passed")
    kept = await decide(f"{CODED} again")
    assert (kept.model_version, kept.decision) == ("v1", Decision.QUARANTINE)
    assert swaps("failed") == failed + 1

    registry.switch(COMMITTED, by="admin", why="rollback")
    back = await decide(f"{CODED} once more")
    committed = artefacts.load_metadata(artefacts.ARTEFACT_DIR).version
    assert (back.model_version, back.decision) == (committed, Decision.QUARANTINE)


async def test_no_switch_loads_nothing(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    loads: list[Path] = []

    def load(folder: Path) -> Classifier:
        loads.append(folder)
        return FakeClassifier()

    live = LiveModel(registry, load, FakeClassifier())
    assert await live.refresh() is None
    assert await live.refresh() is None
    assert loads == []


@pytest.mark.parametrize("version", ["v1"])
async def test_a_rewritten_pointer_to_the_same_version_loads_nothing(
    tmp_path: Path, version: str
) -> None:
    registry = Registry(tmp_path / "models")
    candidate(registry, version)
    registry.switch(version, by="a", why="x")
    loads: list[Path] = []

    def load(folder: Path) -> Classifier:
        loads.append(folder)
        return FakeClassifier()

    live = LiveModel(registry, load, FakeClassifier())
    registry.switch(version, by="a", why="again")
    assert await live.refresh() is None
    assert loads == []
