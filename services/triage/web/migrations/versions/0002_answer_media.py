"""Answer media: what the probe found, the platforms' flags, the moderator's cut, the
transcript's translation, language, source and timed subtitles, the poster; and the
media worker's job table."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0002"
down_revision = "0001"

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
        *columns(
            """
            id serial, kind str(32), key str(200), subject str(64), payload_json text,
            state str(16), priority int, attempts int, max_attempts int, progress float,
            note str(200), owner str(64)?, lease_until ts?, run_after ts, result_json text?,
            error text?, created_at ts, updated_at ts, finished_at ts?, applied_at ts?
            """
        ),
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
