"""Helpers of the learning tests: model versions in a registry without training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from services.triage.classifier import artefacts
from services.triage.classifier.registry import Registry


def candidate(registry: Registry, version: str) -> Path:
    """A copy of the committed artefacts under another version name, added."""
    staged = registry.staging(version)
    for name in (artefacts.WEIGHTS_FILE, artefacts.METADATA_FILE):
        shutil.copy(artefacts.ARTEFACT_DIR / name, staged / name)
    meta = json.loads((staged / artefacts.METADATA_FILE).read_text())
    meta["version"] = version
    (staged / artefacts.METADATA_FILE).write_text(json.dumps(meta))
    return registry.add(staged, version)
