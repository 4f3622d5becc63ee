from __future__ import annotations

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
