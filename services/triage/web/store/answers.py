"""The answers aggregate: a team's recorded answer with the filmed person's
consent (and its withdrawal), and the replies' outcomes from the publisher. The
moderators' review of an answer (approve: one reply requested per asker in the
question's cluster; or send back) is :mod:`.review`'s."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import topics
from services.common.media.profiles import MediaInfo
from services.common.messages import (
    AnswerRecorded,
    ConsentWithdrawn,
    Media,
    ReplyFailed,
    ReplyPublished,
)
from services.common.messages import Consent as ConsentMessage
from services.triage.web import policy
from services.triage.web.exceptions import ClaimedByOther, Conflict, NotFound
from services.triage.web.models import (
    Answer,
    AnswerState,
    Assignment,
    AssignmentState,
    Consent,
    Question,
    Reply,
    ReplyState,
    Status,
    Team,
)
from services.triage.web.store.media import AnswerMedia
from services.triage.web.store.notifications import ANSWER_PUBLISHED, notify_team
from services.triage.web.store.teams import open_assignment
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

    # --- consent withdrawal ----------------------------------------------------------

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
                    answer_id=answer_id,  # every request of this answer, any question
                    withdrawn_by=actor.name,
                    reason=f"{reason}: {request.note}"[:2000] if request.note else reason[:2000],
                    at=first or now,  # when the consent was withdrawn
                ),
            )
            await session.commit()
            return answer

    # --- reply outcomes (replies.published / replies.failed) ----------------------------

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
