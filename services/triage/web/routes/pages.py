"""The moderators' pages: the queue (filters, cluster groups, the rows fragment), a
question's timeline, quarantine, and answer review with its media panel. They read
through the store and render Jinja2 templates; everything they change goes through the
JSON API (``static/*.js``, with the session's CSRF token).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.common.messages import Decision, MentionClassified
from services.triage.web import domain as rules
from services.triage.web import policy
from services.triage.web.auth import Principal
from services.triage.web.deps import Runtime, TriageRuntime
from services.triage.web.exceptions import (
    Forbidden,
    NotFound,
)
from services.triage.web.models import Status
from services.triage.web.routes.questions import render_questions
from services.triage.web.routes.rendering import (
    MODERATORS,
    error_page,
    render,
    signed_in,
    templates,
)
from services.triage.web.schemas import (
    AnswerView,
    QuestionView,
    answer_view,
    event_view,
    team_view,
)
from services.triage.web.store import QuestionFilter
from services.triage.web.store.questions import QueueKey

log = logging.getLogger(__name__)


#: Rows the queue page shows at once ("Show more questions" loads the next ones).
QUEUE_PAGE = 100
#: Most rows a refresh of the pages already loaded sends back.
QUEUE_REFRESH_MAX = 2000

#: The queue's status choices (value → label); ``new`` is the default view.
STATUS_CHOICES: tuple[tuple[str, str], ...] = (
    ("new", "new (to triage)"),
    ("approved", "approved (to assign)"),
    ("new,approved", "new and approved"),
    ("assigned", "assigned"),
    ("recorded", "recorded (answer to review)"),
    ("answered", "answered"),
    ("published", "published"),
    ("rejected", "rejected"),
    ("dropped", "dropped"),
    ("quarantined", "quarantined"),
    ("", "any status"),
)
DEFAULT_STATUS = "new"

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class QueueQuery:
    """The queue page's filters as the form sends them (strings kept for the form)."""

    status: str = DEFAULT_STATUS
    q: str = ""
    language: str = ""
    decision: str = ""
    min_priority: int | None = None
    max_priority: int | None = None
    min_offensive: float | None = None
    max_offensive: float | None = None
    tag: str = ""
    #: Only the questions given to the signed-in person.
    mine: bool = False
    #: Values that were ignored, with why (shown above the list).
    problems: tuple[str, ...] = ()

    @property
    def statuses(self) -> tuple[Status, ...]:
        return tuple(Status(s) for s in self.status.split(",") if s)

    def filters(self, me: str | None = None) -> QuestionFilter:
        return QuestionFilter(
            assignee=me if self.mine else None,
            statuses=self.statuses,
            language=self.language or None,
            decision=Decision(self.decision) if self.decision else None,
            text=self.q.lstrip("@") or None,  # "@handle" finds the author
            min_priority=self.min_priority,
            max_priority=self.max_priority,
            min_offensive=self.min_offensive,
            max_offensive=self.max_offensive,
            tag=self.tag or None,
        )

    def query_string(self) -> str:
        values = {
            "status": self.status,
            "q": self.q,
            "language": self.language,
            "decision": self.decision,
            "min_priority": self.min_priority,
            "max_priority": self.max_priority,
            "min_offensive": self.min_offensive,
            "max_offensive": self.max_offensive,
            "tag": self.tag,
            "mine": "1" if self.mine else None,
        }
        return urlencode({k: v for k, v in values.items() if v not in (None, "") or k == "status"})


def parse_queue_query(params: Mapping[str, str]) -> QueueQuery:
    """Read the filters leniently: a value that makes no sense is ignored and said so."""
    problems: list[str] = []
    status = params.get("status", DEFAULT_STATUS).strip()
    known = {s.value for s in Status}
    if any(s not in known for s in status.split(",") if s):
        problems.append(f"unknown status {status!r}: showing new questions")
        status = DEFAULT_STATUS
    decision = params.get("decision", "").strip()
    if decision and decision not in {d.value for d in Decision}:
        problems.append(f"unknown decision {decision!r} ignored")
        decision = ""
    raw_tag = params.get("tag", "").strip()
    tag = rules.normalise_tag(raw_tag) or "" if raw_tag else ""
    if raw_tag and not tag:
        problems.append(f"{raw_tag[:40]!r} is not a tag; ignored")

    def number(name: str, kind: type[int] | type[float], low: float, high: float) -> Any:
        raw = params.get(name, "").strip()
        if not raw:
            return None
        try:
            value = kind(raw)
        except ValueError:
            problems.append(f"{name.replace('_', ' ')} {raw!r} is not a number; ignored")
            return None
        if not low <= value <= high:
            problems.append(f"{name.replace('_', ' ')} must be within {low}-{high}; ignored")
            return None
        return value

    return QueueQuery(
        status=status,
        q=params.get("q", "").strip()[:200],
        language=params.get("language", "").strip()[:16],
        decision=decision,
        min_priority=number("min_priority", int, 0, 100),
        max_priority=number("max_priority", int, 0, 100),
        min_offensive=number("min_offensive", float, 0.0, 1.0),
        max_offensive=number("max_offensive", float, 0.0, 1.0),
        tag=tag,
        mine=params.get("mine", "") in ("1", "on", "true"),
        problems=tuple(problems),
    )


