"""Composition root of the stream worker: the faust app (settings, a shorter
fetch wait, health and metrics pages on ``TRIAGE_WORKER_PORT``), its two agents
(:mod:`.agents`) and the batch processor they feed. Tests pass fakes through
:func:`create_worker`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from prometheus_client import generate_latest

from services.common import topics
from services.common.bootstrap import ensure_topics
from services.common.epoch import EpochWatch, SentLog, cluster_id, sent_log
from services.common.kafka import KafkaSettings, broker_problem, refresh_metadata
from services.common.lifecycle import exit_deadline
from services.triage.classifier.base import Classifier
from services.triage.rules import RulesFile
from services.triage.worker import metrics
from services.triage.worker.agents import (
    FaustSink,
    classify_mentions,
    judge_replies,
    note_approvals,
)
from services.triage.worker.batch import BatchProcessor, Decider, Sink
from services.triage.worker.cache import PredictionCache
from services.triage.worker.config import WorkerSettings
from services.triage.worker.live_model import LiveModel
from services.triage.worker.replies import ReplyProcessor

log = logging.getLogger(__name__)

#: Topics the worker reads or writes; created (if missing) before it starts.
WORKER_TOPICS = (
    topics.MENTIONS_RAW,
    topics.REPLIES_REQUESTED,
    topics.MENTIONS_CLASSIFIED,
    topics.MENTIONS_QUARANTINED,
    topics.dlq(topics.MENTIONS_RAW),
    topics.REPLIES_RECEIVED,
    topics.REPLIES_CLASSIFIED,
    topics.dlq(topics.REPLIES_RECEIVED),
)
#: How long the consumer's fetch may wait for data (ms). faust hard-codes 1500 and
#: Tansu answers a fetch that found nothing only when that wait runs out, so it
#: bounds the latency of a quiet stream; 100 ms costs ~10 small requests/s when idle.
FETCH_MAX_WAIT_MS = 100
#: Prometheus text exposition format.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"
#: How long /readyz waits for the broker's metadata answer.
READY_TIMEOUT_S = 3.0


async def ensure_worker_topics(kafka: KafkaSettings, *, attempts: int = 30) -> list[str]:
    """Create the worker's topics with the configured partitions (idempotent)."""
    return await ensure_topics(
        kafka, [topics.spec_for(name) for name in WORKER_TOPICS], attempts=attempts
    )


