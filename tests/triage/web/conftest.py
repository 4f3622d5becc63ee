"""Fixtures of the triage web's tests: classified messages, and the seeded app
behind a TestClient (``web_app``) or served on a free port (``live_web``), and the JSON API
with everyone signed in (``web``).

Passwords are hashed with Argon2id at its lowest cost in every test here
(``cheap_hashing``): at the production cost the ten hashes of signing five people
in made up most of each test's setup. ``test_auth.py`` checks the production
parameters and the rehash on login."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from services.common.messages import MentionReceived
from services.triage.web import auth
from tests.helpers.db import KINDS
from tests.triage.web.helpers.api import Web, serve_api
from tests.triage.web.helpers.app import WebApp, serve_live, serve_test_client
from tests.triage.web.helpers.store import ClassifiedFactory, classified_factory


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> PasswordHasher:
    """Argon2id at its lowest cost (the module docstring)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(auth, "_hasher", cheap)
    return cheap


@pytest.fixture(name="classified")
def classified_fixture(mention_factory: Callable[..., MentionReceived]) -> ClassifiedFactory:
    return classified_factory(mention_factory)


@pytest.fixture(name="web_app")
def web_app_fixture(
    tmp_path: Path, classified: ClassifiedFactory
) -> Iterator[tuple[WebApp, TestClient]]:
    """The seeded app behind a ``TestClient`` (lifespan running; no redirects followed)."""
    with serve_test_client(tmp_path, classified) as pair:
        yield pair


@pytest.fixture(name="live_web")
def live_web_fixture(tmp_path: Path, classified: ClassifiedFactory) -> Iterator[WebApp]:
    """The seeded app served by uvicorn on a free port (``live_web.base_url``)."""
    with serve_live(tmp_path, classified) as web:
        yield web


@pytest.fixture(name="web", params=KINDS)
async def web_fixture(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mention_factory: Callable[..., MentionReceived],
) -> AsyncIterator[Web]:
    """The app on SQLite and on Postgres with everyone signed in by token (JSON API tests)."""
    async with serve_api(request.param, tmp_path, mention_factory) as web:
        yield web
