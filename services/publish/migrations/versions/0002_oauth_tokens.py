"""OAuth tokens: the latest (rotated) refresh token of each account."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "oauth_tokens",
        *columns(
            """
            platform str(16), account str(128), access_token text?, expires_at ts?,
            refresh_token text, seed_sha256 str(64), refreshed_at ts
            """
        ),
        sa.PrimaryKeyConstraint("platform", "account", name="pk_oauth_tokens"),
    )


def downgrade() -> None:
    op.drop_table("oauth_tokens")