def broker_credentials(kafka: KafkaSettings) -> Any:
    """``KAFKA_SECURITY_PROTOCOL`` & co. as faust credentials (None for PLAINTEXT)."""
    context = kafka.ssl_context()
    if kafka.uses_sasl and kafka.sasl_password is not None:  # all set: KafkaSettings checks
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def faust_settings(
    settings: WorkerSettings,
    kafka: KafkaSettings,
    *,
    web_enabled: bool = True,
    web_port: int | None = None,
    web_bind: str = "0.0.0.0",  # noqa: S104 - a container's health checks come from outside
    datadir: Path | None = None,
) -> dict[str, Any]:
    """The faust configuration of the worker (each choice says why)."""
    return {
        "broker": [f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        "broker_client_id": kafka.client_id,
        "broker_credentials": broker_credentials(kafka),
        # A worker that dies without leaving the group hands its partitions over
        # after this long (heartbeats come from faust's consumer thread, so a long
        # classifier call does not count against it). Tansu answers a JoinGroup after
        # about half of it, so a worker starts consuming ~8 s after it starts.
        "broker_session_timeout": 15.0,
        "broker_heartbeat_interval": 3.0,
        # Commit what is acked once a second (and every 1000 acked records): a
        # restart redoes at most about a second of work. Latency does not depend on it.
        "broker_commit_interval": 1.0,
        "broker_commit_every": 1000,
        # Prefetch a few batches, no more: bounded memory, and little work thrown
        # away (and redone) on a rebalance.
        "stream_buffer_maxsize": max(256, 4 * settings.batch_size),
        # On rebalance and stop, let the batch in progress finish and be acked.
        "stream_wait_empty": True,
        "consumer_auto_offset_reset": "earliest",
        "processing_guarantee": "at_least_once",
        # acks=all; no idempotence (Tansu has no InitProducerId).
        "producer_acks": -1,
        "producer_linger": 0.005,
        "key_serializer": "raw",
        "value_serializer": "raw",
        # Topics are created by ensure_worker_topics with our partitions/retention;
        # no leader topic (no tables to co-ordinate).
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "store": "memory://",
        "datadir": str(
            datadir or Path(tempfile.gettempdir()) / f"takeaction-faust-{settings.worker_group}"
        ),
        "autodiscover": False,
        "web_enabled": web_enabled,
        "web_port": web_port or settings.worker_port,
        "web_bind": web_bind,
    }


class _ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by consumer.start()
        return consumer

    async def _commit(self, offsets: Mapping[Any, int]) -> bool:
        """Commit only to the broker epoch this process reads (the first it saw:
        it exits on another). Offsets of an old epoch committed to a new broker
        (Tansu takes a commit from a member it never saw) would make the next
        worker skip that many of the new epoch's records. Until the epoch watch
        has seen the broker, while no broker answers, or once the broker is
        another epoch (the watch is about to exit), nothing is committed: faust
        commits the next acked offsets a second later, and a restart reads what
        was not committed again (at least once, never skipped)."""
        epoch: EpochWatch | None = getattr(self.app, "epoch_watch", None)
        if epoch is not None:
            found = await cluster_id(self._ensure_consumer()._client)
            if epoch.first is None or found != epoch.first:
                log.log(
                    logging.DEBUG if found is None else logging.WARNING,
                    "offsets not committed: the broker is epoch %s, this worker reads %s",
                    found,
                    epoch.first,
                )
                return False
        return bool(await super()._commit(offsets))


class _Consumer(aiokafka_driver.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(aiokafka_driver.Transport):
    Consumer = _Consumer


class WorkerApp(faust.App):
    """faust's App with a shorter consumer fetch wait (:data:`FETCH_MAX_WAIT_MS`)."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


class Health:
    """What /healthz and /readyz report."""

    def __init__(self, app: Any, classifier_loaded: bool = True) -> None:
        self.app = app
        self.classifier_loaded = classifier_loaded

    def dead(self) -> list[str]:
        """Why the worker is alive but useless until restarted (/healthz, its
        liveness): faust's app crashed, or its consumer thread died or crashed.
        (A worker stopping after a signal says so too for its last seconds: it
        leaves within the exit deadline anyway.)"""
        app = self.app
        found = []
        if getattr(app, "crashed", False) is True:
            found.append(f"faust's app crashed: {getattr(app, 'crash_reason', None)!r}")
        thread = getattr(getattr(app, "_consumer", None), "_thread", None)
        running = getattr(thread, "_thread", None)  # the threading.Thread, once started
        if running is not None and not running.is_alive():
            found.append("faust's consumer thread died")
        elif getattr(thread, "crashed", False) is True:
            found.append(
                f"faust's consumer thread crashed: {getattr(thread, 'crash_reason', None)!r}"
            )
        return found

    async def problems(self) -> list[str]:
        found = [] if self.classifier_loaded else ["classifier not loaded"]
        try:
            client = self.app.producer._ensure_producer().client  # aiokafka client of faust's
        except Exception as exc:  # faust's producer not there yet: not ready
            found.append(f"Kafka unreachable: {type(exc).__name__}: {exc}")
            return found
        problem = await broker_problem(client, READY_TIMEOUT_S)
        if problem is not None:
            found.append(problem)
        return found


@dataclass
class TriageWorker:
    """The composed worker: the faust app, its agent and what they run."""

    app: Any  # faust.App (untyped)
    agent: Any  # the faust agent; ``agent.test_context()`` in tests
    processor: BatchProcessor
    health: Health
    #: The agent on ``replies.requested`` that marks answered clusters.
    approvals_agent: Any = None
    #: The agent on ``replies.received`` (protection), when the worker has the rules.
    replies_agent: Any = None


def create_worker(
    settings: WorkerSettings,
    kafka: KafkaSettings,
    *,
    classifier: Classifier,
    decider: Decider,
    cache: PredictionCache | None = None,
    sink: Sink | None = None,
    web_enabled: bool = True,
    web_port: int | None = None,
    web_bind: str = "0.0.0.0",  # noqa: S104 - see faust_settings
    datadir: Path | None = None,
    faust_overrides: Mapping[str, Any] | None = None,
    rules: RulesFile | None = None,
    live: LiveModel | None = None,
) -> TriageWorker:
    """The composition root of the stream worker.

    ``classifier`` and ``decider`` are built by the caller (the real model and
    ``Triage`` in ``__main__``, fakes in tests); ``sink`` replaces faust's
    producer (``agent.test_context()`` runs without a broker); ``faust_overrides``
    replace entries of :func:`faust_settings` (tests shorten the group timeouts);
    with ``rules``, the replies under our published answers are judged too.
    ``live`` follows the registry's live version between batches (hot swap).
    """
    conf = faust_settings(
        settings,
        kafka,
        web_enabled=web_enabled,
        web_port=web_port,
        web_bind=web_bind,
        datadir=datadir,
    )
    conf.update(faust_overrides or {})
    app = WorkerApp(settings.worker_group, **conf)
    source = app.topic(
        kafka.topic(topics.MENTIONS_RAW),
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )
    sent = (
        sent_log(kafka.resend_log, kafka.resend_window_s) if kafka.resend_log is not None else None
    )
    processor = BatchProcessor(
        kafka=kafka,
        classifier=classifier,
        decider=decider,
        cache=cache if cache is not None else PredictionCache(settings.cache_size),
        sink=sink or FaustSink(app, sent),
        live=live,
    )
    health = Health(app)
    metrics.CLASSIFIER_LOADED.set(1)

    agent = app.agent(source, name="triage.classify_mentions", concurrency=1)(
        classify_mentions(app, processor, settings.batch_size, settings.batch_within_s)
    )

    approvals = app.topic(
        kafka.topic(topics.REPLIES_REQUESTED),
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )

    approvals_agent = app.agent(approvals, name="triage.note_approvals", concurrency=1)(
        note_approvals(decider)
    )
    replies_agent = None
    if rules is not None:
        replies = app.topic(
            kafka.topic(topics.REPLIES_RECEIVED),
            key_serializer="raw",
            value_serializer="raw",
            allow_empty=True,
        )
        replies_agent = app.agent(replies, name="triage.judge_replies", concurrency=1)(
            judge_replies(
                ReplyProcessor(batch=processor, rules=rules),
                settings.batch_size,
                settings.batch_within_s,
            )
        )
    _add_pages(app, health)
    _watch_epochs(app, kafka, sent)
    return TriageWorker(
        app=app,
        agent=agent,
        processor=processor,
        health=health,
        approvals_agent=approvals_agent,
        replies_agent=replies_agent,
    )


def _add_pages(app: Any, health: Health) -> None:
    @app.page("/healthz")  # type: ignore[untyped-decorator]
    async def healthz(view: Any, request: Any) -> Any:
        dead = health.dead()
        if dead:  # restart me (Kubernetes' liveness probe reads this)
            return view.json({"status": "dead", "problems": dead}, status=503)
        return view.json({"status": "ok"})

    @app.page("/readyz")  # type: ignore[untyped-decorator]
    async def readyz(view: Any, request: Any) -> Any:
        problems = await health.problems()
        if problems:
            return view.json({"status": "unavailable", "problems": problems}, status=503)
        return view.json({"status": "ready"})

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    async def prometheus(view: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type: the exposition format's
        # type without it (the body is ASCII/UTF-8 either way).
        return view.bytes(generate_latest(), content_type=METRICS_CONTENT_TYPE)


#: Exit status when a new broker epoch makes the worker start again (EX_TEMPFAIL).
NEW_EPOCH_EXIT = 75


def _watch_epochs(app: Any, kafka: KafkaSettings, sent: SentLog | None) -> None:
    """Send the log's window again to a new broker epoch (at start too: the worker
    may have been down when the broker restarted), and when the epoch changes under
    the running worker, exit (the supervisor starts it again): faust keeps per
    partition offsets it would skip the new epoch's records by, and a fresh process
    joins the new broker's group and reads its topics from the beginning. Nothing is
    lost: what was not acked is read again, what was sent is in the log."""

    async def resend(topic: str, key: bytes | None, value: bytes | None) -> Any:
        return await app.producer.send(topic, key, value, None, None, None)

    watch = EpochWatch(
        client=lambda: app.producer._ensure_producer().client,
        sent=sent,
        resend=resend if sent is not None else None,
        refresh=lambda: refresh_metadata(app.producer._ensure_producer().client),
        every_s=kafka.epoch_poll_s,
    )

    async def restart(old: str, new: str) -> None:
        log.warning("broker epoch %s replaced %s: exiting to read it from the start", new, old)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(NEW_EPOCH_EXIT)

    watch.on_new_epoch(restart)
    app.epoch_watch = watch  # read by the consumer thread before each commit

    @app.task  # type: ignore[untyped-decorator]
    async def broker_epochs() -> None:
        await watch.run()


class _Worker(faust.Worker):
    """faust's Worker, gone at most :data:`~services.common.lifecycle.EXIT_DEADLINE_S`
    after the first SIGTERM or SIGINT: its graceful stop waits on a consumer thread
    that may have died with the broker (``NodeNotReadyError``, then
    ``CancelledError``) and would wait for ever. The deadline is armed by a Python
    signal handler, which runs even while the event loop is busy; faust's own
    handlers still run (the loop's wakeup fd is left as it is)."""

    def _install_signal_handlers_unix(self) -> None:
        super()._install_signal_handlers_unix()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _arm_deadline)

    def on_worker_shutdown(self) -> None:
        # Not only a signal stops the worker: a crash does too (a commit or fetch
        # failing as the broker dies), and then nothing had armed the deadline,
        # so the graceful stop could wait on a dead consumer thread for good,
        # alive to the supervisor and consuming nothing.
        exit_deadline()
        super().on_worker_shutdown()


def _arm_deadline(signum: int, _frame: FrameType | None) -> None:
    exit_deadline(signum)


def run_worker(worker: TriageWorker, loop: asyncio.AbstractEventLoop) -> int:
    """Run the worker until SIGTERM/SIGINT (faust's Worker: signals, graceful stop,
    within the exit deadline)."""
    runner = _Worker(
        worker.app,
        loop=loop,
        loglevel=logging.getLogger().level,
        override_logging=False,
        quiet=True,
    )
    try:
        runner.execute_from_commandline()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0
    return 0
