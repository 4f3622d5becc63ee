"""A person on a question (its assignee), and what people are told: notifications
of new work for their team, of a question given to them, of their answer out."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("questions") as batch:
        batch.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_questions_assignee_id_users"), "users", ["assignee_id"], ["id"]
        )
        batch.create_index(op.f("ix_questions_assignee_id"), ["assignee_id"], unique=False)
    op.create_table(
        "notifications",
        *columns(
            """
            id serial, user_id int, kind str(32), question_id str(32)?, text str(300),
            link str(300), created_at ts, read_at ts?
            """
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name=op.f("fk_notifications_question_id_questions")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(
        "ix_notifications_user_id_read_at", "notifications", ["user_id", "read_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_user_id_read_at", table_name="notifications")
    op.drop_table("notifications")
    with op.batch_alter_table("questions") as batch:
        batch.drop_index(op.f("ix_questions_assignee_id"))
        batch.drop_constraint(op.f("fk_questions_assignee_id_users"), type_="foreignkey")
        batch.drop_column("assignee_id")
