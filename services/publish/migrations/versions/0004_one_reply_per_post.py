"""One live reply per post asked: a partial unique index on (platform, in_reply_to).

Whatever the question id, the person asking gets one reply: a second request that
names the same post (a forged command, or a second question made of one mention)
can never go live beside the first."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

_LIVE_SQL = "state IN ('sending', 'published', 'withdrawn')"


def upgrade() -> None:
    op.create_index(
        "uq_replies_live_post",
        "replies",
        ["platform", "in_reply_to"],
        unique=True,
        sqlite_where=sa.text(_LIVE_SQL),
        postgresql_where=sa.text(_LIVE_SQL),
    )


def downgrade() -> None:
    op.drop_index("uq_replies_live_post", table_name="replies")
