"""Ingest settings, from ``INGEST_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class XStreamRule(BaseModel):
    """One filtered-stream rule; ``tag`` is how the rule is recognised when syncing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: str = Field(min_length=1, max_length=1024)
    tag: str = Field(min_length=1, max_length=128)


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="INGEST_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    optional_secret_fields: ClassVar[tuple[str, ...]] = (
        "x_bearer_token",
        "mastodon_access_token",
        "bluesky_app_password",
    )

    #: Address the HTTP server binds (``0.0.0.0`` in a container).
    host: str = "127.0.0.1"
    #: Port of the webhook, health and metrics.
    port: int = Field(default=8001, ge=1, le=65535)
    #: Bearer token for ``POST /v1/mentions``.
    api_key: SecretStr = SecretStr("")
    #: Largest request body accepted by the webhook (bytes); bigger gets 413.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    #: Most mentions in one ``POST /v1/mentions``.
    max_batch: int = Field(default=1000, ge=1, le=10_000)

    #: Dedupe window: a mention id seen within this many hours is a duplicate.
    dedupe_window_hours: float = Field(default=72.0, gt=0)
    #: Upper bound on remembered ids (memory stays bounded whatever the traffic).
    dedupe_max_ids: int = Field(default=1_000_000, ge=1000)

    #: The campaign's own account handles (any platform, without ``@``): a post that
    #: @mentions one of them (or quotes one of their posts) "summons" the campaign,
    #: which X requires before an app may reply. Used when a post comes without the
    #: platform's entities (the webhook, a replay).
    campaign_handles: list[str] = Field(default_factory=list)
    #: The campaign's X user id (recognises a mention or a quoted post by id).
    x_account_id: str | None = None

    #: X API v2 app bearer token; the filtered stream runs only when it is set.
    x_bearer_token: SecretStr | None = None
    #: X API base URL (a local fake in tests).
    x_api_base_url: str = "https://api.x.com"
    #: Rules kept in sync on start: JSON list of {"value": ..., "tag": ...}.
    x_rules: list[XStreamRule] = Field(default_factory=list)

    #: Mastodon instance, e.g. ``https://mastodon.social``; streaming runs only when set.
    mastodon_base_url: str | None = None
    #: Access token of the campaign account (read scope).
    mastodon_access_token: SecretStr | None = None
    #: Hashtags to follow (without '#').
    mastodon_hashtags: list[str] = Field(default_factory=list)
    #: Also stream the account's notifications (mentions of the campaign account).
    mastodon_mentions: bool = True
    #: Streaming API base when the instance serves it from another host; unset:
    #: discovered from ``/api/v2/instance``, else ``mastodon_base_url``.
    mastodon_streaming_base_url: str | None = None
    #: Only statuses with these visibilities are taken in (a public reply to a
    #: private or direct post would expose it).
    mastodon_visibilities: list[str] = Field(default_factory=lambda: ["public", "unlisted"])
    #: Most REST backfill pages per catch-up after a reconnect.
    mastodon_backfill_max_pages: int = Field(default=20, ge=0, le=1000)
    #: Statuses per REST backfill page (Mastodon allows at most 40).
    mastodon_backfill_page_size: int = Field(default=40, ge=1, le=40)
    #: How far back the first backfill reaches (hours).
    mastodon_backfill_max_age_hours: float = Field(default=24.0, ge=0)
    #: First reconnect backoff (seconds); exponential with jitter after that.
    mastodon_backoff_initial_s: float = Field(default=1.0, gt=0)
    #: Longest reconnect backoff (seconds).
    mastodon_backoff_max_s: float = Field(default=120.0, gt=0)
    #: Silence on a stream for this long (seconds) means it is dead; reconnect.
    mastodon_stream_read_timeout_s: float = Field(default=60.0, gt=0)

    #: Bluesky: the campaign account's PDS; mentions are read when an app password is set.
    bluesky_service_url: str = "https://bsky.social"
    #: Bluesky: the account's handle or DID.
    bluesky_identifier: str = Field(default="takeaction.bsky.social", min_length=1)
    #: Bluesky: an app password of the account.
    bluesky_app_password: SecretStr | None = None
    #: Seconds between two polls of ``app.bsky.notification.listNotifications``.
    bluesky_poll_s: float = Field(default=10.0, gt=0)
    #: File keeping the newest notification taken in (the cursor survives restarts);
    #: unset: ``bluesky-cursor`` in ``INGEST_STATE_DIR``.
    bluesky_cursor_file: Path | None = None
    #: Most notification pages read per poll (50 each); a bigger backlog is read on
    #: over the next polls, and the cursor moves once all of it was taken in.
    bluesky_max_pages: int = Field(default=20, ge=1, le=1000)

    #: Folder for what ingest keeps between restarts (the Bluesky and Mastodon
    #: cursors); must be writable: a volume where the root filesystem is read-only.
    state_dir: Path = Path("var/ingest")

    @property
    def bluesky_cursor_path(self) -> Path:
        """Where the Bluesky cursor is kept."""
        return self.bluesky_cursor_file or self.state_dir / "bluesky-cursor"

    @property
    def mastodon_cursor_path(self) -> Path:
        """Where the Mastodon cursors (the newest id taken in, per feed) are kept."""
        return self.state_dir / "mastodon-cursors"

    @model_validator(mode="after")
    def _hashtag_stream_needs_a_user_token(self) -> IngestSettings:
        if (
            self.mastodon_base_url
            and self.mastodon_hashtags
            and not (
                self.mastodon_access_token and self.mastodon_access_token.get_secret_value().strip()
            )
        ):
            raise ValueError(
                "INGEST_MASTODON_HASHTAGS needs INGEST_MASTODON_ACCESS_TOKEN: since Mastodon "
                "4.2 the hashtag stream (and the tag timeline of many servers) answers 401 "
                "without a user token; give the campaign account's token (scope read)"
            )
        return self
