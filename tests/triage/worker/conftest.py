"""Fixtures of the worker's tests: a rules file (RULES with overrides), a decider
on it, and the classifier's predictions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from services.triage.classifier.base import Prediction
from services.triage.rules import RulesFile
from services.triage.worker.domain import Triage
from tests.triage.worker.helpers import E1, RULES, merged


@pytest.fixture
def rules_file(tmp_path: Path) -> Callable[..., RulesFile]:
    """Rules from RULES with overrides (nested dicts merge); re-read on every call."""

    def make(**overrides: Any) -> RulesFile:
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump(merged(RULES, overrides)), encoding="utf-8")
        return RulesFile(path, check_every_s=0.0)

    return make


@pytest.fixture
def triage(rules_file: Callable[..., RulesFile]) -> Callable[..., Triage]:
    def make(**overrides: Any) -> Triage:
        return Triage(rules_file(**overrides), model_version="fake-1")

    return make


@pytest.fixture
def prediction() -> Callable[..., Prediction]:
    """A confident, clean, on-topic question unless told otherwise."""

    def make(**overrides: Any) -> Prediction:
        fields: dict[str, Any] = {
            "offensive": 0.01,
            "hate": 0.0,
            "question": 0.97,
            "relevance": 0.8,
            "embedding": E1,
        }
        fields.update(overrides)
        return Prediction(**fields)

    return make
