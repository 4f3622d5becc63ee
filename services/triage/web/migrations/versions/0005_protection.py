"""Protection: the replies under our published answers, their timeline, the
escalations and the paused speakers."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "answer_replies",
        *columns(
            """
            reply_id str(137), platform str(16), native_id str(128), kind str(16),
            answer_post_id str(128), question_id str(256), speaker_ref str(256),
            author_id str(128), author_handle str(256), text text, url str(2048)?,
            offensive float, hate float, verdict str(16), rule str(256), reasons_json text,
            escalations str(64), model_version str(256), state str(16), sticky bool,
            decided_by str(256), how str(64), error text?, created_at ts, received_at ts,
            updated_at ts
            """
        ),
        sa.PrimaryKeyConstraint("reply_id", name="pk_answer_replies"),
    )
    op.create_index(
        "ix_answer_replies_answer_received", "answer_replies", ["answer_post_id", "received_at"]
    )
    op.create_index("ix_answer_replies_question_id", "answer_replies", ["question_id"])
    op.create_index("ix_answer_replies_speaker_ref", "answer_replies", ["speaker_ref"])
    op.create_index("ix_answer_replies_state", "answer_replies", ["state"])
    op.create_table(
        "answer_reply_events",
        *columns(
            """
            id serial, reply_id str(137), at ts, actor str(256), event str(32), detail text
            """
        ),
        sa.PrimaryKeyConstraint("id", name="pk_answer_reply_events"),
    )
    op.create_index("ix_answer_reply_events_reply_id", "answer_reply_events", ["reply_id"])
    op.create_table(
        "protection_alerts",
        *columns(
            """
            id serial, kind str(16), question_id str(256), speaker_ref str(256),
            answer_post_id str(128), reply_id str(137)?, detail text, created_at ts,
            acknowledged_by str(256)?, acknowledged_at ts?
            """
        ),
        sa.PrimaryKeyConstraint("id", name="pk_protection_alerts"),
    )
    op.create_index("ix_protection_alerts_speaker_ref", "protection_alerts", ["speaker_ref"])
    op.create_index("ix_protection_alerts_answer_post_id", "protection_alerts", ["answer_post_id"])
    op.create_table(
        "paused_speakers",
        *columns(
            """
            speaker_ref str(256), paused_by str(256), reason text, at ts
            """
        ),
        sa.PrimaryKeyConstraint("speaker_ref", name="pk_paused_speakers"),
    )


def downgrade() -> None:
    for table in ("paused_speakers", "protection_alerts", "answer_reply_events", "answer_replies"):
        op.drop_table(table)
