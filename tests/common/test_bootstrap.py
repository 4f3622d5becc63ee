from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.common import topics
from services.common.bootstrap import BootstrapError, ensure_topics
from services.common.kafka import KafkaSettings, make_admin

pytestmark = pytest.mark.integration


async def test_creates_every_topic_once_with_configured_partitions(
    kafka_settings: KafkaSettings,
) -> None:
    settings = kafka_settings.model_copy(update={"topic_partitions": {topics.MENTIONS_RAW: 4}})
    created = await ensure_topics(settings)
    assert sorted(created) == sorted(settings.topic(s.name) for s in topics.ALL_TOPICS)
    assert await ensure_topics(settings) == []  # idempotent

    admin = make_admin(settings)
    await admin.start()
    try:
        described = {
            d["topic"]: len(d["partitions"])
            for d in await admin.describe_topics(
                [settings.topic(topics.MENTIONS_RAW), settings.topic(topics.REPLIES_FAILED)]
            )
        }
    finally:
        await admin.close()
    assert described[settings.topic(topics.MENTIONS_RAW)] == 4
    assert described[settings.topic(topics.REPLIES_FAILED)] == settings.partitions


async def test_unreachable_broker_is_a_clear_error() -> None:
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_ms=1000)
    with pytest.raises(BootstrapError, match=r"could not reach Kafka at 127\.0\.0\.1:1"):
        await ensure_topics(settings, attempts=2, delay_s=0.01)


def test_cli_creates_the_topics(kafka_settings: KafkaSettings) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.common.bootstrap"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(topics.ALL_TOPICS)} topics created" in done.stderr


def test_cli_fails_clearly_without_a_broker() -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "KAFKA_REQUEST_TIMEOUT_MS": "1000",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import services.common.bootstrap as b, sys; "
            "b.ensure_topics.__kwdefaults__.update(attempts=1); sys.exit(b.main())",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "could not reach Kafka" in done.stderr
