"""Everything the triage web and its consumers do to the database, one
transaction per call. The rules that need no database (which status follows
which action, which team to suggest, the reply ids) live in :mod:`.queue`.

Concurrency is settled by the database, not by the process: every change of
a question is one conditional ``UPDATE … WHERE status IN (…) AND <claim is
free or mine>``, so two moderators (or two web replicas) can never both win,
on SQLite and on Postgres alike. Messages to Kafka are written to the outbox
in the same transaction as the change they announce.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common import topics
from services.common.codec import encode, encode_key
from services.common.messages import (
    AnswerRecorded,
    Author,
    Decision,
    Media,
    MentionClassified,
    Platform,
    PublishReply,
    QuestionAssigned,
    ReplyFailed,
    ReplyPublished,
    utcnow,
)
from services.common.messages import (
    Consent as ConsentMessage,
)
from services.triage.web import domain as queue
from services.triage.web.exceptions import (
    ClaimedByOther,
    Conflict,
    ConsentMissing,
    Forbidden,
    Invalid,
    NotFound,
)
from services.triage.web.models import (
    Answer,
    AnswerState,
    Assignment,
    AssignmentState,
    AuditEntry,
    BlockedAuthor,
    Consent,
    OutboxMessage,
    Question,
    QuestionEvent,
    Reply,
    ReplyState,
    Role,
    Status,
    Team,
    User,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


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


@dataclass(frozen=True)
class QuestionFilter:
    """The queue's filters; every field optional."""

    statuses: tuple[Status, ...] = ()
    language: str | None = None
    decision: Decision | None = None
    team: str | None = None
    cluster_id: str | None = None
    text: str | None = None
    min_priority: int | None = None
    max_priority: int | None = None
    min_offensive: float | None = None
    max_offensive: float | None = None
    min_question: float | None = None
    max_question: float | None = None


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
    duration_s: float | None = None


@dataclass
class Outcome:
    """The result of one item of a bulk action."""

    question_id: str
    ok: bool
    status: str | None = None
    error: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class TeamLoad:
    team: Team
    assigned_today: int

    @property
    def remaining(self) -> int:
        return max(0, self.team.capacity - self.assigned_today)


@dataclass
class FeedItem:
    assignment: Assignment
    question: Question


@dataclass
class Counts:
    by_status: dict[str, int] = field(default_factory=dict)


