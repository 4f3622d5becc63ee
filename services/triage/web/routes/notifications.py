"""What each signed-in person is told, under ``/api/notifications``: the list (newest
first), the unread count the pages' badge polls, and marking them read; and the
``/notifications`` page that lists them (``pages``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.triage.web.deps import MAX_ID, Anyone, Runtime
from services.triage.web.exceptions import Forbidden
from services.triage.web.routes.rendering import render, signed_in

router = APIRouter(prefix="/api", tags=["api"])
pages = APIRouter(include_in_schema=False)


class NotificationView(BaseModel):
    id: int
    kind: str
    text: str
    link: str
    question_id: str | None
    created_at: datetime
    read: bool


class Unread(BaseModel):
    unread: int


class ReadBody(BaseModel):
    #: Those notifications; none given: every one.
    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(default=None, max_length=500)


def _user_id(principal: Anyone) -> int:
    if principal.actor.user_id is None:
        raise Forbidden("notifications are for people who sign in")
    return principal.actor.user_id


async def _views(runtime: Runtime, user_id: int) -> list[NotificationView]:
    return [
        NotificationView(
            id=n.id,
            kind=n.kind,
            text=n.text,
            link=n.link,
            question_id=n.question_id,
            created_at=n.created_at,
            read=n.read_at is not None,
        )
        for n in await runtime.store.notifications.recent(user_id)
    ]


@router.get("/notifications", summary="My notifications, newest first")
async def notifications(runtime: Runtime, principal: Anyone) -> list[NotificationView]:
    return await _views(runtime, _user_id(principal))


@router.get("/notifications/unread-count", summary="How many of my notifications are unread")
async def unread_count(runtime: Runtime, principal: Anyone) -> Unread:
    return Unread(unread=await runtime.store.notifications.unread(_user_id(principal)))


@router.post("/notifications/read", summary="Mark my notifications read (those ids, or all)")
async def mark_read(body: ReadBody, runtime: Runtime, principal: Anyone) -> Unread:
    user_id = _user_id(principal)
    await runtime.store.notifications.mark_read(user_id, body.ids)
    return Unread(unread=await runtime.store.notifications.unread(user_id))


@pages.get("/notifications")
async def notifications_page(request: Request, runtime: Runtime) -> Response:
    """The list; the page marks them read once shown (``static/common.js``)."""
    who = await signed_in(request, runtime)
    if isinstance(who, Response):
        return who
    items = await _views(runtime, who.actor.user_id) if who.actor.user_id is not None else []
    return render(request, "notifications.html", {"items": items}, principal=who)
