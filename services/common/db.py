"""What every service database shares: the async engine (SQLite by default,
Postgres in the compose stack), Alembic run in code at start, UTC-aware
timestamps, and one constraint naming convention.

Each service keeps its own tables and ``migrations`` folder; it calls
:func:`migrate` with that folder and its own advisory-lock key. What is worth
trying again unchanged (the database out of reach, not the statement wrong) is
:func:`database_unreachable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, DateTime, Dialect, MetaData, TypeDecorator, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

#: Constraint names Alembic and the models agree on (so migrations can drop them).
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str, *, schema: str | None = None, echo: bool = False) -> AsyncEngine:
    """An async engine. SQLite: the file's folder is created, WAL and a busy
    timeout are set. Postgres: ``schema`` becomes the search path."""
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


async def open_database(
    stack: contextlib.AsyncExitStack,
    url: str,
    *,
    schema: str | None,
    migrate: Callable[[AsyncEngine], Awaitable[None]],
) -> AsyncEngine:
    """A service's engine, migrated at once and disposed when ``stack`` closes."""
    engine = make_engine(url, schema=schema)
    stack.push_async_callback(engine.dispose)
    await migrate(engine)
    return engine


async def database_problem(engine: AsyncEngine) -> str | None:
    """What keeps ``engine``'s database from answering ``SELECT 1`` (for ``/readyz``),
    or ``None`` when it answers."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


#: SQLSTATEs of a server out of reach besides class 08 (connection exception, by
#: prefix): admin shutdown, crash shutdown, cannot connect now (a Postgres stopping,
#: crashed or starting: asyncpg's ``AdminShutdownError``, ``CrashShutdownError``,
#: ``CannotConnectNowError``), too many connections.
_UNREACHABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is out of reach (down, restarting, the
    connection lost, the pool exhausted, SQLite locked past its busy timeout), so
    the same work is worth trying again later; not an error about the statement or
    its values (a ``DataError``, an ``IntegrityError``), which would fail again.

    With asyncpg, a Postgres restart arrives as a plain :class:`DBAPIError` (the
    dialect wraps every ``PostgresError`` in its generic ``Error``): it is told
    apart by SQLAlchemy's ``connection_invalidated`` or by the driver error's
    SQLSTATE (on ``.orig`` and on the asyncpg error it was raised from)."""
    if isinstance(exc, InterfaceError):
        # asyncpg's own DataError (a value it cannot send) is an InterfaceError too.
        return not any(isinstance(error, ValueError) for error in _driver_errors(exc))
    if isinstance(exc, OperationalError | DisconnectionError | PoolTimeout | OSError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return any(_unreachable_sqlstate(error) for error in _driver_errors(exc))


def _driver_errors(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the driver error SQLAlchemy wrapped in it, and what that was raised
    from (SQLAlchemy's asyncpg adapter raises its own error from asyncpg's)."""
    yield exc
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        yield orig
        if orig.__cause__ is not None:
            yield orig.__cause__


def _unreachable_sqlstate(error: BaseException) -> bool:
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and (
        sqlstate.startswith("08") or sqlstate in _UNREACHABLE_SQLSTATES
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(migrations: Path, connection: Connection | None = None) -> Config:
    """Alembic configured in code (no ini file): the migrations folder, and the
    connection to run on when one is given."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def migrate(
    engine: AsyncEngine, migrations: Path, *, lock_key: int, revision: str = "head"
) -> None:
    """Bring the schema to ``revision`` (idempotent; run at every start). On
    Postgres an advisory lock keeps two replicas starting at once apart."""

    def upgrade(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
        command.upgrade(alembic_config(migrations, connection), revision)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)
    log.info("schema of %s at %s", migrations.parent.name, revision)


def run_alembic_env(metadata: MetaData, database: Callable[[], tuple[str, str | None]]) -> None:
    """The body of every service's ``migrations/env.py``. Run from :func:`migrate`,
    which hands over a connection; without one (the ``alembic`` command), it opens
    its own engine on ``-x url=...`` or the service's ``database()`` (url, schema),
    read only then."""
    from alembic import context  # noqa: PLC0415 - exists only inside an Alembic run

    def run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()

    given = context.config.attributes.get("connection")
    if given is not None:
        run(given)
        return

    async def with_own_engine() -> None:
        url, schema = database()
        url = context.get_x_argument(as_dictionary=True).get("url", url)
        engine = make_engine(url, schema=schema)
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(with_own_engine())
