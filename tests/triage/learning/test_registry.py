"""The model registry: versions on disk, the live pointer switched atomically (a crash
mid-swap leaves the previous version live), the history a rollback chooses from."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.triage.classifier import artefacts
from services.triage.classifier.registry import COMMITTED, Registry, RegistryError
from tests.triage.learning.helpers import candidate


def test_without_a_pointer_the_committed_model_is_live(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    live = registry.live()
    assert (live.version, live.directory) == (COMMITTED, artefacts.ARTEFACT_DIR)
    assert registry.versions() == [COMMITTED]


def test_a_switch_and_a_rollback_are_recorded(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    candidate(registry, "v1")
    candidate(registry, "v2")
    before = registry.stamp()
    registry.switch("v1", by="admin", why="gate passed")
    assert registry.stamp() != before
    registry.switch("v2", by="admin", why="gate passed")
    registry.switch("v1", by="admin", why="rollback")
    assert registry.live().version == "v1"
    assert registry.live().directory == tmp_path / "models" / "versions" / "v1"
    assert registry.model_version("v1") == "v1"
    assert [(h["from"], h["version"], h["why"]) for h in registry.history()] == [
        (COMMITTED, "v1", "gate passed"),
        ("v1", "v2", "gate passed"),
        ("v2", "v1", "rollback"),
    ]
    assert registry.versions() == [COMMITTED, "v1", "v2"]


def test_a_crash_mid_swap_leaves_the_previous_version_live(tmp_path: Path) -> None:
    """The new pointer is written beside the old one and renamed over it: a crash before
    the rename leaves a stray temporary file and the old pointer whole."""
    registry = Registry(tmp_path / "models")
    candidate(registry, "v1")
    registry.switch("v1", by="admin", why="gate passed")
    (tmp_path / "models" / ".live.json.999.tmp").write_text('{"version": "v2", "at"')
    assert registry.live().version == "v1"
    # A half-written version folder is never named: add() refuses what does not load.
    half = registry.staging("v3")
    (half / artefacts.WEIGHTS_FILE).write_bytes(b"partial")
    with pytest.raises(artefacts.ArtefactError):
        registry.add(half, "v3")
    with pytest.raises(RegistryError):
        registry.switch("v3", by="admin", why="no")
    assert registry.live().version == "v1"


def test_a_pointer_to_a_missing_folder_falls_back_to_the_committed_model(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    candidate(registry, "v1")
    registry.switch("v1", by="admin", why="gate passed")
    shutil.rmtree(tmp_path / "models" / "versions" / "v1")
    assert registry.live().version == COMMITTED


@pytest.mark.parametrize("name", ["../etc", "", "a/b", ".hidden", "x" * 200])
def test_version_names_are_checked(tmp_path: Path, name: str) -> None:
    with pytest.raises(RegistryError):
        Registry(tmp_path).directory(name)
