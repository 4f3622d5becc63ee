"""X spend: calls and cost per account, UTC day and call class (pay-per-use)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "x_spend",
        *columns(
            """
            account str(128), day str(10), call_class str(32), calls int, micro_usd bigint
            """
        ),
        sa.PrimaryKeyConstraint("account", "day", "call_class", name="pk_x_spend"),
    )


def downgrade() -> None:
    op.drop_table("x_spend")
