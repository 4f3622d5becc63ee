"""The answers aggregate: a team's recorded answer with the filmed person's
consent, the moderators' review (approve: one reply requested per asker in the
question's cluster; or send back), and the replies' outcomes from the publisher."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import topics
from services.common.media.profiles import MediaInfo
from services.common.messages import (
    AnswerRecorded,
    Author,
    ConsentWithdrawn,
    Media,
    MentionClassified,
    Platform,
    PublishReply,
    ReplyFailed,
    ReplyPublished,
)
from services.common.messages import Consent as ConsentMessage
from services.common.replyability import replyability
from services.triage.web import domain, policy
from services.triage.web.exceptions import (
    AnswerReplaced,
    ClaimedByOther,
    Conflict,
    ConsentMissing,
    NotFound,
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
    Team,
)
from services.triage.web.store.media import AnswerMedia
from services.triage.web.store.notifications import ANSWER_PUBLISHED, notify_team
from services.triage.web.store.teams import OPEN, open_assignment
from services.triage.web.store.transaction import Actor, Database, new_id


@dataclass(frozen=True)
class WithdrawalRequest:
    """A filmed person's withdrawal of consent, as a moderator records it."""

    #: Who asked (the person filmed, a guardian, a team member on their behalf).
    requested_by: str
    #: When they asked.
    requested_at: datetime
    #: How (in person, phone, message...).
    channel: str
    note: str = ""


@dataclass(frozen=True)
class StoredAnswer:
    """A video already in the ``MediaStore``, with what the team said about it."""

    uri: str
    mime: str
    bytes: int
    sha256: str
    caption: str
    transcript: str
    language: str
    consent_given_by: str
    consent_scope: str
    #: What the probe found at upload.
    info: MediaInfo | None = None


def _media(answer: Answer) -> Media:
    return Media(
        uri=answer.media_uri,
        mime=answer.mime,
        bytes=answer.bytes,
        sha256=answer.sha256,
        duration_s=answer.duration_s,
    )


def _answer_row(
    question_id: str, assignment: Assignment, stored: StoredAnswer, actor: Actor, now: datetime
) -> Answer:
    return Answer(
        id=new_id(),
        question_id=question_id,
        assignment_id=assignment.id,
        team_id=assignment.team_id,
        state=AnswerState.SUBMITTED.value,
        media_uri=stored.uri,
        mime=stored.mime,
        bytes=stored.bytes,
        sha256=stored.sha256,
        duration_s=stored.info.duration_s if stored.info else None,
        media_json=stored.info.model_dump_json() if stored.info else "{}",
        caption=stored.caption,
        transcript=stored.transcript,
        language=stored.language,
        uploaded_by=actor.name,
        created_at=now,
    )


