"""The triage database's migrations, on SQLite and on Postgres: they build
exactly the models, and running them again (every start) changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, insert, inspect, select, text

from services.common.db import alembic_config
from services.triage.web.db import MIGRATIONS, migrate
from services.triage.web.models import Base, Team
from tests.helpers.db import KINDS, empty_database

pytestmark = pytest.mark.timeout(60)

TABLES = {
    "alembic_version", "answers", "assignments", "audit_log", "blocked_authors", "consents",
    "login_failures", "media_jobs", "notifications", "outbox", "question_events", "question_tags",
    "questions",
    "replies",
    "sessions", "teams",
    "users", "answer_replies", "answer_reply_events", "protection_alerts", "paused_speakers",
    "labels", "model_jobs",
}  # fmt: skip


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_migrations_build_exactly_the_models(kind: str, tmp_path: Path) -> None:
    async with empty_database(kind, tmp_path) as (engine, _, _):
        await migrate(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            assert await connection.run_sync(_tables) == TABLES
            indexes = await connection.run_sync(
                lambda c: {i["name"]: i for i in inspect(c).get_indexes("assignments")}
            )
    assert indexes["uq_assignments_open_question"]["unique"]


async def test_an_empty_database_differs_from_the_models(kind: str, tmp_path: Path) -> None:
    """The comparison above can fail: without the migration it reports every table."""
    async with (
        empty_database(kind, tmp_path) as (engine, _, _),
        engine.connect() as connection,
    ):
        assert len(await connection.run_sync(_diff)) >= len(TABLES) - 1


async def test_migrating_again_keeps_the_data_and_the_revision(kind: str, tmp_path: Path) -> None:
    async with empty_database(kind, tmp_path) as (engine, _, _):
        await migrate(engine)
        async with engine.begin() as connection:
            await connection.execute(
                insert(Team).values(
                    slug="camp-a", name="Camp A", languages="en", capacity=5, active=True,
                    created_at=datetime(2026, 11, 24, tzinfo=UTC),
                )
            )  # fmt: skip
        await migrate(engine)
        async with engine.connect() as connection:
            revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            teams = await connection.scalar(select(func.count()).select_from(Team))
            assert await connection.run_sync(_diff) == []
    # At the one head of the migrations (whichever is newest).
    assert (revision, teams) == (ScriptDirectory(str(MIGRATIONS)).get_current_head(), 1)


async def test_the_downgrade_removes_every_table(kind: str, tmp_path: Path) -> None:
    async with empty_database(kind, tmp_path) as (engine, _, _):
        await migrate(engine)
        async with engine.begin() as connection:
            await connection.run_sync(
                lambda c: command.downgrade(alembic_config(MIGRATIONS, c), "base")
            )
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) == {"alembic_version"}
        await migrate(engine)  # and up again from nothing
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
