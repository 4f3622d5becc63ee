"""The webhook against a real broker: mentions land on mentions.raw exactly once,
and the dedupe memory survives a restart of ingest."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.common import codec, topics
from services.common.bootstrap import ensure_topics
from services.common.kafka import KafkaSettings
from services.common.messages import DeadLetter, MentionReceived, Source
from services.devstack.broker import EmbeddedBroker, free_port
from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from tests.helpers.kafka import read_all

pytestmark = pytest.mark.integration

API_KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _raw(kafka: KafkaSettings) -> list[Any]:
    return asyncio.run(read_all(kafka, kafka.topic(topics.MENTIONS_RAW)))


def _ready(client: TestClient, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return True
        time.sleep(0.05)
    return False


def test_100_mentions_make_100_messages_and_a_repeat_adds_none(
    kafka_settings: KafkaSettings, item_factory: Callable[..., dict[str, Any]]
) -> None:
    settings = IngestSettings(api_key=SecretStr(API_KEY))
    items = [item_factory() for _ in range(100)]
    with TestClient(create_app(settings, kafka_settings)) as client:
        assert _ready(client)
        first = client.post("/v1/mentions", json={"mentions": items}, headers=AUTH)
        assert first.json() == {"accepted": 100, "duplicates": 0, "rejected": []}
        second = client.post("/v1/mentions", json={"mentions": items}, headers=AUTH)
        assert second.json() == {"accepted": 0, "duplicates": 100, "rejected": []}

    records = _raw(kafka_settings)
    assert len(records) == 100
    for record in records:
        mention = codec.decode(MentionReceived, record.value)
        assert record.key == mention.id.encode()
    assert sorted(codec.decode(MentionReceived, r.value).native_id for r in records) == sorted(
        i["id"] for i in items
    )

    # A restarted ingest rebuilds its memory from the topic: still no duplicates.
    with TestClient(create_app(settings, kafka_settings)) as client:
        third = client.post("/v1/mentions", json={"mentions": items[:10]}, headers=AUTH)
        assert third.json() == {"accepted": 0, "duplicates": 10, "rejected": []}
        health = client.get("/healthz").json()
        assert health["broker"]["connected"] is True
        assert health["tasks"] == {"dedupe-tail": "running"}
    assert len(_raw(kafka_settings)) == 100


def test_a_second_replica_learns_what_the_first_produced(
    kafka_settings: KafkaSettings, item_factory: Callable[..., dict[str, Any]]
) -> None:
    settings = IngestSettings(api_key=SecretStr(API_KEY))
    item = item_factory()
    with (
        TestClient(create_app(settings, kafka_settings)) as one,
        TestClient(create_app(settings, kafka_settings)) as two,
    ):
        response = one.post("/v1/mentions", json={"mentions": [item]}, headers=AUTH)
        assert response.json()["accepted"] == 1
        seen_by_two = two.app.state.runtime.sink.seen  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while f"x:{item['id']}" not in seen_by_two and time.monotonic() < deadline:
            time.sleep(0.05)
        response = two.post("/v1/mentions", json={"mentions": [item]}, headers=AUTH)
        assert response.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert len(_raw(kafka_settings)) == 1


def test_dead_letters_keep_the_original_bytes(kafka_settings: KafkaSettings) -> None:
    settings = IngestSettings(api_key=SecretStr(API_KEY))
    with TestClient(create_app(settings, kafka_settings)) as client:
        sink = client.app.state.runtime.sink  # type: ignore[attr-defined]
        raw = b'{"data": {"id": "1"' + b"\xff"
        client.portal.call(  # type: ignore[union-attr]
            lambda: sink.dead_letter(source=Source.X_STREAM, error="malformed JSON", raw=raw)
        )
    records = asyncio.run(read_all(kafka_settings, kafka_settings.topic("mentions.raw.dlq")))
    assert len(records) == 1
    letter = codec.decode(DeadLetter, records[0].value)
    assert letter.stage == "ingest.x_stream"
    assert letter.topic == "mentions.raw"
    assert base64.b64decode(letter.value_b64) == raw
    assert json.loads(records[0].value)["error"] == "malformed JSON"


@pytest.mark.timeout(180)
def test_ingest_survives_a_broker_restart(
    tmp_path: Path, item_factory: Callable[..., dict[str, Any]]
) -> None:
    """Kafka goes away: the webhook says 503 and loses nothing; Kafka comes
    back (the supervisor recreates the topics): the same mentions go through."""
    port = free_port()
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=3000)
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log").start()
    try:
        with TestClient(create_app(IngestSettings(api_key=SecretStr(API_KEY)), kafka)) as client:
            assert _ready(client)
            before = client.post("/v1/mentions", json={"mentions": [item_factory()]}, headers=AUTH)
            assert before.json()["accepted"] == 1

            broker.stop()
            items = [item_factory() for _ in range(5)]
            during = client.post("/v1/mentions", json={"mentions": items}, headers=AUTH)
            assert during.status_code == 503
            assert client.get("/healthz").json()["broker"]["connected"] is False

            broker.start()
            asyncio.run(ensure_topics(kafka))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                after = client.post("/v1/mentions", json={"mentions": items}, headers=AUTH)
                if after.status_code == 202:
                    break
                time.sleep(0.5)
            assert after.json() == {"accepted": 5, "duplicates": 0, "rejected": []}
            assert client.get("/healthz").json()["broker"]["connected"] is True
        records = asyncio.run(read_all(kafka, topics.MENTIONS_RAW))
        assert sorted(r.key for r in records) == sorted(f"x:{i['id']}".encode() for i in items)
    finally:
        broker.stop()
