"""Alembic environment of the reply ledger.

Run from :func:`services.publish.db.migrate`, which hands over a connection
(``config.attributes["connection"]``). Without one (the ``alembic`` command
with ``-x url=...`` or ``PUBLISH_DATABASE_URL``), it opens its own async engine.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from services.publish.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    from services.publish.config import PublishSettings  # noqa: PLC0415 - CLI only
    from services.publish.db import make_engine  # noqa: PLC0415 - CLI only

    settings = PublishSettings()
    url = context.get_x_argument(as_dictionary=True).get("url", settings.database_url)
    engine = make_engine(url, schema=settings.database_schema)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    asyncio.run(_run_with_own_engine())
