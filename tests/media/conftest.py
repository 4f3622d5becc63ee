"""Fixtures of the media worker's tests: the media folder with the phone clips in it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def media_dir(tmp_path: Path, phone_videos: dict[str, Path]) -> Path:
    """A media folder holding a copy of each phone clip under ``objects/``."""
    folder = tmp_path / "media"
    (folder / "objects").mkdir(parents=True)
    for path in phone_videos.values():
        shutil.copyfile(path, folder / "objects" / path.name)
    return folder
