"""Protection: the replies under our published answers, and the hide / unhide actions.

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


def upgrade() -> None:
    op.create_table(
        "watched_replies",
        sa.Column("reply_key", sa.String(137), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("native_id", sa.String(128), nullable=False),
        sa.Column("answer_post_id", sa.String(128), nullable=False),
        sa.Column("answer_reply_id", sa.String(256), nullable=False),
        sa.Column("author_id", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("reply_key", name="pk_watched_replies"),
    )
    op.create_index("ix_watched_replies_answer_post_id", "watched_replies", ["answer_post_id"])
    op.create_index("ix_watched_replies_announced_at", "watched_replies", ["announced_at"])
    op.create_table(
        "reply_actions",
        sa.Column("action_id", sa.String(256), nullable=False),
        sa.Column("reply_key", sa.String(137), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("how", sa.String(64), nullable=False),
        sa.Column("decided_by", sa.String(256), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("action_id", name="pk_reply_actions"),
    )
    op.create_index("ix_reply_actions_reply_key", "reply_actions", ["reply_key"])


def downgrade() -> None:
    op.drop_table("reply_actions")
    op.drop_table("watched_replies")
