"""Prometheus metrics of the triage stream worker (module level: one registry per process).

Served as text on ``/metrics`` of the worker's web server (see
:mod:`services.triage.worker.app`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_IN = Counter("triage_messages_in_total", "Records consumed, by topic", ["topic"])
MESSAGES_OUT = Counter(
    "triage_messages_out_total", "Records produced and acknowledged, by topic", ["topic"]
)
DECISIONS = Counter(
    "triage_decisions_total",
    "Mentions decided, by decision and by stage (prejudge: no model needed; model)",
    ["decision", "stage"],
)
DEAD_LETTERS = Counter(
    "triage_dead_letters_total",
    "Inputs sent to the dead-letter topic, by stage (decode, prepare, prejudge, classify, "
    "decide, produce)",
    ["stage"],
)
APPROVALS = Counter(
    "triage_approvals_total",
    "Reply requests read from replies.requested, by outcome (marked: the mention's "
    "cluster now counts as answered; unknown: not a mention this worker clustered; "
    "undecodable)",
    ["outcome"],
)
CACHE_HITS = Counter(
    "triage_cache_hits_total", "Texts answered from the prediction cache (or a batch twin)"
)
CACHE_MISSES = Counter("triage_cache_misses_total", "Texts sent to the model")
CACHE_ENTRIES = Gauge("triage_cache_entries", "Predictions held by the cache")
CLASSIFY_SECONDS = Histogram(
    "triage_classify_seconds",
    "Duration of one classifier call (one deduplicated batch)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_SIZE = Histogram(
    "triage_batch_size",
    "Records per batch taken from the stream",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
CLASSIFY_TEXTS = Histogram(
    "triage_classify_texts",
    "Distinct texts per classifier call",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
END_TO_END_SECONDS = Histogram(
    "triage_end_to_end_seconds",
    "From the mentions.raw record's timestamp to its outputs being acknowledged by the broker",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0),
)
PRODUCE_RETRIES = Counter(
    "triage_produce_retries_total", "Produce attempts retried after a retriable broker error"
)
CLASSIFIER_LOADED = Gauge("triage_classifier_loaded", "1 once the classifier is loaded")
CONSUMER_LAG = Gauge(
    "triage_consumer_lag",
    "Records of mentions.raw behind the end of the partition, after the last batch",
    ["topic", "partition"],
)
REPLY_VERDICTS = Counter(
    "triage_reply_verdicts_total",
    "Replies under our published answers judged, by verdict (hide, keep) and rule",
    ["verdict", "rule"],
)
MODEL_SWAPS = Counter(
    "triage_model_swaps_total",
    "Switches to a newly live model version between batches, by outcome (ok, failed)",
    ["outcome"],
)
