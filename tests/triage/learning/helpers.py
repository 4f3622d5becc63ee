"""Helpers of the learning tests: model versions in a registry without training."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

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


async def finished_job(web: Any, job: int, timeout_s: float = 600.0) -> dict[str, Any]:
    """Poll ``GET /api/model`` (as ``mod1``, or the ``who`` the caller's ``web`` uses)
    until retrain job ``job`` ended: ``{"job": its row, "state": the model state}``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = (await web.call("mod1", "GET", "/api/model")).json()
        (row,) = [j for j in state["jobs"] if j["id"] == job]
        if row["state"] not in {"queued", "running"}:
            return {"job": row, "state": state}
        await asyncio.sleep(1.0)
    raise AssertionError(f"retrain job {job} did not finish in {timeout_s} s")
