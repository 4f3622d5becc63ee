"""Triage database: questions and their events, users, sessions, teams, assignments,
answers, consents, replies, blocked authors, audit log, outbox."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.ddl import columns

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        *columns(
            """
            id serial, at ts, actor str(128), action str(64), subject str(200), detail_json text
            """
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_table(
        "blocked_authors",
        *columns(
            """
            id serial, platform str(16), author_id str(128), handle str(256),
            blocked_by str(128), reason text, at ts
            """
        ),
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
        *columns(
            """
            id int, username str(64), address str(64), at ts
            """
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index(op.f("ix_login_failures_address"), "login_failures", ["address"], unique=False)
    op.create_index(
        "ix_login_failures_username_at", "login_failures", ["username", "at"], unique=False
    )
    op.create_table(
        "outbox",
        *columns(
            """
            id serial, topic str(128), key bytes, value bytes, created_at ts, sent_at ts?
            """
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_sent_at_id", "outbox", ["sent_at", "id"], unique=False)
    op.create_table(
        "teams",
        *columns(
            """
            id int, slug str(64), name str(128), languages str(256), capacity int, active bool,
            created_at ts
            """
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("slug", name=op.f("uq_teams_slug")),
    )
    op.create_table(
        "users",
        *columns(
            """
            id int, username str(64), password_hash str(256), role str(16), team_id int?,
            active bool, created_at ts
            """
        ),
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
        *columns(
            """
            id str(32), mention_id str(160), platform str(16), native_id str(128),
            author_id str(128), author_handle str(256), text text, lang str(64)?,
            url str(2048)?, classified_json text, offensive float, hate float,
            question_score float, relevance float, priority int, reasons_json text,
            decision str(16), model_version str(256), rule str(256), cluster_id str(256)?,
            suggested_team str(256)?, status str(16), team_id int?, claimed_by int?,
            claim_expires_at ts?, received_at ts, created_at ts, updated_at ts
            """
        ),
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
        *columns(
            """
            token_hash str(64), user_id int, kind str(8), csrf_token str(64), created_at ts,
            expires_at ts, revoked_at ts?
            """
        ),
        sa.CheckConstraint("kind IN ('web', 'api')", name=op.f("ck_sessions_kind")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"], unique=False)
    op.create_table(
        "assignments",
        *columns(
            """
            id serial, question_id str(32), team_id int, state str(16), assigned_by str(128),
            assigned_at ts, due_at ts?, claimed_by int?, claim_expires_at ts?, closed_at ts?
            """
        ),
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
        *columns(
            """
            id serial, question_id str(32), at ts, actor str(128), event str(32),
            from_status str(16)?, to_status str(16)?, decision str(32)?, reason text,
            model_version str(256)?, rule str(256)?, detail_json text
            """
        ),
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
        *columns(
            """
            id str(32), question_id str(32), assignment_id int?, team_id int, state str(16),
            media_uri str(2048), mime str(64), bytes int, sha256 str(64), duration_s float?,
            caption text, transcript text, language str(16), uploaded_by str(128),
            created_at ts, reviewed_by str(128)?, reviewed_at ts?, review_note text
            """
        ),
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
        *columns(
            """
            id serial, answer_id str(32), given_by str(128), scope str(64),
            recorded_by str(128), given_at ts, withdrawn_at ts?, withdrawn_by str(128)?
            """
        ),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["answers.id"], name=op.f("fk_consents_answer_id_answers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("answer_id", name=op.f("uq_consents_answer_id")),
    )
    op.create_table(
        "replies",
        *columns(
            """
            reply_id str(128), question_id str(32), answer_id str(32), platform str(16),
            state str(16), post_id str(128)?, url str(2048)?, error text?, requested_at ts,
            updated_at ts
            """
        ),
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
