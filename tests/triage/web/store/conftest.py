"""Fixtures of the store's tests, on SQLite and on Postgres: a migrated store on
a fake clock, a desk of questions, two teams, moderators and a team member."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from services.common.messages import (
    MentionReceived,
)
from services.triage.web.models import (
    Role,
    Team,
)
from services.triage.web.store import Actor, TriageStore
from tests.helpers.db import KINDS
from tests.triage.web.helpers.store import (
    CLAIM_TTL_S,
    Desk,
    FakeClock,
    add_person,
    add_team,
    classified_factory,
    migrated_store,
)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(kind: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[TriageStore]:
    async with migrated_store(kind, tmp_path, clock, claim_ttl_s=CLAIM_TTL_S) as store:
        yield store


@pytest.fixture
def desk(
    store: TriageStore, clock: FakeClock, mention_factory: Callable[..., MentionReceived]
) -> Desk:
    return Desk(store, clock, classified_factory(mention_factory))


@pytest.fixture
async def camp_a(store: TriageStore) -> Team:
    return await add_team(store, "camp-a", languages=("en", "fr"))


@pytest.fixture
async def camp_b(store: TriageStore) -> Team:
    return await add_team(store, "camp-b", languages=("sw",))


@pytest.fixture
async def mod_a(store: TriageStore) -> Actor:
    return await add_person(store, "mod-a", Role.MODERATOR)


@pytest.fixture
async def mod_b(store: TriageStore) -> Actor:
    return await add_person(store, "mod-b", Role.MODERATOR)


@pytest.fixture
async def member_a(store: TriageStore, camp_a: Team) -> Actor:
    return await add_person(store, "member-a", Role.TEAM, camp_a)
