"""Protection: the replies under our published answers, and the hide / unhide actions."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "watched_replies",
        *columns(
            """
            reply_key str(137), platform str(16), native_id str(128), answer_post_id str(128),
            answer_reply_id str(256), author_id str(128), payload text, hidden bool, seen_at ts,
            announced_at ts?
            """
        ),
        sa.PrimaryKeyConstraint("reply_key", name="pk_watched_replies"),
    )
    op.create_index("ix_watched_replies_answer_post_id", "watched_replies", ["answer_post_id"])
    op.create_index("ix_watched_replies_announced_at", "watched_replies", ["announced_at"])
    op.create_table(
        "reply_actions",
        *columns(
            """
            action_id str(256), reply_key str(137), platform str(16), action str(16),
            state str(16), how str(64), decided_by str(256), attempts int, error text?,
            created_at ts, updated_at ts, announced_at ts?
            """
        ),
        sa.PrimaryKeyConstraint("action_id", name="pk_reply_actions"),
    )
    op.create_index("ix_reply_actions_reply_key", "reply_actions", ["reply_key"])


def downgrade() -> None:
    op.drop_table("reply_actions")
    op.drop_table("watched_replies")
