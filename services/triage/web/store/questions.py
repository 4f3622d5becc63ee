"""The questions aggregate: a classified mention stored as a question, the queue
(filters, clusters, timeline, live events), and what moderators do to a question
(claim, approve, reject, quarantine, restore, assign, block its author, in bulk).
Every status change goes through :meth:`Database.transition` (the concurrency rule)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import topics
from services.common.messages import Decision, MentionClassified, QuestionAssigned
from services.triage.web import domain
from services.triage.web.exceptions import Conflict, Forbidden, Invalid, NotFound, NotUndoable
from services.triage.web.models import (
    Assignment,
    AssignmentState,
    BlockedAuthor,
    Question,
    QuestionEvent,
    QuestionTag,
    Role,
    Status,
    Team,
    User,
)
from services.triage.web.store.authors import block_author, lift_block
from services.triage.web.store.clusters import follow_cluster, gather_cluster, release_followers
from services.triage.web.store.learning import Labels
from services.triage.web.store.notifications import (
    GIVEN_TO_YOU,
    TEAM_ASSIGNED,
    excerpt,
    forget_for_teams,
    notify_person,
    notify_team,
)
from services.triage.web.store.teams import team_load
from services.triage.web.store.transaction import Actor, Database, as_json, new_id


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
    #: Only questions carrying this tag.
    tag: str | None = None
    #: Only questions given to this person (user name).
    assignee: str | None = None


@dataclass
class Outcome:
    """The result of one item of a bulk action."""

    question_id: str
    ok: bool
    status: str | None = None
    error: str | None = None
    code: str | None = None


@dataclass
class Counts:
    by_status: dict[str, int] = field(default_factory=dict)


def _filtered(query: Select[Any], filters: QuestionFilter) -> Select[Any]:
    conditions: list[Any] = []
    if filters.statuses:
        conditions.append(Question.status.in_([s.value for s in filters.statuses]))
    if filters.language:
        conditions.append(Question.lang == filters.language)
    if filters.decision:
        conditions.append(Question.decision == filters.decision.value)
    if filters.cluster_id:
        conditions.append(Question.cluster_id == filters.cluster_id)
    if filters.assignee:
        person = select(User.id).where(User.username == filters.assignee).scalar_subquery()
        conditions.append(Question.assignee_id == person)
    if filters.tag:
        tagged = select(QuestionTag.question_id).where(QuestionTag.tag == filters.tag)
        conditions.append(Question.id.in_(tagged))
    if filters.team:
        conditions.append(
            Question.team_id == select(Team.id).where(Team.slug == filters.team).scalar_subquery()
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


@dataclass(frozen=True)
class QueueKey:
    """A question's place in the queue's order (the keyset paging cursor)."""

    priority: int
    received_at: datetime
    id: str

    @classmethod
    def of(cls, question: Question) -> QueueKey:
        return cls(question.priority, question.received_at, question.id)


def _after(key: QueueKey) -> Any:
    """Questions that come after ``key`` in the queue's order."""
    return or_(
        Question.priority < key.priority,
        and_(Question.priority == key.priority, Question.received_at > key.received_at),
        and_(
            Question.priority == key.priority,
            Question.received_at == key.received_at,
            Question.id > key.id,
        ),
    )


def _question_row(classified: MentionClassified, status: Status, now: datetime) -> Question:
    mention = classified.mention
    return Question(
        id=new_id(),
        mention_id=mention.id,
        platform=mention.platform.value,
        native_id=mention.native_id,
        author_id=mention.author.id,
        author_handle=mention.author.handle,
        text=mention.text,
        lang=(mention.lang or classified.model_language or "")[:64] or None,
        url=mention.url,
        classified_json=classified.model_dump_json(),
        offensive=classified.scores.offensive,
        hate=classified.scores.hate,
        question_score=classified.scores.question,
        relevance=classified.scores.relevance,
        priority=classified.priority,
        reasons_json=as_json([r.model_dump() for r in classified.reasons]),
        decision=classified.decision.value,
        model_version=classified.model_version,
        model_path=classified.model_path.value if classified.model_path else None,
        rule=classified.rule,
        cluster_id=classified.cluster_id,
        suggested_team=classified.team,
        status=status.value,
        received_at=mention.received_at,
        created_at=now,
        updated_at=now,
    )


