"""Paused people: the latest pause or resume of each person filmed
(``speakers.paused``), and the reply requests held while they are paused."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "speaker_pauses",
        *columns(
            "speaker_ref str(256), paused bool, decided_by str(256), reason text, at ts, "
            "recorded_at ts"
        ),
        sa.PrimaryKeyConstraint("speaker_ref", name="pk_speaker_pauses"),
    )
    op.create_table(
        "held_replies",
        *columns(
            "reply_id str(256), speaker_ref str(256), question_id str(256), command bytes?, "
            "held_at ts"
        ),
        sa.PrimaryKeyConstraint("reply_id", name="pk_held_replies"),
    )
    op.create_index("ix_held_replies_speaker_ref", "held_replies", ["speaker_ref"])


def downgrade() -> None:
    op.drop_table("held_replies")
    op.drop_table("speaker_pauses")
