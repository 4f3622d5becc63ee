"""The composition root's classifier: TRIAGE_PRECISION and TRIAGE_MEMORY_TRIM_MB reach it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.triage.classifier import load_classifier, transformer
from services.triage.config import ClassifierSettings


@pytest.mark.parametrize(("trim_mb", "trims"), [(1, 1), (0, 0)])
def test_settings_reach_the_classifier(
    monkeypatch: pytest.MonkeyPatch, trim_mb: int, trims: int
) -> None:
    calls: list[None] = []
    monkeypatch.setattr(transformer, "return_freed_memory", lambda: calls.append(None))
    settings = ClassifierSettings(precision="fp32", memory_trim_mb=trim_mb, torch_threads=2)
    classifier = load_classifier(settings, ["Ask refugees in Kakuma your questions"])
    assert classifier.precision == "fp32"
    calls.clear()
    classifier.classify(["Is there a school in the camp?"])
    assert len(calls) == trims


def test_an_unknown_precision_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_PRECISION", "fp16")
    with pytest.raises(ValidationError, match="precision"):
        ClassifierSettings()
