"""The model's pages: ``/model`` (the live version and its metrics, candidates with
the gate's reasons, retrain jobs with their progress, rollback, and the agreement
between the model and the moderators per version, as a chart) and ``/model/unsure``
(the questions the model is least sure of, to label first). Changes go through the
JSON API (``static/model.js``, ``static/labels.js``)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.triage.web.deps import Runtime
from services.triage.web.models import Role
from services.triage.web.routes.learning import model_state
from services.triage.web.routes.questions import render_questions
from services.triage.web.routes.rendering import MODERATORS, render, signed_in
from services.triage.web.store.learning import Agreement

router = APIRouter(include_in_schema=False)

#: Chart geometry (SVG user units): one group of two bars per version.
CHART_HEIGHT = 160
BAR = 18
GROUP = 3 * BAR + 24


@dataclass(frozen=True)
class Bar:
    x: int
    height: int
    share: float | None
    label: str


@dataclass(frozen=True)
class Group:
    x: int
    row: Agreement
    restored: Bar
    flagged: Bar


def chart(rows: list[Agreement]) -> list[Group]:
    """Two bars per version, oldest first: the share of its auto-quarantines moderators
    restored (lower is better) and the share of moderators' quarantines it had flagged
    (higher is better)."""

    def bar(x: int, share: float | None, what: str) -> Bar:
        text = "no data" if share is None else f"{share:.0%}"
        return Bar(x, round((share or 0.0) * CHART_HEIGHT), share, f"{what}: {text}")

    groups = []
    for i, row in enumerate(rows):
        x = 40 + i * GROUP
        groups.append(
            Group(
                x,
                row,
                bar(x, row.restored_share, "auto-quarantines restored"),
                bar(x + BAR + 4, row.flagged_share, "moderator quarantines flagged"),
            )
        )
    return groups


@router.get("/model")
async def model_page(request: Request, runtime: Runtime) -> Response:
    who = await signed_in(request, runtime, *MODERATORS)
    if isinstance(who, Response):
        return who
    state = await model_state(runtime)
    rows = await runtime.store.labels.agreement()
    return render(
        request,
        "model.html",
        {
            "state": state,
            "groups": chart(rows),
            "chart_height": CHART_HEIGHT,
            "chart_width": 60 + max(1, len(rows)) * GROUP,
            "bar": BAR,
            "is_admin": who.role is Role.ADMIN,
        },
        principal=who,
    )


@router.get("/model/unsure")
async def unsure_page(request: Request, runtime: Runtime) -> Response:
    who = await signed_in(request, runtime, *MODERATORS)
    if isinstance(who, Response):
        return who
    pairs = await runtime.store.labels.unsure(limit=100)
    views = await render_questions(runtime, [q for q, _ in pairs])
    items = [(view, m) for view, (_, m) in zip(views, pairs, strict=True)]
    return render(request, "unsure.html", {"items": items}, principal=who)
