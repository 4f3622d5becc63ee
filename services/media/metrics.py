"""The media worker's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS = Counter("media_jobs_total", "Jobs ended, by kind and outcome", ["kind", "outcome"])
JOB_SECONDS = Histogram(
    "media_job_seconds",
    "Wall time of a job, by kind",
    ["kind"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
SPEED = Gauge(
    "media_speed_ratio",
    "Seconds of video done per second of wall time, last job of a kind",
    ["kind"],
)
QUEUE = Gauge("media_queue_jobs", "Jobs in the table, by kind and state", ["kind", "state"])