class Answers:
    def __init__(self, db: Database, media: AnswerMedia, *, consent_scopes: Sequence[str]) -> None:
        self.db = db
        self.media = media
        self.consent_scopes = tuple(consent_scopes)

    # --- recording -------------------------------------------------------------------

    def check_consent(self, given_by: str, scope: str) -> None:
        """No consent, no answer (:func:`policy.check_consent` with this campaign's scopes)."""
        policy.check_consent(given_by, scope, self.consent_scopes)

    async def check_recordable(self, question_id: str, actor: Actor) -> None:
        """What :meth:`record` will ask of the question's assignment (open, ``actor``'s
        team's, not claimed by another member), asked before the video is stored, so a
        refusal leaves nothing to undo. (The status is the policy's:
        :func:`policy.check_recording`.)"""
        async with self.db.sessions() as session:
            await self._recordable(session, question_id, actor, self.db.clock())

    async def _recordable(
        self, session: AsyncSession, question_id: str, actor: Actor, now: datetime
    ) -> Assignment:
        assignment = await open_assignment(self.db, session, question_id, actor)
        if (
            assignment.claimed_by not in (None, actor.user_id)
            and assignment.claim_expires_at is not None
            and assignment.claim_expires_at >= now
        ):
            raise ClaimedByOther(
                f"question {question_id} is taken by another member",
                holder=str(assignment.claimed_by),
                until=assignment.claim_expires_at,
            )
        return assignment

    async def record(self, question_id: str, actor: Actor, stored: StoredAnswer) -> Answer:
        """Record a team's answer: consent required; produces ``answers.recorded``."""
        self.check_consent(stored.consent_given_by, stored.consent_scope)
        now = self.db.clock()
        async with self.db.sessions() as session:
            assignment = await self._recordable(session, question_id, actor, now)
            previous = await self.db.transition(
                session,
                question_id,
                actor,
                (Status.ASSIGNED, Status.RECORDED),
                Status.RECORDED,
                respect_claim=False,  # the team's own claim was checked above
            )
            team = await session.get(Team, assignment.team_id)
            assert team is not None
            # An earlier answer still waiting for review is replaced by this one.
            await session.execute(
                update(Answer)
                .where(
                    Answer.question_id == question_id, Answer.state == AnswerState.SUBMITTED.value
                )
                .values(
                    state=AnswerState.RETURNED.value, review_note="replaced by a newer recording"
                )
            )
            answer = _answer_row(question_id, assignment, stored, actor, now)
            session.add(answer)
            await session.flush()
            question = await self.db.question(session, question_id)
            await self.media.on_recorded(session, answer, question)
            session.add(
                Consent(
                    answer_id=answer.id,
                    given_by=stored.consent_given_by.strip(),
                    scope=stored.consent_scope,
                    recorded_by=actor.name,
                    given_at=now,
                )
            )
            assignment.state = AssignmentState.RECORDED.value
            assignment.claimed_by = None
            assignment.claim_expires_at = None
            self.db.event(
                session,
                question_id,
                actor,
                "answer_recorded",
                moved=(previous, Status.RECORDED),
                detail={
                    "answer": answer.id,
                    "bytes": stored.bytes,
                    "sha256": stored.sha256,
                    "duration_s": answer.duration_s,
                    "flags": [f["message"] for f in json.loads(answer.flags_json)],
                },
            )
            self.db.audit(session, actor, "answer_recorded", question_id, {"answer": answer.id})
            self.db.enqueue(
                session,
                topics.ANSWERS_RECORDED,
                question_id,
                AnswerRecorded(
                    question_id=question_id,
                    team=team.slug,
                    media=_media(answer),
                    consent=ConsentMessage(
                        speaker_ref=stored.consent_given_by.strip()[:128],
                        scope=stored.consent_scope,
                        recorded_by=actor.name,
                        at=now,
                    ),
                    caption=stored.caption,
                    transcript=stored.transcript,
                    language=stored.language,
                    recorded_at=now,
                ),
            )
            await session.commit()
            return answer

    # --- reading -----------------------------------------------------------------------

    async def of_question(
        self, question_id: str, *, team_id: int | None = None
    ) -> list[tuple[Answer, Consent | None]]:
        """Every answer of a question, newest first, with its consent; only ``team_id``'s
        when given (a question moved to another team keeps the first team's answers
        from it: the names of the people filmed, what they said)."""
        async with self.db.sessions() as session:
            await self.db.question(session, question_id)
            query = (
                select(Answer, Consent)
                .outerjoin(Consent, Consent.answer_id == Answer.id)
                .where(Answer.question_id == question_id)
                .order_by(Answer.created_at.desc())
            )
            if team_id is not None:
                query = query.where(Answer.team_id == team_id)
            rows = await session.execute(query)
            return [(a, c) for a, c in rows.all()]

    async def with_media(self, question_id: str, uri: str) -> Answer | None:
        """The question's answer recorded with the video at ``uri``, if any (a video is
        recorded once: a retried finish of an upload finds its answer here)."""
        async with self.db.sessions() as session:
            return await session.scalar(
                select(Answer)
                .where(Answer.question_id == question_id, Answer.media_uri == uri)
                .order_by(Answer.created_at)
                .limit(1)
            )

    async def get(self, answer_id: str) -> tuple[Answer, Consent | None]:
        async with self.db.sessions() as session:
            answer = await session.get(Answer, answer_id)
            if answer is None:
                raise NotFound(f"answer {answer_id!r} not found")
            consent = await session.scalar(select(Consent).where(Consent.answer_id == answer_id))
            return answer, consent

    async def pending(self, limit: int = 100) -> list[tuple[Answer, Question, Consent | None]]:
        """Answers waiting for review, oldest first, with their question and consent."""
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Answer, Question, Consent)
                .join(Question, Question.id == Answer.question_id)
                .outerjoin(Consent, Consent.answer_id == Answer.id)
                .where(Answer.state == AnswerState.SUBMITTED.value)
                .order_by(Answer.created_at)
                .limit(limit)
            )
            return [(a, q, c) for a, q, c in rows.all()]

    async def latest(
        self, question_ids: Sequence[str], *, team_id: int | None = None
    ) -> dict[str, tuple[Answer, Consent | None]]:
        """Each question's most recent answer (any state; ``team_id``'s only, when
        given), in one query."""
        if not question_ids:
            return {}
        async with self.db.sessions() as session:
            query = (
                select(Answer, Consent)
                .outerjoin(Consent, Consent.answer_id == Answer.id)
                .where(Answer.question_id.in_(question_ids))
                .order_by(Answer.created_at)
            )
            if team_id is not None:
                query = query.where(Answer.team_id == team_id)
            rows = await session.execute(query)
            return {a.question_id: (a, c) for a, c in rows.all()}  # the newest wins

    # --- review --------------------------------------------------------------------------

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
    ) -> list[Reply]:
        """Approve the question's recorded answer: one ``replies.requested`` per
        asker in its cluster, each with its own idempotency key. Approving again
        requests nothing new. An asker whose own answer is recorded and waiting for
        review keeps it: that answer was filmed for them and is reviewed on its own.
        ``standalone``: an asker the platform will not let us answer by reply (X: the
        post did not summon the account) gets a standalone post instead. ``reviewed``:
        the answer the moderator reviewed; a newer recording since refuses the approval
        (:class:`AnswerReplaced`), so nothing no moderator saw goes out. A withdrawal
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

    async def withdraw_consent(
        self, answer_id: str, actor: Actor, request: WithdrawalRequest
    ) -> Answer:
        """Record the withdrawal: the answer is never approved again, and every
        reply of it (every asker, every platform) comes down (``consent.withdrawn``
        to the publisher, narrowed to this answer's questions); on each question's
        timeline and in the audit log.

        The answer's row is written first: an approval running at the same time
        either sees the answer withdrawn and requests nothing, or committed before
        this reads the replies, which then include every one it requested.
        Recording it again is allowed: the consent keeps its first withdrawal, and
        ``consent.withdrawn`` goes out again naming every reply there is now (one a
        race requested after the first, before approvals were refused); audited."""
        now = self.db.clock()
        async with self.db.sessions() as session:
            locked = await session.execute(
                update(Answer)
                .where(Answer.id == answer_id)
                .values(state=AnswerState.WITHDRAWN.value)
                .execution_options(synchronize_session=False)
            )
            if locked.rowcount != 1:  # type: ignore[attr-defined]
                raise NotFound(f"answer {answer_id!r} not found")
            answer = await session.get(Answer, answer_id)
            consent = await session.scalar(select(Consent).where(Consent.answer_id == answer_id))
            if answer is None or consent is None:  # rolled back: the answer stays as it was
                raise Conflict("this answer has no consent on record to withdraw")
            first = consent.withdrawn_at  # None: this is the first withdrawal
            if first is None:
                consent.withdrawn_at = now
                consent.withdrawn_by = actor.name
            replied = set(
                await session.scalars(select(Reply.question_id).where(Reply.answer_id == answer_id))
            )
            questions = sorted(replied | {answer.question_id})
            detail: dict[str, object] = {
                "answer": answer_id,
                "requested_by": request.requested_by,
                "requested_at": request.requested_at.isoformat(),
                "channel": request.channel,
                "note": request.note,
                "replies": len(replied),
            }
            if first is not None:  # recorded again: the first one stays the consent's
                detail["again"] = {"first_by": consent.withdrawn_by, "first_at": first}
            for question_id in questions:
                self.db.event(
                    session,
                    question_id,
                    actor,
                    "consent_withdrawn",
                    decision="withdraw_consent",
                    reason=request.note,
                    detail=detail,
                )
            self.db.audit(session, actor, "withdraw_consent", answer_id, detail)
            reason = (
                f"asked by {request.requested_by} on {request.requested_at.isoformat()}"
                f" ({request.channel})"
            )
            self.db.enqueue(
                session,
                topics.CONSENT_WITHDRAWN,
                consent.given_by[:128],
                ConsentWithdrawn(
                    speaker_ref=consent.given_by[:128],  # as each PublishReply named them
                    question_ids=tuple(questions),
                    withdrawn_by=actor.name,
                    reason=f"{reason}: {request.note}"[:2000] if request.note else reason[:2000],
                    at=first or now,  # when the consent was withdrawn
                ),
            )
            await session.commit()
            return answer

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

    # --- reply outcomes (replies.published / replies.failed) ----------------------------

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

    async def replies(self, answer_ids: Sequence[str]) -> list[tuple[Reply, Question]]:
        """Every reply requested for these answers, with the asker's question (the
        question page lists the other askers' replies too), oldest first."""
        if not answer_ids:
            return []
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Reply, Question)
                .join(Question, Question.id == Reply.question_id)
                .where(Reply.answer_id.in_(list(answer_ids)))
                .order_by(Reply.requested_at, Reply.reply_id)
            )
            return [(r, q) for r, q in rows.all()]

    async def reply_outcome(self, outcome: ReplyPublished | ReplyFailed) -> bool:
        """Record what the publisher did; ``False`` when nothing changed (redelivery,
        or a reply this database never asked for)."""
        async with self.db.sessions() as session:
            reply = await session.get(Reply, outcome.reply_id)
            if reply is None:
                return False
            target = (
                ReplyState.PUBLISHED if isinstance(outcome, ReplyPublished) else ReplyState.FAILED
            )
            if reply.state in {ReplyState.PUBLISHED.value, target.value}:
                return False
            reply.state = target.value
            reply.updated_at = self.db.clock()
            system = Actor.system("publish")
            if isinstance(outcome, ReplyPublished):
                reply.post_id = outcome.post_id
                reply.url = outcome.url
                moved = await session.execute(
                    update(Question)
                    .where(
                        Question.id == reply.question_id, Question.status == Status.ANSWERED.value
                    )
                    .values(status=Status.PUBLISHED.value, updated_at=self.db.clock())
                )
                published = moved.rowcount == 1  # type: ignore[attr-defined]
                self.db.event(
                    session,
                    reply.question_id,
                    system,
                    "reply_published",
                    moved=(Status.ANSWERED, Status.PUBLISHED) if published else None,
                    detail={
                        "reply": reply.reply_id,
                        "post_id": outcome.post_id,
                        "url": outcome.url,
                    },
                )
                await self._tell_the_team(session, reply, outcome.url)
            else:
                reply.error = outcome.error
                self.db.event(
                    session,
                    reply.question_id,
                    system,
                    "reply_failed",
                    reason=outcome.error,
                    detail={"reply": reply.reply_id, "retryable": outcome.retryable},
                )
            await session.commit()
            return True

    async def _tell_the_team(self, session: AsyncSession, reply: Reply, url: str | None) -> None:
        """The team hears that its answer is out, once (with the reply to the question
        it filmed, not with each of the cluster's other askers)."""
        answer = await session.get(Answer, reply.answer_id)
        if answer is None or answer.question_id != reply.question_id:
            return
        question = await self.db.question(session, reply.question_id)
        await notify_team(
            self.db,
            session,
            answer.team_id,
            ANSWER_PUBLISHED,
            f"Your answer is out: the reply to @{question.author_handle} on {reply.platform}",
            question_id=question.id,
            link=url if url and url.startswith(("https://", "http://")) else "",
        )


async def _consent_withdrawn(session: AsyncSession, answer_id: str) -> Conflict:
    """The refusal (409) of an answer whose consent was withdrawn."""
    consent = await session.scalar(select(Consent).where(Consent.answer_id == answer_id))
    who = f" (recorded by {consent.withdrawn_by})" if consent and consent.withdrawn_by else ""
    return Conflict(
        f"the person filmed withdrew their consent to answer {answer_id}{who}: it can no"
        " longer be reviewed or approved, and no reply of it is requested"
    )
