"""Tags on questions: the moderators' own labels, one row per tag."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "question_tags",
        *columns(
            """
            id serial, question_id str(32), tag str(32), added_by str(128), added_at ts
            """
        ),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["questions.id"],
            name=op.f("fk_question_tags_question_id_questions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_question_tags")),
    )
    op.create_index(
        "uq_question_tags_question_tag", "question_tags", ["question_id", "tag"], unique=True
    )
    op.create_index("ix_question_tags_tag", "question_tags", ["tag"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_question_tags_tag", table_name="question_tags")
    op.drop_index("uq_question_tags_question_tag", table_name="question_tags")
    op.drop_table("question_tags")
