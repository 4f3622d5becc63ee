"""X spend counted once per item: a mention's post read is counted the first time it
is recorded, not again when ``mentions.raw`` delivers the mention again."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "x_spend_items",
        *columns("account str(128), call_class str(32), item str(300), day str(10)"),
        sa.PrimaryKeyConstraint("account", "call_class", "item", name="pk_x_spend_items"),
    )


def downgrade() -> None:
    op.drop_table("x_spend_items")
