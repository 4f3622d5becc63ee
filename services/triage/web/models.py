"""The triage database's tables (SQLAlchemy 2 declarative). The migrations in
``migrations/versions`` create exactly these; a test compares the two.

- ``questions``: one row per classified mention (unique ``mention_id``: a
  redelivered ``mentions.classified`` changes nothing), its scores, priority,
  decision, cluster, status, and the moderator claim (who, until when).
- ``question_events``: the status history and timeline of each question, and
  every decision on it (the classifier's, with model version and rule; each
  person's, with who and why). Append-only; its id is the live queue's cursor.
- ``users`` / ``sessions``: people with a role (admin, moderator, team) and
  their login sessions and API tokens (only a hash of each token is stored).
- ``teams``: recording teams, their languages and daily capacity.
- ``assignments``: a question given to a team, and the team member's claim.
- ``answers`` / ``consents``: the recorded video answer and the consent of
  the person filmed (no consent, no answer).
- ``replies``: one per asker when an answer is approved (the publisher's
  idempotency key), and what became of it.
- ``blocked_authors``: authors whose mentions are rejected on arrival.
- ``question_tags``: the moderators' own labels on questions (one row per tag).
- ``notifications``: what a person is told (new work for their team, a question
  given to them, their team's answer out), read or not.
- ``audit_log``: append-only record of every action by anyone.
- ``outbox``: messages written in the same transaction as the change they
  announce, sent to Kafka by the relay (nothing announced is lost, nothing
  is announced that did not happen).
- ``login_failures``: failed logins, for the per-name and per-address limit.
- ``answer_replies`` / ``answer_reply_events`` / ``protection_alerts`` /
  ``paused_speakers``: the replies under our published answers (hidden, kept,
  waiting, restored), their timeline, the escalations, and the people whose
  answers are paused.
- ``media_jobs``: the media worker's queue (posters, transcripts, renditions):
  :func:`services.common.jobs.jobs_table`, claimed with the conditional-UPDATE rule;
  a finished job is its result's cache.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import NAMING, UtcDateTime
from services.common.jobs import jobs_table


class Role(StrEnum):
    ADMIN = "admin"
    MODERATOR = "moderator"
    TEAM = "team"


class Status(StrEnum):
    """Where a question is. ``new`` waits for a moderator; ``approved`` waits
    for a team; ``recorded`` has an answer waiting for review; ``answered``
    had its answer approved (replies requested); ``published`` has a reply out."""

    NEW = "new"
    APPROVED = "approved"
    ASSIGNED = "assigned"
    RECORDED = "recorded"
    ANSWERED = "answered"
    PUBLISHED = "published"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"
    DROPPED = "dropped"


class AssignmentState(StrEnum):
    ACTIVE = "active"
    RECORDED = "recorded"
    RELEASED = "released"
    DONE = "done"


class AnswerState(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    RETURNED = "returned"
    WITHDRAWN = "withdrawn"


class ReplyState(StrEnum):
    REQUESTED = "requested"
    PUBLISHED = "published"
    FAILED = "failed"


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    #: Space-separated ISO language codes (``"en sw"``).
    languages: Mapped[str] = mapped_column(String(256), default="")
    #: Questions the team can take per day.
    capacity: Mapped[int] = mapped_column(Integer, default=20)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN ({_values(Role)})", name="role"),
        CheckConstraint("role != 'team' OR team_id IS NOT NULL", name="team_member_has_team"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (CheckConstraint("kind IN ('web', 'api')", name="kind"),)

    #: sha256 of the token the client holds (a stolen table opens no session).
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LoginFailure(Base):
    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class Question(Base):
    __tablename__ = "questions"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(Status)})", name="status"),
        CheckConstraint("priority BETWEEN 0 AND 100", name="priority"),
        Index("ix_questions_status_priority", "status", "priority"),
        Index("ix_questions_cluster_id", "cluster_id"),
        Index("ix_questions_platform_author_id", "platform", "author_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    mention_id: Mapped[str] = mapped_column(String(160), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    native_id: Mapped[str] = mapped_column(String(128))
    author_id: Mapped[str] = mapped_column(String(128))
    author_handle: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(String(2048))
    #: The whole ``MentionClassified`` as received (JSON): what the reply is built from.
    classified_json: Mapped[str] = mapped_column(Text)
    offensive: Mapped[float] = mapped_column(Float)
    hate: Mapped[float] = mapped_column(Float)
    question_score: Mapped[float] = mapped_column(Float)
    relevance: Mapped[float] = mapped_column(Float)
    priority: Mapped[int] = mapped_column(Integer)
    #: The priority's parts (JSON list of {factor, points, detail}).
    reasons_json: Mapped[str] = mapped_column(Text, default="[]")
    decision: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str] = mapped_column(String(256))
    #: The classifier's path that scored it: ``en`` (MiniLM) or ``multi`` (e5);
    #: ``None`` when a rule decided without the model (or before version 2).
    model_path: Mapped[str | None] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(256))
    cluster_id: Mapped[str | None] = mapped_column(String(256))
    #: The team the classifier's routing suggests (by language).
    suggested_team: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: The person who looks after it (a moderator, or a member of its team).
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class QuestionEvent(Base):
    __tablename__ = "question_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    question_id: Mapped[str] = mapped_column(ForeignKey("questions.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: ``system:<component>`` or a user name.
    actor: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    #: Set on decisions: the decision taken (``quarantine``, ``approve``, …).
    decision: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    model_version: Mapped[str | None] = mapped_column(String(256))
    rule: Mapped[str | None] = mapped_column(String(256))
    detail_json: Mapped[str] = mapped_column(Text, default="{}")


class QuestionTag(Base):
    """A moderator's label on a question ("follow-up", "press", "ask-the-camp")."""

    __tablename__ = "question_tags"
    __table_args__ = (
        Index("uq_question_tags_question_tag", "question_id", "tag", unique=True),
        Index("ix_question_tags_tag", "tag"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    question_id: Mapped[str] = mapped_column(ForeignKey("questions.id"))
    tag: Mapped[str] = mapped_column(String(32))
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Notification(Base):
    """Something a person is told once: new work for their team, a question given to
    them, their team's answer published."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id_read_at", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    question_id: Mapped[str | None] = mapped_column(ForeignKey("questions.id"))
    text: Mapped[str] = mapped_column(String(300))
    #: Where the person goes to act on it (``/team/camp-a``, ``/questions/…``).
    link: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        CheckConstraint(f"state IN ({_values(AssignmentState)})", name="state"),
        # At most one open assignment per question.
        Index(
            "uq_assignments_open_question",
            "question_id",
            unique=True,
            sqlite_where=text("state IN ('active', 'recorded')"),
            postgresql_where=text("state IN ('active', 'recorded')"),
        ),
        Index("ix_assignments_team_id_id", "team_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    question_id: Mapped[str] = mapped_column(ForeignKey("questions.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    state: Mapped[str] = mapped_column(String(16))
    assigned_by: Mapped[str] = mapped_column(String(128))
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Answer(Base):
    __tablename__ = "answers"
    __table_args__ = (CheckConstraint(f"state IN ({_values(AnswerState)})", name="state"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    question_id: Mapped[str] = mapped_column(ForeignKey("questions.id"), index=True)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    state: Mapped[str] = mapped_column(String(16))
    media_uri: Mapped[str] = mapped_column(String(2048))
    mime: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    duration_s: Mapped[float | None] = mapped_column(Float)
    caption: Mapped[str] = mapped_column(Text, default="")
    transcript: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(16))
    uploaded_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    review_note: Mapped[str] = mapped_column(Text, default="")
    #: What the probe found at upload (``MediaInfo`` JSON).
    media_json: Mapped[str] = mapped_column(Text, default="{}")
    #: Platforms that will not take it as it is, with the limit named (``Flag`` JSON list).
    flags_json: Mapped[str] = mapped_column(Text, default="[]")
    #: Space-separated platforms its replies go to (the question's cluster's askers).
    platforms: Mapped[str] = mapped_column(String(64), default="")
    #: A moderator's cut: the part kept (seconds); None: from the start, to the end.
    trim_start_s: Mapped[float | None] = mapped_column(Float)
    trim_end_s: Mapped[float | None] = mapped_column(Float)
    #: What was said, in English (the transcript's translation; the same for English).
    translation: Mapped[str] = mapped_column(Text, default="")
    #: The language the transcript is in (the team's choice, or detected).
    transcript_language: Mapped[str | None] = mapped_column(String(16))
    #: Who wrote the transcript: ``""`` (nobody yet), ``team``, ``machine``, ``edited``.
    transcript_source: Mapped[str] = mapped_column(String(16), default="")
    #: Timed subtitles in the speaker's language and in English (``[[start, end, text]]``).
    cues_json: Mapped[str] = mapped_column(Text, default="[]")
    cues_en_json: Mapped[str] = mapped_column(Text, default="[]")
    #: ``generated`` (from the transcript) or ``provided`` (a file the team or a moderator gave).
    subtitles_source: Mapped[str] = mapped_column(String(16), default="generated")
    #: The poster frame in the media store (a JPEG), once made.
    poster_key: Mapped[str | None] = mapped_column(String(128))


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    answer_id: Mapped[str] = mapped_column(ForeignKey("answers.id"), unique=True)
    #: Who gave consent (the person filmed, or their guardian), as the team records them.
    given_by: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(64))
    recorded_by: Mapped[str] = mapped_column(String(128))
    given_at: Mapped[datetime] = mapped_column(UtcDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    withdrawn_by: Mapped[str | None] = mapped_column(String(128))


class Reply(Base):
    __tablename__ = "replies"
    __table_args__ = (CheckConstraint(f"state IN ({_values(ReplyState)})", name="state"),)

    reply_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    question_id: Mapped[str] = mapped_column(ForeignKey("questions.id"), index=True)
    answer_id: Mapped[str] = mapped_column(ForeignKey("answers.id"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    post_id: Mapped[str | None] = mapped_column(String(128))
    url: Mapped[str | None] = mapped_column(String(2048))
    error: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BlockedAuthor(Base):
    __tablename__ = "blocked_authors"
    __table_args__ = (
        Index("uq_blocked_authors_platform_author", "platform", "author_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[str] = mapped_column(String(128))
    handle: Mapped[str] = mapped_column(String(256))
    blocked_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200), default="")
    detail_json: Mapped[str] = mapped_column(Text, default="{}")


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_sent_at_id", "sent_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(128))
    key: Mapped[bytes] = mapped_column(LargeBinary)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


#: The media worker's queue (:mod:`services.common.jobs`).
MediaJob = jobs_table(Base.metadata)


# --- protection: the replies under our published answers ----------------------------


class WatchState(StrEnum):
    """Where a reply under one of our answers is. ``waiting``: a hide or an unhide was
    asked of the publisher; ``restored``: a moderator showed it again (never hidden
    again automatically); ``failed``: the platform refused the last action."""

    KEPT = "kept"
    WAITING = "waiting"
    HIDDEN = "hidden"
    RESTORED = "restored"
    FAILED = "failed"


class AnswerReply(Base):
    """One reply under one of our published answers (unique ``reply_id``, the
    ``ReplyReceived`` id: a redelivered ``replies.classified`` changes nothing)."""

    __tablename__ = "answer_replies"
    __table_args__ = (Index("ix_answer_replies_answer_received", "answer_post_id", "received_at"),)

    reply_id: Mapped[str] = mapped_column(String(137), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    native_id: Mapped[str] = mapped_column(String(128))
    #: ``reply`` (under the answer) or ``quote`` (quoting it).
    kind: Mapped[str] = mapped_column(String(16), default="reply")
    answer_post_id: Mapped[str] = mapped_column(String(128))
    question_id: Mapped[str] = mapped_column(String(256), index=True)
    speaker_ref: Mapped[str] = mapped_column(String(256), index=True)
    author_id: Mapped[str] = mapped_column(String(128))
    author_handle: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(2048))
    offensive: Mapped[float] = mapped_column(Float)
    hate: Mapped[float] = mapped_column(Float)
    #: The rules' verdict (``hide`` / ``keep``), the rule, its reasons (JSON list).
    verdict: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(256))
    reasons_json: Mapped[str] = mapped_column(Text, default="[]")
    #: Comma-separated escalations (``threat``, ``doxxing``, ``pile_on``).
    escalations: Mapped[str] = mapped_column(String(64), default="")
    model_version: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16), index=True)
    #: A moderator showed it again: the rules never hide it again.
    sticky: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Who decided the current state (``rules <version>`` or a person).
    decided_by: Mapped[str] = mapped_column(String(256))
    #: How the platform carried out the last action (``hidden``, ``muted+reported``...).
    how: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ReplyEvent(Base):
    """The timeline and audit of a reply: classified, each action asked (by whom) and
    what the platform did. Append-only."""

    __tablename__ = "answer_reply_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reply_id: Mapped[str] = mapped_column(String(137), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(256))
    #: ``classified``, ``hide_asked``, ``unhide_asked``, ``hidden``, ``shown``, ``failed``...
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class ProtectionAlert(Base):
    """An escalation for the safeguarding lead: a threat, doxxing or a pile-on."""

    __tablename__ = "protection_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    question_id: Mapped[str] = mapped_column(String(256))
    speaker_ref: Mapped[str] = mapped_column(String(256), index=True)
    answer_post_id: Mapped[str] = mapped_column(String(128), index=True)
    reply_id: Mapped[str | None] = mapped_column(String(137))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(256))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class PausedSpeaker(Base):
    """A person whose answers are not published while the pause lasts (an
    escalation, or a moderator); approving one of their answers is refused."""

    __tablename__ = "paused_speakers"

    speaker_ref: Mapped[str] = mapped_column(String(256), primary_key=True)
    paused_by: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class Label(Base):
    """A moderator's label of a question's text, from an action (approve, quarantine,
    confirm, restore, reject as abusive) or given explicitly; 1, 0 or NULL per task.
    An undone action's labels are retracted, never deleted."""

    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_question_id_id", "question_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    question_id: Mapped[str] = mapped_column(ForeignKey("questions.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(32))
    offensive: Mapped[int | None] = mapped_column(Integer)
    hate: Mapped[int | None] = mapped_column(Integer)
    question: Mapped[int | None] = mapped_column(Integer)
    #: The model version that decided the question (what the label judges).
    model_version: Mapped[str] = mapped_column(String(256))
    retracted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ModelJob(Base):
    """A retrain: queued by the web, run by ``python -m services.triage.web.retrain``
    (another process), its stage and progress written here as it goes."""

    __tablename__ = "model_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(64), default="")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    requested_by: Mapped[str] = mapped_column(String(128))
    options_json: Mapped[str] = mapped_column(Text, default="{}")
    version: Mapped[str | None] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    pid: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
