"""A hide's report to the platform's moderators, recorded on its action
(``sending`` before the request, ``done`` after): a re-run of the action never
reports the reply again. Rows from before it read NULL (no report recorded)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.add_column("reply_actions", sa.Column("report_state", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reply_actions") as batch:
        batch.drop_column("report_state")
