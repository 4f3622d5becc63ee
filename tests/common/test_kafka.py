from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError

from services.common.kafka import KafkaSettings, broker_problem, start_when_reachable


class FakeClient:
    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or KafkaConnectionError("no broker")
        self.started = self.stopped = 0

    async def start(self) -> None:
        self.started += 1
        if self.started <= self.failures:
            raise self.error

    async def stop(self) -> None:
        self.stopped += 1


async def test_start_retries_until_the_broker_answers() -> None:
    made: list[FakeClient] = []

    def make() -> FakeClient:
        made.append(FakeClient(failures=0 if made else 1))
        return made[-1]

    client = await start_when_reachable(make, timeout_s=10)
    assert client is made[-1]
    assert len(made) == 2
    assert made[0].stopped == 1  # a client that failed to start is closed


async def test_start_gives_up_with_the_last_error() -> None:
    with pytest.raises(KafkaConnectionError):
        await start_when_reachable(lambda: FakeClient(failures=10**6), timeout_s=0.2)


async def test_start_does_not_retry_other_errors() -> None:
    made: list[FakeClient] = []

    def make() -> FakeClient:
        made.append(FakeClient(failures=1, error=ValueError("bad config")))
        return made[-1]

    with pytest.raises(ValueError, match="bad config"):
        await start_when_reachable(make, timeout_s=10)
    assert len(made) == 1


class Metadata:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour

    async def fetch_all_metadata(self) -> None:
        if self.behaviour == "hang":
            await asyncio.sleep(10)
        elif self.behaviour == "fail":
            raise KafkaConnectionError("connection refused")


@pytest.mark.parametrize(
    ("behaviour", "problem"),
    [("ok", None), ("hang", "no metadata from Kafka within 0s"), ("fail", "KafkaConnectionError")],
)
async def test_broker_problem(behaviour: str, problem: str | None) -> None:
    found = await broker_problem(Metadata(behaviour), timeout_s=0.05)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_client_kwargs_carry_sasl_without_leaking_into_repr() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="p4ss-p4ss-p4ss-p4ss",  # type: ignore[arg-type]
    )
    kwargs = settings.client_kwargs()
    assert kwargs["sasl_plain_password"] == "p4ss-p4ss-p4ss-p4ss"
    assert "ssl_context" in kwargs
    assert "p4ss" not in repr(settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME"),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
            },
            "needs KAFKA_SASL_PASSWORD",
        ),
        ({"sasl_username": "svc"}, "KAFKA_SASL_USERNAME set, but KAFKA_SECURITY_PROTOCOL"),
        (
            {"security_protocol": "SSL", "sasl_password": "p4ss-p4ss-p4ss-p4ss"},
            "does not use SASL",
        ),
    ],
)
def test_sasl_settings_are_all_or_nothing(settings: dict[str, Any], message: str) -> None:
    """A half-configured SASL fails at start with the variable to set, not at the
    first connection with a broker error."""
    with pytest.raises(ValidationError, match=message):
        KafkaSettings(**settings)


def test_production_refuses_a_placeholder_sasl_password(monkeypatch: pytest.MonkeyPatch) -> None:
    sasl = {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "svc"}
    monkeypatch.setenv("TAKEACTION_ENV", "production")
    with pytest.raises(ValidationError, match="sasl_password is missing or a placeholder"):
        KafkaSettings(**sasl, sasl_password="changeme")  # type: ignore[arg-type]
    assert KafkaSettings(**sasl, sasl_password="a-real-long-secret-value").uses_sasl  # type: ignore[arg-type]
    plain = KafkaSettings(allow_plaintext=True)
    assert plain.client_kwargs()["security_protocol"] == "PLAINTEXT"


def test_production_refuses_plaintext_unless_allowed_on_purpose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 17: with PLAINTEXT anyone who reaches the broker writes commands."""
    monkeypatch.setenv("TAKEACTION_ENV", "production")
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL", raising=False)
    monkeypatch.delenv("KAFKA_ALLOW_PLAINTEXT", raising=False)
    with pytest.raises(ValidationError, match="PLAINTEXT in production"):
        KafkaSettings()
    monkeypatch.setenv("KAFKA_ALLOW_PLAINTEXT", "true")
    assert KafkaSettings().security_protocol == "PLAINTEXT"
    monkeypatch.delenv("KAFKA_ALLOW_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "takeaction")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "a-real-long-secret-value")
    assert KafkaSettings().uses_sasl
    monkeypatch.setenv("TAKEACTION_ENV", "development")
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL")
    for name in ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(name)
    assert KafkaSettings().security_protocol == "PLAINTEXT"  # make run, the tests


def test_plaintext_has_neither_tls_nor_sasl() -> None:
    kwargs = KafkaSettings().client_kwargs()
    assert "ssl_context" not in kwargs
    assert "sasl_mechanism" not in kwargs
    assert KafkaSettings(security_protocol="SSL").ssl_context() is not None
