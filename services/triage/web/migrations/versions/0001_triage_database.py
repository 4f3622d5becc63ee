"""Triage database: questions and their events, users, sessions, teams, assignments,
answers, consents, replies, blocked authors, audit log, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_table(
        "blocked_authors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("author_id", sa.String(length=128), nullable=False),
        sa.Column("handle", sa.String(length=256), nullable=False),
        sa.Column("blocked_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocked_authors")),
    )
    op.create_index(
        "uq_blocked_authors_platform_author",
        "blocked_authors",
        ["platform", "author_id"],
        unique=True,
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index(op.f("ix_login_failures_address"), "login_failures", ["address"], unique=False)
    op.create_index(
        "ix_login_failures_username_at", "login_failures", ["username", "at"], unique=False
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_sent_at_id", "outbox", ["sent_at", "id"], unique=False)
    op.create_table(
        "teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("languages", sa.String(length=256), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("slug", name=op.f("uq_teams_slug")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role != 'team' OR team_id IS NOT NULL", name=op.f("ck_users_team_member_has_team")
        ),
        sa.CheckConstraint("role IN ('admin', 'moderator', 'team')", name=op.f("ck_users_role")),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_users_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "questions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("mention_id", sa.String(length=160), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("native_id", sa.String(length=128), nullable=False),
        sa.Column("author_id", sa.String(length=128), nullable=False),
        sa.Column("author_handle", sa.String(length=256), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("classified_json", sa.Text(), nullable=False),
        sa.Column("offensive", sa.Float(), nullable=False),
        sa.Column("hate", sa.Float(), nullable=False),
        sa.Column("question_score", sa.Float(), nullable=False),
        sa.Column("relevance", sa.Float(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("reasons_json", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("model_version", sa.String(length=256), nullable=False),
        sa.Column("rule", sa.String(length=256), nullable=False),
        sa.Column("cluster_id", sa.String(length=256), nullable=True),
        sa.Column("suggested_team", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("claimed_by", sa.Integer(), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('new', 'approved', 'assigned', 'recorded', 'answered', 'published',"
            " 'rejected', 'quarantined', 'dropped')",
            name=op.f("ck_questions_status"),
        ),
        sa.CheckConstraint("priority BETWEEN 0 AND 100", name=op.f("ck_questions_priority")),
        sa.ForeignKeyConstraint(
            ["claimed_by"], ["users.id"], name=op.f("fk_questions_claimed_by_users")
        ),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_questions_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questions")),
        sa.UniqueConstraint("mention_id", name=op.f("uq_questions_mention_id")),
    )
    op.create_index("ix_questions_cluster_id", "questions", ["cluster_id"], unique=False)
    op.create_index(
        "ix_questions_platform_author_id", "questions", ["platform", "author_id"], unique=False
    )
    op.create_index(
        "ix_questions_status_priority", "questions", ["status", "priority"], unique=False
    )
    op.create_index(op.f("ix_questions_team_id"), "questions", ["team_id"], unique=False)
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('web', 'api')", name=op.f("ck_sessions_kind")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"], unique=False)
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("question_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("assigned_by", sa.String(length=128), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.Integer(), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('active', 'recorded', 'released', 'done')", name=op.f("ck_assignments_state")
        ),
        sa.ForeignKeyConstraint(
            ["claimed_by"], ["users.id"], name=op.f("fk_assignments_claimed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name=op.f("fk_assignments_question_id_questions")
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_assignments_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    op.create_index("ix_assignments_team_id_id", "assignments", ["team_id", "id"], unique=False)
    op.create_index(
        "uq_assignments_open_question",
        "assignments",
        ["question_id"],
        unique=True,
        sqlite_where=sa.text("state IN ('active', 'recorded')"),
        postgresql_where=sa.text("state IN ('active', 'recorded')"),
    )
    op.create_table(
        "question_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("question_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(length=256), nullable=True),
        sa.Column("rule", sa.String(length=256), nullable=True),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name=op.f("fk_question_events_question_id_questions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_question_events")),
    )
    op.create_index(
        op.f("ix_question_events_question_id"), "question_events", ["question_id"], unique=False
    )
    op.create_table(
        "answers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("question_id", sa.String(length=32), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("media_uri", sa.String(length=2048), nullable=False),
        sa.Column("mime", sa.String(length=64), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("caption", sa.Text(), nullable=False),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("uploaded_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.String(length=128), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "state IN ('submitted', 'approved', 'returned', 'withdrawn')",
            name=op.f("ck_answers_state"),
        ),
        sa.ForeignKeyConstraint(
            ["assignment_id"], ["assignments.id"], name=op.f("fk_answers_assignment_id_assignments")
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name=op.f("fk_answers_question_id_questions")
        ),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_answers_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answers")),
    )
    op.create_index(op.f("ix_answers_question_id"), "answers", ["question_id"], unique=False)
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("answer_id", sa.String(length=32), nullable=False),
        sa.Column("given_by", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("recorded_by", sa.String(length=128), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["answers.id"], name=op.f("fk_consents_answer_id_answers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("answer_id", name=op.f("uq_consents_answer_id")),
    )
    op.create_table(
        "replies",
        sa.Column("reply_id", sa.String(length=128), nullable=False),
        sa.Column("question_id", sa.String(length=32), nullable=False),
        sa.Column("answer_id", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("post_id", sa.String(length=128), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('requested', 'published', 'failed')", name=op.f("ck_replies_state")
        ),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["answers.id"], name=op.f("fk_replies_answer_id_answers")
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name=op.f("fk_replies_question_id_questions")
        ),
        sa.PrimaryKeyConstraint("reply_id", name=op.f("pk_replies")),
    )
    op.create_index(op.f("ix_replies_answer_id"), "replies", ["answer_id"], unique=False)
    op.create_index(op.f("ix_replies_question_id"), "replies", ["question_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_replies_question_id"), table_name="replies")
    op.drop_index(op.f("ix_replies_answer_id"), table_name="replies")
    op.drop_table("replies")
    op.drop_table("consents")
    op.drop_index(op.f("ix_answers_question_id"), table_name="answers")
    op.drop_table("answers")
    op.drop_index(op.f("ix_question_events_question_id"), table_name="question_events")
    op.drop_table("question_events")
    op.drop_index(
        "uq_assignments_open_question",
        table_name="assignments",
        sqlite_where=sa.text("state IN ('active', 'recorded')"),
        postgresql_where=sa.text("state IN ('active', 'recorded')"),
    )
    op.drop_index("ix_assignments_team_id_id", table_name="assignments")
    op.drop_table("assignments")
    op.drop_index(op.f("ix_sessions_user_id"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_index(op.f("ix_questions_team_id"), table_name="questions")
    op.drop_index("ix_questions_status_priority", table_name="questions")
    op.drop_index("ix_questions_platform_author_id", table_name="questions")
    op.drop_index("ix_questions_cluster_id", table_name="questions")
    op.drop_table("questions")
    op.drop_table("users")
    op.drop_table("teams")
    op.drop_index("ix_outbox_sent_at_id", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_login_failures_username_at", table_name="login_failures")
    op.drop_index(op.f("ix_login_failures_address"), table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_index("uq_blocked_authors_platform_author", table_name="blocked_authors")
    op.drop_table("blocked_authors")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
