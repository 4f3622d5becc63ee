"""Replies to our answers: the replies written under the campaign's published answers,
hidden, kept or waiting, with one-key undo (unhide), the timeline of who decided
what, the alerts (threats, doxxing, pile-ons) and the people whose publishing is
paused. The page (``GET /replies``) reads through the store; every change goes
through the JSON API (``static/replies.js``, with the session's CSRF token).

A reply id is ``<platform>:<native id>`` (a Bluesky one holds slashes), so it
travels in the body or the query, never in the path."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field, StringConstraints

from services.triage.web.deps import Moderator, Runtime
from services.triage.web.models import AnswerReply, ProtectionAlert, ReplyEvent, WatchState
from services.triage.web.routes.rendering import MODERATORS, render, signed_in
from services.triage.web.schemas import from_row
from services.triage.web.store.protection import STATES

router = APIRouter(tags=["protection"])

ReplyIdText = Annotated[str, Field(min_length=3, max_length=137)]
#: The person as their consent names them (trimmed, at most 128 characters, as consents
#: are stored): a pause of " Amina" matched no consent, so it held nothing back. Not
#: blank: the pause goes to the publisher as a command that names the person.
SpeakerRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


class ReplyView(BaseModel):
    reply_id: str
    platform: str
    native_id: str
    #: ``reply`` or ``quote``.
    kind: str
    answer_post_id: str
    question_id: str
    speaker_ref: str
    author_handle: str
    text: str
    url: str | None
    offensive: float
    hate: float
    verdict: str
    rule: str
    reasons: list[str]
    escalations: list[str]
    state: str
    sticky: bool
    decided_by: str
    how: str
    error: str | None
    received_at: datetime
    #: Blurred on the page: what the rules would hide.
    sensitive: bool


class EventView(BaseModel):
    at: datetime
    actor: str
    event: str
    detail: str


class AlertView(BaseModel):
    id: int
    kind: str
    question_id: str
    speaker_ref: str
    answer_post_id: str
    reply_id: str | None
    detail: str
    created_at: datetime
    acknowledged_by: str | None


class ReplyIdBody(BaseModel):
    reply_id: ReplyIdText


class PauseBody(BaseModel):
    speaker_ref: SpeakerRef
    reason: str = Field(default="", max_length=1000)


class ResumeBody(BaseModel):
    speaker_ref: SpeakerRef


def reply_view(row: AnswerReply) -> ReplyView:
    return from_row(
        ReplyView,
        row,
        reasons=list(json.loads(row.reasons_json or "[]")),
        escalations=[e for e in row.escalations.split(",") if e],
        sensitive=row.verdict == "hide",
    )


def event_view(row: ReplyEvent) -> EventView:
    return from_row(EventView, row)


def alert_view(row: ProtectionAlert) -> AlertView:
    return from_row(AlertView, row)


def _states(raw: str | None) -> list[str]:
    wanted = [s for s in (raw or "").split(",") if s]
    return [s for s in wanted if s in {state.value for state in STATES}]


# --- the page ---------------------------------------------------------------------


@router.get("/replies", include_in_schema=False)
async def replies_page(request: Request, runtime: Runtime, state: str | None = None) -> Response:
    who = await signed_in(request, runtime, *MODERATORS)
    if isinstance(who, Response):
        return who
    protection = runtime.store.protection
    rows = await protection.replies(_states(state))
    timelines = {r.reply_id: await protection.timeline(r.reply_id) for r in rows[:200]}
    return render(
        request,
        "replies.html",
        {
            "items": [reply_view(r) for r in rows],
            "timelines": {k: [event_view(e) for e in v] for k, v in timelines.items()},
            "counts": await protection.counts(),
            "alerts": [alert_view(a) for a in await protection.alerts()],
            "paused": await protection.paused(),
            "states": [s.value for s in WatchState],
            "state": state or "",
        },
        principal=who,
    )


# --- the JSON API -------------------------------------------------------------------


@router.get("/api/replies", summary="Replies to our answers")
async def list_replies(
    runtime: Runtime,
    _: Moderator,
    state: Annotated[str | None, Query(description="comma-separated states")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[ReplyView]:
    rows = await runtime.store.protection.replies(_states(state), limit=limit)
    return [reply_view(r) for r in rows]


@router.get("/api/replies/timeline", summary="Who decided what about one reply")
async def reply_timeline(
    runtime: Runtime, _: Moderator, reply_id: Annotated[str, Query(max_length=137)]
) -> list[EventView]:
    return [event_view(e) for e in await runtime.store.protection.timeline(reply_id)]


@router.post("/api/replies/unhide", summary="Show a reply again (never hidden again by rules)")
async def unhide_reply(body: ReplyIdBody, runtime: Runtime, principal: Moderator) -> ReplyView:
    return reply_view(await runtime.store.protection.unhide(body.reply_id, principal.actor))


@router.post("/api/replies/hide", summary="Hide a reply")
async def hide_reply(body: ReplyIdBody, runtime: Runtime, principal: Moderator) -> ReplyView:
    return reply_view(await runtime.store.protection.hide(body.reply_id, principal.actor))


@router.get("/api/alerts", summary="Open protection alerts")
async def list_alerts(runtime: Runtime, _: Moderator) -> list[AlertView]:
    return [alert_view(a) for a in await runtime.store.protection.alerts()]


@router.post("/api/alerts/{alert_id}/acknowledge", summary="Acknowledge an alert")
async def acknowledge_alert(
    alert_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)], runtime: Runtime, principal: Moderator
) -> AlertView:
    return alert_view(await runtime.store.protection.acknowledge(alert_id, principal.actor))


@router.post("/api/speakers/pause", status_code=204, summary="Pause publishing a person")
async def pause_speaker(body: PauseBody, runtime: Runtime, principal: Moderator) -> None:
    await runtime.store.protection.pause(body.speaker_ref, principal.actor, body.reason)


@router.post("/api/speakers/resume", status_code=204, summary="Resume publishing a person")
async def resume_speaker(body: ResumeBody, runtime: Runtime, principal: Moderator) -> None:
    await runtime.store.protection.resume(body.speaker_ref, principal.actor)
