"""Blocking an author, and taking a block back: a block rejects every open question
of the author (and what they send later skips the queue); its Undo, soon after and
by the same moderator, lifts the block and puts back every question it rejected.
Both run inside the questions aggregate's transaction (they change questions)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.triage.web import domain
from services.triage.web.exceptions import Conflict, NotUndoable
from services.triage.web.models import BlockedAuthor, Question, QuestionEvent, Status
from services.triage.web.store.transaction import Actor, Database


async def block_author(
    db: Database, session: AsyncSession, question_id: str, actor: Actor, *, reason: str
) -> Status:
    """Block the author of a question: every open question of theirs is rejected
    (this one included; one another moderator holds is left as it is)."""
    question = await db.question(session, question_id)
    exists = await session.scalar(
        select(BlockedAuthor.id).where(
            BlockedAuthor.platform == question.platform,
            BlockedAuthor.author_id == question.author_id,
        )
    )
    if exists is None:
        session.add(
            BlockedAuthor(
                platform=question.platform,
                author_id=question.author_id,
                handle=question.author_handle,
                blocked_by=actor.name,
                reason=reason,
                at=db.clock(),
            )
        )
    db.audit(
        session,
        actor,
        "block_author",
        f"{question.platform}:{question.author_id}",
        {"reason": reason},
    )
    open_ids = await session.scalars(
        select(Question.id).where(
            Question.platform == question.platform,
            Question.author_id == question.author_id,
            Question.status.in_([s.value for s in domain.OPEN_FOR_MODERATION]),
        )
    )
    status = Status(question.status)
    for other in list(open_ids):
        try:
            previous = await db.transition(
                session, other, actor, domain.OPEN_FOR_MODERATION, Status.REJECTED
            )
        except Conflict:
            continue  # claimed by someone else or moved meanwhile: left as it is
        db.event(
            session,
            other,
            actor,
            "author_blocked",
            moved=(previous, Status.REJECTED),
            decision="block",
            reason=reason or f"author @{question.author_handle} blocked",
        )
        if other == question_id:
            status = Status.REJECTED
    return status


async def lift_block(db: Database, session: AsyncSession, question_id: str, actor: Actor) -> Status:
    """Undo ``actor``'s block of the author of a question (the caller checked that
    the block is the question's last change, ``actor``'s, and recent): the block is
    lifted when this moderator made it within :data:`domain.UNDO_WINDOW`, and every
    question of the author it rejected — still rejected, nothing done to it since —
    goes back to where it was. Returns the question's status."""
    question = await db.question(session, question_id)
    since = db.clock() - domain.UNDO_WINDOW
    lifted = await session.execute(
        delete(BlockedAuthor).where(
            BlockedAuthor.platform == question.platform,
            BlockedAuthor.author_id == question.author_id,
            BlockedAuthor.blocked_by == actor.name,
            BlockedAuthor.at >= since,
        )
    )
    if lifted.rowcount != 1:  # type: ignore[attr-defined]
        raise NotUndoable("the author was blocked before; lift the block on the author's page")
    rejected = await session.scalars(
        select(Question.id).where(
            Question.platform == question.platform,
            Question.author_id == question.author_id,
            Question.status == Status.REJECTED.value,
        )
    )
    status = Status(question.status)
    for other in list(rejected):
        last = await session.scalar(
            select(QuestionEvent)
            .where(QuestionEvent.question_id == other, QuestionEvent.to_status.is_not(None))
            .order_by(QuestionEvent.id.desc())
            .limit(1)
        )
        if (
            last is None
            or last.event != "author_blocked"
            or last.actor != actor.name
            or last.at < since
            or last.from_status is None
        ):
            continue  # rejected by someone, or before: not this block's doing
        back = Status(last.from_status)
        try:
            await db.transition(session, other, actor, (Status.REJECTED,), back)
        except Conflict:
            continue  # someone holds it now: left rejected
        db.event(
            session,
            other,
            actor,
            "undone",
            moved=(Status.REJECTED, back),
            reason="undid author_blocked",
        )
        if other == question_id:
            status = back
    db.audit(session, actor, "unblock_author", f"{question.platform}:{question.author_id}", None)
    return status
