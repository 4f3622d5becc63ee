"""One live reply per post asked: a partial unique index on (platform, in_reply_to).

Whatever the question id, the person asking gets one reply: a second request that
names the same post (a forged command, or a second question made of one mention)
can never go live beside the first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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
