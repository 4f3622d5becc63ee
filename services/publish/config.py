"""Publisher settings, from ``PUBLISH_*`` environment variables.

The platform base URLs default to the real services; ``make run`` points them
at the local sandbox (``PUBLISH_X_API_BASE_URL=http://127.0.0.1:8003`` and the
same for Mastodon), so real endpoints are one setting away.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings

#: X accepts media chunks of at most 5 MiB in ``POST /2/media/upload/{id}/append``.
X_MAX_CHUNK_BYTES = 5 * 1024 * 1024


class PublishSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="PUBLISH_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    optional_secret_fields: ClassVar[tuple[str, ...]] = (
        "x_access_token",
        "x_client_secret",
        "x_refresh_token",
        "mastodon_access_token",
        "api_key",
        "bluesky_app_password",
    )

    #: Address the health/metrics server binds (``0.0.0.0`` in a container).
    host: str = "127.0.0.1"
    #: Port of health and metrics.
    port: int = Field(default=8002, ge=1, le=65535)

    #: X API base URL (the sandbox, ``http://127.0.0.1:8003``, under ``make run``).
    x_api_base_url: str = "https://api.x.com"
    #: Where a posted reply is shown: ``<x_web_base_url>/i/web/status/<id>``.
    x_web_base_url: str = "https://x.com"
    #: OAuth 2.0 user-context access token of the campaign account (scopes
    #: tweet.read, tweet.write, users.read, media.write, offline.access); it expires
    #: after 2 hours, then ``x_refresh_token`` gets a new one. X publishing is off
    #: when neither is set.
    x_access_token: SecretStr | None = None
    #: OAuth 2.0 client id of the app (``POST /2/oauth2/token``); needed to refresh.
    x_client_id: str | None = Field(default=None, min_length=1, max_length=256)
    #: Client secret of a confidential app (sent with HTTP Basic auth when refreshing);
    #: unset: a public client (the client id goes in the form).
    x_client_secret: SecretStr | None = None
    #: Refresh token that came with the access token (``offline.access``). Each refresh
    #: returns a new one, kept in the ledger database: this value only starts the chain
    #: (set a new one after re-authorizing and the chain starts again from it).
    x_refresh_token: SecretStr | None = None
    #: Refresh this long before a known expiry (seconds), rather than wait for a 401.
    x_token_refresh_margin_s: float = Field(default=60.0, ge=0)
    #: Label of the X account in logs and budgets (its handle); the numeric user id
    #: is looked up with ``GET /2/users/me`` when needed.
    x_account: str = Field(default="x-campaign", min_length=1, max_length=128)
    #: ``media_category`` of uploads: ``tweet_video`` for a video attached to a post.
    x_media_category: Literal["tweet_video", "amplify_video"] = "tweet_video"
    #: Bytes per ``append`` (at most 5 MiB); the file is streamed one chunk at a time.
    x_chunk_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024, le=X_MAX_CHUNK_BYTES)

    #: Mastodon instance of the campaign account, e.g. ``https://mastodon.social``;
    #: Mastodon publishing is off when unset.
    mastodon_base_url: str | None = None
    #: Access token of the campaign account (scopes write:media, write:statuses, read).
    mastodon_access_token: SecretStr | None = None
    #: Label of the Mastodon account in logs and budgets (its acct).
    mastodon_account: str = Field(default="mastodon-campaign", min_length=1, max_length=128)
    #: Visibility of replies (``public`` shows in the asker's thread and on the profile).
    mastodon_visibility: Literal["public", "unlisted"] = "public"
    #: First wait between ``GET /api/v1/media/:id`` polls (seconds); doubles up to 5 s.
    mastodon_poll_initial_s: float = Field(default=1.0, gt=0)

    #: Connect timeout of every platform request (seconds).
    connect_timeout_s: float = Field(default=10.0, gt=0)
    #: Read/write timeout of API calls (seconds).
    request_timeout_s: float = Field(default=30.0, gt=0)
    #: Read/write timeout of media transfers (one X chunk, a whole Mastodon upload).
    upload_timeout_s: float = Field(default=300.0, gt=0)
    #: Attempts per request on 5xx and network errors (1 = no retry).
    max_attempts: int = Field(default=5, ge=1, le=20)
    #: First backoff after a 5xx or network error (seconds); exponential with jitter.
    backoff_initial_s: float = Field(default=1.0, gt=0)
    #: Longest backoff between attempts (seconds).
    backoff_max_s: float = Field(default=30.0, gt=0)
    #: Pause after a 429 that carries no reset time (seconds).
    rate_limit_fallback_s: float = Field(default=60.0, gt=0)
    #: Give up on media still processing after this long (seconds): retryable.
    media_processing_timeout_s: float = Field(default=600.0, gt=0)
    #: Pages of the account's recent posts searched when reconciling a reply.
    find_reply_max_pages: int = Field(default=5, ge=1, le=50)

    #: The only folder replies' media are read from (the triage web's media folder,
    #: ``TRIAGE_MEDIA_DIR``): a video or subtitle file whose resolved path (symlinks
    #: followed) is outside it is refused and dead-lettered.
    media_root: Path = Path("var/triage/media")
    #: Ledger database (SQLAlchemy async URL): SQLite under ``var/`` by default,
    #: ``postgresql+asyncpg://user@host/db`` in the compose stack.
    database_url: str = "sqlite+aiosqlite:///var/publish/ledger.db"
    #: Postgres schema of the ledger tables (its ``search_path``); unset: the default.
    database_schema: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    #: Bearer token for the moderators' opt-out endpoints (``/v1/opt-outs``); off when unset.
    api_key: SecretStr | None = None

    #: Consumer group of the ``replies.requested`` consumer (one publisher per partition).
    group_id: str = Field(default="publish", min_length=1, max_length=128)
    #: Consumer group of the ``mentions.raw`` reader (engagements and "stop" replies).
    mentions_group_id: str = Field(default="publish-mentions", min_length=1, max_length=128)
    #: Consumer group of the ``consent.withdrawn`` consumer.
    consent_group_id: str = Field(default="publish-consent", min_length=1, max_length=128)
    #: Consumer group of the ``speakers.paused`` consumer (people paused and resumed).
    pauses_group_id: str = Field(default="publish-pauses", min_length=1, max_length=128)
    #: Longest wait for records in one poll (ms); also how often paused partitions are checked.
    poll_timeout_ms: int = Field(default=1_000, ge=10, le=60_000)
    #: Tries of one reply that end in a retryable error before it goes to
    #: ``replies.failed`` with ``retryable=true`` (each try has its own HTTP retries).
    reply_max_attempts: int = Field(default=3, ge=1, le=50)
    #: Wait before the next try of a reply that failed with a retryable error (seconds);
    #: doubles per try up to ``reply_retry_max_s``.
    reply_retry_initial_s: float = Field(default=30.0, gt=0)
    #: Longest wait between two tries of one reply (seconds).
    reply_retry_max_s: float = Field(default=900.0, gt=0)
    #: How long a publisher owns a reply it is sending (seconds): another one (after a
    #: rebalance) that cannot find it on the platform waits this long before posting
    #: it. Keep it above ``upload_timeout_s`` + ``media_processing_timeout_s``.
    sending_lease_s: float = Field(default=1200.0, gt=0)
    #: How often published replies whose consent was withdrawn are looked for and
    #: taken down, and replies held for a person no longer paused are sent again, from
    #: start (seconds): the safety net behind ``consent.withdrawn`` and ``speakers.paused``.
    takedown_sweep_s: float = Field(default=60.0, gt=0)

    #: Days the replies under a published answer are watched (protection; 0: off).
    protect_watch_days: float = Field(default=14.0, ge=0)
    #: Seconds between two reads of the replies under every watched answer.
    protect_poll_s: float = Field(default=30.0, gt=0)
    #: Consumer group of the ``replies.action`` consumer (hide / unhide commands).
    actions_group_id: str = Field(default="publish-actions", min_length=1, max_length=128)

    #: Handles of the campaign accounts (without ``@``): a mention of one is engagement.
    campaign_handles: tuple[str, ...] = ("TakeActionCamps",)
    #: Hashtags of the campaign (without ``#``): using one is engagement.
    campaign_hashtags: tuple[str, ...] = ("TakeAction", "IWelcome")
    #: What counts as the asker engaging the campaign: ``account`` (mentioned it),
    #: ``hashtag`` (used one), or both; a reply goes only to someone who did.
    engagement: tuple[Literal["account", "hashtag"], ...] = Field(
        default=("account", "hashtag"), min_length=1
    )
    #: How long a reply waits for its mention to be read from ``mentions.raw`` (the
    #: engagement check needs it) before it is refused (seconds, from its first try).
    engagement_wait_s: float = Field(default=600.0, ge=0)
    #: Most replies to one author in 24 hours (on one platform).
    author_daily_cap: int = Field(default=2, ge=1, le=100)
    #: Consent scopes that allow publishing a reply on social media.
    consent_scopes: tuple[str, ...] = ("campaign-social", "public")
    #: Reply templates (YAML, per language); unset: the ones shipped with the publisher.
    templates_file: Path | None = None
    #: Language of the templates used when a reply's language has none.
    default_language: str = Field(default="en", min_length=2, max_length=16)
    #: Bluesky: the account's PDS (``https://bsky.social`` for most accounts); the
    #: publisher posts there when an app password is set.
    bluesky_service_url: str = "https://bsky.social"
    #: Bluesky: the account's handle or DID (``takeaction.bsky.social``).
    bluesky_identifier: str = Field(default="takeaction.bsky.social", min_length=1, max_length=256)
    #: Bluesky: an app password of the account (Settings → App passwords).
    bluesky_app_password: SecretStr | None = None
    #: Bluesky's video service; unset: the PDS (the sandbox serves both).
    bluesky_video_url: str | None = "https://video.bsky.app"
    #: Let a link stay in an X reply's text. Off: links are taken out (X bills a
    #: post with a URL 20 times a plain one: $0.20 against $0.01).
    x_allow_urls: bool = False

    #: X's pay-per-use price of a post read (US dollars; X's price since 2026-02).
    x_price_post_read: float = Field(default=0.005, ge=0)
    #: X's price of a reply (a post without a URL).
    x_price_reply: float = Field(default=0.010, ge=0)
    #: X's price of a post with a URL.
    x_price_post_with_url: float = Field(default=0.20, ge=0)
    #: X's price of a read of the account's own data (a post read back, ``users/me``).
    x_price_own_read: float = Field(default=0.001, ge=0)
    #: X's price of a hide or unhide of a reply (``PUT /2/tweets/:id/hidden``).
    x_price_moderate: float = Field(default=0.010, ge=0)
    #: Post reads billed in a month at most (X stops billing reads past it).
    x_post_reads_billed_monthly_cap: int = Field(default=3_000_000, ge=0)
    #: Most US dollars the X account may spend in a UTC day; past it, publishing on
    #: X pauses until the next day (with an error in the log and on the metrics).
    x_daily_budget_usd: float | None = Field(default=None, gt=0)
    #: Most US dollars in a calendar month (UTC); past it, publishing on X pauses
    #: until the next month.
    x_monthly_budget_usd: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _refresh_needs_a_client(self) -> PublishSettings:
        if (self.x_refresh_token or self.x_client_secret) and not self.x_client_id:
            raise ValueError("x_refresh_token and x_client_secret need x_client_id")
        return self

    @property
    def x_enabled(self) -> bool:
        """X publishing is on: an access token, or a refresh token to get one."""
        return self.x_access_token is not None or self.x_refresh_token is not None
