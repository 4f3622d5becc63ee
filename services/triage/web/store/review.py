"""The moderators' review of a recorded answer: what an approval would send (every
asker it replies to, confirmed first), the caption corrected before it, the approval
(one reply requested per asker in the question's cluster) or the answer sent back
to the team. An answer whose consent was withdrawn (:mod:`.answers`) is refused."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import topics
from services.common.messages import Author, Media, MentionClassified, Platform, PublishReply
from services.common.messages import Consent as ConsentMessage
from services.common.replyability import replyability
from services.triage.web import domain, policy
from services.triage.web.domain import answer_revision
from services.triage.web.exceptions import (
    AnswerChanged,
    AnswerReplaced,
    Conflict,
    ConsentMissing,
    SpeakerPaused,
)
from services.triage.web.models import (
    Answer,
    AnswerState,
    Assignment,
    AssignmentState,
    Consent,
    PausedSpeaker,
    Question,
    Reply,
    ReplyState,
    Status,
)
from services.triage.web.store.media import AnswerMedia
from services.triage.web.store.teams import OPEN
from services.triage.web.store.transaction import Actor, Database


class Review:
    def __init__(self, db: Database, media: AnswerMedia) -> None:
        self.db = db
        self.media = media

    async def _current(
        self, session: AsyncSession, question_id: str, reviewed: str | None = None
    ) -> Answer:
        """The question's answer waiting for review (or approved); ``reviewed``: the
        answer the moderator looked at, refused when it is no longer that one."""
        answer = await session.scalar(
            select(Answer)
            .where(
                Answer.question_id == question_id,
                Answer.state.in_([AnswerState.SUBMITTED.value, AnswerState.APPROVED.value]),
            )
            .order_by(Answer.created_at.desc())
            .limit(1)
        )
        if answer is None or (reviewed is not None and answer.id != reviewed):
            looked_at = await session.scalar(
                select(Answer)
                .where(
                    Answer.question_id == question_id,
                    Answer.id == reviewed if reviewed is not None else true(),
                )
                .order_by(Answer.created_at.desc())
                .limit(1)
            )
            if looked_at is not None and looked_at.state == AnswerState.WITHDRAWN.value:
                raise await _consent_withdrawn(session, looked_at.id)
        if answer is None:
            await self.db.question(session, question_id)
            raise Conflict(f"question {question_id} has no answer waiting for review")
        if reviewed is not None and answer.id != reviewed:
            raise AnswerReplaced(
                f"the answer you reviewed ({reviewed}) is no longer the one waiting for"
                f" review: a newer recording ({answer.id}) replaced it; review that one"
            )
        return answer

    async def recipients(
        self, question_id: str, *, reviewed: str | None = None
    ) -> tuple[Answer, list[tuple[Question, bool | None]]]:
        """The answer waiting for review and every asker an approval would reply
        to (the question and its cluster's askers still waiting), each with whether
        their mention summoned the campaign: what the moderator confirms before
        approving. ``reviewed``: as for :meth:`approve`."""
        async with self.db.sessions() as session:
            answer = await self._current(session, question_id, reviewed)
            question = await self.db.question(session, question_id)
            askers = await self.media.askers(session, question)
            return answer, [
                (
                    asker,
                    MentionClassified.model_validate_json(asker.classified_json).mention.summoned,
                )
                for asker in askers
            ]

    async def set_caption(
        self, question_id: str, caption: str, actor: Actor, *, reviewed: str | None = None
    ) -> Answer:
        """The moderator corrects the reply's text before approving (on the timeline).
        ``reviewed``: as for :meth:`approve`."""
        async with self.db.sessions() as session:
            answer = await self._current(session, question_id, reviewed)
            if answer.state != AnswerState.SUBMITTED.value:
                raise Conflict("the answer was approved already: its replies are on their way")
            before, answer.caption = answer.caption, caption
            self.db.event(
                session,
                question_id,
                actor,
                "caption_edited",
                reason="the reply's text corrected before approval",
                detail={"answer": answer.id},
            )
            self.db.audit(
                session, actor, "caption", answer.id, {"before": before, "after": caption}
            )
            await session.commit()
            return answer

    async def _lock_for_approval(
        self, session: AsyncSession, answer: Answer, actor: Actor, now: datetime
    ) -> None:
        """Mark ``answer`` approved if it is still waiting for review: one conditional
        ``UPDATE``, whose row lock (Postgres; SQLite's write lock) holds until the
        commit, and ``answer`` read again under it (a caption corrected meanwhile).
        Refused when a withdrawal of its consent, another approval or a return came
        first."""
        result = await session.execute(
            update(Answer)
            .where(Answer.id == answer.id, Answer.state == AnswerState.SUBMITTED.value)
            .values(state=AnswerState.APPROVED.value, reviewed_by=actor.name, reviewed_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            state = await session.scalar(select(Answer.state).where(Answer.id == answer.id))
            if state == AnswerState.WITHDRAWN.value:
                raise await _consent_withdrawn(session, answer.id)
            if state == AnswerState.APPROVED.value:
                raise Conflict(
                    "another moderator approved this answer: its replies are on their way"
                )
            raise AnswerReplaced(
                f"the answer you reviewed ({answer.id}) is no longer waiting for review"
                f" ({state}): it was sent back, or a newer recording replaced it"
            )
        await session.refresh(answer)

    async def approve(
        self,
        question_id: str,
        actor: Actor,
        *,
        standalone: bool = False,
        reviewed: str | None = None,
        revision: str | None = None,
        caption: str | None = None,
    ) -> list[Reply]:
        """Approve the question's recorded answer: one ``replies.requested`` per
        asker in its cluster, each with its own idempotency key. Approving again
        requests nothing new. An asker whose own answer is recorded and waiting for
        review keeps it: that answer was filmed for them and is reviewed on its own.
        ``standalone``: an asker the platform will not let us answer by reply (X: the
        post did not summon the account) gets a standalone post instead. ``reviewed``:
        the answer the moderator reviewed; a newer recording since refuses the approval
        (:class:`AnswerReplaced`), so nothing no moderator saw goes out; ``revision``:
        the :func:`answer_revision` of the words, subtitles and cut the moderator saw,
        refused when they changed since (:class:`AnswerChanged`), as is ``caption``,
        the reply's text the moderator confirmed, when it is no longer the answer's
        (another moderator corrected it since). A withdrawal
        of the consent and the approval exclude each other on the answer's row: one
        committed first refuses the approval (409, nothing requested); one recorded
        while the approval runs waits for it and names every reply it requested."""
        now = self.db.clock()
        async with self.db.sessions() as session:  # the renditions every asker needs, asked for
            answer = await self._current(session, question_id, reviewed)
            if answer.state == AnswerState.SUBMITTED.value:
                await self.media.ensure_renditions(session, answer)
                await session.commit()
        async with self.db.sessions() as session:
            answer = await self._current(session, question_id, reviewed)
            if answer.state == AnswerState.APPROVED.value:
                rows = await session.scalars(select(Reply).where(Reply.answer_id == answer.id))
                return list(rows)
            policy.check_four_eyes(actor.name, answer.uploaded_by)
            previous = await self.db.transition(
                session, question_id, actor, (Status.RECORDED,), Status.ANSWERED
            )
            # The answer's row, conditionally: from here a withdrawal of its consent
            # waits for this transaction (and then names every reply it requests), or
            # committed first and the approval is refused. Everything below is read
            # after it, under the lock.
            await self._lock_for_approval(session, answer, actor, now)
            if revision is not None and answer_revision(answer) != revision:
                raise AnswerChanged(
                    "the words, subtitles or cut of this answer changed after you looked"
                    " (the team edited them): review it again"
                )
            if caption is not None and caption.strip() != answer.caption.strip():
                raise AnswerChanged(
                    "the reply's text changed after you looked (another moderator"
                    " corrected it): review it again"
                )
            consent = await session.scalar(select(Consent).where(Consent.answer_id == answer.id))
            if consent is None:
                raise ConsentMissing("the consent of the person filmed is missing")
            if consent.withdrawn_at is not None:
                raise await _consent_withdrawn(session, answer.id)
            if await session.get(PausedSpeaker, consent.given_by[:128]) is not None:
                raise SpeakerPaused(
                    "publishing this person's answers is paused (see Replies to our answers)"
                )
            question = await self.db.question(session, question_id)
            askers = await self.media.askers(session, question)
            # Each reply posts the rendition made for its platform: not ready, not approved.
            media = {a.id: await self.media.publishable(session, answer, a) for a in askers}
            replies: list[Reply] = []
            for asker in askers:
                if asker.id != question_id:
                    try:
                        earlier = await self.db.transition(
                            session, asker.id, actor, domain.AWAITING_ANSWER, Status.ANSWERED
                        )
                    except Conflict:
                        continue
                else:
                    earlier = previous
                reply = self._request_reply(
                    session, asker, answer, consent, actor, now, media[asker.id], standalone
                )
                replies.append(reply)
                self.db.event(
                    session,
                    asker.id,
                    actor,
                    "answer_approved",
                    moved=(earlier, Status.ANSWERED),
                    decision="approve_answer",
                    detail={"answer": answer.id, "reply": reply.reply_id, "via": question_id},
                )
            # Every asker answered here is done, including another team's open work.
            await session.execute(
                update(Assignment)
                .where(
                    Assignment.question_id.in_([r.question_id for r in replies]),
                    Assignment.state.in_(OPEN),
                )
                .values(state=AssignmentState.DONE.value, closed_at=now)
            )
            self.db.audit(
                session,
                actor,
                "approve_answer",
                question_id,
                {"answer": answer.id, "replies": len(replies)},
            )
            await session.commit()
            return replies

    def _request_reply(  # noqa: PLR0917 - one private call site
        self,
        session: AsyncSession,
        asker: Question,
        answer: Answer,
        consent: Consent,
        actor: Actor,
        now: datetime,
        media: Media,
        standalone: bool = False,
    ) -> Reply:
        classified = MentionClassified.model_validate_json(asker.classified_json)
        mention = classified.mention
        # Only where a reply cannot go: a standalone post is the moderator's way round.
        standalone = standalone and not replyability(mention.platform, mention.summoned).can_reply
        reply_id = domain.reply_id(answer.id, asker.mention_id)
        text, language = domain.reply_for(answer.caption, answer.language, asker.lang)
        reply = Reply(
            reply_id=reply_id,
            question_id=asker.id,
            answer_id=answer.id,
            platform=asker.platform,
            state=ReplyState.REQUESTED.value,
            requested_at=now,
            updated_at=now,
        )
        session.add(reply)
        self.db.enqueue(
            session,
            topics.REPLIES_REQUESTED,
            asker.id,
            PublishReply(
                reply_id=reply_id,
                question_id=asker.id,
                mention_id=asker.mention_id,
                platform=Platform(asker.platform),
                in_reply_to=mention.native_id,
                author=Author.model_validate(mention.author.model_dump()),
                text=text,
                language=language,
                media=media,
                consent=ConsentMessage(
                    speaker_ref=consent.given_by[:128],
                    scope=consent.scope,
                    recorded_by=consent.recorded_by,
                    at=consent.given_at,
                ),
                approved_by=actor.name,
                requested_at=now,
                summoned=mention.summoned,
                standalone=standalone,
                answer_id=answer.id,
            ),
        )
        return reply

    async def send_back(
        self, question_id: str, actor: Actor, note: str, *, reviewed: str | None = None
    ) -> None:
        """Send the answer back to the team (re-record); the assignment reopens.
        ``reviewed``: as for :meth:`approve`."""
        async with self.db.sessions() as session:
            answer = await self._current(session, question_id, reviewed)
            if answer.state != AnswerState.SUBMITTED.value:
                raise Conflict("an approved answer cannot be sent back")
            previous = await self.db.transition(
                session, question_id, actor, (Status.RECORDED,), Status.ASSIGNED
            )
            answer.state = AnswerState.RETURNED.value
            answer.reviewed_by = actor.name
            answer.reviewed_at = self.db.clock()
            answer.review_note = note
            await session.execute(
                update(Assignment)
                .where(
                    Assignment.question_id == question_id,
                    Assignment.state == AssignmentState.RECORDED.value,
                )
                .values(state=AssignmentState.ACTIVE.value)
            )
            self.db.event(
                session,
                question_id,
                actor,
                "answer_returned",
                moved=(previous, Status.ASSIGNED),
                decision="return_answer",
                reason=note,
            )
            self.db.audit(session, actor, "return_answer", question_id, {"note": note})
            await session.commit()


async def _consent_withdrawn(session: AsyncSession, answer_id: str) -> Conflict:
    """The refusal (409) of an answer whose consent was withdrawn."""
    consent = await session.scalar(select(Consent).where(Consent.answer_id == answer_id))
    who = f" (recorded by {consent.withdrawn_by})" if consent and consent.withdrawn_by else ""
    return Conflict(
        f"the person filmed withdrew their consent to answer {answer_id}{who}: it can no"
        " longer be reviewed or approved, and no reply of it is requested"
    )
