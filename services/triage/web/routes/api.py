"""The JSON API under ``/api``: everything the pages do.

Authentication: ``POST /api/token`` (OAuth2 password flow) gives a bearer
token; the pages use the session cookie and a CSRF token instead. Roles:
moderators and admins work the queue; a team member sees only their team's
feed and questions (403 on another team's).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field, ValidationError
from sse_starlette.sse import EventSourceResponse
from starlette.datastructures import UploadFile as StarletteUpload

from services.common.messages import Decision
from services.triage.web import metrics
from services.triage.web.deps import Admin, Anyone, Moderator, Runtime, TriageRuntime
from services.triage.web.exceptions import Forbidden, Invalid, NotFound
from services.triage.web.media import MediaError, StoredMedia, UnknownUpload, UploadState
from services.triage.web.models import Role, Status
from services.triage.web.routes.streams import event_stream, feed_stream
from services.triage.web.schemas import (
    AnswerView,
    EventView,
    FeedPage,
    OutcomeView,
    QuestionPage,
    QuestionView,
    TeamView,
    answer_view,
    event_view,
    feed_entry,
    outcome_view,
    question_view,
    team_view,
)
from services.triage.web.store import Actor, QuestionFilter, StoredAnswer

log = logging.getLogger(__name__)


router = APIRouter(prefix="/api", tags=["api"])


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme, not a secret
    expires_in: int
    role: str
    team: str | None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/token", summary="Sign in (OAuth2 password flow)")
async def token(
    request: Request, runtime: Runtime, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> Token:
    value, principal = await runtime.accounts.login(
        form.username, form.password, address=client_address(request), kind="api"
    )
    return Token(
        access_token=value,
        expires_in=runtime.settings.session_ttl_s,
        role=principal.role.value,
        team=principal.actor.team_slug,
    )


@router.post("/logout", status_code=204, summary="Revoke this token or session")
async def logout(runtime: Runtime, principal: Anyone) -> None:
    await runtime.accounts.logout(principal)


class Me(BaseModel):
    username: str
    role: str
    team: str | None


@router.get("/me")
async def me(principal: Anyone) -> Me:
    return Me(
        username=principal.actor.name, role=principal.role.value, team=principal.actor.team_slug
    )


# --- the queue --------------------------------------------------------------------


async def render_questions(runtime: TriageRuntime, questions: list[object]) -> list[QuestionView]:
    from services.triage.web.models import Question  # noqa: PLC0415 - typing of rows only

    rows = [q for q in questions if isinstance(q, Question)]
    slugs = await runtime.store.team_slugs()
    sizes = await runtime.store.cluster_sizes(q.cluster_id or "" for q in rows)
    names = await runtime.store.usernames(q.claimed_by for q in rows)
    return [question_view(q, team_slugs=slugs, cluster_sizes=sizes, claimers=names) for q in rows]


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
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
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
    )
    rows, total = await runtime.store.questions(filters, limit=limit, offset=offset)
    return QuestionPage(
        items=await render_questions(runtime, list(rows)), total=total, limit=limit, offset=offset
    )


@router.get("/questions/{question_id}")
async def question(question_id: str, runtime: Runtime, principal: Anyone) -> QuestionView:
    row = await runtime.store.question(question_id)
    await check_question_access(runtime, principal.actor, row.team_id)
    return (await render_questions(runtime, [row]))[0]


async def check_question_access(runtime: TriageRuntime, actor: Actor, team_id: int | None) -> None:
    if actor.role is Role.TEAM and (team_id is None or team_id != actor.team_id):
        raise Forbidden("this question is not assigned to your team")


@router.get("/questions/{question_id}/timeline", summary="Every event of a question")
async def timeline(question_id: str, runtime: Runtime, _: Moderator) -> list[EventView]:
    return [event_view(e) for e in await runtime.store.timeline(question_id)]


@router.get("/questions/{question_id}/suggested-team")
async def suggested_team(question_id: str, runtime: Runtime, _: Moderator) -> dict[str, str | None]:
    row = await runtime.store.question(question_id)
    return {"team": await runtime.store.suggest_team(row)}


class Claimed(BaseModel):
    question_id: str
    until: datetime


@router.post("/questions/{question_id}/claim", summary="Work on a question (others are kept off)")
async def claim(question_id: str, runtime: Runtime, principal: Moderator) -> Claimed:
    until = await runtime.store.claim(question_id, principal.actor)
    return Claimed(question_id=question_id, until=until)


@router.post("/questions/{question_id}/release", status_code=204)
async def release(question_id: str, runtime: Runtime, principal: Moderator) -> None:
    await runtime.store.release(question_id, principal.actor)


class ActionBody(BaseModel):
    reason: str = Field(default="", max_length=2000)


class AssignBody(BaseModel):
    team: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=2000)


class ActionResult(BaseModel):
    question_id: str
    status: str


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
        status = await runtime.store.act(question_id, action, actor, reason=reason, team=team)
    except Exception:
        metrics.ACTIONS.labels(action, "refused").inc()
        raise
    metrics.ACTIONS.labels(action, "ok").inc()
    if action == "assign":
        runtime.wake_outbox()
    return ActionResult(question_id=question_id, status=status.value)


@router.post("/questions/{question_id}/assign", summary="Give a question to a recording team")
async def assign(
    question_id: str, body: AssignBody, runtime: Runtime, principal: Moderator
) -> ActionResult:
    return await _act(
        runtime, question_id, "assign", principal.actor, reason=body.reason, team=body.team
    )


class BulkBody(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=500)
    action: Literal["approve", "reject", "quarantine", "restore", "block", "assign"]
    team: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=2000)


@router.post("/questions/bulk", summary="One action on many questions (each on its own)")
async def bulk(body: BulkBody, runtime: Runtime, principal: Moderator) -> list[OutcomeView]:
    outcomes = await runtime.store.bulk(
        body.ids, body.action, principal.actor, reason=body.reason, team=body.team
    )
    for outcome in outcomes:
        metrics.ACTIONS.labels(body.action, "ok" if outcome.ok else "refused").inc()
    if body.action == "assign":
        runtime.wake_outbox()
    return [outcome_view(o) for o in outcomes]


@router.get("/events", summary="Live queue changes (Server-Sent Events)")
async def events(
    request: Request,
    runtime: Runtime,
    _: Moderator,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> EventSourceResponse:
    last = request.headers.get("last-event-id")
    cursor = after if after is not None else (int(last) if last and last.isdigit() else None)
    return EventSourceResponse(event_stream(runtime, cursor), ping=15)


# --- teams ------------------------------------------------------------------------


@router.get("/teams", summary="Recording teams, their languages and capacity left today")
async def teams(runtime: Runtime, principal: Anyone) -> list[TeamView]:
    loads = await runtime.store.teams()
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
    await runtime.store.upsert_team(
        slug,
        name=body.name,
        languages=body.languages,
        capacity=body.capacity,
        actor=principal.actor,
    )
    loads = {x.team.slug: x for x in await runtime.store.teams()}
    return team_view(loads[slug])


class UserBody(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=12, max_length=256)
    role: Role
    team: str | None = None


@router.post("/users", status_code=201, summary="Create a user or reset one (admin)")
async def put_user(body: UserBody, runtime: Runtime, principal: Admin) -> Me:
    user = await runtime.accounts.upsert_user(
        body.username, body.password, body.role, team=body.team, actor=principal.actor
    )
    return Me(username=user.username, role=user.role, team=body.team)


@router.get("/teams/{slug}/feed", summary="The team's assigned questions (cursor-paginated)")
async def feed(
    slug: str,
    runtime: Runtime,
    principal: Anyone,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> FeedPage:
    items = await runtime.store.feed(slug, principal.actor, after=after, limit=limit)
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
    after: Annotated[int | None, Query(ge=0)] = None,
) -> EventSourceResponse:
    await runtime.store.feed(slug, principal.actor, limit=1)  # 404 / 403 before streaming
    last = request.headers.get("last-event-id")
    cursor = after if after is not None else (int(last) if last and last.isdigit() else 0)
    return EventSourceResponse(feed_stream(runtime, slug, principal.actor, cursor), ping=15)


@router.post("/questions/{question_id}/take", summary="A team member takes an assigned question")
async def take(question_id: str, runtime: Runtime, principal: Anyone) -> Claimed:
    until = await runtime.store.team_claim(question_id, principal.actor)
    return Claimed(question_id=question_id, until=until)


@router.post("/questions/{question_id}/give-back", status_code=204)
async def give_back(question_id: str, runtime: Runtime, principal: Anyone) -> None:
    await runtime.store.team_release(question_id, principal.actor)


@router.post("/questions/{question_id}/filmed", status_code=204, summary="Mark as recorded")
async def filmed(question_id: str, runtime: Runtime, principal: Anyone) -> None:
    await runtime.store.mark_recorded(question_id, principal.actor)


# --- answers ----------------------------------------------------------------------


async def _record(
    runtime: TriageRuntime,
    question_id: str,
    principal_actor: Actor,
    stored: StoredMedia,
    *,
    caption: str,
    transcript: str,
    language: str,
    consent_given_by: str,
    consent_scope: str,
    owned: bool,
) -> AnswerView:
    """Record the answer. ``owned``: the video came with this request alone, so a
    refusal deletes it; a finished resumable upload keeps it (a retry of the
    finish reuses the same stored video)."""
    try:
        answer = await runtime.store.record_answer(
            question_id,
            principal_actor,
            StoredAnswer(
                uri=stored.uri,
                mime=stored.mime,
                bytes=stored.bytes,
                sha256=stored.sha256,
                caption=caption,
                transcript=transcript,
                language=language,
                consent_given_by=consent_given_by,
                consent_scope=consent_scope,
            ),
        )
    except Exception:
        if owned:  # refused (consent, state, team): the video must not stay behind
            await runtime.media.delete(stored.key)
        raise
    runtime.wake_outbox()
    metrics.UPLOAD_BYTES.inc(stored.bytes)
    consent = (await runtime.store.answer(answer.id))[1]
    return answer_view(answer, consent)


async def _check_answer_allowed(runtime: TriageRuntime, question_id: str, actor: Actor) -> None:
    row = await runtime.store.question(question_id)
    if actor.role is Role.TEAM:
        await check_question_access(runtime, actor, row.team_id)


class AnswerForm(BaseModel):
    """The fields sent with the video (multipart form fields)."""

    language: str = Field(min_length=2, max_length=16)
    consent_given_by: str = Field(default="", max_length=128)
    consent_scope: str = Field(default="", max_length=64)
    caption: str = Field(default="", max_length=5000)
    transcript: str = Field(default="", max_length=50_000)


_ANSWER_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["video", "language"],
                "properties": {
                    "video": {"type": "string", "format": "binary"},
                    **AnswerForm.model_json_schema()["properties"],
                },
            }
        }
    },
}


@router.post(
    "/questions/{question_id}/answer",
    status_code=201,
    summary="Upload a recorded answer in one request (multipart), with consent",
    openapi_extra={"requestBody": _ANSWER_BODY},
)
async def answer(
    question_id: str, request: Request, runtime: Runtime, principal: Anyone
) -> AnswerView:
    """The body is read only after the caller is known to be allowed: nobody can
    make the server spool a video without a session on this question."""
    await _check_answer_allowed(runtime, question_id, principal.actor)
    async with request.form(max_files=1, max_fields=10) as form:
        video = form.get("video")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            sent = AnswerForm.model_validate(fields)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc
        if not isinstance(video, StarletteUpload):
            raise Invalid("send the video as the multipart file field 'video'")
        runtime.store.check_consent(sent.consent_given_by, sent.consent_scope)
        mime = (video.content_type or "").split(";")[0].strip().lower()

        async def chunks() -> AsyncIterator[bytes]:
            while block := await video.read(1024 * 1024):
                yield block

        stored = await runtime.uploads.put_stream(chunks(), mime=mime)
    return await _record(
        runtime,
        question_id,
        principal.actor,
        stored,
        caption=sent.caption,
        transcript=sent.transcript,
        language=sent.language,
        consent_given_by=sent.consent_given_by,
        consent_scope=sent.consent_scope,
        owned=True,
    )


@router.get("/questions/{question_id}/answers")
async def answers(question_id: str, runtime: Runtime, principal: Anyone) -> list[AnswerView]:
    await _check_answer_allowed(runtime, question_id, principal.actor)
    return [answer_view(a, c) for a, c in await runtime.store.answers(question_id)]


@router.get("/answers", summary="Answers waiting for review")
async def pending_answers(runtime: Runtime, _: Moderator) -> list[AnswerView]:
    return [answer_view(a, c) for a, _, c in await runtime.store.pending_answers()]


@router.get("/answers/{answer_id}/video", summary="The answer's video (supports Range)")
async def video(answer_id: str, runtime: Runtime, principal: Anyone) -> FileResponse:
    row, _ = await runtime.store.answer(answer_id)
    if principal.role is Role.TEAM and principal.actor.team_id != row.team_id:
        raise Forbidden("this answer belongs to another team")
    try:
        path = await runtime.media.path(runtime.media.key_of(row.media_uri))
    except MediaError as exc:
        raise NotFound("the video is no longer stored") from exc
    return FileResponse(
        path, media_type=row.mime, headers={"Cache-Control": "private, max-age=3600"}
    )


class ReplyView(BaseModel):
    reply_id: str
    question_id: str
    platform: str
    state: str


@router.post(
    "/questions/{question_id}/answer/approve", summary="Approve the answer: request the replies"
)
async def approve_answer(
    question_id: str, runtime: Runtime, principal: Moderator
) -> list[ReplyView]:
    replies = await runtime.store.approve_answer(question_id, principal.actor)
    runtime.wake_outbox()
    metrics.ACTIONS.labels("approve_answer", "ok").inc()
    return [
        ReplyView(
            reply_id=r.reply_id, question_id=r.question_id, platform=r.platform, state=r.state
        )
        for r in replies
    ]


class ReturnBody(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


@router.post(
    "/questions/{question_id}/answer/return", status_code=204, summary="Send the answer back"
)
async def return_answer(
    question_id: str, body: ReturnBody, runtime: Runtime, principal: Moderator
) -> None:
    await runtime.store.return_answer(question_id, principal.actor, body.note)
    metrics.ACTIONS.labels("return_answer", "ok").inc()


# --- resumable uploads ------------------------------------------------------------


class UploadCreate(BaseModel):
    filename: str = Field(default="answer", max_length=256)
    size: int = Field(gt=0)
    mime: str = Field(max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class UploadView(BaseModel):
    upload_id: str
    question_id: str
    size: int
    offset: int
    complete: bool


@router.post(
    "/questions/{question_id}/uploads",
    status_code=201,
    summary="Start a resumable upload (then PATCH chunks with Upload-Offset)",
)
async def create_upload(
    question_id: str, body: UploadCreate, runtime: Runtime, principal: Anyone
) -> UploadView:
    await _check_answer_allowed(runtime, question_id, principal.actor)
    state = await runtime.uploads.create(
        question_id,
        principal.actor.name,
        filename=body.filename,
        size=body.size,
        mime=body.mime.lower(),
        sha256=body.sha256.lower(),
    )
    return upload_view(state)


def upload_view(state: UploadState) -> UploadView:
    return UploadView(
        upload_id=state.id,
        question_id=state.question_id,
        size=state.size,
        offset=state.offset,
        complete=state.offset == state.size,
    )


async def _own_upload(runtime: TriageRuntime, upload_id: str, actor: Actor) -> UploadState:
    state = await runtime.uploads.status(upload_id)
    if state.owner != actor.name:
        raise UnknownUpload(f"no upload {upload_id!r}")  # another's upload: as if none
    return state


@router.get(
    "/uploads/{upload_id}", summary="How much of an upload arrived (the offset to resume at)"
)
async def upload_status(upload_id: str, runtime: Runtime, principal: Anyone) -> UploadView:
    return upload_view(await _own_upload(runtime, upload_id, principal.actor))


@router.patch("/uploads/{upload_id}", summary="Append a chunk at Upload-Offset (raw body)")
async def upload_chunk(
    upload_id: str, request: Request, runtime: Runtime, principal: Anyone
) -> UploadView:
    await _own_upload(runtime, upload_id, principal.actor)
    header = request.headers.get("upload-offset", "")
    if not header.isdigit():
        raise Invalid("send the chunk's position as the Upload-Offset header")
    state = await runtime.uploads.append(upload_id, int(header), request.stream())
    return upload_view(state)


class FinishBody(BaseModel):
    language: str = Field(min_length=2, max_length=16)
    consent_given_by: str = Field(default="", max_length=128)
    consent_scope: str = Field(default="", max_length=64)
    caption: str = Field(default="", max_length=5000)
    transcript: str = Field(default="", max_length=50_000)


@router.post(
    "/uploads/{upload_id}/answer",
    status_code=201,
    summary="Turn a complete upload into the question's answer, with consent",
)
async def finish_upload(
    upload_id: str, body: FinishBody, runtime: Runtime, principal: Anyone
) -> AnswerView:
    state = await _own_upload(runtime, upload_id, principal.actor)
    question_id = state.question_id
    await _check_answer_allowed(runtime, question_id, principal.actor)
    runtime.store.check_consent(body.consent_given_by, body.consent_scope)
    stored = await runtime.uploads.complete(upload_id)
    return await _record(
        runtime,
        question_id,
        principal.actor,
        stored,
        caption=body.caption,
        transcript=body.transcript,
        language=body.language,
        consent_given_by=body.consent_given_by,
        consent_scope=body.consent_scope,
        owned=False,
    )


# Last: its path would otherwise catch /questions/{id}/take and the like.
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


__all__ = ["MediaError", "router"]