@dataclass
class ClusterGroup:
    """The first question of a cluster on the page and the others like it."""

    leader: QuestionView
    members: list[QuestionView] = field(default_factory=list)


def group_clusters(items: Sequence[QuestionView]) -> list[ClusterGroup]:
    """Questions sharing a cluster id, grouped under the highest-priority one, in
    the order their leaders appear (the page's priority order)."""
    groups: list[ClusterGroup] = []
    by_cluster: dict[str, ClusterGroup] = {}
    for item in items:
        if item.cluster_id and item.cluster_id in by_cluster:
            by_cluster[item.cluster_id].members.append(item)
            continue
        group = ClusterGroup(item)
        groups.append(group)
        if item.cluster_id:
            by_cluster[item.cluster_id] = group
    return groups


def queue_key(q: QuestionView) -> str:
    """A question's place in the queue's order, as the page carries it (``after=``)."""
    return f"{q.priority}|{q.received_at.isoformat()}|{q.id}"


def parse_queue_key(raw: str | None) -> QueueKey | None:
    """The key :func:`queue_key` wrote, or None when it is missing or not one."""
    if not raw:
        return None
    try:
        priority, at, question_id = raw.split("|", 2)
        key = QueueKey(int(priority), datetime.fromisoformat(at), question_id[:64])
    except ValueError:
        return None
    # Priorities are 0-100: another would reach the database (a 32-bit column) as it is.
    if key.received_at.tzinfo is None or not 0 <= key.priority <= 100:
        return None
    return key


templates.env.globals["queue_key"] = queue_key
templates.env.globals["waiting"] = rules.waiting
templates.env.globals["assignment_warnings"] = lambda lang, team: rules.assignment_warnings(
    lang, " ".join(team.languages), team.remaining
)


async def _queue_context(
    runtime: TriageRuntime,
    principal: Principal,
    query: QueueQuery,
    *,
    after: QueueKey | None = None,
    through: QueueKey | None = None,
) -> dict[str, Any]:
    """One page of the queue (the first; the one ``after`` a key; or every one shown
    ``through`` a key, for a refresh), with what the cards need."""
    limit = QUEUE_REFRESH_MAX if through is not None else QUEUE_PAGE
    rows, total = await runtime.store.questions.page(
        query.filters(principal.actor.name), limit=limit + 1, after=after, through=through
    )
    more = len(rows) > limit or (through is not None and len(rows) < total)
    rows = rows[:limit]
    items = await render_questions(runtime, list(rows))
    loads = await runtime.store.teams.loads()
    suggested = {q.id: rules.suggest(q.lang, q.suggested_team, loads) for q in items}
    return {
        "query": query,
        "groups": group_clusters(items),
        "shown": len(items),
        "total": total,
        "next_key": queue_key(items[-1]) if more and items else "",
        "teams": [team_view(x) for x in loads],
        "suggested": suggested,
        "now": runtime.store.clock(),
        "me": principal.actor.name,
        "status_choices": STATUS_CHOICES,
        "decisions": [d.value for d in Decision],
        "tags_in_use": [t for t, _ in await runtime.store.tags.in_use()],
    }


@router.get("/queue")
async def queue_page(request: Request, runtime: Runtime) -> Response:
    who = await signed_in(request, runtime, *MODERATORS)
    if isinstance(who, Response):
        return who
    query = parse_queue_query(request.query_params)
    # Read before the list: the live stream resumes here, so nothing falls in between.
    last_event = await runtime.store.questions.last_event_id()
    context = await _queue_context(runtime, who, query)
    return render(request, "queue.html", {**context, "last_event": last_event}, principal=who)


@router.get("/queue/items")
async def queue_items(request: Request, runtime: Runtime) -> Response:
    """The queue's list and team panel alone: what the filters form (htmx) and the
    live updates (queue.js) swap in. ``through``: every question up to that key (the
    pages the moderator already loaded stay)."""
    who = await signed_in(request, runtime, *MODERATORS)
    if isinstance(who, Response):
        return who
    query = parse_queue_query(request.query_params)
    through = parse_queue_key(request.query_params.get("through"))
    context = await _queue_context(runtime, who, query, through=through)
    return render(
        request,
        "_queue_body.html",
        context,
        principal=who,
        headers={"HX-Replace-Url": "/queue?" + query.query_string()},
    )


