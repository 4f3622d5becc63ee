"""Composition root of the triage web: the database (migrated at start), the
accounts, the media store and uploads, the Kafka producer, the consumers of
``mentions.classified`` and the reply outcomes, the outbox relay, and the
FastAPI app (pages, JSON API, health, metrics) around them. Tests pass fakes
through :func:`create_app`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common import topics
from services.common.apidocs import install_api_docs
from services.common.bootstrap import ensure_topics
from services.common.consume import RecordHandler, consuming
from services.common.db import open_database
from services.common.http import BodySizeLimit, error_response, install_error_handlers
from services.common.kafka import (
    KafkaSettings,
    ProducerBrokerCheck,
    ResendingProducer,
    make_producer,
    start_when_reachable,
)
from services.common.messages import utcnow
from services.common.signing import SigningSettings
from services.common.tasks import BackgroundTasks, Run
from services.triage.rules import RulesFile, load_rules
from services.triage.web import metrics
from services.triage.web.auth import Accounts
from services.triage.web.config import WebSettings
from services.triage.web.consumers import (
    CLASSIFIED,
    PROTECTION,
    REPLIES,
    OutboxRelay,
    RecordHandlers,
    consume_loop,
)
from services.triage.web.db import migrate
from services.triage.web.deps import COOKIE, TriageRuntime
from services.triage.web.exceptions import (
    MediaError,
    OffsetMismatch,
    TooManyAttempts,
    TriageError,
    Unauthorized,
)
from services.triage.web.media import LocalMediaStore, MediaStore, Uploads
from services.triage.web.models import Role, Status
from services.triage.web.retrain import schedule as retrain_schedule
from services.triage.web.routes import (
    account,
    answers,
    health,
    learning,
    login,
    media,
    model_pages,
    notes,
    notifications,
    pages,
    protection,
    questions,
    review,
    tags,
    team_pages,
    teams,
    uploads,
)
from services.triage.web.seed import seed_demo
from services.triage.web.store import Clock, MediaPolicy, TriageStore
from services.triage.web.sweep import OrphanSweep

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: How long the web keeps trying to reach Kafka at start before giving up.
STARTUP_TIMEOUT_S = 120.0
#: How often the queue-depth gauges are refreshed and stale uploads expired (seconds).
HOUSEKEEPING_S = 15.0
#: How often what the media worker finished is taken in (seconds).
MEDIA_RESULTS_S = 1.0

#: Topics the triage web reads or writes (created at start when missing).
TOPICS = (
    topics.MENTIONS_CLASSIFIED,
    topics.QUESTIONS_ASSIGNED,
    topics.ANSWERS_RECORDED,
    topics.REPLIES_REQUESTED,
    topics.REPLIES_PUBLISHED,
    topics.REPLIES_FAILED,
    topics.CONSENT_WITHDRAWN,
    topics.REPLIES_CLASSIFIED,
    topics.REPLIES_ACTION,
    topics.REPLIES_MODERATED,
    topics.SPEAKERS_PAUSED,
)


@dataclass
class Overrides:
    """What a test passes instead of the real pieces."""

    media: MediaStore | None = None
    clock: Clock = utcnow
    #: Run the Kafka side (consumers, relay); off for tests of the HTTP side alone.
    kafka: bool = True


#: Postgres's refusals of text it cannot store (a NUL character, in text or in JSON):
#: what a request sent, never a fault of ours, so a 400 rather than a 500.
UNSTORABLE_TEXT = frozenset({"22021", "22P05"})


def install_triage_errors(app: FastAPI) -> None:
    async def on_triage_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TriageError)
        headers: dict[str, str] = {}
        details: dict[str, Any] | None = None
        if isinstance(exc, TooManyAttempts):
            headers["Retry-After"] = str(exc.retry_after_s)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="triage"'
        holder = getattr(exc, "holder", None)
        if holder is not None:
            until = getattr(exc, "until", None)
            details = {"holder": holder, "until": until.isoformat() if until else None}
        return error_response(
            exc.status, exc.message, code=exc.code, details=details, headers=headers
        )

    async def on_media_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MediaError)
        headers: dict[str, str] = {}
        details: dict[str, Any] | None = None
        if isinstance(exc, OffsetMismatch):
            headers["Upload-Offset"] = str(exc.expected)
            details = {"expected_offset": exc.expected}
        return error_response(exc.status, str(exc), code=exc.code, details=details, headers=headers)

    async def on_database_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DBAPIError)
        if getattr(exc.orig, "sqlstate", None) not in UNSTORABLE_TEXT:
            raise exc  # a fault of ours: the 500 it is
        log.info(
            "%s %s: text the database cannot store: %s", request.method, request.url.path, exc.orig
        )
        return error_response(
            400, "the request holds characters that cannot be stored (a NUL)", code="bad_request"
        )

    app.add_exception_handler(TriageError, on_triage_error)
    app.add_exception_handler(MediaError, on_media_error)
    app.add_exception_handler(DBAPIError, on_database_error)


#: Largest body of any request that is not an upload (forms, JSON).
SMALL_BODY_BYTES = 256 * 1024


class BodyLimits:
    """Body limits by route: a whole video on the multipart answer route, one chunk
    on a resumable upload's PATCH, and little everywhere else (a JSON or form body
    is read into memory, by the CSRF check before the route knows who may send it:
    a huge one must not be). Only a multipart body streams to disk, so only a
    multipart body gets the large limit."""

    def __init__(self, app: ASGIApp, *, upload_bytes: int, chunk_bytes: int) -> None:
        self.upload = BodySizeLimit(app, upload_bytes)
        self.chunk = BodySizeLimit(app, chunk_bytes)
        self.small = BodySizeLimit(app, SMALL_BODY_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/api/uploads/") and scope.get("method") == "PATCH":
            await self.chunk(scope, receive, send)
        elif (
            path.startswith("/api/questions/")
            and path.endswith("/answer")
            and _content_type(scope).startswith(b"multipart/form-data")
        ):
            await self.upload(scope, receive, send)
        else:
            await self.small(scope, receive, send)


def _content_type(scope: Scope) -> bytes:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            return bytes(value).lower()
    return b""


class SignedInApiDescription:
    """``/openapi.json`` (every route, every field) only for a signed-in person: a
    bearer token or a page session (what the browser sends from ``/docs``)."""

    def __init__(self, app: ASGIApp, *, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == self.path:
            request = Request(scope)
            runtime: TriageRuntime | None = getattr(request.app.state, "runtime", None)
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                token = request.cookies.get(COOKIE, "")
            if runtime is None or await runtime.accounts.resolve(token) is None:
                response = error_response(
                    401, "sign in to read the API description", code="unauthorized"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_internal_app(public: FastAPI) -> FastAPI:
    """The internal port's app: metrics, and liveness and readiness with their details,
    of the ``public`` app's running pieces (its state, once its lifespan has run)."""
    internal = FastAPI(
        title="takeaction triage (internal)", openapi_url=None, docs_url=None, redoc_url=None
    )
    internal.state = public.state
    internal.include_router(health.internal)
    return internal


