"""Each recording team's page: its feed of assigned questions as cards (with the
latest answer and its media status), the cards fragment team.js merges in, and the
service worker that keeps the page usable offline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from services.triage.web import policy
from services.triage.web.auth import Principal
from services.triage.web.deps import Runtime, TriageRuntime
from services.triage.web.exceptions import (
    Forbidden,
    NotFound,
)
from services.triage.web.models import Role
from services.triage.web.routes.rendering import (
    error_page,
    render,
    signed_in,
)
from services.triage.web.schemas import (
    AnswerView,
    FeedEntry,
    TeamView,
    answer_view,
    feed_entry,
    team_view,
)

log = logging.getLogger(__name__)

#: Largest chunk the team page sends (a phone on a poor connection loses less per failure).
UPLOAD_CHUNK = 1024 * 1024

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Card:
    """One assigned question on the team page, with its latest answer if any."""

    entry: FeedEntry
    answer: AnswerView | None


async def _team_cards(runtime: TriageRuntime, slug: str, principal: Principal) -> list[Card]:
    items = await runtime.store.teams.feed(slug, principal.actor, limit=200)
    now = runtime.store.clock()
    latest = await runtime.store.answers.latest(
        [item.question.id for item in items], team_id=policy.answers_team(principal.actor)
    )
    statuses = await runtime.store.media.statuses([a for a, _ in latest.values()])
    # Most important first (the feed's own order, oldest assignment first, breaks ties).
    items = sorted(items, key=lambda item: -item.question.priority)
    return [
        Card(
            feed_entry(item, principal.actor.user_id, now),
            answer_view(*latest[item.question.id], statuses[latest[item.question.id][0].id])
            if item.question.id in latest
            else None,
        )
        for item in items
    ]


def _card_options(runtime: TriageRuntime) -> dict[str, Any]:
    return {
        "consent_scopes": runtime.settings.consent_scopes,
        "upload_types": runtime.settings.upload_types,
    }


async def _team_or_refusal(
    request: Request, runtime: TriageRuntime, slug: str
) -> tuple[Principal, TeamView, list[Card]] | Response:
    who = await signed_in(request, runtime)
    if isinstance(who, Response):
        return who
    if who.role is Role.TEAM and who.actor.team_slug != slug:
        return error_page(request, 403, "A team sees only its own feed.", principal=who)
    loads = {x.team.slug: x for x in await runtime.store.teams.loads()}
    if slug not in loads:
        return error_page(request, 404, f"There is no team {slug!r}.", principal=who)
    try:
        cards = await _team_cards(runtime, slug, who)
    except (Forbidden, NotFound) as exc:
        return error_page(request, exc.status, exc.message, principal=who)
    return who, team_view(loads[slug]), cards


@router.get("/team/{slug}")
async def team_page(slug: str, request: Request, runtime: Runtime) -> Response:
    found = await _team_or_refusal(request, runtime, slug)
    if isinstance(found, Response):
        return found
    who, team, cards = found
    settings = runtime.settings
    return render(
        request,
        "team.html",
        {
            **_card_options(runtime),
            "team": team,
            "cards": cards,
            "last_assignment": max((c.entry.assignment_id for c in cards), default=0),
            "chunk_bytes": min(UPLOAD_CHUNK, settings.upload_chunk_max_bytes),
            "max_bytes": settings.upload_max_bytes,
            "target_kbps": settings.phone_target_kbps,
            "max_long": settings.phone_max_long,
        },
        principal=who,
    )


@router.get("/team/{slug}/cards")
async def team_cards(slug: str, request: Request, runtime: Runtime) -> Response:
    """The team's cards alone: what team.js merges in when the feed changes."""
    found = await _team_or_refusal(request, runtime, slug)
    if isinstance(found, Response):
        return found
    who, _, cards = found
    return render(
        request, "_team_cards.html", {**_card_options(runtime), "cards": cards}, principal=who
    )


#: The team page's service worker (offline shell and feed), served from the root so its
#: scope covers the team pages.
SERVICE_WORKER = Path(__file__).resolve().parents[1] / "static" / "team-sw.js"


@router.get("/team-sw.js", include_in_schema=False)
async def service_worker() -> Response:
    return FileResponse(
        SERVICE_WORKER,
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"},
    )
