"""Empty databases for the tests of any service: a SQLite file, or a Postgres
schema of its own on the machine's server (dropped afterwards).

Postgres runs at 127.0.0.1:5432 (trust auth, database ``test``); a test that
uses it is an integration test (``postgres_marks``)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import make_engine

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

#: The database kinds to parametrise over; Postgres tests carry the integration mark.
KINDS = (
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.integration),
)


@contextlib.asynccontextmanager
async def empty_database(
    kind: str, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, str, str | None]]:
    """An empty database: (engine, url, schema). SQLite is a fresh file under
    ``tmp_path`` (schema ``None``); Postgres gets a schema of its own, set as the
    engine's search path and dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / f'db-{uuid.uuid4().hex[:6]}.db'}"
        engine = make_engine(url)
        try:
            yield engine, url, None
        finally:
            await engine.dispose()
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}; sqlite or postgres")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    try:
        async with admin.begin() as connection:
            await connection.execute(text(f"CREATE SCHEMA {schema}"))
        engine = make_engine(POSTGRES_URL, schema=schema)
        try:
            yield engine, POSTGRES_URL, schema
        finally:
            await engine.dispose()
            async with admin.begin() as connection:
                await connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        await admin.dispose()