@router.get("/queue/more")
async def queue_more(request: Request, runtime: Runtime) -> Response:
    """The next page of the queue: the questions after ``after`` (keyset on the
    queue's order, so rows arriving or leaving meanwhile neither repeat nor skip)."""
    who = await signed_in(request, runtime, *MODERATORS)
    if isinstance(who, Response):
        return who
    query = parse_queue_query(request.query_params)
    after = parse_queue_key(request.query_params.get("after"))
    if after is None:
        return error_page(request, 422, "after= must be a key from the queue page", principal=who)
    context = await _queue_context(runtime, who, query, after=after)
    return render(request, "_queue_more.html", context, principal=who)


# --- one question ---------------------------------------------------------------------


#: Timeline events the question page counts but does not list.
TIMELINE_NOISE = frozenset({"claimed", "released", "team_claimed", "team_released"})


@dataclass(frozen=True)
class ReplyRow:
    """One reply of the question's answers, to whichever asker of its cluster."""

    reply: Any
    author_handle: str
    question_id: str


@router.get("/questions/{question_id}")
async def question_page(question_id: str, request: Request, runtime: Runtime) -> Response:
    who = await signed_in(request, runtime, *MODERATORS)
    if isinstance(who, Response):
        return who
    try:
        row = await runtime.store.questions.get(question_id)
        timeline = [event_view(e) for e in await runtime.store.questions.timeline(question_id)]
        rows = await runtime.store.answers.of_question(question_id)
        statuses = await runtime.store.media.statuses([a for a, _ in rows])
        answers = [answer_view(a, c, statuses[a.id]) for a, c in rows]
        replies = await runtime.store.answers.replies([a.id for a, _ in rows])
        history, blocked = await runtime.store.questions.by_author(row)
    except NotFound as exc:
        return error_page(request, 404, exc.message, principal=who)
    view = (await render_questions(runtime, [row]))[0]
    loads = await runtime.store.teams.loads()
    people = await runtime.accounts.people_for(row.team_id)
    # Claims and releases are who-looked-at-it noise: counted, not listed.
    noise = [e for e in timeline if e.event in TIMELINE_NOISE]
    asked_at = MentionClassified.model_validate_json(row.classified_json).mention.created_at
    return render(
        request,
        "question.html",
        {
            "q": view,
            "asked_at": asked_at,
            "history": history,
            "author_blocked": blocked,
            "replies": [ReplyRow(r, q.author_handle, q.id) for r, q in replies],
            "timeline": [e for e in timeline if e.event not in TIMELINE_NOISE],
            "hidden_events": len(noise),
            "answers": answers,
            "teams": [team_view(x) for x in loads],
            "people": people,
            "suggestion": rules.suggest(view.lang, view.suggested_team, loads),
            "now": runtime.store.clock(),
            "me": who.actor.name,
        },
        principal=who,
    )


@router.get("/quarantine")
async def quarantine_page(request: Request, runtime: Runtime) -> Response:
    who = await signed_in(request, runtime, *MODERATORS)
    if isinstance(who, Response):
        return who
    rows, total = await runtime.store.questions.page(
        QuestionFilter(statuses=(Status.QUARANTINED,)), limit=200
    )
    items = await render_questions(runtime, list(rows))
    return render(
        request,
        "quarantine.html",
        {"items": items, "total": total, "now": runtime.store.clock(), "me": who.actor.name},
        principal=who,
    )


@dataclass(frozen=True)
class Review:
    answer: AnswerView
    question: QuestionView


@router.get("/answers")
async def answers_page(request: Request, runtime: Runtime) -> Response:
    who = await signed_in(request, runtime, *MODERATORS)
    if isinstance(who, Response):
        return who
    pending = await runtime.store.answers.pending()
    questions = {q.id: q for q in await render_questions(runtime, [q for _, q, _ in pending])}
    statuses = await runtime.store.media.statuses([a for a, _, _ in pending])
    reviews = [
        Review(answer_view(answer, consent, statuses[answer.id]), questions[question.id])
        for answer, question, consent in pending
    ]
    return render(request, "answers.html", {"reviews": reviews}, principal=who)


@router.get("/answers/{answer_id}/media-panel")
async def media_panel(answer_id: str, request: Request, runtime: Runtime) -> Response:
    """An answer's media status alone (what the review page polls while work runs)."""
    who = await signed_in(request, runtime)
    if isinstance(who, Response):
        return who
    try:
        answer, consent = await runtime.store.answers.get(answer_id)
        policy.check_answer(who.actor, answer.team_id)
    except (Forbidden, NotFound) as exc:
        return error_page(request, exc.status, exc.message, principal=who)
    status = (await runtime.store.media.statuses([answer]))[answer.id]
    return render(
        request, "_media_panel.html", {"a": answer_view(answer, consent, status)}, principal=who
    )
