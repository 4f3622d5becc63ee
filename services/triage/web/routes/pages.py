"""The server-rendered pages: sign-in, the moderators' queue, a question's
timeline, quarantine, answer review, and each recording team's feed. They read
through the store and render Jinja2 templates (autoescaped); everything they
change goes through the JSON API (``static/*.js``, with the session's CSRF
token). A refusal is a page too: no session → ``/login``; wrong role or team →
a 403 page. ``POST /login`` uses a double-submit CSRF token (why: the triage
README, "Login CSRF").
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from services.common.media.profiles import clock
from services.common.messages import Decision
from services.triage.web import domain as rules
from services.triage.web import policy
from services.triage.web.auth import Principal
from services.triage.web.deps import COOKIE, Runtime, TriageRuntime, oauth2, optional_principal
from services.triage.web.exceptions import (
    Forbidden,
    NotFound,
    TooManyAttempts,
    TriageError,
    Unauthorized,
)
from services.triage.web.models import Role, Status
from services.triage.web.routes.account import client_address
from services.triage.web.routes.questions import render_questions
from services.triage.web.schemas import (
    AnswerView,
    FeedEntry,
    QuestionView,
    TeamView,
    answer_view,
    event_view,
    feed_entry,
    team_view,
)
from services.triage.web.store import QuestionFilter

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"

#: Cookie carrying the login form's double-submit CSRF token.
LOGIN_CSRF_COOKIE = "ta_login_csrf"
#: How long a login form stays usable (seconds).
LOGIN_FORM_TTL_S = 3600
#: Rows the queue page shows at once (the rest follow as rows leave).
QUEUE_PAGE = 100
#: Largest chunk the team page sends (a phone on a poor connection loses less per failure).
UPLOAD_CHUNK = 1024 * 1024
MODERATORS = (Role.ADMIN, Role.MODERATOR)

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


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _when_exact(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


@lru_cache(maxsize=64)
def _asset_version(path: str) -> str:
    file = (STATIC / path).resolve()
    if not file.is_relative_to(STATIC) or not file.is_file():
        return "0"
    return hashlib.sha256(file.read_bytes()).hexdigest()[:10]


def asset(path: str) -> str:
    """``/static/<path>?v=<content hash>``: browsers cache it until it changes."""
    return f"/static/{path}?v={_asset_version(path)}"


def _templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    env.filters["when"] = _when
    env.filters["when_exact"] = _when_exact
    env.filters["clock"] = clock
    env.globals["asset"] = asset
    return Jinja2Templates(env=env)


templates = _templates()


# --- who is asking --------------------------------------------------------------------


def home_of(principal: Principal) -> str:
    if principal.role is Role.TEAM and principal.actor.team_slug:
        return f"/team/{principal.actor.team_slug}"
    return "/queue"


def safe_next(value: str | None) -> str | None:
    """A same-site path to go back to after login, or None (no open redirects)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    principal: Principal | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    values: dict[str, Any] = {
        "principal": principal,
        "csrf_token": principal.csrf_token if principal else None,
        "is_moderator": principal is not None and principal.role in MODERATORS,
    }
    values.update(context or {})
    response = templates.TemplateResponse(
        request, name, values, status_code=status_code, headers=dict(headers or {})
    )
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def error_page(
    request: Request,
    status_code: int,
    message: str,
    *,
    principal: Principal | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict", 429: "Too many attempts"}
    return render(
        request,
        "error.html",
        {"title": titles.get(status_code, "Error"), "message": message, "status": status_code},
        principal=principal,
        status_code=status_code,
        headers=headers,
    )


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


async def signed_in(request: Request, runtime: TriageRuntime, *roles: Role) -> Principal | Response:
    """The signed-in person, or the page to answer instead: a redirect to the
    login page, or a 403 page when the role is not one of ``roles``."""
    try:
        principal = await optional_principal(request, runtime, await oauth2(request))
    except Unauthorized:
        return to_login(request)
    except Forbidden as exc:  # a state-changing page request without the CSRF token
        return error_page(request, 403, exc.message)
    if principal is None:
        return to_login(request)
    if roles and principal.role not in roles:
        return error_page(
            request,
            403,
            "This page is for " + " and ".join(f"{r.value}s" for r in roles) + ".",
            principal=principal,
        )
    return principal


def _same_origin(request: Request) -> bool:
    """False when the browser says the form was posted from another site.

    ``Sec-Fetch-Site`` (sent by every current browser) is the browser's own verdict
    and survives proxies that rewrite the scheme or ``Host``; without it, the host in
    ``Origin`` must be this request's ``Host``. Neither header: no verdict (the
    double-submit token still decides)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in {"same-origin", "none"}
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


# --- sign in and out ------------------------------------------------------------------


def _login_page(
    request: Request,
    token: str,
    *,
    next_path: str | None,
    error: str | None = None,
    username: str = "",
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "next": next_path or "", "error": error, "username": username},
        status_code=status_code,
        headers=headers,
    )
    runtime: TriageRuntime = request.app.state.runtime
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_FORM_TTL_S,
        path="/login",
        secure=runtime.settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


def _login_token(request: Request) -> str:
    """The login form's token: the browser's current one when it looks like ours."""
    current = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if 20 <= len(current) <= 64 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(24)


@router.get("/login")
async def login_form(request: Request, runtime: Runtime) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    try:
        principal = await optional_principal(request, runtime, await oauth2(request))
    except TriageError:
        principal = None
    if principal is not None:
        return RedirectResponse(next_path or home_of(principal), status_code=303)
    return _login_page(request, _login_token(request), next_path=next_path)


@router.post("/login")
async def login(request: Request, runtime: Runtime) -> Response:
    form = await request.form()

    def field(name: str, limit: int) -> str:
        value = form.get(name)
        return value[:limit] if isinstance(value, str) else ""

    username, password = field("username", 64), field("password", 256)
    next_path = safe_next(field("next", 2000))
    given, expected = field("csrf_token", 128), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if (
        not _same_origin(request)
        or not given
        or not expected
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        return _login_page(
            request,
            secrets.token_urlsafe(24),  # a token someone else may have planted is replaced
            next_path=next_path,
            username=username,
            error="The sign-in form had expired or came from another site. Please try again.",
            status_code=403,
        )
    try:
        token, principal = await runtime.accounts.login(
            username, password, address=client_address(request), kind="web"
        )
    except TooManyAttempts as exc:
        return _login_page(
            request,
            expected,
            next_path=next_path,
            username=username,
            error=f"{exc.message} (about {max(1, exc.retry_after_s // 60)} minutes).",
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    except Unauthorized:
        return _login_page(
            request,
            expected,
            next_path=next_path,
            username=username,
            error="Wrong user name or password.",
            status_code=401,
        )
    # A session the browser already had ends here (no two live sessions per browser).
    old = request.cookies.get(COOKIE)
    if old:
        previous = await runtime.accounts.resolve(old)
        if previous is not None:
            await runtime.accounts.logout(previous)
    response = RedirectResponse(next_path or home_of(principal), status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=runtime.settings.session_ttl_s,
        path="/",
        secure=runtime.settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, runtime: Runtime) -> Response:
    try:
        principal = await optional_principal(request, runtime, await oauth2(request))
    except Forbidden as exc:
        return error_page(request, 403, exc.message)
    except Unauthorized:
        principal = None
    if principal is not None:
        await runtime.accounts.logout(principal)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/")
async def index(request: Request, runtime: Runtime) -> Response:
    who = await signed_in(request, runtime)
    if isinstance(who, Response):
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(home_of(who), status_code=303)


# --- the queue ------------------------------------------------------------------------


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
    #: Values that were ignored, with why (shown above the list).
    problems: tuple[str, ...] = ()

    @property
    def statuses(self) -> tuple[Status, ...]:
        return tuple(Status(s) for s in self.status.split(",") if s)

    def filters(self) -> QuestionFilter:
        return QuestionFilter(
            statuses=self.statuses,
            language=self.language or None,
            decision=Decision(self.decision) if self.decision else None,
            text=self.q.lstrip("@") or None,  # "@handle" finds the author
            min_priority=self.min_priority,
            max_priority=self.max_priority,
            min_offensive=self.min_offensive,
            max_offensive=self.max_offensive,
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


async def _queue_context(
    runtime: TriageRuntime, principal: Principal, query: QueueQuery
) -> dict[str, Any]:
    rows, total = await runtime.store.questions.page(query.filters(), limit=QUEUE_PAGE)
    items = await render_questions(runtime, list(rows))
    loads = await runtime.store.teams.loads()
    suggested = {q.id: rules.suggest_team(q.lang, q.suggested_team, loads) for q in items}
    return {
        "query": query,
        "groups": group_clusters(items),
        "shown": len(items),
        "total": total,
        "teams": [team_view(x) for x in loads],
        "suggested": suggested,
        "now": runtime.store.clock(),
        "me": principal.actor.name,
        "status_choices": STATUS_CHOICES,
        "decisions": [d.value for d in Decision],
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
    live updates (queue.js) swap in."""
    who = await signed_in(request, runtime, *MODERATORS)
    if isinstance(who, Response):
        return who
    query = parse_queue_query(request.query_params)
    context = await _queue_context(runtime, who, query)
    return render(
        request,
        "_queue_body.html",
        context,
        principal=who,
        headers={"HX-Replace-Url": "/queue?" + query.query_string()},
    )


# --- one question ---------------------------------------------------------------------


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
    except NotFound as exc:
        return error_page(request, 404, exc.message, principal=who)
    view = (await render_questions(runtime, [row]))[0]
    loads = await runtime.store.teams.loads()
    return render(
        request,
        "question.html",
        {
            "q": view,
            "timeline": timeline,
            "answers": answers,
            "teams": [team_view(x) for x in loads],
            "suggested": rules.suggest_team(view.lang, view.suggested_team, loads),
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


# --- a recording team -----------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """One assigned question on the team page, with its latest answer if any."""

    entry: FeedEntry
    answer: AnswerView | None


async def _team_cards(runtime: TriageRuntime, slug: str, principal: Principal) -> list[Card]:
    items = await runtime.store.teams.feed(slug, principal.actor, limit=200)
    now = runtime.store.clock()
    latest = await runtime.store.answers.latest([item.question.id for item in items])
    statuses = await runtime.store.media.statuses([a for a, _ in latest.values()])
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
