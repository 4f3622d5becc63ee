"""Settings of the stream worker (``TRIAGE_*``): the rules, the model, the stream."""

from __future__ import annotations

from pydantic import Field

from services.triage.config import ClassifierSettings


class WorkerSettings(ClassifierSettings):
    # --- stream worker --------------------------------------------------------
    #: Most mentions classified in one batch. Larger batches sort better by length (2,000
    #: tweets through the classifier path, bf16: 406 tweets/s at 64, 477 at 256); under light
    #: traffic batches stay small anyway (see ``batch_within_s``).
    batch_size: int = Field(default=256, ge=1, le=1024)
    #: Dynamic batching: a batch is what is waiting (up to ``batch_size``) after this short
    #: linger (seconds), so a quiet stream answers each mention in one forward pass and a
    #: spike fills big batches (the backlog gathers while the previous batch runs). 5 ms:
    #: p99 at 90 % load measured in the triage README ("Performance"); 50 ms cost ~25 ms
    #: on every mention of a quiet stream for nothing.
    batch_within_s: float = Field(default=0.005, gt=0, le=10)
    #: Consumer group of the classifier workers (scale out by adding members).
    worker_group: str = "triage-classifier"
    #: Address the worker's health and metrics server binds (``0.0.0.0`` in a container).
    worker_host: str = "127.0.0.1"
    #: Port of the worker's health and metrics endpoints.
    worker_port: int = Field(default=8010, ge=1, le=65535)
    #: Results remembered for exact duplicates and retweets (entries).
    cache_size: int = Field(default=50_000, ge=0)
