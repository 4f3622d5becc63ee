"""Alembic environment of the triage database: see :func:`services.common.db.run_alembic_env`
(``TRIAGE_DATABASE_URL`` or ``-x url=...`` when run by the ``alembic`` command)."""

from __future__ import annotations

from services.common.db import run_alembic_env
from services.triage.web.models import Base


def _database() -> tuple[str, str | None]:
    from services.triage.web.config import WebSettings  # noqa: PLC0415 - CLI only

    settings = WebSettings()
    return settings.database_url, settings.database_schema


run_alembic_env(Base.metadata, _database)
