"""Tags on questions: the moderators' own labels, one row per tag.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "question_tags",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("question_id", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
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
