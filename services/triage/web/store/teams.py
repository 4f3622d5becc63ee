"""The teams aggregate: recording teams (languages, daily capacity) and their
work — the feed of assigned questions, a member taking one, saying it is
filmed. Who may see or touch which team's work is :mod:`..policy`'s to say."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.triage.web import domain, policy
from services.triage.web.exceptions import ClaimedByOther, Conflict, Forbidden, NotFound
from services.triage.web.models import Assignment, AssignmentState, Question, Role, Team, User
from services.triage.web.store.transaction import Actor, Database

#: Assignments a team still works on.
OPEN = (AssignmentState.ACTIVE.value, AssignmentState.RECORDED.value)


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


async def team_load(session: AsyncSession, team: Team, now: datetime) -> TeamLoad:
    """The team and how many questions it was given today (since midnight UTC)."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    count = await session.scalar(
        select(func.count(Assignment.id)).where(
            Assignment.team_id == team.id, Assignment.assigned_at >= start
        )
    )
    return TeamLoad(team, int(count or 0))


async def open_assignment(
    db: Database, session: AsyncSession, question_id: str, actor: Actor
) -> Assignment:
    """The question's open assignment, which ``actor`` may work on."""
    assignment = await session.scalar(
        select(Assignment).where(Assignment.question_id == question_id, Assignment.state.in_(OPEN))
    )
    if assignment is None:
        await db.question(session, question_id)
        raise Conflict(f"question {question_id} is not assigned to a team")
    policy.check_assignment(actor, assignment.team_id)
    return assignment


class Teams:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- the teams -------------------------------------------------------------------

    async def loads(self) -> list[TeamLoad]:
        """Every active team with its load today, by slug."""
        async with self.db.sessions() as session:
            teams = await session.scalars(
                select(Team).where(Team.active.is_(True)).order_by(Team.slug)
            )
            now = self.db.clock()
            return [await team_load(session, t, now) for t in teams]

    async def get(self, slug: str) -> Team:
        async with self.db.sessions() as session:
            team = await session.scalar(select(Team).where(Team.slug == slug))
            if team is None:
                raise NotFound(f"team {slug!r} not found")
            return team

    async def slugs(self) -> dict[int, str]:
        async with self.db.sessions() as session:
            rows = await session.execute(select(Team.id, Team.slug))
            return {int(i): str(slug) for i, slug in rows.all()}

    async def upsert(
        self, slug: str, *, name: str, languages: Sequence[str], capacity: int, actor: Actor
    ) -> Team:
        async with self.db.sessions() as session:
            team = await session.scalar(select(Team).where(Team.slug == slug))
            if team is None:
                team = Team(slug=slug, created_at=self.db.clock())
                session.add(team)
            team.name = name
            team.languages = " ".join(sorted({lang.lower() for lang in languages}))
            team.capacity = capacity
            team.active = True
            self.db.audit(
                session, actor, "team", slug, {"languages": team.languages, "capacity": capacity}
            )
            await session.commit()
            return team

    async def suggest_for(self, question: Question) -> str | None:
        """The team to suggest for ``question`` (:func:`domain.suggest_team`)."""
        return domain.suggest_team(question.lang, question.suggested_team, await self.loads())

    # --- a team's work -------------------------------------------------------------------

    async def feed(
        self, slug: str, actor: Actor, *, after: int = 0, limit: int = 50
    ) -> list[FeedItem]:
        """The team's open assignments with an id above ``after`` (the cursor), oldest first."""
        async with self.db.sessions() as session:
            team = await session.scalar(select(Team).where(Team.slug == slug))
            if team is None:
                raise NotFound(f"team {slug!r} not found")
            policy.check_team_scope(actor, team.id)
            rows = await session.execute(
                select(Assignment, Question)
                .join(Question, Question.id == Assignment.question_id)
                .where(
                    Assignment.team_id == team.id,
                    Assignment.id > after,
                    Assignment.state.in_(OPEN),
                )
                .order_by(Assignment.id)
                .limit(limit)
            )
            return [FeedItem(a, q) for a, q in rows.all()]

    async def take(self, question_id: str, actor: Actor) -> datetime:
        """A team member takes an assigned question (others in the team see it taken)."""
        now = self.db.clock()
        until = now + self.db.claim_ttl
        async with self.db.sessions() as session:
            assignment = await open_assignment(self.db, session, question_id, actor)
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
            self.db.event(
                session, question_id, actor, "team_claimed", detail={"until": until.isoformat()}
            )
            await session.commit()
            return until

    async def give_back(self, question_id: str, actor: Actor) -> None:
        async with self.db.sessions() as session:
            assignment = await open_assignment(self.db, session, question_id, actor)
            if assignment.claimed_by not in (None, actor.user_id) and actor.role is Role.TEAM:
                raise Forbidden("only the member who took it can release it")
            assignment.claimed_by = None
            assignment.claim_expires_at = None
            self.db.event(session, question_id, actor, "team_released")
            await session.commit()

    async def mark_filmed(self, question_id: str, actor: Actor) -> None:
        """A team says it has filmed the answer (the upload may follow later)."""
        async with self.db.sessions() as session:
            await open_assignment(self.db, session, question_id, actor)
            self.db.event(session, question_id, actor, "filmed")
            await session.commit()
