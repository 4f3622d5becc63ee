"""Answer media: what the probe found, the platforms' flags, the moderator's cut, the
transcript's translation, language, source and timed subtitles, the poster; and the
media worker's job table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT_COLUMNS = {
    "media_json": "{}",
    "flags_json": "[]",
    "translation": "",
    "cues_json": "[]",
    "cues_en_json": "[]",
}


def upgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        for name, empty in _TEXT_COLUMNS.items():
            batch.add_column(sa.Column(name, sa.Text(), nullable=False, server_default=empty))
        batch.add_column(
            sa.Column("platforms", sa.String(length=64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("trim_start_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("trim_end_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("transcript_language", sa.String(length=16), nullable=True))
        batch.add_column(
            sa.Column("transcript_source", sa.String(length=16), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column(
                "subtitles_source", sa.String(length=16), nullable=False, server_default="generated"
            )
        )
        batch.add_column(sa.Column("poster_key", sa.String(length=128), nullable=True))
    op.create_table(
        "media_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("payload_json", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name=op.f("ck_media_jobs_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_jobs")),
        sa.UniqueConstraint("kind", "key", name=op.f("uq_media_jobs_kind_key")),
    )
    op.create_index(
        "ix_media_jobs_state_priority_id", "media_jobs", ["state", "priority", "id"], unique=False
    )
    op.create_index("ix_media_jobs_subject", "media_jobs", ["subject"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_media_jobs_subject", table_name="media_jobs")
    op.drop_index("ix_media_jobs_state_priority_id", table_name="media_jobs")
    op.drop_table("media_jobs")
    with op.batch_alter_table("answers") as batch:
        for name in (
            *_TEXT_COLUMNS,
            "platforms",
            "trim_start_s",
            "trim_end_s",
            "transcript_language",
            "transcript_source",
            "subtitles_source",
            "poster_key",
        ):
            batch.drop_column(name)
