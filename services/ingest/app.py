"""Composition root of ingest: builds the Kafka producer, the dedupe memory,
the sink and the streaming sources once, in the lifespan, and the FastAPI app
around them. Tests pass fakes through :func:`create_app`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from services.common import topics
from services.common.apidocs import install_api_docs
from services.common.bootstrap import ensure_topics
from services.common.http import BodySizeLimit, install_error_handlers
from services.common.kafka import (
    BrokerCheck,
    KafkaSettings,
    ProducerBrokerCheck,
    make_producer,
    start_when_reachable,
)
from services.common.tasks import BackgroundTasks
from services.ingest.config import IngestSettings
from services.ingest.dedupe import ReadinessCheck, SeenIds, TailReadiness, TopicTail
from services.ingest.deps import IngestRuntime
from services.ingest.routes import health, mentions
from services.ingest.sink import KafkaMentionSink, MentionSink
from services.ingest.sources.bluesky import BlueskyNotifications
from services.ingest.sources.mastodon import MastodonStream
from services.ingest.sources.x import XFilteredStream

log = logging.getLogger(__name__)

#: How long ingest keeps trying to reach Kafka at start before giving up.
STARTUP_TIMEOUT_S = 120.0


class AlwaysReady:
    """For sinks that need no warm-up (tests, fakes)."""

    async def wait(self, timeout: float) -> bool:
        return True

    async def check(self) -> str | None:
        return None


@dataclass
class Overrides:
    """Fakes a test passes instead of the real adapters."""

    sink: MentionSink | None = None
    ready: ReadinessCheck | None = None
    broker: BrokerCheck | None = None
    extra_tasks: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)


def create_app(
    settings: IngestSettings | None = None,
    kafka: KafkaSettings | None = None,
    overrides: Overrides | None = None,
) -> FastAPI:
    settings = settings or IngestSettings()
    kafka = kafka or KafkaSettings()
    overrides = overrides or Overrides()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            tail: TopicTail | None = None
            if overrides.sink is not None:
                fake = AlwaysReady()
                runtime = IngestRuntime(
                    settings, overrides.sink, overrides.ready or fake, overrides.broker or fake
                )
            else:
                await ensure_topics(
                    kafka,
                    [
                        topics.spec_for(topics.MENTIONS_RAW),
                        topics.spec_for(topics.dlq(topics.MENTIONS_RAW)),
                    ],
                    attempts=int(STARTUP_TIMEOUT_S),
                )
                producer = await start_when_reachable(
                    lambda: make_producer(kafka), timeout_s=STARTUP_TIMEOUT_S
                )
                stack.push_async_callback(producer.stop)
                seen = SeenIds(settings.dedupe_window_hours * 3600, settings.dedupe_max_ids)
                tail = TopicTail(kafka, kafka.topic(topics.MENTIONS_RAW), seen)
                readiness = TailReadiness(tail)
                runtime = IngestRuntime(
                    settings,
                    KafkaMentionSink(producer, kafka, seen, readiness),
                    readiness,
                    ProducerBrokerCheck(producer),
                )
            http = await stack.enter_async_context(
                httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
            )
            # Entered last, so stopped first: before the HTTP client and the producer.
            tasks = await stack.enter_async_context(BackgroundTasks())
            runtime.tasks = tasks
            if tail is not None:
                readiness.task = tasks.start("dedupe-tail", tail.run)
            # The sources may start at once: the sink holds their first mentions until
            # the dedupe memory is rebuilt.
            if settings.x_bearer_token is not None:
                tasks.start("x-stream", XFilteredStream(settings, http, runtime.sink).run)
            if settings.mastodon_base_url:
                mastodon = MastodonStream(settings, http, runtime.sink)
                if mastodon.feeds:
                    tasks.start("mastodon", mastodon.run)
                else:
                    log.warning("the Mastodon source has nothing to follow; not started")
            if settings.bluesky_app_password is not None:
                tasks.start("bluesky", BlueskyNotifications(settings, http, runtime.sink).run)
            for number, extra in enumerate(overrides.extra_tasks):
                tasks.start(f"extra-{number}", extra)
            app.state.runtime = runtime
            log.info(
                "ingest ready on %s:%d (Kafka %s)",
                settings.host,
                settings.port,
                kafka.bootstrap_servers,
            )
            yield

    app = FastAPI(
        title="takeaction ingest",
        version="0.1.0",
        summary="Takes mentions in and produces each once to mentions.raw",
        lifespan=lifespan,
        docs_url=None,  # served by install_api_docs: vendored, works offline
        redoc_url=None,
    )
    install_api_docs(app)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(mentions.router)
    app.include_router(health.router)
    return app
