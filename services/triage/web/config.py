"""Settings of the triage web (``TRIAGE_*``): the pages and API, the database,
accounts, answers and the web's consumers."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from services.common.config import Environment
from services.common.media.profiles import CaptionMode
from services.triage.config import TriageSettings

#: Video types a team may upload (checked against the file's own first bytes, then probed).
VIDEO_TYPES = ("video/mp4", "video/webm", "video/quicktime", "video/3gpp", "video/x-matroska")


class WebSettings(TriageSettings):
    optional_secret_fields: ClassVar[tuple[str, ...]] = ("admin_password",)

    # --- web (moderator page, team feeds, JSON API) ---------------------------
    #: Address the triage web binds (``0.0.0.0`` in a container).
    host: str = "127.0.0.1"
    #: Port of the triage web page and its JSON API.
    port: int = Field(default=8000, ge=1, le=65535)
    #: Address of the internal port (metrics; liveness and readiness with their details).
    internal_host: str = "127.0.0.1"
    #: The internal port: Prometheus and the operators reach it, the public does not.
    internal_port: int = Field(default=8020, ge=1, le=65535)
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
    #: Failed logins of one user name from one address within ``login_window_s`` (after three,
    #: each next try waits twice as long); an address may fail five times as often over all names.
    login_max_failures: int = Field(default=10, ge=1, le=1000)
    #: Window of the failed-login limit (seconds).
    login_window_s: int = Field(default=900, ge=1)

    # --- the publisher's reply settings, read here for the approval preview ---
    #: The publisher's reply templates (the same variable as the publisher's, so
    #: set it for both): the approval preview renders each reply with them.
    publish_templates_file: Path | None = Field(
        default=None, validation_alias="PUBLISH_TEMPLATES_FILE"
    )
    #: The publisher's fallback template language (the same variable as its own).
    publish_default_language: str = Field(
        default="en", min_length=2, max_length=16, validation_alias="PUBLISH_DEFAULT_LANGUAGE"
    )
    #: Whether the publisher keeps links in X replies (the same variable as its own).
    publish_x_allow_urls: bool = Field(default=False, validation_alias="PUBLISH_X_ALLOW_URLS")

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
    #: Remove, hourly, media files (videos, posters, renditions, subtitle files) that no
    #: database row references …
    orphan_sweep: bool = True
    #: … once unchanged this long (seconds): a finish between moving its video in and
    #: committing the answer is never touched.
    orphan_grace_s: int = Field(default=24 * 3600, ge=3600)

    # --- answer media ---------------------------------------------------------
    #: Shortest answer accepted at upload (seconds).
    min_answer_s: float = Field(default=0.5, ge=0)
    #: How captions reach each platform's viewers (JSON): ``attach`` (a subtitle file
    #: beside the video; only where the platform takes one), ``burn`` (drawn into the
    #: rendition) or ``off``. A platform left out gets ``attach`` where it can, else ``burn``.
    media_captions: dict[str, CaptionMode] = Field(
        default_factory=lambda: dict[str, CaptionMode](x="attach", mastodon="burn")
    )
    #: What the team page shrinks a recording to on the phone before it goes up (WebCodecs,
    #: where the browser has it): picture and sound together, kbit/s (60 s at 2,000 kbit/s
    #: is 15 MB) …
    phone_target_kbps: int = Field(default=2000, ge=100, le=50_000)
    #: … and the longest side of the picture (pixels).
    phone_max_long: int = Field(default=1280, ge=160, le=3840)

    # --- learning from the moderators --------------------------------------------
    #: Start a retrain every this many hours when new labels came since the last one
    #: (``retrain_min_new_labels``); 0: only on request (``POST /api/model/retrain``).
    retrain_every_h: float = Field(default=0.0, ge=0, le=24 * 90)
    #: Fewest labels given since the last retrain for the schedule to start another.
    retrain_min_new_labels: int = Field(default=100, ge=1)
    #: Epochs of a retrain (heads only, on cached text states).
    retrain_epochs: int = Field(default=4, ge=1, le=50)
    #: Public training examples per source a retrain samples (OLID, HatEval, Davidson).
    retrain_public_per_source: int = Field(default=1500, ge=10)
    #: Examples per standard validation set the gate compares on.
    retrain_val_per_set: int = Field(default=800, ge=10)
    #: Torch threads of the retrain job (it shares the machine with the worker).
    retrain_threads: int = Field(default=1, ge=1, le=64)
    #: The gate: least macro-F1 gain on the held-back campaign labels …
    gate_min_gain: float = Field(default=0.01, ge=0, le=1)
    #: … and most macro-F1 loss on any standard validation set.
    gate_tolerance: float = Field(default=0.02, ge=0, le=1)

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
