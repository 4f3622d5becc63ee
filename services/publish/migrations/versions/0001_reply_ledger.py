"""Reply ledger: replies, decisions, opt-outs, engagements, consent withdrawals."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0001"
down_revision = None

_LIVE = "state IN ('sending', 'published', 'withdrawn')"
_STATES = "state IN ('pending', 'sending', 'published', 'failed', 'refused', 'withdrawn')"


def upgrade() -> None:
    op.create_table(
        "replies",
        *columns(
            """
            reply_id str(256), question_id str(256), platform str(16), mention_id str(300),
            in_reply_to str(128), author_id str(128), author_handle str(256),
            speaker_ref str(256), consent_at ts, language str(16)?, text text?,
            template_id str(64)?, state str(16), post_id str(128)?, url str(2048)?,
            attempts int, error text?, retryable bool?, created_at ts, updated_at ts,
            sent_at ts?, published_at ts?, withdrawn_at ts?, owner str(64)?, lease_until ts?,
            announced_at ts?
            """
        ),
        sa.PrimaryKeyConstraint("reply_id", name="pk_replies"),
        sa.CheckConstraint(_STATES, name="ck_replies_state"),
    )
    op.create_index("ix_replies_question_id", "replies", ["question_id"])
    op.create_index("ix_replies_speaker_ref", "replies", ["speaker_ref"])
    op.create_index("ix_replies_post_id", "replies", ["post_id"])
    op.create_index("ix_replies_author_sent", "replies", ["platform", "author_id", "sent_at"])
    op.create_index("ix_replies_platform_sent", "replies", ["platform", "sent_at"])
    op.create_index(
        "uq_replies_live_question",
        "replies",
        ["question_id", "platform"],
        unique=True,
        sqlite_where=sa.text(_LIVE),
        postgresql_where=sa.text(_LIVE),
    )

    op.create_table(
        "decisions",
        *columns(
            """
            id serial, reply_id str(256), rule str(64), verdict str(16), reason text, at ts
            """
        ),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_reply_id", "decisions", ["reply_id"])

    op.create_table(
        "opt_outs",
        *columns(
            """
            platform str(16), author_id str(128), handle str(256)?, source str(32), reason text,
            mention_id str(300)?, recorded_by str(256)?, at ts
            """
        ),
        sa.PrimaryKeyConstraint("platform", "author_id", name="pk_opt_outs"),
    )

    op.create_table(
        "engagements",
        *columns(
            """
            mention_id str(300), platform str(16), author_id str(128), how str(32), at ts
            """
        ),
        sa.PrimaryKeyConstraint("mention_id", name="pk_engagements"),
    )

    op.create_table(
        "consent_withdrawals",
        *columns(
            """
            id serial, event_key str(64), speaker_ref str(256), question_ids text,
            withdrawn_by str(256), reason text, at ts, recorded_at ts
            """
        ),
        sa.PrimaryKeyConstraint("id", name="pk_consent_withdrawals"),
        sa.UniqueConstraint("event_key", name="uq_consent_withdrawals_event_key"),
    )
    op.create_index("ix_consent_withdrawals_speaker_ref", "consent_withdrawals", ["speaker_ref"])


def downgrade() -> None:
    op.drop_table("consent_withdrawals")
    op.drop_table("engagements")
    op.drop_table("opt_outs")
    op.drop_index("ix_decisions_reply_id", table_name="decisions")
    op.drop_table("decisions")
    op.drop_table("replies")
