"""Learning from the moderators: their labels, and the retrain jobs."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "labels",
        *columns(
            """
            id serial, question_id str(32), at ts, actor str(128), source str(32),
            offensive int?, hate int?, question int?, model_version str(256), retracted_at ts?
            """
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name=op.f("fk_labels_question_id_questions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
    )
    op.create_index("ix_labels_question_id_id", "labels", ["question_id", "id"], unique=False)
    op.create_index(op.f("ix_labels_at"), "labels", ["at"], unique=False)
    op.create_table(
        "model_jobs",
        *columns(
            """
            id serial, state str(16), stage str(64), progress float, requested_by str(128),
            options_json text, version str(256)?, reason text, pid int?, created_at ts,
            updated_at ts, finished_at ts?
            """
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_jobs")),
    )


def downgrade() -> None:
    op.drop_table("model_jobs")
    op.drop_index(op.f("ix_labels_at"), table_name="labels")
    op.drop_index("ix_labels_question_id_id", table_name="labels")
    op.drop_table("labels")
