"""Protection: the replies under our published answers, their timeline, the
escalations and the paused speakers.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "answer_replies",
        sa.Column("reply_id", sa.String(137), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("native_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("answer_post_id", sa.String(128), nullable=False),
        sa.Column("question_id", sa.String(256), nullable=False),
        sa.Column("speaker_ref", sa.String(256), nullable=False),
        sa.Column("author_id", sa.String(128), nullable=False),
        sa.Column("author_handle", sa.String(256), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("offensive", sa.Float(), nullable=False),
        sa.Column("hate", sa.Float(), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(256), nullable=False),
        sa.Column("reasons_json", sa.Text(), nullable=False),
        sa.Column("escalations", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sticky", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.String(256), nullable=False),
        sa.Column("how", sa.String(64), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("received_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("reply_id", name="pk_answer_replies"),
    )
    op.create_index(
        "ix_answer_replies_answer_received", "answer_replies", ["answer_post_id", "received_at"]
    )
    op.create_index("ix_answer_replies_question_id", "answer_replies", ["question_id"])
    op.create_index("ix_answer_replies_speaker_ref", "answer_replies", ["speaker_ref"])
    op.create_index("ix_answer_replies_state", "answer_replies", ["state"])
    op.create_table(
        "answer_reply_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reply_id", sa.String(137), nullable=False),
        _ts("at"),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_answer_reply_events"),
    )
    op.create_index("ix_answer_reply_events_reply_id", "answer_reply_events", ["reply_id"])
    op.create_table(
        "protection_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("question_id", sa.String(256), nullable=False),
        sa.Column("speaker_ref", sa.String(256), nullable=False),
        sa.Column("answer_post_id", sa.String(128), nullable=False),
        sa.Column("reply_id", sa.String(137), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.Column("acknowledged_by", sa.String(256), nullable=True),
        _ts("acknowledged_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_protection_alerts"),
    )
    op.create_index("ix_protection_alerts_speaker_ref", "protection_alerts", ["speaker_ref"])
    op.create_index("ix_protection_alerts_answer_post_id", "protection_alerts", ["answer_post_id"])
    op.create_table(
        "paused_speakers",
        sa.Column("speaker_ref", sa.String(256), nullable=False),
        sa.Column("paused_by", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("at"),
        sa.PrimaryKeyConstraint("speaker_ref", name="pk_paused_speakers"),
    )


def downgrade() -> None:
    for table in ("paused_speakers", "protection_alerts", "answer_reply_events", "answer_replies"):
        op.drop_table(table)
