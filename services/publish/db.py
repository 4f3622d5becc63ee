"""The ledger database: the async engine (SQLite by default, Postgres in the
compose stack) and the migrations, run at start (``alembic upgrade head``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Postgres advisory lock held while migrating (two publishers starting at once).
_MIGRATION_LOCK = 0x70_75_62_6C  # "publ"


def make_engine(url: str, *, schema: str | None = None, echo: bool = False) -> AsyncEngine:
    """An async engine for the ledger. SQLite: the file's folder is created, WAL
    and a busy timeout are set. Postgres: ``schema`` becomes the search path."""
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    elif schema is not None and parsed.get_backend_name() == "postgresql":
        connect_args["server_settings"] = {"search_path": schema}
    engine = create_async_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configured in code (no ini file): the migrations folder, and the
    connection to run on when one is given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    command.upgrade(alembic_config(connection), revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the ledger's schema to ``revision`` (idempotent; at every start)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)
    log.info("ledger schema at %s (%s)", revision, engine.url.render_as_string())
