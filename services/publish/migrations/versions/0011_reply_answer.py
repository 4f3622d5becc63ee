"""The answer each reply posts (``PublishReply.answer_id``): a consent withdrawal naming
that answer takes the reply down (and refuses it) whatever questions it names, after
publishing as before it. Rows from before it read ``NULL`` (matched by speaker and
questions only)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.add_column("replies", sa.Column("answer_id", sa.String(256), nullable=True))
    op.create_index("ix_replies_answer_id", "replies", ["answer_id"])


def downgrade() -> None:
    op.drop_index("ix_replies_answer_id", table_name="replies")
    with op.batch_alter_table("replies") as batch:
        batch.drop_column("answer_id")