class Questions:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- consuming mentions.classified ---------------------------------------------

    async def ingest(self, classified: MentionClassified) -> Question | None:
        """Store a classified mention as a question; ``None`` when it is already
        there (a redelivered message changes nothing)."""
        mention = classified.mention
        async with self.db.sessions() as session:
            existing = await session.scalar(
                select(Question.id).where(Question.mention_id == mention.id)
            )
            if existing is not None:
                return None
            blocked = await session.scalar(
                select(BlockedAuthor.id).where(
                    BlockedAuthor.platform == mention.platform.value,
                    BlockedAuthor.author_id == mention.author.id,
                )
            )
            status = domain.status_for_decision(
                classified.decision, author_blocked=blocked is not None
            )
            question = _question_row(classified, status, self.db.clock())
            session.add(question)
            self.db.event(
                session,
                question.id,
                Actor.system("classifier"),
                "classified",
                moved=(None, status),
                decision=classified.decision.value,
                reason="author blocked" if blocked is not None else f"rule {classified.rule}",
                model_version=classified.model_version,
                rule=classified.rule,
                detail={"priority": classified.priority, "rules_version": classified.rules_version},
            )
            if status is Status.NEW and question.cluster_id:
                await follow_cluster(self.db, session, question)
            if question.status == Status.NEW.value and classified.decision is Decision.AUTO_ASSIGN:
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
        """Assign straight to the routed team when it exists, has capacity and speaks
        the question's language (its languages, as edited in the web, may have moved
        on from the routing rules: then a team that speaks it, as suggested, with room);
        otherwise the question stays ``new`` for a moderator."""
        if slug is None:
            return
        team = await session.scalar(select(Team).where(Team.slug == slug, Team.active.is_(True)))
        if team is None:
            return
        language = domain.base_language(question.lang)
        spoken = team.languages.split()
        if language is not None and spoken and language not in spoken:
            teams = await session.scalars(select(Team).where(Team.active.is_(True)))
            loads = [await team_load(session, t, self.db.clock()) for t in teams]
            speaking = [
                x for x in loads if language in x.team.languages.split() and x.remaining > 0
            ]
            if not speaking:
                return  # nobody with room speaks it: a moderator decides
            team = max(speaking, key=lambda x: (x.remaining, x.team.slug)).team
        load = await team_load(session, team, self.db.clock())
        if load.remaining <= 0:
            return
        await session.flush()
        actor = Actor.system("auto-assign")
        question.status = Status.ASSIGNED.value
        question.team_id = team.id
        await self._assign_rows(session, question, team, actor, from_status=Status.NEW)
        await gather_cluster(self.db, session, question, team)

    # --- reading the queue -------------------------------------------------------

    async def page(
        self,
        filters: QuestionFilter,
        *,
        limit: int = 50,
        offset: int = 0,
        after: QueueKey | None = None,
        through: QueueKey | None = None,
    ) -> tuple[list[Question], int]:
        """A page of questions in the queue's order (highest priority first, oldest
        first among equals), and how many match in all. ``after``: only those after
        that key (the next page, keyset); ``through``: only those up to and including
        it (the pages already shown, refreshed)."""
        async with self.db.sessions() as session:
            query = _filtered(select(Question), filters)
            if after is not None:
                query = query.where(_after(after))
            if through is not None:
                query = query.where(~_after(through))
            total = await session.scalar(_filtered(select(func.count(Question.id)), filters))
            rows = await session.scalars(
                query.order_by(Question.priority.desc(), Question.received_at, Question.id)
                .limit(limit)
                .offset(offset)
            )
            return list(rows), int(total or 0)

    async def by_author(
        self, question: Question, *, limit: int = 20
    ) -> tuple[list[Question], bool]:
        """The author's other questions, newest first, and whether they are blocked
        (the question page's author panel)."""
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(Question)
                .where(
                    Question.platform == question.platform,
                    Question.author_id == question.author_id,
                    Question.id != question.id,
                )
                .order_by(Question.received_at.desc(), Question.id)
                .limit(limit)
            )
            blocked = await session.scalar(
                select(BlockedAuthor.id).where(
                    BlockedAuthor.platform == question.platform,
                    BlockedAuthor.author_id == question.author_id,
                )
            )
            return list(rows), blocked is not None

    async def get(self, question_id: str) -> Question:
        async with self.db.sessions() as session:
            return await self.db.question(session, question_id)

    async def cluster_sizes(self, cluster_ids: Iterable[str]) -> dict[str, int]:
        ids = {c for c in cluster_ids if c}
        if not ids:
            return {}
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Question.cluster_id, func.count(Question.id))
                .where(Question.cluster_id.in_(ids))
                .group_by(Question.cluster_id)
            )
            return {str(c): int(n) for c, n in rows.all()}

    async def timeline(self, question_id: str) -> list[QuestionEvent]:
        async with self.db.sessions() as session:
            await self.db.question(session, question_id)
            rows = await session.scalars(
                select(QuestionEvent)
                .where(QuestionEvent.question_id == question_id)
                .order_by(QuestionEvent.id)
            )
            return list(rows)

    async def events_after(self, cursor: int, *, limit: int = 200) -> list[QuestionEvent]:
        """Question events newer than ``cursor`` (the live queue's feed)."""
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(QuestionEvent)
                .where(QuestionEvent.id > cursor)
                .order_by(QuestionEvent.id)
                .limit(limit)
            )
            return list(rows)

    async def last_event_id(self) -> int:
        async with self.db.sessions() as session:
            return int(await session.scalar(select(func.max(QuestionEvent.id))) or 0)

    async def counts(self) -> Counts:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Question.status, func.count(Question.id)).group_by(Question.status)
            )
            return Counts(by_status={str(s): int(n) for s, n in rows.all()})

    # --- claims --------------------------------------------------------------------

    async def claim(self, question_id: str, actor: Actor) -> datetime:
        """Claim a question for the claim TTL (renewing one's own claim); another
        person's live claim refuses it."""
        now = self.db.clock()
        until = now + self.db.claim_ttl
        async with self.db.sessions() as session:
            result = await session.execute(
                update(Question)
                .where(Question.id == question_id, self.db.claim_free(actor, now))
                .values(claimed_by=actor.user_id, claim_expires_at=until)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise await self.db.why_not(session, question_id, actor, ())
            self.db.event(
                session, question_id, actor, "claimed", detail={"until": until.isoformat()}
            )
            await session.commit()
            return until

    async def release(self, question_id: str, actor: Actor) -> None:
        async with self.db.sessions() as session:
            result = await session.execute(
                update(Question)
                .where(Question.id == question_id, Question.claimed_by == actor.user_id)
                .values(claimed_by=None, claim_expires_at=None)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                self.db.event(session, question_id, actor, "released")
            else:
                await self.db.question(session, question_id)
            await session.commit()

    # --- moderator actions -------------------------------------------------------

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
        async with self.db.sessions() as session:
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

    async def set_assignee(
        self, question_id: str, username: str | None, actor: Actor
    ) -> str | None:
        """Give a question to a person (``None``: to nobody): a moderator or an admin,
        or a member of the team the question is with. They are told (unless they gave
        it to themselves). Returns the assignee's name."""
        async with self.db.sessions() as session:
            question = await self.db.question(session, question_id)
            person = None
            if username is not None:
                person = await session.scalar(
                    select(User).where(User.username == username, User.active.is_(True))
                )
                if person is None:
                    raise NotFound(f"no active person named {username!r}")
                if person.role == Role.TEAM.value and person.team_id != question.team_id:
                    raise Conflict(
                        f"{username} is in a team the question is not with; "
                        "assign it to their team first"
                    )
            question.assignee_id = person.id if person else None
            question.updated_at = self.db.clock()
            self.db.event(
                session,
                question_id,
                actor,
                "assignee_set",
                reason=person.username if person else "",
                detail={"assignee": person.username if person else None},
            )
            self.db.audit(session, actor, "assignee", question_id, {"to": username})
            if person is not None and person.username != actor.name:
                team = await session.get(Team, person.team_id) if person.team_id else None
                notify_person(
                    self.db,
                    session,
                    person.id,
                    GIVEN_TO_YOU,
                    f"{actor.name} gave you a question: “{excerpt(question.text)}”",
                    question_id=question_id,
                    link=f"/team/{team.slug}" if team else f"/questions/{question_id}",
                )
            await session.commit()
            return person.username if person else None

    async def add_note(self, question_id: str, actor: Actor, text: str) -> None:
        """A moderator's note on a question, kept on its timeline (for the next one
        who opens it: "asked the camp about this", "same author as …")."""
        async with self.db.sessions() as session:
            await self.db.question(session, question_id)
            self.db.event(session, question_id, actor, "note", reason=text)
            await session.commit()

    async def undo(self, question_id: str, actor: Actor) -> Status:
        """Take back ``actor``'s last action on a question (approve, reject, quarantine,
        restore, assign, block) while nothing happened to it since and within
        :data:`domain.UNDO_WINDOW`: the question goes back to where it was, an
        assignment made by the action is removed (it no longer counts against the
        team's day); undoing a block lifts it and puts back every question it rejected."""
        async with self.db.sessions() as session:
            last = await session.scalar(
                select(QuestionEvent)
                .where(
                    QuestionEvent.question_id == question_id,
                    QuestionEvent.to_status.is_not(None),
                )
                .order_by(QuestionEvent.id.desc())
                .limit(1)
            )
            if last is None:
                await self.db.question(session, question_id)
            why = domain.why_not_undo(
                last.event if last else None,
                actor=last.actor if last else None,
                by=actor.name,
                from_status=last.from_status if last else None,
                age=self.db.clock() - last.at if last else None,
            )
            if why or last is None or last.from_status is None or last.to_status is None:
                raise NotUndoable(why or "nothing to undo")
            if last.event == "author_blocked":
                status = await lift_block(self.db, session, question_id, actor)
                await session.commit()
                return status
            back, current = Status(last.from_status), Status(last.to_status)
            values: dict[str, Any] = {"team_id": None} if last.event == "assigned" else {}
            await self.db.transition(session, question_id, actor, (current,), back, values=values)
            if last.event == "assigned":
                removed = await session.execute(
                    delete(Assignment).where(
                        Assignment.question_id == question_id,
                        Assignment.state == AssignmentState.ACTIVE.value,
                        Assignment.claimed_by.is_(None),
                    )
                )
                if removed.rowcount != 1:  # type: ignore[attr-defined]
                    raise NotUndoable("the team already took it; ask them to give it back")
                await forget_for_teams(session, question_id)
                lead = await self.db.question(session, question_id)
                await release_followers(self.db, session, lead, actor)
            self.db.event(
                session,
                question_id,
                actor,
                "undone",
                moved=(current, back),
                reason=f"undid {last.event}",
            )
            self.db.audit(session, actor, "undo", question_id, {"undid": last.event})
            await Labels(self.db).retract(session, question_id, actor, since=last.at)
            await session.commit()
            return back

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
            return await block_author(self.db, session, question_id, actor, reason=reason)
        move = domain.MODERATOR_ACTIONS.get(action)
        if move is None:
            raise Invalid(f"unknown action {action!r}; one of {', '.join(domain.ACTIONS)}")
        # None of these statuses is with a team (assign is): the question is no team's.
        previous = await self.db.transition(
            session, question_id, actor, move.allowed, move.to, values={"team_id": None}
        )
        if previous is Status.ASSIGNED or move.to is Status.QUARANTINED:
            await forget_for_teams(session, question_id)
        if previous is Status.ASSIGNED:
            # Taken back from the team (reject, quarantine): its assignment ends, and
            # the askers that followed it there wait for triage again.
            await self._end_assignment(session, question_id)
            lead = await self.db.question(session, question_id)
            await release_followers(
                self.db,
                session,
                lead,
                actor,
                reason=f"the question its cluster followed was taken from the team ({action})",
            )
        self.db.event(
            session,
            question_id,
            actor,
            action,
            moved=(previous, move.to),
            decision=action,
            reason=reason,
        )
        await Labels(self.db).from_action(
            session, question_id, action, actor, previous=previous, reason=reason
        )
        self.db.audit(session, actor, action, question_id, {"reason": reason} if reason else None)
        return move.to

    async def _end_assignment(self, session: AsyncSession, question_id: str) -> None:
        """The question's open assignment ends (one open per question)."""
        await session.execute(
            update(Assignment)
            .where(
                Assignment.question_id == question_id,
                Assignment.state == AssignmentState.ACTIVE.value,
            )
            .values(state=AssignmentState.RELEASED.value, closed_at=self.db.clock())
        )

    async def _assign(
        self, session: AsyncSession, question_id: str, slug: str, actor: Actor, *, reason: str
    ) -> Status:
        team = await session.scalar(select(Team).where(Team.slug == slug))
        if team is None or not team.active:
            raise NotFound(f"team {slug!r} not found")
        previous = await self.db.transition(
            session,
            question_id,
            actor,
            domain.ASSIGNABLE,
            Status.ASSIGNED,
            values={"team_id": team.id},
        )
        question = await self.db.question(session, question_id)
        await session.refresh(question)
        await self._end_assignment(session, question_id)  # re-assigning: the earlier team's
        await forget_for_teams(session, question_id, but_team=team.id)
        await self._assign_rows(session, question, team, actor, from_status=previous, reason=reason)
        await gather_cluster(self.db, session, question, team)
        self.db.audit(session, actor, "assign", question_id, {"team": slug})
        return Status.ASSIGNED

    async def _assign_rows(
        self,
        session: AsyncSession,
        question: Question,
        team: Team,
        actor: Actor,
        *,
        from_status: Status,
        reason: str = "",
    ) -> None:
        now = self.db.clock()
        session.add(
            Assignment(
                question_id=question.id,
                team_id=team.id,
                state=AssignmentState.ACTIVE.value,
                assigned_by=actor.name,
                assigned_at=now,
            )
        )
        self.db.event(
            session,
            question.id,
            actor,
            "assigned",
            moved=(from_status, Status.ASSIGNED),
            decision="assign",
            reason=reason,
            detail={"team": team.slug},
        )
        self.db.enqueue(
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
        await notify_team(
            self.db,
            session,
            team.id,
            TEAM_ASSIGNED,
            f"New question for {team.name}: “{excerpt(question.text)}”",
            question_id=question.id,
            link=f"/team/{team.slug}",
        )
