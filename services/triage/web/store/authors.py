"""Blocking an author, and taking a block back: a block rejects every open question
of the author (and what they send later skips the queue); its Undo, soon after and
by the same moderator, lifts the block and puts back every question it rejected —
also those that arrived while the author was blocked.
Both run inside the questions aggregate's transaction (they change questions)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.messages import Decision
from services.triage.web import domain
from services.triage.web.exceptions import Conflict, NotUndoable
from services.triage.web.models import BlockedAuthor, Question, QuestionEvent, Status
from services.triage.web.store.clusters import follow_cluster
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
    block = await session.scalar(
        select(BlockedAuthor).where(
            BlockedAuthor.platform == question.platform,
            BlockedAuthor.author_id == question.author_id,
            BlockedAuthor.blocked_by == actor.name,
            BlockedAuthor.at >= since,
        )
    )
    if block is None:
        raise NotUndoable("the author was blocked before; lift the block on the author's page")
    blocked_at = block.at
    await session.execute(delete(BlockedAuthor).where(BlockedAuthor.id == block.id))
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
        back = _before_the_block(last, actor, since=since, blocked_at=blocked_at)
        if back is None:
            continue  # rejected by someone, or before: not this block's doing
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
        if back is Status.NEW:  # its cluster may have gone to a team meanwhile
            restored = await session.get(Question, other, populate_existing=True)
            if restored is not None and restored.cluster_id:
                await follow_cluster(db, session, restored)
                back = Status(restored.status)
        if other == question_id:
            status = back
    db.audit(session, actor, "unblock_author", f"{question.platform}:{question.author_id}", None)
    return status


def _before_the_block(
    last: QuestionEvent | None, actor: Actor, *, since: datetime, blocked_at: datetime
) -> Status | None:
    """Where a question the block rejected goes back to: where it was, when the block
    rejected it (``author_blocked``, by ``actor``, within the undo window); where it
    would have started, when it arrived while the author was blocked (the
    classifier's ``author blocked``); ``None`` when the block did not reject it."""
    if last is None or last.at < since:
        return None
    if last.event == "author_blocked" and last.actor == actor.name and last.from_status:
        return Status(last.from_status)
    if (
        last.event == "classified"
        and last.reason == "author blocked"
        and last.at >= blocked_at
        and last.decision is not None
    ):
        return domain.status_for_decision(Decision(last.decision), author_blocked=False)
    return None
