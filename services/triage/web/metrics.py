"""Prometheus metrics of the triage web (its own process and registry; the
stream worker's are in :mod:`services.triage.worker.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_IN = Counter(
    "triage_web_messages_in_total",
    "Records consumed by the triage web, by topic and outcome",
    ["topic", "outcome"],
)
MESSAGES_OUT = Counter(
    "triage_web_messages_out_total",
    "Outbox messages acknowledged by the broker, by topic",
    ["topic"],
)
DEAD_LETTERS = Counter(
    "triage_web_dead_letters_total",
    "Records the triage web sent to a dead-letter topic",
    ["topic"],
)
CONSUMER_LAG = Gauge(
    "triage_web_consumer_lag", "Records behind the end of the partition", ["topic", "partition"]
)
OUTBOX_PENDING = Gauge("triage_web_outbox_pending", "Outbox messages not yet sent to Kafka")
QUEUE_DEPTH = Gauge("triage_queue_depth", "Questions by status", ["status"])
ACTIONS = Counter(
    "triage_web_actions_total",
    "Moderator and team actions, by action and outcome",
    ["action", "outcome"],
)
UPLOAD_BYTES = Counter("triage_web_upload_bytes_total", "Answer video bytes received")
MEDIA_ORPHANS_REMOVED = Counter(
    "triage_web_media_orphans_removed_total",
    "Media files no database row referenced, removed by the sweep after the grace period,"
    " by folder",
    ["folder"],
)
SSE_CLIENTS = Gauge("triage_web_sse_clients", "Open live-update streams")
REQUEST_SECONDS = Histogram(
    "triage_web_request_seconds",
    "Duration of API and page requests",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PROTECTION_ALERTS = Counter(
    "triage_protection_alerts_total",
    "Escalations under our published answers (threat, doxxing, pile_on): alert on any",
    ["kind"],
)
