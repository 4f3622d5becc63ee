"""The triage web's JSON API for tests: the real app (lifespan, migrations, auth,
error mapping) with Kafka off, on SQLite or Postgres, with an admin, two
moderators and a member of each of two teams signed in by bearer token
(the ``web`` fixture of ``tests/triage/web/conftest.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from services.common.messages import MentionReceived
from services.triage.web.app import Overrides, create_app
from services.triage.web.config import WebSettings
from services.triage.web.deps import TriageRuntime
from services.triage.web.models import Role
from services.triage.web.store import Actor
from tests.helpers.db import empty_database
from tests.triage.web.helpers.store import ClassifiedFactory, classified_factory

PASSWORD = "correct horse battery staple"


@dataclass
class Web:
    app: FastAPI
    client: httpx.AsyncClient
    make: ClassifiedFactory
    tokens: dict[str, str]

    @property
    def runtime(self) -> TriageRuntime:
        runtime: TriageRuntime = self.app.state.runtime
        return runtime

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def ingest(self, **overrides: Any) -> str:
        question = await self.runtime.store.questions.ingest(self.make(**overrides))
        assert question is not None
        return question.id

    async def call(self, who: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth(who), **kwargs.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kwargs)


@contextlib.asynccontextmanager
async def serve_api(
    kind: str,
    tmp_path: Path,
    mention_factory: Callable[..., MentionReceived],
    **overrides: Any,
) -> AsyncIterator[Web]:
    """The app on a fresh ``kind`` database, everyone signed in (``overrides``: settings)."""
    async with empty_database(kind, tmp_path) as (_, url, schema):
        fields: dict[str, Any] = {
            "database_url": url,
            "database_schema": schema,
            "media_dir": tmp_path / "media",
            "admin_user": "admin",
            "admin_password": SecretStr(PASSWORD),
            "upload_chunk_max_bytes": 128 * 1024,
            "upload_max_bytes": 4 * 1024 * 1024,
            "login_max_failures": 5,
        }
        fields.update(overrides)
        settings = WebSettings(**fields)
        app = create_app(settings, overrides=Overrides(kafka=False))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://triage.test"
            ) as client,
        ):
            runtime: TriageRuntime = app.state.runtime
            store, accounts = runtime.store, runtime.accounts
            admin = Actor.system("test")
            await store.teams.upsert(
                "kakuma-a", name="Kakuma A", languages=["en", "sw"], capacity=5, actor=admin
            )
            await store.teams.upsert(
                "dadaab-b", name="Dadaab B", languages=["fr"], capacity=5, actor=admin
            )
            await accounts.upsert_user("mod1", PASSWORD, Role.MODERATOR)
            await accounts.upsert_user("mod2", PASSWORD, Role.MODERATOR)
            await accounts.upsert_user("team-a", PASSWORD, Role.TEAM, team="kakuma-a")
            await accounts.upsert_user("team-b", PASSWORD, Role.TEAM, team="dadaab-b")
            tokens = {}
            for who in ("admin", "mod1", "mod2", "team-a", "team-b"):
                response = await client.post(
                    "/api/token", data={"username": who, "password": PASSWORD}
                )
                assert response.status_code == 200, response.text
                tokens[who] = response.json()["access_token"]
            yield Web(app, client, classified_factory(mention_factory), tokens)


async def assigned(web: Web, **overrides: Any) -> str:
    """A new question, assigned to kakuma-a by mod1."""
    question = await web.ingest(**overrides)
    response = await web.call(
        "mod1", "POST", f"/api/questions/{question}/assign", json={"team": "kakuma-a"}
    )
    assert response.status_code == 200
    return question
