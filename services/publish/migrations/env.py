"""Alembic environment of the reply ledger: see :func:`services.common.db.run_alembic_env`
(``PUBLISH_DATABASE_URL`` or ``-x url=...`` when run by the ``alembic`` command)."""

from __future__ import annotations

from services.common.db import run_alembic_env
from services.publish.models import Base


def _database() -> tuple[str, str | None]:
    from services.publish.config import PublishSettings  # noqa: PLC0415 - CLI only

    settings = PublishSettings()
    return settings.database_url, settings.database_schema


run_alembic_env(Base.metadata, _database)
