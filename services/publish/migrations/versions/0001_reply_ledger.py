"""Reply ledger: replies, decisions, opt-outs, engagements, consent withdrawals.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "state IN ('sending', 'published', 'withdrawn')"
_STATES = "state IN ('pending', 'sending', 'published', 'failed', 'refused', 'withdrawn')"


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "replies",
        sa.Column("reply_id", sa.String(256), nullable=False),
        sa.Column("question_id", sa.String(256), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("mention_id", sa.String(300), nullable=False),
        sa.Column("in_reply_to", sa.String(128), nullable=False),
        sa.Column("author_id", sa.String(128), nullable=False),
        sa.Column("author_handle", sa.String(256), nullable=False),
        sa.Column("speaker_ref", sa.String(256), nullable=False),
        _ts("consent_at"),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("template_id", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("post_id", sa.String(128), nullable=True),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("retryable", sa.Boolean(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("sent_at", nullable=True),
        _ts("published_at", nullable=True),
        _ts("withdrawn_at", nullable=True),
        sa.Column("owner", sa.String(64), nullable=True),
        _ts("lease_until", nullable=True),
        _ts("announced_at", nullable=True),
        sa.PrimaryKeyConstraint("reply_id", name="pk_replies"),
        sa.CheckConstraint(_STATES, name="ck_replies_state"),
    )
    op.create_index("ix_replies_question_id", "replies", ["question_id"])
    op.create_index("ix_replies_speaker_ref", "replies", ["speaker_ref"])
    op.create_index("ix_replies_post_id", "replies", ["post_id"])
    op.create_index("ix_replies_author_sent", "replies", ["platform", "author_id", "sent_at"])
    op.create_index("ix_replies_platform_sent", "replies", ["platform", "sent_at"])
    op.create_index(
        "uq_replies_live_question",
        "replies",
        ["question_id", "platform"],
        unique=True,
        sqlite_where=sa.text(_LIVE),
        postgresql_where=sa.text(_LIVE),
    )

    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reply_id", sa.String(256), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("at"),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_reply_id", "decisions", ["reply_id"])

    op.create_table(
        "opt_outs",
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("author_id", sa.String(128), nullable=False),
        sa.Column("handle", sa.String(256), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("mention_id", sa.String(300), nullable=True),
        sa.Column("recorded_by", sa.String(256), nullable=True),
        _ts("at"),
        sa.PrimaryKeyConstraint("platform", "author_id", name="pk_opt_outs"),
    )

    op.create_table(
        "engagements",
        sa.Column("mention_id", sa.String(300), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("author_id", sa.String(128), nullable=False),
        sa.Column("how", sa.String(32), nullable=False),
        _ts("at"),
        sa.PrimaryKeyConstraint("mention_id", name="pk_engagements"),
    )

    op.create_table(
        "consent_withdrawals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_key", sa.String(64), nullable=False),
        sa.Column("speaker_ref", sa.String(256), nullable=False),
        sa.Column("question_ids", sa.Text(), nullable=False),
        sa.Column("withdrawn_by", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("at"),
        _ts("recorded_at"),
        sa.PrimaryKeyConstraint("id", name="pk_consent_withdrawals"),
        sa.UniqueConstraint("event_key", name="uq_consent_withdrawals_event_key"),
    )
    op.create_index("ix_consent_withdrawals_speaker_ref", "consent_withdrawals", ["speaker_ref"])


def downgrade() -> None:
    op.drop_table("consent_withdrawals")
    op.drop_table("engagements")
    op.drop_table("opt_outs")
    op.drop_index("ix_decisions_reply_id", table_name="decisions")
    op.drop_table("decisions")
    op.drop_table("replies")
