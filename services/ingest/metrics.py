"""Prometheus metrics of ingest (module level: one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MENTIONS = Counter(
    "ingest_mentions_total",
    "Mentions heard, by source and outcome (accepted, duplicate, rejected, dead_lettered)",
    ["source", "outcome"],
)
MESSAGES_OUT = Counter(
    "kafka_messages_out_total", "Messages produced, by topic", ["service", "topic"]
)
DEDUPE_IDS = Gauge("ingest_dedupe_ids", "Mention ids remembered for dedupe")
SOURCE_CONNECTED = Gauge(
    "ingest_source_connected", "1 while a streaming source is connected", ["source"]
)
SOURCE_RECONNECTS = Counter(
    "ingest_source_reconnects_total",
    "Reconnects of a streaming source, by reason",
    ["source", "reason"],
)
