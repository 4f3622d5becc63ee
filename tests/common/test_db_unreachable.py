"""``database_unreachable``: what a Postgres restart (as asyncpg and SQLAlchemy raise
it: a plain ``DBAPIError``), a lost connection, an exhausted pool or a locked SQLite
raise is worth trying again; an error about the statement or its values is not."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg.exceptions  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import database_unreachable, make_engine
from tests.helpers.db import POSTGRES_URL

pytestmark = pytest.mark.timeout(30)

#: asyncpg's base of its client-side errors (``asyncpg.InterfaceError``), and its
#: ``DataError``: a value it cannot send (an ``InterfaceError`` and a ``ValueError``).
AsyncpgInterfaceError = asyncpg.exceptions._base.InterfaceError
AsyncpgValueError = asyncpg.exceptions._base.DataError


def adapted(
    error: Exception,
    wrapper: type[DBAPIError] = DBAPIError,
    *,
    adapter: type[Exception] = AsyncAdapt_asyncpg_dbapi.Error,
    invalidated: bool = False,
) -> DBAPIError:
    """``error`` as SQLAlchemy's asyncpg dialect raises it: the adapter's error, raised
    from asyncpg's, as the ``.orig`` of a SQLAlchemy ``DBAPIError``."""
    orig = adapter(f"{type(error).__name__}: {error}", error)
    orig.__cause__ = error
    return wrapper("UPDATE t SET x = 1", {}, orig, connection_invalidated=invalidated)


RESTART = [
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError("terminating connection because of crash"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
    asyncpg.exceptions.ConnectionFailureError("could not receive data from server"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
]


@pytest.mark.parametrize("error", RESTART, ids=lambda e: type(e).__name__)
def test_a_postgres_restart_as_asyncpg_raises_it_is_unreachable(error: Exception) -> None:
    raised = adapted(error)
    assert type(raised) is DBAPIError  # not an OperationalError: no class says it
    assert not raised.connection_invalidated
    assert database_unreachable(raised)


@pytest.mark.parametrize("error", RESTART, ids=lambda e: type(e).__name__)
def test_an_asyncpg_connection_error_as_orig_itself_is_unreachable(error: Exception) -> None:
    assert database_unreachable(DBAPIError("SELECT 1", {}, error))
    assert database_unreachable(error)  # and raised bare


def test_a_connection_sqlalchemy_invalidated_is_unreachable() -> None:
    lost = RuntimeError("cannot switch to state 11; another operation (2) is in progress")
    assert database_unreachable(adapted(lost, invalidated=True))
    assert not database_unreachable(adapted(lost))


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("UPDATE t", {}, sqlite3.OperationalError("database is locked")),
        adapted(AsyncpgInterfaceError("connection is closed"), InterfaceError),
        DisconnectionError("gone"),
        PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        OSError(113, "No route to host"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_the_classes_that_say_so_are_unreachable(error: BaseException) -> None:
    assert database_unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        adapted(
            asyncpg.exceptions.UniqueViolationError("duplicate key value"),
            IntegrityError,
            adapter=AsyncAdapt_asyncpg_dbapi.UniqueViolationError,
        ),
        adapted(asyncpg.exceptions.StringDataRightTruncationError("value too long"), DataError),
        adapted(asyncpg.exceptions.QueryCanceledError("canceling statement due to timeout")),
        adapted(asyncpg.exceptions.UndefinedTableError('relation "t" does not exist')),
        adapted(AsyncpgValueError("invalid input for query argument $1"), InterfaceError),
        DataError("INSERT", {}, ValueError("value too long")),
        ValueError("not a database error"),
        RuntimeError("a bug"),
    ],
    ids=lambda e: f"{type(e).__name__}-{type(getattr(e, 'orig', e)).__name__}",
)
def test_an_error_about_the_statement_or_its_values_is_not(error: BaseException) -> None:
    assert not database_unreachable(error)


async def _terminate(engine: AsyncEngine, pid: int, after_s: float = 0.0) -> None:
    await asyncio.sleep(after_s)
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


@pytest.mark.integration
async def test_a_connection_terminated_by_the_server_is_unreachable() -> None:
    """What a Postgres shutdown does to a session (SIGTERM to its backend: 57P01), for
    real: to the statement running then, and to the next one of an idle connection."""
    engine = make_engine(POSTGRES_URL)
    try:
        async with engine.connect() as connection:
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            terminating = asyncio.create_task(_terminate(engine, pid, after_s=0.3))
            with pytest.raises(DBAPIError) as running:
                await connection.execute(text("SELECT pg_sleep(10)"))
            await terminating
        async with engine.connect() as connection:
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await _terminate(engine, pid)
            await asyncio.sleep(0.3)
            with pytest.raises(DBAPIError) as idle:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert database_unreachable(running.value)
    assert database_unreachable(idle.value)
