"""The same question asked by many: a cluster's members follow the team it went to.
An answer filmed for a cluster is approved for every asker of it, so a member never
waits for triage once its cluster is with a team, and costs the team nothing (no
assignment of its own, nothing off the team's day). A new asker follows at once
(:func:`follow_cluster`); those already waiting follow when the cluster is assigned
(:func:`gather_cluster`), and go back when the cluster's question leaves the team
(its assignment undone, or it is rejected or quarantined from the team:
:func:`release_followers`). Run inside the questions aggregate's transaction."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.triage.web.exceptions import Conflict
from services.triage.web.models import (
    Assignment,
    AssignmentState,
    Question,
    QuestionEvent,
    Status,
    Team,
)
from services.triage.web.store.transaction import Actor, Database

#: Who moves a member along with its cluster (the timeline's actor).
CLUSTER = Actor.system("cluster")
#: Members that are still waiting for triage and so follow their cluster.
WAITING = (Status.NEW, Status.APPROVED)


async def follow_cluster(db: Database, session: AsyncSession, question: Question) -> None:
    """A new question whose cluster already went to a team follows it: it follows the
    member the team holds an assignment for (the others there followed it too)."""
    row = (
        await session.execute(
            select(Question.id, Team)
            .join(Team, Team.id == Question.team_id)
            .join(Assignment, Assignment.question_id == Question.id)
            .where(
                Question.cluster_id == question.cluster_id,
                Question.status.in_([Status.ASSIGNED.value, Status.RECORDED.value]),
                Assignment.state.in_(
                    [AssignmentState.ACTIVE.value, AssignmentState.RECORDED.value]
                ),
            )
            .order_by(Question.updated_at)
            .limit(1)
        )
    ).first()
    if row is None:
        return
    lead, team = row
    question.status = Status.ASSIGNED.value
    question.team_id = team.id
    db.event(
        session,
        question.id,
        CLUSTER,
        "follows_cluster",
        moved=(Status.NEW, Status.ASSIGNED),
        reason=f"the same question already went to {team.name}",
        detail={"team": team.slug, "question": lead},
    )


async def gather_cluster(
    db: Database, session: AsyncSession, lead: Question, team: Team
) -> list[str]:
    """The members of ``lead``'s cluster still waiting for triage follow it to ``team``
    (one a moderator holds is left to them). Returns the ids that followed."""
    if not lead.cluster_id:
        return []
    waiting = await session.scalars(
        select(Question.id).where(
            Question.cluster_id == lead.cluster_id,
            Question.id != lead.id,
            Question.status.in_([s.value for s in WAITING]),
        )
    )
    followed: list[str] = []
    # Re-assigning the lead moves those that followed it to the new team too.
    for member in [*list(waiting), *await followers(session, lead)]:
        try:
            previous = await db.transition(
                session,
                member,
                CLUSTER,
                (*WAITING, Status.ASSIGNED),
                Status.ASSIGNED,
                values={"team_id": team.id},
            )
        except Conflict:
            continue  # a moderator holds it, or it moved meanwhile
        db.event(
            session,
            member,
            CLUSTER,
            "follows_cluster",
            moved=(previous, Status.ASSIGNED),
            reason=f"the same question went to {team.name}",
            detail={"team": team.slug, "question": lead.id},
        )
        followed.append(member)
    return followed


async def followers(session: AsyncSession, lead: Question) -> list[str]:
    """The members assigned because they followed ``lead`` (and nothing happened to
    since)."""
    if not lead.cluster_id:
        return []
    members = await session.scalars(
        select(Question.id).where(
            Question.cluster_id == lead.cluster_id,
            Question.id != lead.id,
            Question.status == Status.ASSIGNED.value,
        )
    )
    found: list[str] = []
    for member in list(members):
        last = await session.scalar(
            select(QuestionEvent)
            .where(QuestionEvent.question_id == member, QuestionEvent.to_status.is_not(None))
            .order_by(QuestionEvent.id.desc())
            .limit(1)
        )
        if last is None or last.event != "follows_cluster":
            continue
        if json.loads(last.detail_json or "{}").get("question") == lead.id:
            found.append(member)
    return found


async def release_followers(
    db: Database,
    session: AsyncSession,
    lead: Question,
    actor: Actor,
    *,
    reason: str = "its cluster's assignment was undone",
) -> None:
    """``lead`` left its team (its assignment undone; rejected or quarantined from the
    team): the members that followed it wait for triage again (as new: a follower's
    own earlier approval is not kept)."""
    for member in await followers(session, lead):
        try:
            await db.transition(
                session, member, actor, (Status.ASSIGNED,), Status.NEW, values={"team_id": None}
            )
        except Conflict:
            continue
        db.event(
            session,
            member,
            actor,
            "undone",
            moved=(Status.ASSIGNED, Status.NEW),
            reason=reason,
        )
