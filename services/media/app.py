"""Composition root of the media worker: the triage database's job table, Whisper
(when this worker transcribes), the platforms' published limits, the claim loops,
and a small HTTP app for health and metrics. Tests pass fakes through
:func:`create_app`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import MetaData, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import database_problem, make_engine
from services.common.http import install_error_handlers, liveness_response, task_states
from services.common.jobs import JobTable, jobs_table
from services.common.media.profiles import Profile, mastodon_profile
from services.common.tasks import BackgroundTasks, Run
from services.media import metrics
from services.media.config import MediaSettings
from services.media.handlers import Handlers
from services.media.speech import Transcriber
from services.media.worker import Handler, Worker

log = logging.getLogger(__name__)

#: How long the worker waits for the triage web to create the job table at start.
STARTUP_TIMEOUT_S = 300.0


@dataclass
class MediaRuntime:
    settings: MediaSettings
    engine: AsyncEngine
    workers: list[Worker]
    profiles: dict[str, Profile]
    tasks: BackgroundTasks | None = None
    #: What the last read of each platform's published limits said (or its error).
    limits: dict[str, Any] = field(default_factory=dict)


@dataclass
class Overrides:
    """What a test passes instead of the real pieces."""

    handler: Handler | None = None
    transcriber: Transcriber | None = None
    http: httpx.AsyncClient | None = None


async def wait_for_table(engine: AsyncEngine, name: str, timeout_s: float) -> None:
    """The triage web migrates the database; until the job table exists there is no work."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            async with engine.connect() as connection:
                tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
            if name in tables:
                return
            problem = f"no {name} table yet (is the triage web migrating?)"
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"the triage database is not ready: {problem}")
        log.info("waiting for the triage database: %s", problem)
        await asyncio.sleep(2.0)


async def read_limits(runtime: MediaRuntime, http: httpx.AsyncClient) -> None:
    """The Mastodon instance's media limits (``GET /api/v2/instance``), now and then."""
    url = runtime.settings.mastodon_instance_url
    assert url is not None
    while True:
        try:
            response = await http.get(url.rstrip("/") + "/api/v2/instance", timeout=10)
            response.raise_for_status()
            profile = mastodon_profile(response.json())
            runtime.profiles["mastodon"] = profile
            runtime.limits["mastodon"] = {
                "max_bytes": profile.max_bytes,
                "max_fps": profile.max_fps,
                "max_pixels": profile.max_pixels,
                "alt_text_max": profile.alt_text_max,
            }
            log.info("Mastodon instance limits: %s", runtime.limits["mastodon"])
            wait = runtime.settings.limits_refresh_s
        except (httpx.HTTPError, ValueError) as exc:
            runtime.limits["mastodon"] = {"error": f"{type(exc).__name__}: {exc}"}
            log.warning("could not read the Mastodon instance's limits: %s", exc)
            wait = 30.0
        await asyncio.sleep(wait)


async def gauge_queue(runtime: MediaRuntime, jobs: JobTable) -> None:
    while True:
        try:
            for (kind, state), count in (await jobs.counts(runtime.engine)).items():
                metrics.QUEUE.labels(kind, state).set(count)
        except Exception:
            log.warning("could not count the jobs", exc_info=True)
        await asyncio.sleep(15.0)


def create_app(
    settings: MediaSettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    settings = settings or MediaSettings()
    overrides = overrides or Overrides()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            engine = make_engine(settings.database_url, schema=settings.database_schema)
            stack.push_async_callback(engine.dispose)
            table = jobs_table(MetaData())
            await wait_for_table(engine, table.name, STARTUP_TIMEOUT_S)
            jobs = JobTable(table)
            transcriber = overrides.transcriber
            if transcriber is None and "transcript" in settings.kinds and overrides.handler is None:
                transcriber = await asyncio.to_thread(
                    Transcriber, settings.whisper_model_dir, threads=settings.threads
                )
            profiles: dict[str, Profile] = {}
            handler = overrides.handler or Handlers(settings, transcriber, profiles).run
            settings.media_dir.mkdir(parents=True, exist_ok=True)
            workers = [
                Worker(
                    engine=engine,
                    jobs=jobs,
                    handler=handler,
                    settings=settings,
                    kinds=settings.kinds,
                )
                for _ in range(settings.concurrency)
            ]
            runtime = MediaRuntime(settings, engine, workers, profiles)
            runs: dict[str, Run] = {f"worker-{i}": w.run for i, w in enumerate(workers)}
            runs["queue-gauge"] = lambda: gauge_queue(runtime, jobs)
            if settings.mastodon_instance_url:
                client = overrides.http
                if client is None:
                    client = httpx.AsyncClient()
                    stack.push_async_callback(client.aclose)
                limits_client = client
                runs["limits"] = lambda: read_limits(runtime, limits_client)
            tasks = await stack.enter_async_context(BackgroundTasks())
            tasks.start_all(runs)
            runtime.tasks = tasks
            app.state.runtime = runtime
            log.info(
                "media worker ready: %s, %d at once, media in %s",
                ", ".join(settings.kinds),
                settings.concurrency,
                settings.media_dir,
            )
            yield

    app = FastAPI(title="takeaction media worker", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    def runtime_of(request: Request) -> MediaRuntime:
        runtime: MediaRuntime = request.app.state.runtime
        return runtime

    @app.get("/healthz", summary="Liveness: every claim loop runs")
    async def healthz(request: Request) -> JSONResponse:
        return liveness_response(runtime_of(request).tasks or {}, key="tasks")

    @app.get("/readyz", summary="Readiness: the triage database answers")
    async def readyz(request: Request) -> JSONResponse:
        runtime = runtime_of(request)
        problem = await database_problem(runtime.engine)
        body = {
            "status": "ok" if problem is None else "degraded",
            "database": {"connected": problem is None, "error": problem},
            "tasks": task_states(runtime.tasks or {}),
            "jobs": [
                {"id": j.id, "kind": j.kind, "subject": j.subject}
                for w in runtime.workers
                for j in w.current.values()
            ],
            "limits": runtime.limits,
        }
        return JSONResponse(body, status_code=200 if problem is None else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
