"""Kafka connection settings (``KAFKA_*``) and client factories.

Every service reaches the broker through :class:`KafkaSettings`: the embedded
Tansu broker by default, any real Kafka when ``KAFKA_BOOTSTRAP_SERVERS`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from services.common.config import Environment, ServiceSettings
from services.common.epoch import EpochWatch, SentLog, sent_log


class KafkaSettings(ServiceSettings):
    """``KAFKA_*``. SASL settings are all or nothing: a SASL protocol needs the
    mechanism, user and password, and they mean nothing without one. In
    production (``TAKEACTION_ENV``) a placeholder SASL password is refused, as
    every service's secrets are, and so is ``PLAINTEXT`` (anyone on the network
    could write a topic) unless ``KAFKA_ALLOW_PLAINTEXT=true`` says it is meant."""

    model_config = SettingsConfigDict(
        env_prefix="KAFKA_",
        frozen=True,
        extra="ignore",
        env_ignore_empty=True,
        hide_input_in_errors=True,
    )
    optional_secret_fields: ClassVar[tuple[str, ...]] = ("sasl_password",)

    #: Comma-separated host:port list; the embedded Tansu broker by default.
    bootstrap_servers: str = "127.0.0.1:9092"
    #: Client id reported to the broker (shows up in broker logs and quotas).
    client_id: str = "takeaction"
    #: Prepended to every topic name (one cluster shared by several campaigns, or tests).
    topic_prefix: str = ""
    #: Partitions for topics that bootstrap creates; per-topic overrides below.
    partitions: int = Field(default=3, ge=1, le=1024)
    #: Per-topic partitions, JSON: ``{"mentions.raw": 12}``.
    topic_partitions: dict[str, int] = Field(default_factory=dict)
    #: Replication factor of created topics (3 on a real cluster).
    replication_factor: int = Field(default=1, ge=1, le=16)
    #: Retention for the pipeline topics (ms); -1 keeps forever.
    retention_ms: int = 7 * 24 * 3600 * 1000
    #: ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    #: ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``; required with a SASL protocol.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    #: SASL user name; required with a SASL protocol.
    sasl_username: str | None = None
    #: SASL password (secret; required with a SASL protocol; production refuses placeholders).
    sasl_password: SecretStr | None = None
    #: Allow ``PLAINTEXT`` (no authentication, no encryption) in production: only for a
    #: broker nothing else can reach. Production refuses it otherwise.
    allow_plaintext: bool = False
    #: CA bundle for TLS to the brokers (system CAs when unset).
    ssl_cafile: str | None = None
    #: How long a Kafka request may take before it fails (ms).
    request_timeout_ms: int = Field(default=10_000, ge=1_000)
    #: SQLite file where this process's producers keep what they sent, to send it
    #: again to a new broker epoch (a memory-only broker restarted: `make run` sets
    #: it per service); unset, nothing is kept (a real Kafka keeps its records).
    resend_log: Path | None = None
    #: How long (s) sent records are kept in `KAFKA_RESEND_LOG`.
    resend_window_s: float = Field(default=900.0, gt=0)
    #: How often (s) producers and consumers ask the broker for its epoch (cluster id).
    epoch_poll_s: float = Field(default=1.0, gt=0)

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _no_plaintext_in_production(self) -> KafkaSettings:
        if (
            self.environment is Environment.PRODUCTION
            and self.security_protocol == "PLAINTEXT"
            and not self.allow_plaintext
        ):
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL=PLAINTEXT in production: anyone who reaches the "
                "broker can write commands; use SASL_SSL or SASL_PLAINTEXT with SCRAM "
                "(KAFKA_SASL_*), or set KAFKA_ALLOW_PLAINTEXT=true for a broker nothing "
                "else can reach"
            )
        return self

    @model_validator(mode="after")
    def _sasl_all_or_nothing(self) -> KafkaSettings:
        sasl = {
            "KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.sasl_username,
            "KAFKA_SASL_PASSWORD": self.sasl_password,
        }
        if self.uses_sasl:
            missing = [name for name, value in sasl.items() if value is None]
            if missing:
                raise ValueError(
                    f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs {', '.join(missing)}"
                )
        else:
            given = [name for name, value in sasl.items() if value is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} set, but KAFKA_SECURITY_PROTOCOL="
                    f"{self.security_protocol} does not use SASL (SASL_PLAINTEXT or SASL_SSL)"
                )
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS to the brokers (``KAFKA_SSL_CAFILE`` or the system CAs), or None."""
        return ssl.create_default_context(cafile=self.ssl_cafile) if self.uses_tls else None

    def topic(self, name: str) -> str:
        """The physical topic name for a logical one (``mentions.raw``)."""
        return f"{self.topic_prefix}{name}"

    def partitions_for(self, name: str) -> int:
        return self.topic_partitions.get(name, self.partitions)

    def client_kwargs(self) -> dict[str, Any]:
        """Connection arguments shared by aiokafka producers, consumers and admin clients."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "security_protocol": self.security_protocol,
        }
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.uses_sasl and self.sasl_password is not None:  # all set: see the validator
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return kwargs


async def refresh_metadata(client: Any) -> None:
    """Topics and partition counts read again through an aiokafka client (a new
    broker epoch's may differ from what it cached); raises when no broker answers."""
    if not await client.force_metadata_update():
        raise KafkaConnectionError("no metadata from the broker")


class ResendingProducer(AIOKafkaProducer):  # type: ignore[misc]
    """A producer that writes every record to the process's :class:`SentLog` before
    sending it, and sends the log's window again when the broker's epoch changes
    (:mod:`services.common.epoch`)."""

    def __init__(self, sent: SentLog, epoch_poll_s: float, **options: Any) -> None:
        super().__init__(**options)
        self.sent = sent
        self.epoch = EpochWatch(
            client=lambda: self.client,
            sent=sent,
            resend=self._resend,
            refresh=lambda: refresh_metadata(self.client),
            every_s=epoch_poll_s,
        )
        self._watching: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        self._watching = asyncio.create_task(self.epoch.run(), name="kafka-epoch-watch")

    async def stop(self) -> None:
        watching, self._watching = self._watching, None
        if watching is not None:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        await super().stop()

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        self.sent.record(topic, key, value)
        return await super().send(topic, value, key, *args, **kwargs)

    async def _resend(self, topic: str, key: bytes | None, value: bytes | None) -> Any:
        return await super().send(topic, value, key)


def make_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer for at-least-once delivery.

    ``acks=all`` and no idempotence: Tansu does not implement InitProducerId, so
    duplicates are possible on retry and every consumer is idempotent instead.
    With ``KAFKA_RESEND_LOG`` set, a :class:`ResendingProducer`.
    """
    options: dict[str, Any] = {
        **settings.client_kwargs(),
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": 5,
        "compression_type": None,
    }
    options.update(overrides)
    if settings.resend_log is not None:
        return ResendingProducer(
            sent_log(settings.resend_log, settings.resend_window_s),
            settings.epoch_poll_s,
            **options,
        )
    return AIOKafkaProducer(**options)


def make_consumer(settings: KafkaSettings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        **settings.client_kwargs(),
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def group_timeouts(settings: KafkaSettings) -> dict[str, int]:
    """Consumer-group timeouts that fit the request timeout: a JoinGroup is answered
    after a wait that grows with the session and rebalance timeouts, so above the
    request timeout the join times out over and over and never gets its partitions."""
    session_ms = max(2_000, min(10_000, settings.request_timeout_ms))
    return {
        "session_timeout_ms": session_ms,
        "heartbeat_interval_ms": session_ms // 4,
        "rebalance_timeout_ms": session_ms // 2,
    }


def make_admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    kwargs = settings.client_kwargs()
    return AIOKafkaAdminClient(**kwargs)


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


C = TypeVar("C", bound=_Startable)


async def start_when_reachable(make: Callable[[], C], *, timeout_s: float = 120.0) -> C:
    """Start a Kafka client made by ``make``, retrying while the broker is not there yet
    (a service may start before Kafka); re-raise the last error after ``timeout_s``."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((KafkaError, OSError)),
        wait=wait_exponential(multiplier=0.5, max=5),
        stop=stop_after_delay(timeout_s),
        reraise=True,
    ):
        with attempt:
            client = make()
            try:
                await client.start()
            except BaseException:
                await client.stop()
                raise
            return client
    raise AssertionError("unreachable")  # pragma: no cover


async def broker_problem(client: Any, timeout_s: float = 3.0) -> str | None:
    """None when Kafka answers a metadata request through ``client`` (an aiokafka
    client) within ``timeout_s``; else what went wrong, for health endpoints."""
    try:
        await asyncio.wait_for(client.fetch_all_metadata(), timeout_s)
    except TimeoutError:
        return f"no metadata from Kafka within {timeout_s:.0f}s"
    except (KafkaError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class BrokerCheck(Protocol):
    """A readiness check of a service's connection to Kafka (a port; tests fake it)."""

    async def check(self) -> str | None:
        """None when Kafka answers, else the reason."""
        ...


class ProducerBrokerCheck:
    """A readiness check: can this producer reach Kafka right now?"""

    def __init__(self, producer: AIOKafkaProducer, timeout_s: float = 3.0) -> None:
        self.producer = producer
        self.timeout_s = timeout_s

    async def check(self) -> str | None:
        return await broker_problem(self.producer.client, self.timeout_s)
