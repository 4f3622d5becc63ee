"""Whether a reply went out as a standalone post: a reply is looked for on the
platform the way it was sent (under the post asked, or on the account's timeline
by its text), after a lost answer and at every start. Rows from before it read
``false`` (threaded)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.add_column(
        "replies",
        sa.Column("standalone", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("replies") as batch:
        batch.drop_column("standalone")
