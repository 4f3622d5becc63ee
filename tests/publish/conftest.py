"""Fixtures for the publisher: settings pointing at the sandbox (the sandbox and its
fake clock are the root conftest's), and video files made on the spot."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.publish.config import PublishSettings
from services.publish.platforms.base import MediaFile
from tests.helpers.media import rendition_bytes
from tests.helpers.sandbox import MASTODON_TOKEN, X_TOKEN, SandboxServer
from tests.publish.helpers import MiB


@pytest.fixture
def publish_settings(sandbox: SandboxServer, tmp_path: Path) -> Callable[..., PublishSettings]:
    """Publisher settings aimed at the sandbox; fast retries; media read from the
    test's folder."""

    def make(**overrides: Any) -> PublishSettings:
        fields: dict[str, Any] = {
            "media_root": tmp_path,
            "x_api_base_url": sandbox.base_url,
            "x_web_base_url": sandbox.base_url,
            "x_access_token": X_TOKEN,
            "mastodon_base_url": sandbox.base_url,
            "mastodon_access_token": MASTODON_TOKEN,
            "bluesky_service_url": sandbox.base_url,
            "bluesky_video_url": sandbox.base_url,
            "bluesky_identifier": "takeaction_sandbox",
            "bluesky_app_password": "any-password-the-open-sandbox-takes",
            "max_attempts": 4,
            "backoff_initial_s": 1.0,
            "backoff_max_s": 8.0,
        }
        fields.update(overrides)
        return PublishSettings(**fields)

    return make


@pytest.fixture
def media_factory(tmp_path: Path) -> Callable[..., MediaFile]:
    """Video files with their true sha256 and size: a real rendition every platform takes
    (tiny H.264 and AAC, moov first) padded to ``size`` by a trailing ``free`` box, or
    random bytes when ``size`` is below the smallest such video."""
    counter = itertools.count(1)

    def make(size: int = 300 * 1024, *, mime: str = "video/mp4", **overrides: Any) -> MediaFile:
        path = tmp_path / f"answer-{next(counter)}.mp4"
        sha = hashlib.sha256()
        base = rendition_bytes()
        with path.open("wb") as handle:
            if size >= len(base) + 8:  # the video, then one free box to the end
                head = base + (size - len(base)).to_bytes(4, "big") + b"free"
                sha.update(head)
                handle.write(head)
                left = size - len(head)
                filler = bytes(min(left, MiB))
            else:
                left = size
                filler = b""
            while left > 0:
                block = filler[: min(left, MiB)] if filler else os.urandom(min(left, MiB))
                sha.update(block)
                handle.write(block)
                left -= len(block)
        fields: dict[str, Any] = {
            "path": path,
            "mime": mime,
            "sha256": sha.hexdigest(),
            "size": size,
        }
        fields.update(overrides)
        return MediaFile(**fields)

    return make


@pytest.fixture
def mention_id() -> Callable[[], str]:
    """Ids of original mentions: numeric, older than anything the sandbox creates."""
    counter = itertools.count(1_790_000_000_000_000_001)
    return lambda: str(next(counter))
