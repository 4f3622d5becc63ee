"""Sandbox settings, from ``PUBLISH_SANDBOX_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class PlatformFaults(BaseModel):
    """Faults and budget of one platform. Counted faults apply to the next matching
    API requests (those whose bucket is in ``endpoints``, or all when it is unset),
    in this order: ``drop``, ``drop_after``, ``5xx``, ``429_burst``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    #: The next N requests answer 429 with remaining 0 and a reset ``reset_after_s`` away.
    rate_limit_burst: int = Field(default=0, ge=0, alias="429_burst")
    #: The next N requests answer ``server_error_status``.
    server_errors: int = Field(default=0, ge=0, alias="5xx")
    #: Status of the ``5xx`` fault.
    server_error_status: int = Field(default=503, ge=500, le=599)
    #: The next N requests lose their connection before being handled.
    drop: int = Field(default=0, ge=0)
    #: The next N requests are handled, then lose their connection before the answer.
    drop_after: int = Field(default=0, ge=0)
    #: Seconds a finalized video spends processing (STATUS / GET media say so).
    media_processing_s: float = Field(default=0.0, ge=0)
    #: The next N uploaded videos fail processing.
    media_fail: int = Field(default=0, ge=0)
    #: How far away the reset of a ``429_burst`` answer is (seconds).
    reset_after_s: float = Field(default=60.0, gt=0)
    #: Buckets the counted faults apply to (e.g. ``["tweets_create"]``); unset: all.
    endpoints: list[str] | None = None
    #: Requests per window and bucket before a real 429; unset: the settings' default.
    rate_limit: int | None = Field(default=None, ge=1)
    #: Length of a rate-limit window (seconds); unset: the settings' default.
    rate_window_s: float | None = Field(default=None, gt=0)


class SandboxFaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: PlatformFaults = Field(default_factory=PlatformFaults)
    mastodon: PlatformFaults = Field(default_factory=PlatformFaults)
    bluesky: PlatformFaults = Field(default_factory=PlatformFaults)


class SandboxSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="PUBLISH_SANDBOX_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    optional_secret_fields: ClassVar[tuple[str, ...]] = ("x_client_secret",)

    #: Address the sandbox binds.
    host: str = "127.0.0.1"
    #: Port of the sandbox (X and Mastodon subsets, the page, the control API).
    port: int = Field(default=8003, ge=1, le=65535)
    #: Base URL the sandbox is reached at, used in the media and post URLs it hands
    #: out; unset: ``http://<host>:<port>``.
    public_url: str | None = None

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    #: Where uploaded media are stored and served from (``var/sandbox``).
    media_dir: Path = Path("var/sandbox")
    #: JSON file that keeps the posts across restarts; unset: memory only.
    posts_file: Path | None = None
    #: Accepted bearer tokens and the account name each one stands for (JSON object);
    #: empty: any bearer token is accepted as ``account_name``.
    tokens: dict[str, str] = Field(default_factory=dict)
    #: Account name when ``tokens`` is empty.
    account_name: str = Field(default="takeaction_sandbox", pattern=r"^[A-Za-z0-9_]{1,30}$")
    #: X refresh tokens accepted (each once) by ``POST /2/oauth2/token`` from the
    #: start, and the account each stands for (JSON object). The tokens it hands out
    #: are kept in memory only.
    x_refresh_tokens: dict[str, str] = Field(default_factory=dict)
    #: Lifetime of the X access tokens ``POST /2/oauth2/token`` hands out (seconds);
    #: the X endpoints answer 401 to one past it.
    x_access_token_ttl_s: float = Field(default=7200.0, gt=0)
    #: OAuth 2.0 client id the X token endpoint expects; unset: any.
    x_client_id: str | None = None
    #: Secret of a confidential client: the token endpoint then wants HTTP Basic auth
    #: with the client id and it; unset: a public client (the client id in the form).
    x_client_secret: SecretStr | None = None
    #: Faults active at start (JSON, same shape as ``POST /sandbox/faults``); unset: none.
    faults: SandboxFaults | None = None
    #: X requests per window and endpoint (``x-rate-limit-limit``).
    x_rate_limit: int = Field(default=300, ge=1)
    #: X rate-limit window (seconds).
    x_rate_window_s: float = Field(default=900.0, gt=0)
    #: Mastodon requests per window and account (``X-RateLimit-Limit``).
    mastodon_rate_limit: int = Field(default=300, ge=1)
    #: Mastodon rate-limit window (seconds).
    mastodon_rate_window_s: float = Field(default=300.0, gt=0)
    #: Largest X ``append`` chunk (bytes).
    x_max_chunk_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    #: Largest media file (bytes).
    max_media_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    #: Longest X post text (characters).
    x_max_chars: int = Field(default=280, ge=1)
    #: Longest Mastodon status text (characters).
    mastodon_max_chars: int = Field(default=500, ge=1)
    #: Refuse an X post whose text repeats a live post of the same account (as X does).
    x_reject_duplicates: bool = True
    #: Check uploaded videos as the platforms do (X's limits; Mastodon's below, which
    #: ``GET /api/v2/instance`` publishes): a video they would refuse fails processing
    #: (X) or the upload (Mastodon).
    check_media: bool = True
    #: Mastodon's ``video_size_limit`` (bytes; 99 MiB as mastodon.social).
    mastodon_video_size_limit: int = Field(default=99 * 1024 * 1024, ge=1024)
    #: Mastodon's ``video_frame_rate_limit`` (frames per second).
    mastodon_video_frame_rate_limit: int = Field(default=120, ge=1)
    #: Mastodon's ``video_matrix_limit`` (pixels in a frame; 3840x2160).
    mastodon_video_matrix_limit: int = Field(default=8_294_400, ge=1)
    #: Mastodon's ``description_limit`` (characters of a media description).
    mastodon_description_limit: int = Field(default=1500, ge=1)
    #: Longest X alt text (characters).
    x_max_alt_text: int = Field(default=1000, ge=1)
    #: Bluesky requests per window and endpoint (``ratelimit-limit``; a PDS allows
    #: 3000 per 5 minutes for most calls).
    bluesky_rate_limit: int = Field(default=3000, ge=1)
    #: Bluesky rate-limit window (seconds).
    bluesky_rate_window_s: float = Field(default=300.0, gt=0)
    #: Lifetime of a Bluesky session's access token (seconds); then ``ExpiredToken``.
    bluesky_access_ttl_s: float = Field(default=7200.0, gt=0)
    #: Seconds between two keep-alives (a bare ``\r\n``) on the X filtered stream
    #: and two heartbeats on Mastodon's streaming API (X sends one every 20 s).
    x_stream_keepalive_s: float = Field(default=20.0, gt=0)
