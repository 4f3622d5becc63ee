"""The triage web for page and browser tests: the real app (``create_app`` with
Kafka off) on a fresh SQLite file and media folder, seeded with an admin, a
moderator, two recording teams with one member each, and a handful of
questions; served through ``TestClient`` (:func:`web_app`) or by uvicorn on a
free port in a background thread (:func:`live_web`, for a browser).

Both run the app on an event loop of their own; :meth:`WebApp.call` runs a
coroutine function of the store there (``app.call(app.store.questions.ingest, ...)``).

The fixtures (``classified``, ``web_app``, ``live_web``) are in
``tests/triage/web/conftest.py``.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.common.messages import (
    Decision,
    MentionClassified,
    PriorityReason,
    Scores,
)
from services.triage.web.app import Overrides, create_app
from services.triage.web.auth import hash_password
from services.triage.web.config import WebSettings
from services.triage.web.deps import TriageRuntime
from services.triage.web.models import Role, Team, User
from services.triage.web.store import Actor, TriageStore
from tests.helpers.live import LiveServer
from tests.triage.web.helpers.store import ClassifiedFactory

T = TypeVar("T")

#: Every seeded person's password (long enough for the accounts' minimum).
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Person:
    username: str
    role: Role
    team: str | None = None
    password: str = PASSWORD


ADMIN = Person("admin", Role.ADMIN)
MODERATOR = Person("moira", Role.MODERATOR)
TEAM_A = Person("amani", Role.TEAM, team="camp-a")
TEAM_B = Person("bakari", Role.TEAM, team="camp-b")
PEOPLE = (ADMIN, MODERATOR, TEAM_A, TEAM_B)

#: (slug, name, languages, capacity) of the seeded teams, in the order the queue lists them.
TEAMS = (
    ("camp-a", "Camp A", ("en",), 20),
    ("camp-b", "Camp B", ("fr", "ar"), 5),
)


def web_settings(root: Path, **overrides: Any) -> WebSettings:
    """Settings for a test app: a SQLite file and media folder under ``root``,
    plain-HTTP cookies, no consumers, small upload chunks (several per test video)."""
    fields: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{root / 'triage.db'}",
        "media_dir": root / "media",
        "cookie_secure": False,
        "consume": False,
        "upload_chunk_max_bytes": 1024,
        "admin_user": None,
        "admin_password": None,
    }
    fields.update(overrides)
    return WebSettings(**fields)


def make_app(settings: WebSettings) -> FastAPI:
    return create_app(settings, kafka=None, overrides=Overrides(kafka=False))


def classify(
    make: ClassifiedFactory,
    text: str,
    *,
    priority: int = 50,
    lang: str = "en",
    offensive: float = 0.02,
    hate: float = 0.01,
    decision: Decision = Decision.REVIEW,
    cluster_id: str | None = None,
    team: str | None = None,
    rule: str = "default-review",
    reasons: tuple[PriorityReason, ...] = (),
    summoned: bool | None = True,
) -> MentionClassified:
    return make(
        mention={"text": text, "lang": lang, "summoned": summoned},
        scores=Scores(offensive=offensive, hate=hate, question=0.9, relevance=0.8),
        priority=priority,
        reasons=reasons or (PriorityReason(factor="question", points=30.0, detail="asks"),),
        decision=decision,
        cluster_id=cluster_id,
        team=team,
        rule=rule,
    )


def seed_questions(make: ClassifiedFactory) -> dict[str, MentionClassified]:
    """The questions every test app starts with, by name."""
    return {
        "urgent": classify(
            make,
            "Do you get to talk to your family back home?",
            priority=92,
            team="camp-a",
            reasons=(
                PriorityReason(factor="question", points=40.0, detail="a direct question"),
                PriorityReason(factor="reach", points=22.0, detail="12k followers"),
            ),
        ),
        "abusive": classify(
            make,
            "why should we care about you parasites, go back",
            priority=71,
            offensive=0.91,
            hate=0.74,
            rule="abuse-review",
        ),
        "food-1": classify(
            make, "What food do you miss the most?", priority=55, cluster_id="c-food"
        ),
        "food-2": classify(make, "what food do you miss most??", priority=41, cluster_id="c-food"),
        "french": classify(
            make, "Qu'est-ce qui vous manque le plus ?", priority=33, lang="fr", team="camp-b"
        ),
        # A hashtag-only X post: X will not let the campaign answer it by reply.
        "quiet": classify(make, "How is school in the camp?", priority=8, summoned=False),
        "quarantined": classify(
            make,
            "threatening garbage that nobody should read",
            priority=5,
            offensive=0.98,
            hate=0.95,
            decision=Decision.QUARANTINE,
            rule="abuse-quarantine",
        ),
    }


@functools.lru_cache(maxsize=8)
def _password_hash(password: str) -> str:
    return hash_password(password)  # Argon2id is slow on purpose: once per password


async def add_people(store: TriageStore, people: Iterable[Person]) -> None:
    """User rows for ``people`` (what ``Accounts.upsert_user`` writes, with the
    password hashed once per test run rather than once per person and test)."""
    async with store.sessions() as session:
        teams = {t.slug: t.id for t in await session.scalars(select(Team))}
        for person in people:
            session.add(
                User(
                    username=person.username,
                    password_hash=_password_hash(person.password),
                    role=person.role.value,
                    team_id=teams[person.team] if person.team else None,
                    active=True,
                    created_at=store.clock(),
                )
            )
        await session.commit()


async def seed(runtime: TriageRuntime, make: ClassifiedFactory) -> dict[str, str]:
    """Teams, people and questions; returns question ids by name."""
    for slug, name, languages, capacity in TEAMS:
        await runtime.store.teams.upsert(
            slug, name=name, languages=languages, capacity=capacity, actor=Actor.system("test")
        )
    await add_people(runtime.store, PEOPLE)
    ids: dict[str, str] = {}
    for name, classified in seed_questions(make).items():
        question = await runtime.store.questions.ingest(classified)
        assert question is not None
        ids[name] = question.id
    return ids


@dataclass
class WebApp:
    """A running, seeded app and a way to reach its event loop."""

    app: FastAPI
    settings: WebSettings
    runner: Callable[..., Any]
    questions: dict[str, str] = field(default_factory=dict)
    base_url: str = "http://testserver"

    @property
    def runtime(self) -> TriageRuntime:
        runtime: TriageRuntime = self.app.state.runtime
        return runtime

    @property
    def store(self) -> TriageStore:
        return self.runtime.store

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run ``await fn(*args, **kwargs)`` on the app's event loop."""
        result: T = self.runner(fn, *args, **kwargs)
        return result

    def actor(self, person: Person) -> Actor:
        """``person`` as the store sees them acting (to act beside the browser)."""

        async def find() -> Actor:
            async with self.store.sessions() as session:
                user = await session.scalar(select(User).where(User.username == person.username))
                assert user is not None, f"{person.username} was not seeded"
                return Actor(
                    name=user.username,
                    role=person.role,
                    user_id=user.id,
                    team_id=user.team_id,
                    team_slug=person.team,
                )

        return self.call(find)

    def ingest(self, classified: MentionClassified) -> str:
        question = self.call(self.store.questions.ingest, classified)
        assert question is not None
        return question.id


