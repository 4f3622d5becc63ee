"""Recording teams under ``/api/teams``: the list, an admin's create or update, a
team's feed (cursor-paginated, and live), and a member taking a question, giving
it back, saying it is filmed. A team member sees only their own team's."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from services.triage.web.deps import MAX_ID, Admin, Anyone, Runtime, header_number
from services.triage.web.exceptions import Invalid
from services.triage.web.models import Role
from services.triage.web.routes.streams import feed_stream
from services.triage.web.schemas import (
    Claimed,
    FeedPage,
    TeamView,
    feed_entry,
    team_view,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["api"])


@router.get("/teams", summary="Recording teams, their languages and capacity left today")
async def teams(runtime: Runtime, principal: Anyone) -> list[TeamView]:
    loads = await runtime.store.teams.loads()
    if principal.role is Role.TEAM:
        loads = [x for x in loads if x.team.id == principal.actor.team_id]
    return [team_view(x) for x in loads]


class TeamBody(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    languages: list[str] = Field(default_factory=list, max_length=50)
    capacity: int = Field(default=20, ge=0, le=10_000)


@router.put("/teams/{slug}", summary="Create or update a team (admin)")
async def put_team(slug: str, body: TeamBody, runtime: Runtime, principal: Admin) -> TeamView:
    if not slug.replace("-", "").isalnum() or slug != slug.lower() or len(slug) > 64:
        raise Invalid("team slugs are lower-case letters, digits and '-'")
    await runtime.store.teams.upsert(
        slug,
        name=body.name,
        languages=body.languages,
        capacity=body.capacity,
        actor=principal.actor,
    )
    loads = {x.team.slug: x for x in await runtime.store.teams.loads()}
    return team_view(loads[slug])


@router.get("/teams/{slug}/feed", summary="The team's assigned questions (cursor-paginated)")
async def feed(
    slug: str,
    runtime: Runtime,
    principal: Anyone,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> FeedPage:
    items = await runtime.store.teams.feed(slug, principal.actor, after=after, limit=limit)
    now = runtime.store.clock()
    entries = [feed_entry(i, principal.actor.user_id, now) for i in items]
    return FeedPage(
        items=entries, next_cursor=entries[-1].assignment_id if len(entries) == limit else None
    )


@router.get("/teams/{slug}/stream", summary="New assignments of the team (Server-Sent Events)")
async def team_stream(
    request: Request,
    slug: str,
    runtime: Runtime,
    principal: Anyone,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> EventSourceResponse:
    await runtime.store.teams.feed(slug, principal.actor, limit=1)  # 404 / 403 before streaming
    last = header_number(request, "Last-Event-ID", maximum=MAX_ID)
    cursor = after if after is not None else (last or 0)
    return EventSourceResponse(feed_stream(runtime, slug, principal, cursor), ping=15)


@router.post("/questions/{question_id}/take", summary="A team member takes an assigned question")
async def take(question_id: str, runtime: Runtime, principal: Anyone) -> Claimed:
    until = await runtime.store.teams.take(question_id, principal.actor)
    return Claimed(question_id=question_id, until=until)


@router.post("/questions/{question_id}/give-back", status_code=204)
async def give_back(question_id: str, runtime: Runtime, principal: Anyone) -> None:
    await runtime.store.teams.give_back(question_id, principal.actor)


@router.post("/questions/{question_id}/filmed", status_code=204, summary="Mark as recorded")
async def filmed(question_id: str, runtime: Runtime, principal: Anyone) -> None:
    await runtime.store.teams.mark_filmed(question_id, principal.actor)
