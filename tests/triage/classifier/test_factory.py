"""The composition root's classifier: TRIAGE_PRECISION, TRIAGE_MEMORY_TRIM_MB and
TRIAGE_MALLOC_KEEP_MB reach it;
TRIAGE_MULTILINGUAL puts the language router in front when its heads exist."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from services.triage.classifier import allocator, encoders, load_classifier, transformer
from services.triage.classifier.multilingual import (
    N_FEATURES,
    TASKS,
    Heads,
    LanguageRouter,
    MultiCalibration,
    MultiMetadata,
    save,
)
from services.triage.config import ClassifierSettings


@pytest.mark.parametrize(("trim_mb", "trims", "keep_mb"), [(1, 1, 32), (0, 0, 0)])
def test_settings_reach_the_classifier(
    monkeypatch: pytest.MonkeyPatch, trim_mb: int, trims: int, keep_mb: int
) -> None:
    calls: list[None] = []
    monkeypatch.setattr(transformer, "return_freed_memory", lambda: calls.append(None))
    kept: list[int] = []

    def keep(mb: int) -> bool:
        kept.append(mb)
        return True

    monkeypatch.setattr(allocator, "keep_large_blocks", keep)
    settings = ClassifierSettings(
        precision="fp32",
        memory_trim_mb=trim_mb,
        torch_threads=2,
        multilingual=False,
        malloc_keep_mb=keep_mb,
    )
    classifier = load_classifier(settings, ["Ask refugees in Kakuma your questions"])
    assert kept == [keep_mb]
    assert isinstance(classifier, transformer.TransformerClassifier)
    assert classifier.precision == "fp32"
    calls.clear()
    classifier.classify(["Is there a school in the camp?"])
    assert len(calls) == trims


def test_an_unknown_precision_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_PRECISION", "fp16")
    with pytest.raises(ValidationError, match="precision"):
        ClassifierSettings()


class FakeE5:
    name = "multilingual-e5-small-q4"
    dim = 384

    def __init__(self, *, num_threads: int = 1, runtime: str = "auto") -> None:
        self.num_threads = num_threads
        self.runtime = runtime

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows: npt.NDArray[np.float32] = np.full(
            (len(texts), self.dim), 1 / np.sqrt(self.dim), dtype=np.float32
        )
        return rows


def test_the_router_fronts_the_english_model_when_multilingual_heads_exist(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(encoders, "E5Encoder", FakeE5)
    t = len(TASKS)
    heads = Heads(
        np.zeros((t, 4, FakeE5.dim + N_FEATURES), np.float32),
        np.zeros((t, 4), np.float32),
        np.zeros((t, 4), np.float32),
        np.zeros(t, np.float32),
    )
    meta = MultiMetadata(
        version="e5-t",
        encoder=FakeE5.name,
        weights_sha256="",
        tasks={t: MultiCalibration() for t in TASKS},
    )
    save(tmp_path, heads, meta)
    settings = ClassifierSettings(precision="fp32", multilingual_dir=tmp_path)
    classifier = load_classifier(settings, ["Ask refugees in Kakuma your questions"])
    assert isinstance(classifier, LanguageRouter)
    assert classifier.version.endswith("+multi:e5-t")
    en, de = classifier.classify(["Is there a school?", "Gibt es eine Schule?"], ["en", "de"])
    assert (en.path, de.path) == ("en", "multi")
    assert en.multilingual_embedding is None
    assert de.model_version == "e5-t"
    off = ClassifierSettings(precision="fp32", multilingual_dir=tmp_path, multilingual=False)
    assert not isinstance(load_classifier(off, []), LanguageRouter)
    missing = ClassifierSettings(precision="fp32", multilingual_dir=tmp_path / "none")
    assert not isinstance(load_classifier(missing, []), LanguageRouter)
