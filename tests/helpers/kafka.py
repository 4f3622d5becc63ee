"""Reading a topic back in tests: every record from the beginning to the end."""

from __future__ import annotations

import time

from aiokafka import ConsumerRecord, TopicPartition

from services.common.kafka import KafkaSettings, make_consumer


async def read_all(
    settings: KafkaSettings, topic: str, timeout_s: float = 10.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """All records currently on ``topic`` (physical name), in partition order."""
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        remaining = {tp for tp, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            batches = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, batch in batches.items():
                records.extend(batch)
                if batch and batch[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()