def new_id() -> str:
    return uuid.uuid4().hex


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class TriageStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        claim_ttl_s: int = 120,
        consent_scopes: Sequence[str] = ("campaign-social", "public"),
        clock: Clock = utcnow,
    ) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.claim_ttl = timedelta(seconds=claim_ttl_s)
        self.consent_scopes = tuple(consent_scopes)
        self.clock = clock

    # --- helpers -----------------------------------------------------------------

    def _event(
        self,
        session: AsyncSession,
        question_id: str,
        actor: Actor,
        event: str,
        *,
        from_status: str | None = None,
        to_status: str | None = None,
        decision: str | None = None,
        reason: str = "",
        model_version: str | None = None,
        rule: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        session.add(
            QuestionEvent(
                question_id=question_id,
                at=self.clock(),
                actor=actor.name,
                event=event,
                from_status=from_status,
                to_status=to_status,
                decision=decision,
                reason=reason[:2000],
                model_version=model_version,
                rule=rule,
                detail_json=_json(detail or {}),
            )
        )

    def _audit(
        self,
        session: AsyncSession,
        actor: Actor,
        action: str,
        subject: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        session.add(
            AuditEntry(
                at=self.clock(),
                actor=actor.name,
                action=action,
                subject=subject[:200],
                detail_json=_json(detail or {}),
            )
        )

    def _outbox(self, session: AsyncSession, topic: str, key: str, message: Any) -> None:
        session.add(
            OutboxMessage(
                topic=topic,
                key=encode_key(key),
                value=encode(message),
                created_at=self.clock(),
            )
        )

    def _claim_free(self, actor: Actor, now: datetime) -> Any:
        return or_(
            Question.claimed_by.is_(None),
            Question.claimed_by == actor.user_id,
            Question.claim_expires_at < now,
        )

    async def _get_question(self, session: AsyncSession, question_id: str) -> Question:
        question = await session.get(Question, question_id)
        if question is None:
            raise NotFound(f"question {question_id!r} not found")
        return question

    async def _why_not(
        self, session: AsyncSession, question_id: str, actor: Actor, allowed: Iterable[Status]
    ) -> Exception:
        """Why a conditional update changed nothing: gone, claimed, or wrong status."""
        question = await self._get_question(session, question_id)
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

    async def _transition(
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
                self._claim_free(actor, now) if respect_claim else true(),
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
            raise await self._why_not(session, question_id, actor, allowed)
        return Status(previous)

    # --- consuming mentions.classified ---------------------------------------------

    async def ingest(self, classified: MentionClassified) -> Question | None:
        """Store a classified mention as a question; ``None`` when it is already
        there (a redelivered message changes nothing)."""
        mention = classified.mention
        async with self.sessions() as session:
            existing = await session.scalar(
                select(Question.id).where(Question.mention_id == mention.id)
            )
            if existing is not None:
                return None
            now = self.clock()
            blocked = await session.scalar(
                select(BlockedAuthor.id).where(
                    BlockedAuthor.platform == mention.platform.value,
                    BlockedAuthor.author_id == mention.author.id,
                )
            )
            status = queue.status_for_decision(
                classified.decision, author_blocked=blocked is not None
            )
            question = Question(
                id=new_id(),
                mention_id=mention.id,
                platform=mention.platform.value,
                native_id=mention.native_id,
                author_id=mention.author.id,
                author_handle=mention.author.handle,
                text=mention.text,
                lang=mention.lang[:64] if mention.lang else None,
                url=mention.url,
                classified_json=classified.model_dump_json(),
                offensive=classified.scores.offensive,
                hate=classified.scores.hate,
                question_score=classified.scores.question,
                relevance=classified.scores.relevance,
                priority=classified.priority,
                reasons_json=_json([r.model_dump() for r in classified.reasons]),
                decision=classified.decision.value,
                model_version=classified.model_version,
                rule=classified.rule,
                cluster_id=classified.cluster_id,
                suggested_team=classified.team,
                status=status.value,
                received_at=mention.received_at,
                created_at=now,
                updated_at=now,
            )
            session.add(question)
            system = Actor.system("classifier")
            self._event(
                session,
                question.id,
                system,
                "classified",
                to_status=status.value,
                decision=classified.decision.value,
                reason="author blocked" if blocked is not None else f"rule {classified.rule}",
                model_version=classified.model_version,
                rule=classified.rule,
                detail={"priority": classified.priority, "rules_version": classified.rules_version},
            )
            if status is Status.NEW and classified.decision is Decision.AUTO_ASSIGN:
                await self._auto_assign(session, question, classified.team)
            try:
                await session.commit()
            except IntegrityError:
                # Another consumer stored the same mention between our check and commit.
                await session.rollback()
                return None
            return question

    async def _auto_assign(
        self, session: AsyncSession, question: Question, slug: str | None
    ) -> None:
        """Assign straight to the routed team when it exists and has capacity;
        otherwise the question stays ``new`` for a moderator."""
        if slug is None:
            return
        team = await session.scalar(select(Team).where(Team.slug == slug, Team.active.is_(True)))
        if team is None:
            return
        load = await self._load(session, team)
        if load.remaining <= 0:
            return
        await session.flush()
        actor = Actor.system("auto-assign")
        question.status = Status.ASSIGNED.value
        question.team_id = team.id
        self._assign_rows(session, question, team, actor, from_status=Status.NEW)

    # --- reading the queue -------------------------------------------------------

    def _filtered(self, query: Select[Any], filters: QuestionFilter) -> Select[Any]:
        conditions: list[Any] = []
        if filters.statuses:
            conditions.append(Question.status.in_([s.value for s in filters.statuses]))
        if filters.language:
            conditions.append(Question.lang == filters.language)
        if filters.decision:
            conditions.append(Question.decision == filters.decision.value)
        if filters.cluster_id:
            conditions.append(Question.cluster_id == filters.cluster_id)
        if filters.team:
            conditions.append(
                Question.team_id
                == select(Team.id).where(Team.slug == filters.team).scalar_subquery()
            )
        if filters.text:
            needle = filters.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{needle}%"
            conditions.append(
                or_(
                    Question.text.ilike(pattern, escape="\\"),
                    Question.author_handle.ilike(pattern, escape="\\"),
                )
            )
        for column, low, high in (
            (Question.priority, filters.min_priority, filters.max_priority),
            (Question.offensive, filters.min_offensive, filters.max_offensive),
            (Question.question_score, filters.min_question, filters.max_question),
        ):
            if low is not None:
                conditions.append(column >= low)
            if high is not None:
                conditions.append(column <= high)
        return query.where(and_(*conditions)) if conditions else query

    async def questions(
        self, filters: QuestionFilter, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Question], int]:
        """A page of questions, highest priority first (oldest first among equals),
        and how many match in all."""
        async with self.sessions() as session:
            query = self._filtered(select(Question), filters)
            total = await session.scalar(self._filtered(select(func.count(Question.id)), filters))
            rows = await session.scalars(
                query.order_by(Question.priority.desc(), Question.received_at, Question.id)
                .limit(limit)
                .offset(offset)
            )
            return list(rows), int(total or 0)

    async def question(self, question_id: str) -> Question:
        async with self.sessions() as session:
            return await self._get_question(session, question_id)

    async def cluster_sizes(self, cluster_ids: Iterable[str]) -> dict[str, int]:
        ids = {c for c in cluster_ids if c}
        if not ids:
            return {}
        async with self.sessions() as session:
            rows = await session.execute(
                select(Question.cluster_id, func.count(Question.id))
                .where(Question.cluster_id.in_(ids))
                .group_by(Question.cluster_id)
            )
            return {str(c): int(n) for c, n in rows.all()}

    async def team_slugs(self) -> dict[int, str]:
        async with self.sessions() as session:
            rows = await session.execute(select(Team.id, Team.slug))
            return {int(i): str(slug) for i, slug in rows.all()}

    async def usernames(self, user_ids: Iterable[int | None]) -> dict[int, str]:
        ids = {i for i in user_ids if i is not None}
        if not ids:
            return {}
        async with self.sessions() as session:
            rows = await session.execute(select(User.id, User.username).where(User.id.in_(ids)))
            return {int(i): str(name) for i, name in rows.all()}

    async def timeline(self, question_id: str) -> list[QuestionEvent]:
        async with self.sessions() as session:
            await self._get_question(session, question_id)
            rows = await session.scalars(
                select(QuestionEvent)
                .where(QuestionEvent.question_id == question_id)
                .order_by(QuestionEvent.id)
            )
            return list(rows)

    async def events_after(self, cursor: int, *, limit: int = 200) -> list[QuestionEvent]:
        """Question events newer than ``cursor`` (the live queue's feed)."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(QuestionEvent)
                .where(QuestionEvent.id > cursor)
                .order_by(QuestionEvent.id)
                .limit(limit)
            )
            return list(rows)

    async def last_event_id(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.max(QuestionEvent.id))) or 0)

    async def counts(self) -> Counts:
        async with self.sessions() as session:
            rows = await session.execute(
                select(Question.status, func.count(Question.id)).group_by(Question.status)
            )
            return Counts(by_status={str(s): int(n) for s, n in rows.all()})

    # --- moderator actions -------------------------------------------------------

    async def claim(self, question_id: str, actor: Actor) -> datetime:
        """Claim a question for ``claim_ttl`` (renewing one's own claim); another
        person's live claim refuses it."""
        now = self.clock()
        until = now + self.claim_ttl
        async with self.sessions() as session:
            result = await session.execute(
                update(Question)
                .where(Question.id == question_id, self._claim_free(actor, now))
                .values(claimed_by=actor.user_id, claim_expires_at=until)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise await self._why_not(session, question_id, actor, ())
            self._event(session, question_id, actor, "claimed", detail={"until": until.isoformat()})
            await session.commit()
            return until

    async def release(self, question_id: str, actor: Actor) -> None:
        async with self.sessions() as session:
            result = await session.execute(
                update(Question)
                .where(Question.id == question_id, Question.claimed_by == actor.user_id)
                .values(claimed_by=None, claim_expires_at=None)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                self._event(session, question_id, actor, "released")
            else:
                await self._get_question(session, question_id)
            await session.commit()

    async def act(
        self,
        question_id: str,
        action: str,
        actor: Actor,
        *,
        reason: str = "",
        team: str | None = None,
    ) -> Status:
        """Approve, reject, quarantine, assign or block the author of one question."""
        async with self.sessions() as session:
            status = await self._act(session, question_id, action, actor, reason=reason, team=team)
            await session.commit()
            return status

    async def bulk(
        self,
        question_ids: Sequence[str],
        action: str,
        actor: Actor,
        *,
        reason: str = "",
        team: str | None = None,
    ) -> list[Outcome]:
        """The same action on many questions; each succeeds or fails on its own."""
        outcomes: list[Outcome] = []
        for question_id in dict.fromkeys(question_ids):
            try:
                status = await self.act(question_id, action, actor, reason=reason, team=team)
            except (NotFound, Conflict, Invalid, Forbidden) as exc:
                outcomes.append(Outcome(question_id, ok=False, error=exc.message, code=exc.code))
            else:
                outcomes.append(Outcome(question_id, ok=True, status=status.value))
        return outcomes

    async def _act(
        self,
        session: AsyncSession,
        question_id: str,
        action: str,
        actor: Actor,
        *,
        reason: str,
        team: str | None,
    ) -> Status:
        if action == "assign":
            if not team:
                raise Invalid("assign needs a team")
            return await self._assign(session, question_id, team, actor, reason=reason)
        if action == "block":
            return await self._block_author(session, question_id, actor, reason=reason)
        move = queue.MODERATOR_ACTIONS.get(action)
        if move is None:
            raise Invalid(f"unknown action {action!r}; one of {', '.join(queue.ACTIONS)}")
        previous = await self._transition(session, question_id, actor, move.allowed, move.to)
        if previous is Status.ASSIGNED:
            # Taken back from the team (reject, quarantine): its assignment ends.
            await session.execute(
                update(Assignment)
                .where(
                    Assignment.question_id == question_id,
                    Assignment.state == AssignmentState.ACTIVE.value,
                )
                .values(state=AssignmentState.RELEASED.value, closed_at=self.clock())
            )
        self._event(
            session,
            question_id,
            actor,
            action,
            from_status=previous.value,
            to_status=move.to.value,
            decision=action,
            reason=reason,
        )
        self._audit(session, actor, action, question_id, {"reason": reason} if reason else None)
        return move.to

    async def _assign(
        self, session: AsyncSession, question_id: str, slug: str, actor: Actor, *, reason: str
    ) -> Status:
        team = await session.scalar(select(Team).where(Team.slug == slug))
        if team is None or not team.active:
            raise NotFound(f"team {slug!r} not found")
        previous = await self._transition(
            session,
            question_id,
            actor,
            queue.ASSIGNABLE,
            Status.ASSIGNED,
            values={"team_id": team.id},
        )
        question = await self._get_question(session, question_id)
        await session.refresh(question)
        # Re-assigning: the earlier team's open assignment ends (one open per question).
        await session.execute(
            update(Assignment)
            .where(
                Assignment.question_id == question_id,
                Assignment.state == AssignmentState.ACTIVE.value,
            )
            .values(state=AssignmentState.RELEASED.value, closed_at=self.clock())
        )
        self._assign_rows(session, question, team, actor, from_status=previous, reason=reason)
        self._audit(session, actor, "assign", question_id, {"team": slug})
        return Status.ASSIGNED

    def _assign_rows(
        self,
        session: AsyncSession,
        question: Question,
        team: Team,
        actor: Actor,
        *,
        from_status: Status,
        reason: str = "",
    ) -> None:
        now = self.clock()
        session.add(
            Assignment(
                question_id=question.id,
                team_id=team.id,
                state=AssignmentState.ACTIVE.value,
                assigned_by=actor.name,
                assigned_at=now,
            )
        )
        self._event(
            session,
            question.id,
            actor,
            "assigned",
            from_status=from_status.value,
            to_status=Status.ASSIGNED.value,
            decision="assign",
            reason=reason,
            detail={"team": team.slug},
        )
        self._outbox(
            session,
            topics.QUESTIONS_ASSIGNED,
            team.slug,
            QuestionAssigned(
                question_id=question.id,
                mention_id=question.mention_id,
                team=team.slug,
                assigned_by=actor.name,
                priority=question.priority,
                assigned_at=now,
            ),
        )

    async def _block_author(
        self, session: AsyncSession, question_id: str, actor: Actor, *, reason: str
    ) -> Status:
        question = await self._get_question(session, question_id)
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
                    at=self.clock(),
                )
            )
        self._audit(
            session,
            actor,
            "block_author",
            f"{question.platform}:{question.author_id}",
            {"reason": reason},
        )
        # Every open question of the author is rejected (this one included).
        open_ids = await session.scalars(
            select(Question.id).where(
                Question.platform == question.platform,
                Question.author_id == question.author_id,
                Question.status.in_([s.value for s in queue.OPEN_FOR_MODERATION]),
            )
        )
        status = Status(question.status)
        for other in list(open_ids):
            try:
                previous = await self._transition(
                    session, other, actor, queue.OPEN_FOR_MODERATION, Status.REJECTED
                )
            except Conflict:
                continue  # claimed by someone else or moved meanwhile: left as it is
            self._event(
                session,
                other,
                actor,
                "author_blocked",
                from_status=previous.value,
                to_status=Status.REJECTED.value,
                decision="block",
                reason=reason or f"author @{question.author_handle} blocked",
            )
            if other == question_id:
                status = Status.REJECTED
        return status

    # --- teams ---------------------------------------------------------------------

    async def _load(self, session: AsyncSession, team: Team) -> TeamLoad:
        start = self.clock().replace(hour=0, minute=0, second=0, microsecond=0)
        count = await session.scalar(
            select(func.count(Assignment.id)).where(
                Assignment.team_id == team.id, Assignment.assigned_at >= start
            )
        )
        return TeamLoad(team, int(count or 0))

    async def teams(self) -> list[TeamLoad]:
        async with self.sessions() as session:
            teams = await session.scalars(
                select(Team).where(Team.active.is_(True)).order_by(Team.slug)
            )
            return [await self._load(session, t) for t in teams]

    async def team(self, slug: str) -> Team:
        async with self.sessions() as session:
            team = await session.scalar(select(Team).where(Team.slug == slug))
            if team is None:
                raise NotFound(f"team {slug!r} not found")
            return team

    async def upsert_team(
        self, slug: str, *, name: str, languages: Sequence[str], capacity: int, actor: Actor
    ) -> Team:
        async with self.sessions() as session:
            team = await session.scalar(select(Team).where(Team.slug == slug))
            if team is None:
                team = Team(slug=slug, created_at=self.clock())
                session.add(team)
            team.name = name
            team.languages = " ".join(sorted({lang.lower() for lang in languages}))
            team.capacity = capacity
            team.active = True
            self._audit(
                session, actor, "team", slug, {"languages": team.languages, "capacity": capacity}
            )
            await session.commit()
            return team

    async def suggest_team(self, question: Question) -> str | None:
        loads = await self.teams()
        return queue.suggest_team(question.lang, question.suggested_team, loads)

    # --- team feeds ----------------------------------------------------------------

    def _team_scope(self, actor: Actor, team: Team) -> None:
        if actor.role is Role.TEAM and actor.team_id != team.id:
            raise Forbidden("a team sees only its own feed")

    async def feed(
        self, slug: str, actor: Actor, *, after: int = 0, limit: int = 50
    ) -> list[FeedItem]:
        """The team's open assignments with an id above ``after`` (the cursor), oldest first."""
        async with self.sessions() as session:
            team = await session.scalar(select(Team).where(Team.slug == slug))
            if team is None:
                raise NotFound(f"team {slug!r} not found")
            self._team_scope(actor, team)
            rows = await session.execute(
                select(Assignment, Question)
                .join(Question, Question.id == Assignment.question_id)
                .where(
                    Assignment.team_id == team.id,
                    Assignment.id > after,
                    Assignment.state.in_(
                        [AssignmentState.ACTIVE.value, AssignmentState.RECORDED.value]
                    ),
                )
                .order_by(Assignment.id)
                .limit(limit)
            )
            return [FeedItem(a, q) for a, q in rows.all()]

    async def _open_assignment(
        self, session: AsyncSession, question_id: str, actor: Actor
    ) -> Assignment:
        assignment = await session.scalar(
            select(Assignment).where(
                Assignment.question_id == question_id,
                Assignment.state.in_(
                    [AssignmentState.ACTIVE.value, AssignmentState.RECORDED.value]
                ),
            )
        )
        if assignment is None:
            await self._get_question(session, question_id)
            raise Conflict(f"question {question_id} is not assigned to a team")
        if actor.role is Role.TEAM and actor.team_id != assignment.team_id:
            raise Forbidden("this question is assigned to another team")
        return assignment

    async def team_claim(self, question_id: str, actor: Actor) -> datetime:
        """A team member takes an assigned question (others in the team see it taken)."""
        now = self.clock()
        until = now + self.claim_ttl
        async with self.sessions() as session:
            assignment = await self._open_assignment(session, question_id, actor)
            result = await session.execute(
                update(Assignment)
                .where(
                    Assignment.id == assignment.id,
                    or_(
                        Assignment.claimed_by.is_(None),
                        Assignment.claimed_by == actor.user_id,
                        Assignment.claim_expires_at < now,
                    ),
                )
                .values(claimed_by=actor.user_id, claim_expires_at=until)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                holder = (
                    await session.get(User, assignment.claimed_by)
                    if assignment.claimed_by
                    else None
                )
                name = holder.username if holder else "someone"
                raise ClaimedByOther(
                    f"question {question_id} is taken by {name}",
                    holder=name,
                    until=assignment.claim_expires_at,
                )
            self._event(
                session, question_id, actor, "team_claimed", detail={"until": until.isoformat()}
            )
            await session.commit()
            return until

    async def team_release(self, question_id: str, actor: Actor) -> None:
        async with self.sessions() as session:
            assignment = await self._open_assignment(session, question_id, actor)
            if assignment.claimed_by not in (None, actor.user_id) and actor.role is Role.TEAM:
                raise Forbidden("only the member who took it can release it")
            assignment.claimed_by = None
            assignment.claim_expires_at = None
            self._event(session, question_id, actor, "team_released")
            await session.commit()

    def check_consent(self, given_by: str, scope: str) -> None:
        """No consent, no answer: who gave it, and a scope the campaign may use."""
        if not given_by.strip():
            raise ConsentMissing("no consent, no answer: say who gave consent")
        if scope not in self.consent_scopes:
            raise ConsentMissing(
                f"consent scope {scope!r} is not one of {', '.join(self.consent_scopes)}"
            )

    async def record_answer(self, question_id: str, actor: Actor, stored: StoredAnswer) -> Answer:
        """Record a team's answer: consent required; produces ``answers.recorded``."""
        self.check_consent(stored.consent_given_by, stored.consent_scope)
        now = self.clock()
        async with self.sessions() as session:
            assignment = await self._open_assignment(session, question_id, actor)
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
            previous = await self._transition(
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
            answer = Answer(
                id=new_id(),
                question_id=question_id,
                assignment_id=assignment.id,
                team_id=team.id,
                state=AnswerState.SUBMITTED.value,
                media_uri=stored.uri,
                mime=stored.mime,
                bytes=stored.bytes,
                sha256=stored.sha256,
                duration_s=stored.duration_s,
                caption=stored.caption,
                transcript=stored.transcript,
                language=stored.language,
                uploaded_by=actor.name,
                created_at=now,
            )
            session.add(answer)
            await session.flush()
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
            self._event(
                session,
                question_id,
                actor,
                "answer_recorded",
                from_status=previous.value,
                to_status=Status.RECORDED.value,
                detail={"answer": answer.id, "bytes": stored.bytes, "sha256": stored.sha256},
            )
            self._audit(session, actor, "answer_recorded", question_id, {"answer": answer.id})
            self._outbox(
                session,
                topics.ANSWERS_RECORDED,
                question_id,
                AnswerRecorded(
                    question_id=question_id,
                    team=team.slug,
                    media=self._media(answer),
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

    @staticmethod
    def _media(answer: Answer) -> Media:
        return Media(
            uri=answer.media_uri,
            mime=answer.mime,
            bytes=answer.bytes,
            sha256=answer.sha256,
            duration_s=answer.duration_s,
        )

    async def mark_recorded(self, question_id: str, actor: Actor) -> None:
        """A team says it has filmed the answer (the upload may follow later)."""
        async with self.sessions() as session:
            await self._open_assignment(session, question_id, actor)
            self._event(session, question_id, actor, "filmed")
            await session.commit()

    # --- answer review -------------------------------------------------------------

    async def answers(self, question_id: str) -> list[tuple[Answer, Consent | None]]:
        async with self.sessions() as session:
            await self._get_question(session, question_id)
            rows = await session.execute(
                select(Answer, Consent)
                .outerjoin(Consent, Consent.answer_id == Answer.id)
                .where(Answer.question_id == question_id)
                .order_by(Answer.created_at.desc())
            )
            return [(a, c) for a, c in rows.all()]

    async def answer(self, answer_id: str) -> tuple[Answer, Consent | None]:
        async with self.sessions() as session:
            answer = await session.get(Answer, answer_id)
            if answer is None:
                raise NotFound(f"answer {answer_id!r} not found")
            consent = await session.scalar(select(Consent).where(Consent.answer_id == answer_id))
            return answer, consent

    async def pending_answers(
        self, limit: int = 100
    ) -> list[tuple[Answer, Question, Consent | None]]:
        """Answers waiting for review, oldest first, with their question and consent."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(Answer, Question, Consent)
                .join(Question, Question.id == Answer.question_id)
                .outerjoin(Consent, Consent.answer_id == Answer.id)
                .where(Answer.state == AnswerState.SUBMITTED.value)
                .order_by(Answer.created_at)
                .limit(limit)
            )
            return [(a, q, c) for a, q, c in rows.all()]

    async def latest_answers(
        self, question_ids: Sequence[str]
    ) -> dict[str, tuple[Answer, Consent | None]]:
        """Each question's most recent answer (any state), in one query."""
        if not question_ids:
            return {}
        async with self.sessions() as session:
            rows = await session.execute(
                select(Answer, Consent)
                .outerjoin(Consent, Consent.answer_id == Answer.id)
                .where(Answer.question_id.in_(question_ids))
                .order_by(Answer.created_at)
            )
            return {a.question_id: (a, c) for a, c in rows.all()}  # the newest wins

    async def _current_answer(self, session: AsyncSession, question_id: str) -> Answer:
        answer = await session.scalar(
            select(Answer)
            .where(
                Answer.question_id == question_id,
                Answer.state.in_([AnswerState.SUBMITTED.value, AnswerState.APPROVED.value]),
            )
            .order_by(Answer.created_at.desc())
            .limit(1)
        )
        if answer is None:
            await self._get_question(session, question_id)
            raise Conflict(f"question {question_id} has no answer waiting for review")
        return answer

    async def approve_answer(self, question_id: str, actor: Actor) -> list[Reply]:
        """Approve the question's recorded answer: one ``replies.requested`` per
        asker in its cluster, each with its own idempotency key. Approving again
        requests nothing new. An asker whose own answer is recorded and waiting for
        review keeps it: that answer was filmed for them and is reviewed on its own."""
        now = self.clock()
        async with self.sessions() as session:
            answer = await self._current_answer(session, question_id)
            if answer.state == AnswerState.APPROVED.value:
                rows = await session.scalars(select(Reply).where(Reply.answer_id == answer.id))
                return list(rows)
            consent = await session.scalar(select(Consent).where(Consent.answer_id == answer.id))
            if consent is None or consent.withdrawn_at is not None:
                raise ConsentMissing("the consent of the person filmed is missing or withdrawn")
            question = await self._get_question(session, question_id)
            askers = [question]
            if question.cluster_id:
                others = await session.scalars(
                    select(Question).where(
                        Question.cluster_id == question.cluster_id,
                        Question.id != question.id,
                        Question.status.in_([s.value for s in queue.AWAITING_ANSWER]),
                    )
                )
                askers += list(others)
            previous = await self._transition(
                session, question_id, actor, (Status.RECORDED,), Status.ANSWERED
            )
            answer.state = AnswerState.APPROVED.value
            answer.reviewed_by = actor.name
            answer.reviewed_at = now
            replies: list[Reply] = []
            for asker in askers:
                if asker.id != question_id:
                    try:
                        earlier = await self._transition(
                            session, asker.id, actor, queue.AWAITING_ANSWER, Status.ANSWERED
                        )
                    except Conflict:
                        continue
                else:
                    earlier = previous
                reply = self._request_reply(session, asker, answer, consent, actor, now)
                replies.append(reply)
                self._event(
                    session,
                    asker.id,
                    actor,
                    "answer_approved",
                    from_status=earlier.value,
                    to_status=Status.ANSWERED.value,
                    decision="approve_answer",
                    detail={"answer": answer.id, "reply": reply.reply_id, "via": question_id},
                )
            # Every asker answered here is done, including another team's open work.
            await session.execute(
                update(Assignment)
                .where(
                    Assignment.question_id.in_([r.question_id for r in replies]),
                    Assignment.state.in_(
                        [AssignmentState.ACTIVE.value, AssignmentState.RECORDED.value]
                    ),
                )
                .values(state=AssignmentState.DONE.value, closed_at=now)
            )
            self._audit(
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
    ) -> Reply:
        classified = MentionClassified.model_validate_json(asker.classified_json)
        mention = classified.mention
        reply_id = queue.reply_id(answer.id, asker.mention_id)
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
        self._outbox(
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
                text=queue.reply_text(answer.caption, answer.language),
                language=answer.language,
                media=self._media(answer),
                consent=ConsentMessage(
                    speaker_ref=consent.given_by[:128],
                    scope=consent.scope,
                    recorded_by=consent.recorded_by,
                    at=consent.given_at,
                ),
                approved_by=actor.name,
                requested_at=now,
            ),
        )
        return reply

    async def return_answer(self, question_id: str, actor: Actor, note: str) -> None:
        """Send the answer back to the team (re-record); the assignment reopens."""
        async with self.sessions() as session:
            answer = await self._current_answer(session, question_id)
            if answer.state != AnswerState.SUBMITTED.value:
                raise Conflict("an approved answer cannot be sent back")
            previous = await self._transition(
                session, question_id, actor, (Status.RECORDED,), Status.ASSIGNED
            )
            answer.state = AnswerState.RETURNED.value
            answer.reviewed_by = actor.name
            answer.reviewed_at = self.clock()
            answer.review_note = note
            await session.execute(
                update(Assignment)
                .where(
                    Assignment.question_id == question_id,
                    Assignment.state == AssignmentState.RECORDED.value,
                )
                .values(state=AssignmentState.ACTIVE.value)
            )
            self._event(
                session,
                question_id,
                actor,
                "answer_returned",
                from_status=previous.value,
                to_status=Status.ASSIGNED.value,
                decision="return_answer",
                reason=note,
            )
            self._audit(session, actor, "return_answer", question_id, {"note": note})
            await session.commit()

    # --- reply outcomes (replies.published / replies.failed) ----------------------------

    async def reply_outcome(self, outcome: ReplyPublished | ReplyFailed) -> bool:
        """Record what the publisher did; ``False`` when nothing changed (redelivery,
        or a reply this database never asked for)."""
        async with self.sessions() as session:
            reply = await session.get(Reply, outcome.reply_id)
            if reply is None:
                return False
            target = (
                ReplyState.PUBLISHED if isinstance(outcome, ReplyPublished) else ReplyState.FAILED
            )
            if reply.state in {ReplyState.PUBLISHED.value, target.value}:
                return False
            reply.state = target.value
            reply.updated_at = self.clock()
            system = Actor.system("publish")
            if isinstance(outcome, ReplyPublished):
                reply.post_id = outcome.post_id
                reply.url = outcome.url
                moved = await session.execute(
                    update(Question)
                    .where(
                        Question.id == reply.question_id, Question.status == Status.ANSWERED.value
                    )
                    .values(status=Status.PUBLISHED.value, updated_at=self.clock())
                )
                published = moved.rowcount == 1  # type: ignore[attr-defined]
                self._event(
                    session,
                    reply.question_id,
                    system,
                    "reply_published",
                    from_status=Status.ANSWERED.value if published else None,
                    to_status=Status.PUBLISHED.value if published else None,
                    detail={
                        "reply": reply.reply_id,
                        "post_id": outcome.post_id,
                        "url": outcome.url,
                    },
                )
            else:
                reply.error = outcome.error
                self._event(
                    session,
                    reply.question_id,
                    system,
                    "reply_failed",
                    reason=outcome.error,
                    detail={"reply": reply.reply_id, "retryable": outcome.retryable},
                )
            await session.commit()
            return True

    # --- outbox ----------------------------------------------------------------------

    async def outbox_pending(self, limit: int = 200) -> list[OutboxMessage]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None))
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
            return list(rows)

    async def outbox_relay(
        self, send: Callable[[Sequence[OutboxMessage]], Awaitable[None]], limit: int = 200
    ) -> int:
        """Send the oldest unsent messages with ``send`` and mark them sent, in one
        transaction. On Postgres the rows are locked ``SKIP LOCKED``: web replicas
        relaying at once each take other rows instead of all sending the same ones.
        ``send`` returns once the broker acknowledged; if it raises, nothing is marked.
        """
        async with self.sessions() as session, session.begin():
            rows = list(
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.sent_at.is_(None))
                    .order_by(OutboxMessage.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if rows:
                await send(rows)
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_([r.id for r in rows]))
                    .values(sent_at=self.clock())
                )
            return len(rows)

    async def outbox_backlog(self) -> int:
        async with self.sessions() as session:
            count = await session.scalar(
                select(func.count(OutboxMessage.id)).where(OutboxMessage.sent_at.is_(None))
            )
            return int(count or 0)

    async def outbox_prune(self, older_than: timedelta) -> int:
        async with self.sessions() as session:
            result = await session.execute(
                delete(OutboxMessage).where(
                    OutboxMessage.sent_at.is_not(None),
                    OutboxMessage.sent_at < self.clock() - older_than,
                )
            )
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
