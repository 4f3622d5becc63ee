"""The answer a consent withdrawal names (``ConsentWithdrawn.answer_id``): every
request of that answer is refused, whatever questions the withdrawal names. Rows
from before it read ``NULL`` (matched by speaker and questions only)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.add_column("consent_withdrawals", sa.Column("answer_id", sa.String(256), nullable=True))
    op.create_index("ix_consent_withdrawals_answer_id", "consent_withdrawals", ["answer_id"])


def downgrade() -> None:
    op.drop_index("ix_consent_withdrawals_answer_id", table_name="consent_withdrawals")
    with op.batch_alter_table("consent_withdrawals") as batch:
        batch.drop_column("answer_id")
