"""The moderators' queue under ``/api/questions``: the list with its filters, one
question and its timeline, claims, actions one at a time or in bulk, and the
live changes (Server-Sent Events). The catch-all action route is declared last
and this router is included after the others (its path would catch theirs)."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from services.common.messages import Decision
from services.triage.web import metrics, policy
from services.triage.web.deps import (
    MAX_ID,
    Anyone,
    Moderator,
    Runtime,
    TriageRuntime,
    header_number,
)
from services.triage.web.exceptions import Invalid
from services.triage.web.models import Status
from services.triage.web.routes.streams import event_stream
from services.triage.web.schemas import (
    ActionResult,
    Claimed,
    EventView,
    OutcomeView,
    QuestionPage,
    QuestionView,
    event_view,
    outcome_view,
    question_view,
)
from services.triage.web.store import Actor, QuestionFilter

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["api"])


async def render_questions(runtime: TriageRuntime, questions: list[object]) -> list[QuestionView]:
    from services.triage.web.models import Question  # noqa: PLC0415 - typing of rows only

    rows = [q for q in questions if isinstance(q, Question)]
    slugs = await runtime.store.teams.slugs()
    sizes = await runtime.store.questions.cluster_sizes(q.cluster_id or "" for q in rows)
    names = await runtime.accounts.usernames(
        [*(q.claimed_by for q in rows), *(q.assignee_id for q in rows)]
    )
    tags = await runtime.store.tags.of(q.id for q in rows)
    return [
        question_view(q, team_slugs=slugs, cluster_sizes=sizes, people=names, tags=tags)
        for q in rows
    ]


def parse_statuses(status: str | None) -> tuple[Status, ...]:
    if not status:
        return ()
    try:
        return tuple(Status(s.strip()) for s in status.split(",") if s.strip())
    except ValueError as exc:
        raise Invalid(f"unknown status in {status!r}; one of {', '.join(Status)}") from exc


@router.get("/questions", summary="The queue, highest priority first, with filters")
async def questions(  # noqa: PLR0917 - one query parameter per filter
    runtime: Runtime,
    _: Moderator,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    q: Annotated[str | None, Query(max_length=200, description="text or author search")] = None,
    language: Annotated[str | None, Query(max_length=16)] = None,
    decision: Decision | None = None,
    team: Annotated[str | None, Query(max_length=64)] = None,
    cluster: Annotated[str | None, Query(max_length=128)] = None,
    min_priority: Annotated[int | None, Query(ge=0, le=100)] = None,
    max_priority: Annotated[int | None, Query(ge=0, le=100)] = None,
    min_offensive: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_offensive: Annotated[float | None, Query(ge=0, le=1)] = None,
    min_question: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_question: Annotated[float | None, Query(ge=0, le=1)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    assignee: Annotated[
        str | None, Query(max_length=64, description="a person's user name")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> QuestionPage:
    filters = QuestionFilter(
        statuses=parse_statuses(status),
        language=language,
        decision=decision,
        team=team,
        cluster_id=cluster,
        text=q,
        min_priority=min_priority,
        max_priority=max_priority,
        min_offensive=min_offensive,
        max_offensive=max_offensive,
        min_question=min_question,
        max_question=max_question,
        tag=tag,
        assignee=assignee,
    )
    rows, total = await runtime.store.questions.page(filters, limit=limit, offset=offset)
    return QuestionPage(
        items=await render_questions(runtime, list(rows)), total=total, limit=limit, offset=offset
    )


@router.get("/questions/{question_id}")
async def question(question_id: str, runtime: Runtime, principal: Anyone) -> QuestionView:
    row = await runtime.store.questions.get(question_id)
    policy.check_question(principal.actor, row.team_id, row.status)
    return (await render_questions(runtime, [row]))[0]


@router.get("/questions/{question_id}/timeline", summary="Every event of a question")
async def timeline(question_id: str, runtime: Runtime, _: Moderator) -> list[EventView]:
    return [event_view(e) for e in await runtime.store.questions.timeline(question_id)]


@router.get("/questions/{question_id}/suggested-team")
async def suggested_team(question_id: str, runtime: Runtime, _: Moderator) -> dict[str, str | None]:
    row = await runtime.store.questions.get(question_id)
    return {"team": await runtime.store.teams.suggest_for(row)}


@router.post("/questions/{question_id}/claim", summary="Work on a question (others are kept off)")
async def claim(question_id: str, runtime: Runtime, principal: Moderator) -> Claimed:
    until = await runtime.store.questions.claim(question_id, principal.actor)
    return Claimed(question_id=question_id, until=until)


@router.post("/questions/{question_id}/release", status_code=204)
async def release(question_id: str, runtime: Runtime, principal: Moderator) -> None:
    await runtime.store.questions.release(question_id, principal.actor)


class ActionBody(BaseModel):
    reason: str = Field(default="", max_length=2000)


class AssignBody(BaseModel):
    team: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=2000)


async def _act(
    runtime: TriageRuntime,
    question_id: str,
    action: str,
    actor: Actor,
    *,
    reason: str,
    team: str | None = None,
) -> ActionResult:
    try:
        status = await runtime.store.questions.act(
            question_id, action, actor, reason=reason, team=team
        )
    except Exception:
        metrics.ACTIONS.labels(action, "refused").inc()
        raise
    metrics.ACTIONS.labels(action, "ok").inc()
    return ActionResult(question_id=question_id, status=status.value)


@router.post("/questions/{question_id}/assign", summary="Give a question to a recording team")
async def assign(
    question_id: str, body: AssignBody, runtime: Runtime, principal: Moderator
) -> ActionResult:
    return await _act(
        runtime, question_id, "assign", principal.actor, reason=body.reason, team=body.team
    )


class AssigneeBody(BaseModel):
    #: The person's user name; ``null`` gives the question to nobody.
    user: str | None = Field(default=None, min_length=1, max_length=64)


class AssigneeResult(BaseModel):
    question_id: str
    assignee: str | None


@router.put(
    "/questions/{question_id}/assignee",
    summary="Give a question to a person (a moderator, or a member of its team)",
)
async def set_assignee(
    question_id: str, body: AssigneeBody, runtime: Runtime, principal: Moderator
) -> AssigneeResult:
    name = await runtime.store.questions.set_assignee(question_id, body.user, principal.actor)
    return AssigneeResult(question_id=question_id, assignee=name)


class BulkBody(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=500)
    action: Literal["approve", "reject", "quarantine", "restore", "block", "assign"]
    team: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=2000)


@router.post("/questions/bulk", summary="One action on many questions (each on its own)")
async def bulk(body: BulkBody, runtime: Runtime, principal: Moderator) -> list[OutcomeView]:
    outcomes = await runtime.store.questions.bulk(
        body.ids, body.action, principal.actor, reason=body.reason, team=body.team
    )
    for outcome in outcomes:
        metrics.ACTIONS.labels(body.action, "ok" if outcome.ok else "refused").inc()
    return [outcome_view(o) for o in outcomes]


@router.post(
    "/questions/{question_id}/undo",
    summary="Take back one's own last action on a question (within 10 minutes)",
)
async def undo(question_id: str, runtime: Runtime, principal: Moderator) -> ActionResult:
    try:
        status = await runtime.store.questions.undo(question_id, principal.actor)
    except Exception:
        metrics.ACTIONS.labels("undo", "refused").inc()
        raise
    metrics.ACTIONS.labels("undo", "ok").inc()
    return ActionResult(question_id=question_id, status=status.value)


@router.get("/events", summary="Live queue changes (Server-Sent Events)")
async def events(
    request: Request,
    runtime: Runtime,
    principal: Moderator,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> EventSourceResponse:
    last = header_number(request, "Last-Event-ID", maximum=MAX_ID)
    cursor = after if after is not None else last
    return EventSourceResponse(event_stream(runtime, principal, cursor), ping=15)


@router.post(
    "/questions/{question_id}/{action}",
    summary="approve, reject, quarantine, restore, or block the author",
)
async def act(
    question_id: str,
    action: Literal["approve", "reject", "quarantine", "restore", "block"],
    runtime: Runtime,
    principal: Moderator,
    body: ActionBody | None = None,
) -> ActionResult:
    return await _act(
        runtime, question_id, action, principal.actor, reason=body.reason if body else ""
    )