class SecurityHeaders(BaseHTTPMiddleware):
    """No framing, no sniffing, no third-party anything (everything is vendored)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
            "style-src 'self'; "
            "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        )
        route = request.scope.get("route")
        metrics.REQUEST_SECONDS.labels(getattr(route, "path", "other")).observe(
            time.perf_counter() - started
        )
        return response


async def _housekeeping(store: TriageStore, uploads: Uploads) -> None:
    while True:
        try:
            counts = await store.questions.counts()
            for status in Status:  # an emptied status reads 0, not its last count
                metrics.QUEUE_DEPTH.labels(status.value).set(counts.by_status.get(status.value, 0))
            await uploads.expire()
        except Exception:  # the next round tries again
            log.exception("housekeeping failed")
        await asyncio.sleep(HOUSEKEEPING_S)


async def _media_results(store: TriageStore) -> None:
    """Take in the media worker's results: posters, transcripts (which ask for the
    renditions), renditions (on the timeline)."""
    while True:
        try:
            applied = await store.media.apply_finished()
            if applied:
                log.info("took in %d media results", applied)
        except Exception:  # the next round tries again
            log.exception("taking in media results failed")
        await asyncio.sleep(MEDIA_RESULTS_S)


async def bootstrap_admin(settings: WebSettings, accounts: Accounts) -> None:
    """Create the admin named by ``TRIAGE_ADMIN_USER`` (or reset its password)."""
    if settings.admin_user and settings.admin_password is not None:
        await accounts.upsert_user(
            settings.admin_user, settings.admin_password.get_secret_value(), Role.ADMIN
        )
        log.info("admin %s ready", settings.admin_user)


def create_app(
    settings: WebSettings | None = None,
    kafka: KafkaSettings | None = None,
    overrides: Overrides | None = None,
) -> FastAPI:
    settings = settings or WebSettings()
    kafka = kafka or KafkaSettings()
    command_keys = SigningSettings().command_keys()
    overrides = overrides or Overrides()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            engine = await open_database(
                stack, settings.database_url, schema=settings.database_schema, migrate=migrate
            )
            store = TriageStore(
                engine,
                claim_ttl_s=settings.claim_ttl_s,
                consent_scopes=settings.consent_scopes,
                media_policy=MediaPolicy(
                    captions=settings.media_captions, media_dir=settings.media_dir
                ),
                command_keys=command_keys,
                clock=overrides.clock,
            )
            accounts = Accounts(
                store,
                session_ttl_s=settings.session_ttl_s,
                max_failures=settings.login_max_failures,
                window_s=settings.login_window_s,
            )
            await bootstrap_admin(settings, accounts)
            if settings.demo_accounts:
                await seed_demo(store, accounts, load_rules(settings.rules_path), os.environ)
            media = overrides.media or LocalMediaStore(settings.media_dir)
            uploads = Uploads.from_settings(settings, media)
            runtime = TriageRuntime(
                settings=settings,
                store=store,
                accounts=accounts,
                media=media,
                uploads=uploads,
                broker=_NoBroker(),
            )
            runs: dict[str, Run] = {
                "housekeeping": lambda: _housekeeping(store, uploads),
                "media-results": lambda: _media_results(store),
            }
            if settings.orphan_sweep:
                runs["media-sweep"] = OrphanSweep(
                    settings.media_dir, store.media_refs, grace_s=settings.orphan_grace_s
                ).run
            if settings.retrain_every_h > 0:
                runs["retrain-schedule"] = lambda: retrain_schedule(
                    settings, store.labels, store.model_jobs
                )
            if overrides.kafka:
                runs |= await _kafka_side(settings, kafka, store, runtime, stack)
            # Entered last, so stopped first: before the producer and the engine.
            tasks = await stack.enter_async_context(BackgroundTasks())
            tasks.start_all(runs)
            runtime.tasks = tasks
            app.state.runtime = runtime
            log.info(
                "triage web ready on %s:%d (database %s, Kafka %s)",
                settings.host,
                settings.port,
                engine.url.render_as_string(),
                kafka.bootstrap_servers if overrides.kafka else "off",
            )
            try:
                yield
            finally:
                runtime.stopping.set()  # the live streams end; the tasks stop next

    app = FastAPI(
        title="takeaction triage",
        version="0.1.0",
        summary="The moderators' queue, the recording teams' feeds and their JSON API",
        lifespan=lifespan,
        docs_url=None,  # served by install_api_docs: vendored, offline, under the CSP
        redoc_url=None,
    )
    install_api_docs(app)
    install_error_handlers(app)
    install_triage_errors(app)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(SignedInApiDescription, path=app.openapi_url or "/openapi.json")
    app.add_middleware(
        BodyLimits,
        upload_bytes=settings.upload_max_bytes + 1024 * 1024,
        chunk_bytes=settings.upload_chunk_max_bytes + 64 * 1024,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(health.router)
    # questions' last: its catch-all action route would take the others' paths
    for routes in (
        account,
        teams,
        answers,
        review,
        notes,
        tags,
        notifications,
        media,
        uploads,
        protection,
        learning,
        questions,
    ):
        app.include_router(routes.router)
    for page_routes in (login, pages, team_pages, model_pages):
        app.include_router(page_routes.router)
    app.include_router(notifications.pages)
    return app


async def _kafka_side(
    settings: WebSettings,
    kafka: KafkaSettings,
    store: TriageStore,
    runtime: TriageRuntime,
    stack: contextlib.AsyncExitStack,
) -> dict[str, Run]:
    """Topics, the producer, the outbox relay and the consumers (as tasks to run)."""
    specs = [topics.spec_for(n) for n in TOPICS]
    specs += [topics.spec_for(topics.dlq(n)) for n in TOPICS]
    await ensure_topics(kafka, specs, attempts=int(STARTUP_TIMEOUT_S))
    relays: list[OutboxRelay] = []

    async def requeue(old: str, new: str) -> None:
        if not relays:  # raised: the watch asks again at its next look
            raise RuntimeError("the outbox relay is not there yet")
        await relays[0].on_new_epoch(old, new)

    def make() -> AIOKafkaProducer:
        made = make_producer(kafka)
        if isinstance(made, ResendingProducer):  # hooked before its epoch watch starts
            made.epoch.on_new_epoch(requeue, since_log=True)
        return made

    producer = await start_when_reachable(make, timeout_s=STARTUP_TIMEOUT_S)
    stack.push_async_callback(producer.stop)
    runtime.broker = ProducerBrokerCheck(producer)
    relay = OutboxRelay(store, producer, kafka, every_s=settings.outbox_every_s)
    relays.append(relay)
    store.on_outbox(relay.wake)  # a commit that wrote to the outbox wakes the relay
    runs: dict[str, Run] = {"outbox": relay.run}
    if settings.consume:
        handlers = RecordHandlers(store, RulesFile(settings.rules_path))

        def reading(name: str, group: str, handle: RecordHandler, *names: str) -> Run:
            return consuming(
                kafka,
                names,
                group=group,
                loop=lambda consumer: consume_loop(consumer, handle, name=name, producer=producer),
                startup_timeout_s=STARTUP_TIMEOUT_S,
            )

        runs["classified"] = reading(
            CLASSIFIED, settings.web_group, handlers.classified, topics.MENTIONS_CLASSIFIED
        )
        runs["replies"] = reading(
            REPLIES,
            f"{settings.web_group}-replies",
            handlers.reply_outcome,
            topics.REPLIES_PUBLISHED,
            topics.REPLIES_FAILED,
        )
        runs["protection"] = reading(
            PROTECTION,
            f"{settings.web_group}-protection",
            handlers.protection,
            topics.REPLIES_CLASSIFIED,
            topics.REPLIES_MODERATED,
        )
    return runs


class _NoBroker:
    async def check(self) -> str | None:
        return "Kafka is off in this process"
