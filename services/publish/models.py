"""The reply ledger's tables (SQLAlchemy 2 declarative). The migrations in
``migrations/versions`` create exactly these; a test compares the two.

- ``replies``: one row per reply id (the idempotency key) and its state:
  ``pending`` → ``sending`` → ``published`` (→ ``withdrawn``), or ``refused`` /
  ``failed``. At most one *live* reply (sending, published, withdrawn) per
  question and platform, and per post asked (platform, ``in_reply_to``): partial
  unique indexes, the "never twice" backstops.
- ``decisions``: the audit of the governor and of withdrawals, one row per rule
  that allowed or refused a reply, per post taken down.
- ``opt_outs``: authors who asked not to be replied to (a "stop" reply, a moderator).
- ``engagements``: mentions that engaged the campaign (mentioned its account or
  used its hashtag), from ``mentions.raw``.
- ``consent_withdrawals``: every withdrawal event, once.
- ``speaker_pauses``: the latest pause or resume of each person filmed
  (``speakers.paused``), and ``held_replies``: the requests held while their person
  is paused, kept as they were signed, to be requested again on resume.
- ``oauth_tokens``: an account's latest OAuth tokens (X's refresh token rotates
  at every refresh; a restart must not reuse the spent one).
- ``x_spend`` and ``x_spend_items``: what the X account spent, per day and call
  class, and the calls counted once per item (a mention's post read).
- ``watched_replies``: replies under our published answers (protection), once each.
- ``reply_actions``: every hide / unhide command and its fate (idempotent, reconciled),
  and whether its report was (or may have been) made.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import NAMING, UtcDateTime


class ReplyState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    PUBLISHED = "published"
    FAILED = "failed"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


#: States of a reply that is, may be or was on the platform: one per question.
LIVE_STATES = (ReplyState.SENDING, ReplyState.PUBLISHED, ReplyState.WITHDRAWN)
#: States nothing more happens to (a redelivered request only repeats the outcome).
FINAL_STATES = (ReplyState.PUBLISHED, ReplyState.WITHDRAWN, ReplyState.FAILED, ReplyState.REFUSED)

_LIVE_SQL = "state IN ('sending', 'published', 'withdrawn')"
_STATES_SQL = ", ".join(f"'{s.value}'" for s in ReplyState)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Reply(Base):
    __tablename__ = "replies"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATES_SQL})", name="state"),
        Index(
            "uq_replies_live_question",
            "question_id",
            "platform",
            unique=True,
            sqlite_where=text(_LIVE_SQL),
            postgresql_where=text(_LIVE_SQL),
        ),
        Index(
            "uq_replies_live_post",
            "platform",
            "in_reply_to",
            unique=True,
            sqlite_where=text(_LIVE_SQL),
            postgresql_where=text(_LIVE_SQL),
        ),
        Index("ix_replies_author_sent", "platform", "author_id", "sent_at"),
        Index("ix_replies_platform_sent", "platform", "sent_at"),
    )

    reply_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    question_id: Mapped[str] = mapped_column(String(256), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    mention_id: Mapped[str] = mapped_column(String(300))
    in_reply_to: Mapped[str] = mapped_column(String(128))
    author_id: Mapped[str] = mapped_column(String(128))
    author_handle: Mapped[str] = mapped_column(String(256))
    speaker_ref: Mapped[str] = mapped_column(String(256), index=True)
    consent_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: The answer (video) it posts: a withdrawal naming it covers the reply whatever
    #: questions it names (``None``: a request without one, or a row from before 0011).
    answer_id: Mapped[str | None] = mapped_column(String(256), index=True)
    language: Mapped[str | None] = mapped_column(String(16))
    #: The text that was (or is being) posted, rendered from a template.
    text: Mapped[str | None] = mapped_column(Text)
    template_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=ReplyState.PENDING.value)
    post_id: Mapped[str | None] = mapped_column(String(128), index=True)
    url: Mapped[str | None] = mapped_column(String(2048))
    #: Tries that reached an outcome or a retryable error (rate-limited ones do not count).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    retryable: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: Sent as a post of its own, not under ``in_reply_to`` (``PublishReply.standalone``):
    #: how it is looked for on the platform after a lost answer or a restart.
    standalone: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The publisher process sending it, and until when it may (see ``Ledger.claim``).
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: When the outcome went out on replies.published / replies.failed (acknowledged).
    announced_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class DecisionRecord(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reply_id: Mapped[str] = mapped_column(String(256), index=True)
    #: The governor rule (``engaged``, ``opted_out``, ...) or ``withdrawal``.
    rule: Mapped[str] = mapped_column(String(64))
    #: ``allow``, ``refuse``, ``withdraw`` or ``error``.
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class OptOut(Base):
    __tablename__ = "opt_outs"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    author_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    handle: Mapped[str | None] = mapped_column(String(256))
    #: ``reply`` (the author wrote "stop") or ``moderator``.
    source: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    mention_id: Mapped[str | None] = mapped_column(String(300))
    recorded_by: Mapped[str | None] = mapped_column(String(256))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class Engagement(Base):
    __tablename__ = "engagements"

    mention_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[str] = mapped_column(String(128))
    #: How the mention engaged the campaign: ``account``, ``hashtag`` or ``account,hashtag``.
    how: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class ConsentWithdrawal(Base):
    __tablename__ = "consent_withdrawals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: sha256 of the event: a redelivered event is recorded once.
    event_key: Mapped[str] = mapped_column(String(64), unique=True)
    speaker_ref: Mapped[str] = mapped_column(String(256), index=True)
    #: JSON list of question ids; ``[]``: every reply featuring the speaker.
    question_ids: Mapped[str] = mapped_column(Text, default="[]")
    #: The answer whose consent was withdrawn: every request of it is refused, whatever
    #: ``question_ids`` says (``None``: an event from before migration 0010).
    answer_id: Mapped[str | None] = mapped_column(String(256), index=True)
    withdrawn_by: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SpeakerPause(Base):
    """The latest decision about one person filmed: ``paused`` or resumed, and when it
    was made (``at``, the command's): an older command never replaces it."""

    __tablename__ = "speaker_pauses"

    speaker_ref: Mapped[str] = mapped_column(String(256), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean)
    decided_by: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class HeldReply(Base):
    """A reply request held because its person is paused (its ``replies`` row stays
    ``pending``, or ``sending`` when the pause came during the upload). ``command`` is
    the record as the triage web signed it, produced again on ``replies.requested``
    (keyed by ``question_id``) once the person is resumed; NULL: not kept (the use case
    called without it), the request must come again by itself."""

    __tablename__ = "held_replies"

    reply_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    speaker_ref: Mapped[str] = mapped_column(String(256), index=True)
    question_id: Mapped[str] = mapped_column(String(256))
    command: Mapped[bytes | None] = mapped_column(LargeBinary)
    held_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OAuthToken(Base):
    __tablename__ = "oauth_tokens"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: The account's label (``PUBLISH_X_ACCOUNT``).
    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    access_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: The latest refresh token (the previous ones are spent).
    refresh_token: Mapped[str] = mapped_column(Text)
    #: sha256 of the configured refresh token this chain started from: a new one in
    #: the settings (the account was authorized again) starts a new chain.
    seed_sha256: Mapped[str] = mapped_column(String(64))
    refreshed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class XSpend(Base):
    """What the X account spent, per UTC day and call class (X bills per use)."""

    __tablename__ = "x_spend"

    #: The account's label (``PUBLISH_X_ACCOUNT``).
    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: The UTC day (``YYYY-MM-DD``).
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    #: ``post_read``, ``reply``, ``post_with_url``, ``own_read``, ``moderate``.
    call_class: Mapped[str] = mapped_column(String(32), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    #: Millionths of a US dollar (exact sums; a post read is 5000).
    micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)


class XSpendItem(Base):
    """A call counted once per item, not once per time it is met: the post read of a
    mention heard on X's stream, however often ``mentions.raw`` delivers it. Inserted
    in the transaction that counts the call in ``x_spend``."""

    __tablename__ = "x_spend_items"

    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    call_class: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: What was billed (a mention id, ``x:<post id>``).
    item: Mapped[str] = mapped_column(String(300), primary_key=True)
    #: The UTC day it was counted on (its ``x_spend`` row).
    day: Mapped[str] = mapped_column(String(10))


class WatchedReply(Base):
    """A reply under one of our published answers, as the watcher read it: once per
    (platform, native id). ``payload`` is the ``ReplyReceived`` sent (again, until
    ``announced_at``); ``hidden`` is what we last made of it on the platform."""

    __tablename__ = "watched_replies"

    #: ``<platform>:<native id>`` (the ``ReplyReceived`` id).
    reply_key: Mapped[str] = mapped_column(String(137), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    native_id: Mapped[str] = mapped_column(String(128))
    #: Our published answer it is under (``replies.post_id``), and that reply's id.
    answer_post_id: Mapped[str] = mapped_column(String(128), index=True)
    answer_reply_id: Mapped[str] = mapped_column(String(256))
    author_id: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    announced_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class ActionState(StrEnum):
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"
    REFUSED = "refused"


class ReportState(StrEnum):
    """A hide's report to the platform's moderators: made at most once."""

    SENDING = "sending"
    DONE = "done"


class ReplyAction(Base):
    """One hide or unhide command (``action_id``, the idempotency key) and its fate:
    ``sending`` (committed before the platform is called) → ``done`` / ``failed``, or
    ``refused`` (not a reply under one of our answers); a hide that reports the reply
    records that step too (``report_state``), so a re-run never reports twice."""

    __tablename__ = "reply_actions"

    action_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    reply_key: Mapped[str] = mapped_column(String(137), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    #: ``hide`` or ``unhide``.
    action: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    #: How the platform did it (``hidden``, ``muted+reported``, ...).
    how: Mapped[str] = mapped_column(String(64), default="")
    #: The report to the platform's moderators (Mastodon): ``sending`` (committed
    #: before the one request: it may have been made) or ``done``; NULL: not made.
    report_state: Mapped[str | None] = mapped_column(String(16))
    decided_by: Mapped[str] = mapped_column(String(256))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: When its ``replies.moderated`` went out (acknowledged).
    announced_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