@contextlib.contextmanager
def serve_test_client(
    root: Path, make: ClassifiedFactory, **settings: Any
) -> Iterator[tuple[WebApp, TestClient]]:
    app = make_app(web_settings(root, **settings))
    with TestClient(app, follow_redirects=False) as client:
        portal = client.portal
        assert portal is not None

        def run(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
            async def call() -> Any:
                return await fn(*args, **kwargs)

            return portal.call(call)

        web = WebApp(app, app.state.runtime.settings, run)
        web.questions = web.call(seed, web.runtime, make)
        yield web, client


@contextlib.contextmanager
def serve_live(root: Path, make: ClassifiedFactory, **settings: Any) -> Iterator[WebApp]:
    app = make_app(web_settings(root, **settings))
    server = LiveServer(app)
    server.start()
    try:
        web = WebApp(app, app.state.runtime.settings, server.run, base_url=server.base_url)
        web.questions = web.call(seed, web.runtime, make)
        yield web
    finally:
        server.stop()


# --- HTML helpers ---------------------------------------------------------------------------

_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_LOGIN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def login_form_token(html: str) -> str:
    found = _LOGIN_CSRF.search(html)
    assert found, "the login form has no csrf_token field"
    return found.group(1)


def page_csrf(html: str) -> str:
    found = _CSRF_META.search(html)
    assert found, "the page has no csrf-token meta"
    return found.group(1)


def sign_in(client: TestClient, person: Person, *, next_path: str = "") -> str:
    """Sign ``person`` in through the login form; returns the session's CSRF token."""
    form = client.get("/login")
    assert form.status_code == 200
    response = client.post(
        "/login",
        data={
            "username": person.username,
            "password": person.password,
            "csrf_token": login_form_token(form.text),
            "next": next_path,
        },
    )
    assert response.status_code == 303, response.text
    home = client.get(response.headers["location"])
    assert home.status_code == 200, home.text
    return page_csrf(home.text)
