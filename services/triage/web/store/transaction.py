"""What every aggregate of the triage store shares: the sessions, the clock, who
is acting, the question's timeline and the audit log, the outbox writes — and
the concurrency rule.

The rule: every change of a question is one conditional ``UPDATE … WHERE
status IN (…) AND <claim is free or mine>`` (:meth:`Database.transition`), so
two moderators (or two web replicas) can never both win, on SQLite and on
Postgres alike; when the update changes nothing, :meth:`Database.why_not` says
why. A change that decides on what it read writes that row first and reads the
rest after: the write holds it until the commit (Postgres: the row lock; SQLite:
the database's write lock, taken by the first write, where the driver begins
the transaction), so what it reads next is current. An answer's approval and
the withdrawal of its consent exclude each other that way. Messages to Kafka
are written to the outbox in the same transaction as the change they announce
(:meth:`Database.enqueue`), and a commit that wrote one wakes the outbox relay
(:meth:`Database.on_outbox`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from services.common.codec import encode, encode_key
from services.common.messages import utcnow
from services.triage.web.exceptions import ClaimedByOther, Conflict, NotFound
from services.triage.web.models import (
    AuditEntry,
    OutboxMessage,
    Question,
    QuestionEvent,
    Role,
    Status,
    User,
)

Clock = Callable[[], datetime]

#: ``Session.info`` key: this transaction wrote to the outbox.
_OUTBOX_WRITTEN = "outbox_written"


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in person, or ``system:<component>``."""

    name: str
    role: Role | None = None
    user_id: int | None = None
    team_id: int | None = None
    team_slug: str | None = None

    @classmethod
    def system(cls, component: str) -> Actor:
        return cls(name=f"system:{component}")


def new_id() -> str:
    return uuid.uuid4().hex


def as_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class _StoreSession(Session):
    """A session of the triage store (see :meth:`Database.on_outbox`)."""


@event.listens_for(_StoreSession, "after_commit")
def _wake_the_outbox(session: Session) -> None:
    if session.info.pop(_OUTBOX_WRITTEN, False):
        database: Database = session.info["database"]
        database.wake_outbox()


@event.listens_for(_StoreSession, "after_rollback")
def _forget_the_outbox(session: Session) -> None:
    session.info.pop(_OUTBOX_WRITTEN, None)


class Database:
    """The engine, one transaction per call, and the writes every aggregate makes."""

    def __init__(self, engine: AsyncEngine, *, claim_ttl_s: int = 120, clock: Clock = utcnow):
        self.engine = engine
        self.sessions = async_sessionmaker(
            engine,
            expire_on_commit=False,
            sync_session_class=_StoreSession,
            info={"database": self},
        )
        self.claim_ttl = timedelta(seconds=claim_ttl_s)
        self.clock = clock
        self._wake: Callable[[], None] = lambda: None

    # --- the outbox relay's wake-up --------------------------------------------------

    def on_outbox(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` after every commit that wrote to the outbox (the relay sends
        at once instead of at its next tick)."""
        self._wake = wake

    def wake_outbox(self) -> None:
        self._wake()

    # --- writes every aggregate makes ---------------------------------------------------

    def event(
        self,
        session: AsyncSession,
        question_id: str,
        actor: Actor,
        event: str,
        *,
        moved: tuple[Status | None, Status] | None = None,
        decision: str | None = None,
        reason: str = "",
        model_version: str | None = None,
        rule: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """One entry of the question's timeline (what the live queue streams);
        ``moved``: the status it left (None: it had none yet) and the one it took."""
        before, after = moved or (None, None)
        session.add(
            QuestionEvent(
                question_id=question_id,
                at=self.clock(),
                actor=actor.name,
                event=event,
                from_status=before.value if before else None,
                to_status=after.value if after else None,
                decision=decision,
                reason=reason[:2000],
                model_version=model_version,
                rule=rule,
                detail_json=as_json(detail or {}),
            )
        )

    def audit(
        self,
        session: AsyncSession,
        actor: Actor,
        action: str,
        subject: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """One entry of the append-only audit log."""
        session.add(
            AuditEntry(
                at=self.clock(),
                actor=actor.name,
                action=action,
                subject=subject[:200],
                detail_json=as_json(detail or {}),
            )
        )

    def enqueue(self, session: AsyncSession, topic: str, key: str, message: Any) -> None:
        """A message for Kafka, sent by the relay once this transaction commits."""
        session.add(
            OutboxMessage(
                topic=topic,
                key=encode_key(key),
                value=encode(message),
                created_at=self.clock(),
            )
        )
        session.info[_OUTBOX_WRITTEN] = True

    # --- the concurrency rule ---------------------------------------------------------

    @staticmethod
    def claim_free(actor: Actor, now: datetime) -> Any:
        """The question is claimed by nobody, by ``actor``, or by a lapsed claim."""
        return or_(
            Question.claimed_by.is_(None),
            Question.claimed_by == actor.user_id,
            Question.claim_expires_at < now,
        )

    @staticmethod
    async def question(session: AsyncSession, question_id: str) -> Question:
        question = await session.get(Question, question_id)
        if question is None:
            raise NotFound(f"question {question_id!r} not found")
        return question

    async def why_not(
        self, session: AsyncSession, question_id: str, actor: Actor, allowed: Iterable[Status]
    ) -> Exception:
        """Why a conditional update changed nothing: gone, claimed, or wrong status."""
        question = await self.question(session, question_id)
        now = self.clock()
        if (
            question.claimed_by is not None
            and question.claimed_by != actor.user_id
            and question.claim_expires_at is not None
            and question.claim_expires_at >= now
        ):
            holder = await session.get(User, question.claimed_by)
            name = holder.username if holder else str(question.claimed_by)
            return ClaimedByOther(
                f"question {question_id} is being worked on by {name}",
                holder=name,
                until=question.claim_expires_at,
            )
        return Conflict(
            f"question {question_id} is {question.status}; "
            f"this needs one of: {', '.join(s.value for s in allowed)}"
        )

    async def transition(
        self,
        session: AsyncSession,
        question_id: str,
        actor: Actor,
        allowed: Iterable[Status],
        to: Status,
        *,
        values: dict[str, Any] | None = None,
        respect_claim: bool = True,
    ) -> Status:
        """Move a question to ``to`` if its status is allowed and the claim is
        free or the actor's; releases the claim. Returns the status it had."""
        allowed = tuple(allowed)
        now = self.clock()
        previous = await session.scalar(select(Question.status).where(Question.id == question_id))
        if previous is None:
            raise NotFound(f"question {question_id!r} not found")
        result = await session.execute(
            update(Question)
            .where(
                Question.id == question_id,
                Question.status == previous,
                Question.status.in_([s.value for s in allowed]),
                self.claim_free(actor, now) if respect_claim else true(),
            )
            .values(
                status=to.value,
                claimed_by=None,
                claim_expires_at=None,
                updated_at=now,
                **(values or {}),
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise await self.why_not(session, question_id, actor, allowed)
        return Status(previous)
