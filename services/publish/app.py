"""Composition root of the publisher: builds the ledger engine (and migrates it),
one pooled ``httpx.AsyncClient``, the platform adapters, the Kafka producer, the
five consumers and the replies watcher once, in the lifespan, and the FastAPI app
(health, metrics, opt-outs) around them. Tests pass fakes through :func:`create_app`."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from services.common import topics
from services.common.bootstrap import ensure_topics
from services.common.consume import RecordHandler, consuming
from services.common.db import open_database
from services.common.http import BodySizeLimit, install_error_handlers
from services.common.kafka import (
    KafkaSettings,
    ProducerBrokerCheck,
    make_producer,
    start_when_reachable,
)
from services.common.messages import Platform as PlatformName
from services.common.replies import Templates
from services.common.signing import SigningSettings
from services.common.tasks import BackgroundTasks
from services.publish.agents import Agents, consume_loop
from services.publish.config import PublishSettings
from services.publish.db import migrate
from services.publish.deps import PublishRuntime
from services.publish.ledger import Ledger
from services.publish.platforms import Platform, build_platforms
from services.publish.platforms.base import Moderation
from services.publish.protect_ledger import ProtectLedger
from services.publish.protector import Protector
from services.publish.publisher import Publisher
from services.publish.routes import health, optouts
from services.publish.routes import spend as spend_routes
from services.publish.spend import SpendLedger

log = logging.getLogger(__name__)

#: How long the publisher keeps trying to reach Kafka at start before giving up.
STARTUP_TIMEOUT_S = 120.0
#: Longest time between two polls of the replies consumer (a video upload and its
#: processing happen between two polls).
MAX_POLL_INTERVAL_MS = 900_000

#: The topics the publisher reads or writes (created at start when missing).
TOPICS = (
    topics.REPLIES_REQUESTED,
    topics.REPLIES_PUBLISHED,
    topics.REPLIES_FAILED,
    topics.MENTIONS_RAW,
    topics.CONSENT_WITHDRAWN,
    topics.REPLIES_RECEIVED,
    topics.REPLIES_ACTION,
    topics.REPLIES_MODERATED,
    topics.SPEAKERS_PAUSED,
)


@dataclass
class Overrides:
    """Fakes a test passes instead of the real adapters."""

    platforms: Mapping[PlatformName, Platform] | None = None
    templates: Templates | None = None
    clock: Callable[[], float] = time.time


def create_app(
    settings: PublishSettings | None = None,
    kafka: KafkaSettings | None = None,
    overrides: Overrides | None = None,
    signing: SigningSettings | None = None,
) -> FastAPI:
    settings = settings or PublishSettings()
    kafka = kafka or KafkaSettings()
    keys = (signing or SigningSettings()).command_keys()
    overrides = overrides or Overrides()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            engine = await open_database(
                stack, settings.database_url, schema=settings.database_schema, migrate=migrate
            )
            ledger = Ledger(engine)
            spend = SpendLedger(engine, settings)
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=httpx.Timeout(
                        settings.request_timeout_s, connect=settings.connect_timeout_s
                    ),
                    limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
                )
            )
            platforms = overrides.platforms
            if platforms is None:
                platforms = build_platforms(settings, http, token_store=ledger, spend=spend)
            if not platforms:
                log.warning("no platform configured: every reply will fail (retryable)")
            publisher = Publisher(
                ledger=ledger,
                platforms=platforms,
                settings=settings,
                templates=overrides.templates,
                clock=overrides.clock,
                spend=spend,
                reannounce_after_s=kafka.resend_window_s,
            )
            specs = [topics.spec_for(n) for n in TOPICS]
            specs += [topics.spec_for(topics.dlq(n)) for n in TOPICS]
            await ensure_topics(kafka, specs, attempts=int(STARTUP_TIMEOUT_S))
            producer = await start_when_reachable(
                lambda: make_producer(kafka), timeout_s=STARTUP_TIMEOUT_S
            )
            stack.push_async_callback(producer.stop)
            protector = Protector(
                ledger=ProtectLedger(engine),
                platforms={n: p for n, p in platforms.items() if isinstance(p, Moderation)},
                settings=settings,
                clock=overrides.clock,
            )
            agents = Agents(
                publisher=publisher,
                producer=producer,
                kafka=kafka,
                keys=keys,
                protector=protector,
                clock=overrides.clock,
            )

            def reading(
                topic: str, group: str, handle: RecordHandler, **options: Any
            ) -> Callable[[], Coroutine[Any, Any, None]]:
                return consuming(
                    kafka,
                    [topic],
                    group=group,
                    loop=lambda consumer: consume_loop(
                        consumer,
                        handle,
                        name=topic,
                        producer=producer,
                        poll_timeout_ms=settings.poll_timeout_ms,
                        clock=overrides.clock,
                    ),
                    startup_timeout_s=STARTUP_TIMEOUT_S,
                    first=agents.reconcile_at_start if topic == topics.REPLIES_REQUESTED else None,
                    **options,
                )

            tasks = await stack.enter_async_context(BackgroundTasks())
            tasks.start_all(
                {
                    "replies": reading(
                        topics.REPLIES_REQUESTED,
                        settings.group_id,
                        agents.on_reply_requested,
                        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
                    ),
                    "mentions": reading(
                        topics.MENTIONS_RAW, settings.mentions_group_id, agents.on_mention
                    ),
                    "consent": reading(
                        topics.CONSENT_WITHDRAWN,
                        settings.consent_group_id,
                        agents.on_consent_withdrawn,
                    ),
                    "pauses": reading(
                        topics.SPEAKERS_PAUSED, settings.pauses_group_id, agents.on_speaker_paused
                    ),
                    "take-downs": lambda: agents.sweep_take_downs(settings.takedown_sweep_s),
                    "actions": reading(
                        topics.REPLIES_ACTION, settings.actions_group_id, agents.on_reply_action
                    ),
                }
            )
            if settings.protect_watch_days > 0:
                tasks.start_all({"watch": lambda: agents.watch_replies(settings.protect_poll_s)})
            app.state.runtime = PublishRuntime(
                settings, ledger, ProducerBrokerCheck(producer), tasks, spend
            )
            log.info(
                "publish ready on %s:%d (Kafka %s, ledger %s, platforms %s)",
                settings.host,
                settings.port,
                kafka.bootstrap_servers,
                engine.url.render_as_string(),
                ", ".join(p.value for p in platforms) or "none",
            )
            yield

    app = FastAPI(
        title="takeaction publish",
        version="0.1.0",
        summary="Posts approved video answers as threaded replies, once, with consent",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=64 * 1024)
    app.include_router(health.router)
    app.include_router(optouts.router)
    app.include_router(spend_routes.router)
    return app
