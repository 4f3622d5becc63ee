"""The triage database: the shared engine and migration runner
(:mod:`services.common.db`) pointed at the triage service's own migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import db
from services.common.db import make_engine

__all__ = ["MIGRATIONS", "make_engine", "migrate"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Postgres advisory lock held while migrating (two web replicas starting at once).
_MIGRATION_LOCK = 0x74_72_69_61  # "tria"


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the triage schema to ``revision`` (idempotent; at every start)."""
    await db.migrate(engine, MIGRATIONS, lock_key=_MIGRATION_LOCK, revision=revision)
