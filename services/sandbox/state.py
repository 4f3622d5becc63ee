"""What the sandbox remembers: media, posts, idempotency keys, rate-limit windows,
the X OAuth tokens it handed out and the faults still to inject. Plain in-memory
state on one event loop."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from services.sandbox.config import PlatformFaults, SandboxFaults, SandboxSettings

log = logging.getLogger(__name__)

PlatformKey = Literal["x", "mastodon", "bluesky"]
MediaState = Literal["uploading", "processing", "succeeded", "failed"]

#: X's epoch for snowflake ids (2010-11-04).
_X_EPOCH_MS = 1_288_834_974_657
#: How long Mastodon keeps an Idempotency-Key (seconds).
IDEMPOTENCY_TTL_S = 3600.0

_EXTENSIONS = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/mp2t": ".ts",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
}


def extension(mime: str) -> str:
    return _EXTENSIONS.get(mime, ".bin")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Account:
    platform: PlatformKey
    id: str
    username: str


@dataclass
class StoredMedia:
    platform: PlatformKey
    id: str
    account_id: str
    mime: str
    path: Path
    total_bytes: int | None = None
    size: int = 0
    sha256: str | None = None
    state: MediaState = "uploading"
    ready_at: float = 0.0
    fails: bool = False
    created_at: float = 0.0
    #: Segment index → bytes received (X chunked uploads).
    segments: dict[int, int] = field(default_factory=dict)
    attached_to: str | None = None
    #: X's ``media_category`` (``subtitles`` for a subtitle file).
    category: str | None = None
    #: What the probe found in a video (codecs, size, frame rate, duration, fast start).
    facts: dict[str, Any] = field(default_factory=dict)
    #: Why the platform refused it (processing fails with this message).
    refusal: str | None = None
    alt_text: str = ""
    #: Subtitle files tied to this video: ``{id, language_code, display_name, cues}``.
    subtitles: list[dict[str, Any]] = field(default_factory=list)

    def state_at(self, now: float) -> MediaState:
        if self.state == "processing" and now >= self.ready_at:
            self.state = "failed" if self.fails else "succeeded"
        return self.state

    def summary(self, public_url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "mime": self.mime,
            "size": self.size,
            "sha256": self.sha256,
            "url": f"{public_url}/sandbox/media/{self.platform}/{self.id}",
            "file": self.path.name,
            "alt_text": self.alt_text,
            "subtitles": self.subtitles,
            "facts": self.facts,
        }


@dataclass
class StoredPost:
    platform: PlatformKey
    id: str
    account_id: str
    username: str
    in_reply_to: str | None
    text: str
    media: list[dict[str, Any]]
    created_at: float
    url: str
    language: str | None = None
    visibility: str | None = None
    #: The post this one quotes (X quote posts, Bluesky quote embeds).
    quote_of: str | None = None
    #: Hidden by the author of the thread (a hidden reply; Bluesky threadgate).
    hidden: bool = False
    #: Posted through ``POST /sandbox/posts`` by someone else than an API client.
    external: bool = False
    #: Bluesky: the record's CID (a reply names its parent and root by uri and cid).
    cid: str | None = None

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = iso(self.created_at)
        out["author"] = {"id": self.account_id, "handle": self.username}
        return out


@dataclass
class IssuedToken:
    """An X access token handed out by ``POST /2/oauth2/token``."""

    username: str
    expires_at: float


@dataclass
class RefreshGrant:
    """An X refresh token: good for one refresh, bound to the client it was issued to."""

    username: str
    client_id: str | None
    spent: bool = False


@dataclass
class _Window:
    start: float
    count: int = 0


def faults_update(current: PlatformFaults, given: PlatformFaults) -> PlatformFaults:
    """``current`` with the fields ``given`` set explicitly."""
    return current.model_copy(
        update={name: getattr(given, name) for name in given.model_fields_set}
    )


class SandboxState:
    def __init__(self, settings: SandboxSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.faults = self.initial_faults()
        self.media: dict[tuple[PlatformKey, str], StoredMedia] = {}
        self.posts: dict[tuple[PlatformKey, str], StoredPost] = {}
        #: Ids of posts deleted here (replying to them is refused).
        self.deleted: set[tuple[PlatformKey, str]] = set()
        #: Media deleted with their post (``delete_media=true``).
        self.deleted_media: set[tuple[PlatformKey, str]] = set()
        #: (account id, key) → (status id, when).
        self.idempotency: dict[tuple[str, str], tuple[str, float]] = {}
        self._windows: dict[tuple[PlatformKey, str, str], _Window] = {}
        #: X OAuth: access tokens handed out, refresh tokens (spent ones kept).
        self.x_access_tokens: dict[str, IssuedToken] = {}
        self.x_refresh_tokens: dict[str, RefreshGrant] = {}
        #: Refreshes granted, and X requests refused for an expired access token.
        self.x_refreshes = 0
        self.x_expired_refusals = 0
        self._seed_refresh_tokens()
        self._last_id = 0
        self.media_dir = settings.media_dir
        #: Queues of the open streams (X filtered stream, Mastodon SSE): every new post.
        self.listeners: set[asyncio.Queue[StoredPost]] = set()
        #: Makes the Bluesky notifications of a new post (set by the Bluesky API).
        self.on_bluesky_post: Callable[[SandboxState, StoredPost], None] = lambda s, p: None
        #: X filtered-stream rules: id → (value, tag).
        self.x_rules: dict[str, tuple[str, str | None]] = {}
        #: Bluesky: sessions by access token, refresh tokens, service-auth tokens,
        #: the records as created, and notifications (account did, reason, post uri).
        self.bluesky_sessions: dict[str, Any] = {}
        self.bluesky_refresh: dict[str, tuple[str, str]] = {}
        self.bluesky_service_tokens: dict[str, str] = {}
        self.bluesky_records: dict[str, dict[str, Any]] = {}
        self.bluesky_notifications: list[tuple[str, str, str]] = []
        self.bluesky_session_creations = 0
        self.bluesky_server_did = "did:web:sandbox.invalid"
        #: Sizes of the videos uploaded to the Bluesky video service today.
        self.bluesky_video_bytes: list[int] = []
        #: Mastodon notifications, oldest first: (id, account username, post id, when).
        self.notifications: list[tuple[str, str, str, float]] = []
        #: Every hide, unhide, mute, unmute and report, in order (``GET /sandbox/moderation``).
        self.moderation_calls: list[dict[str, Any]] = []
        self._load()

    def initial_faults(self) -> SandboxFaults:
        """The faults of the settings (a fresh copy: counters are consumed)."""
        configured = self.settings.faults
        return configured.model_copy(deep=True) if configured is not None else SandboxFaults()

    # -- ids and accounts --

    def next_id(self) -> str:
        """A snowflake-like id: time-ordered, so ``since_id`` works as on X."""
        candidate = (int(self.clock() * 1000) - _X_EPOCH_MS) << 22
        self._last_id = max(candidate, self._last_id + 1)
        return str(self._last_id)

    def account_for(self, platform: PlatformKey, token: str) -> Account | None:
        issued = self.x_access_tokens.get(token) if platform == "x" else None
        if issued is not None:
            if self.clock() >= issued.expires_at:
                self.x_expired_refusals += 1
                return None
            return self._account(platform, issued.username)
        tokens = self.settings.tokens
        if tokens:
            username = tokens.get(token)
            if username is None:
                return None
        else:
            username = self.settings.account_name
        return self._account(platform, username)

    def known_account(self, platform: PlatformKey, username: str) -> Account:
        """The account ``username`` stands for: one that posted here, else a new one."""
        for post in self.posts.values():
            if post.platform == platform and post.username.casefold() == username.casefold():
                return Account(platform, post.account_id, post.username)
        return self._account(platform, username)

    @staticmethod
    def _account(platform: PlatformKey, username: str) -> Account:
        digest = hashlib.sha256(f"{platform}:{username}".encode()).hexdigest()
        return Account(platform, str(int(digest[:15], 16)), username)

    # -- X OAuth 2.0 --

    def _seed_refresh_tokens(self) -> None:
        for token, username in self.settings.x_refresh_tokens.items():
            self.x_refresh_tokens[token] = RefreshGrant(username, client_id=None)

    def grant_x_tokens(self, username: str, client_id: str | None = None) -> tuple[str, str]:
        """A new (access token, refresh token) pair for ``username``, as an
        authorization would hand out."""
        access = secrets.token_urlsafe(24)
        refresh = secrets.token_urlsafe(24)
        ttl = self.settings.x_access_token_ttl_s
        self.x_access_tokens[access] = IssuedToken(username, self.clock() + ttl)
        self.x_refresh_tokens[refresh] = RefreshGrant(username, client_id)
        return access, refresh

    def refresh_x(self, refresh_token: str, client_id: str) -> tuple[str, str] | None:
        """Spend ``refresh_token``: a new pair, or None when it is unknown, spent or
        another client's."""
        grant = self.x_refresh_tokens.get(refresh_token)
        if grant is None or grant.spent or grant.client_id not in (None, client_id):
            return None
        grant.spent = True
        self.x_refreshes += 1
        return self.grant_x_tokens(grant.username, client_id)

    # -- faults --

    def platform_faults(self, platform: PlatformKey) -> PlatformFaults:
        faults: PlatformFaults = getattr(self.faults, platform)
        return faults

    def set_faults(self, given: SandboxFaults) -> None:
        for name in given.model_fields_set:
            merged = faults_update(getattr(self.faults, name), getattr(given, name))
            setattr(self.faults, name, merged)

    def take_fault(self, platform: PlatformKey, bucket: str) -> str | None:
        """Consume and name the next counted fault for this request, if any."""
        faults = self.platform_faults(platform)
        if faults.endpoints is not None and bucket not in faults.endpoints:
            return None
        for name in ("drop", "drop_after", "server_errors", "rate_limit_burst"):
            left = getattr(faults, name)
            if left > 0:
                setattr(faults, name, left - 1)
                log.info("sandbox fault on %s %s: %s (%d left)", platform, bucket, name, left - 1)
                return name
        return None

    def take_media_failure(self, platform: PlatformKey) -> bool:
        faults = self.platform_faults(platform)
        if faults.media_fail > 0:
            faults.media_fail -= 1
            return True
        return False

    # -- rate limits --

    def rate_budget(self, platform: PlatformKey) -> tuple[int, float]:
        faults = self.platform_faults(platform)
        if platform == "x":
            default = (self.settings.x_rate_limit, self.settings.x_rate_window_s)
        elif platform == "bluesky":
            default = (self.settings.bluesky_rate_limit, self.settings.bluesky_rate_window_s)
        else:
            default = (self.settings.mastodon_rate_limit, self.settings.mastodon_rate_window_s)
        return (faults.rate_limit or default[0], faults.rate_window_s or default[1])

    def take_rate(
        self, platform: PlatformKey, account_id: str, bucket: str
    ) -> tuple[bool, int, int, float]:
        """Count one request: (allowed, limit, remaining, reset_at)."""
        limit, window_s = self.rate_budget(platform)
        key = (platform, account_id, bucket if platform != "mastodon" else "account")
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now >= window.start + window_s:
            window = self._windows[key] = _Window(start=now)
        reset_at = window.start + window_s
        if window.count >= limit:
            return False, limit, 0, reset_at
        window.count += 1
        return True, limit, limit - window.count, reset_at

    # -- media --

    def new_media(
        self, platform: PlatformKey, account_id: str, mime: str, total_bytes: int | None
    ) -> StoredMedia:
        media_id = self.next_id()
        folder = self.media_dir / platform
        folder.mkdir(parents=True, exist_ok=True)
        media = StoredMedia(
            platform=platform,
            id=media_id,
            account_id=account_id,
            mime=mime,
            path=folder / f"{media_id}{extension(mime)}",
            total_bytes=total_bytes,
            created_at=self.clock(),
        )
        self.media[(platform, media_id)] = media
        return media

    def start_processing(self, media: StoredMedia) -> None:
        faults = self.platform_faults(media.platform)
        media.fails = media.fails or self.take_media_failure(media.platform)
        media.state = "processing"
        media.ready_at = self.clock() + faults.media_processing_s
        media.state_at(self.clock())

    def parts_dir(self, media: StoredMedia) -> Path:
        return media.path.with_suffix(".parts")

    # -- posts --

    def add_post(self, post: StoredPost) -> None:
        self.posts[(post.platform, post.id)] = post
        self._save()
        if post.platform == "mastodon":
            for username in self.our_usernames():
                if username != post.username and self.summons(post, username):
                    self.notifications.append((self.next_id(), username, post.id, post.created_at))
        if post.platform == "bluesky":
            self.on_bluesky_post(self, post)
        for queue in self.listeners:
            queue.put_nowait(post)

    def our_usernames(self) -> set[str]:
        """The accounts API clients post as (the campaign's)."""
        return {*self.settings.tokens.values(), self.settings.account_name}

    def summons(self, post: StoredPost, username: str) -> bool:
        """Does ``post`` summon ``username``: @mention it, quote one of its posts, or
        (Mastodon, where a reply carries the mention) answer one of its posts?"""
        if mentions(post.text, username):
            return True
        for target in (post.quote_of, post.in_reply_to if post.platform == "mastodon" else None):
            other = self.posts.get((post.platform, target)) if target else None
            if other is not None and other.username.casefold() == username.casefold():
                return True
        return False

    def set_hidden(self, post: StoredPost, hidden: bool, *, by: str, how: str) -> None:
        """Hide or show a reply as its thread's owner ``by`` asked (kept, and counted in
        ``moderation_calls`` even when nothing changes: a repeated call is visible)."""
        self.moderation_calls.append(
            {"platform": post.platform, "call": how, "by": by, "post_id": post.id,
             "hidden": hidden, "changed": post.hidden != hidden}
        )  # fmt: skip
        post.hidden = hidden
        self._save()

    def delete_post(self, platform: PlatformKey, post_id: str) -> StoredPost | None:
        post = self.posts.pop((platform, post_id), None)
        if post is not None:
            self.deleted.add((platform, post_id))
            self._save()
        return post

    def delete_media(self, platform: PlatformKey, media_ids: list[str]) -> None:
        """Forget media and remove their files (a take-down that deletes the media)."""
        for media_id in media_ids:
            media = self.media.pop((platform, media_id), None)
            if media is not None:
                media.path.unlink(missing_ok=True)
                self.deleted_media.add((platform, media_id))

    def live_posts(self, platform: PlatformKey | None = None) -> list[StoredPost]:
        posts = [p for p in self.posts.values() if platform is None or p.platform == platform]
        return sorted(posts, key=lambda p: (p.created_at, len(p.id), p.id))

    def idempotent(self, account_id: str, key: str) -> StoredPost | None:
        hit = self.idempotency.get((account_id, key))
        if hit is None or self.clock() - hit[1] > IDEMPOTENCY_TTL_S:
            return None
        return self.posts.get(("mastodon", hit[0]))

    def reset(self) -> None:
        self.media.clear()
        self.posts.clear()
        self.x_rules.clear()
        self.notifications.clear()
        self.moderation_calls.clear()
        self.bluesky_video_bytes.clear()
        self.bluesky_sessions.clear()
        self.bluesky_refresh.clear()
        self.bluesky_service_tokens.clear()
        self.bluesky_records.clear()
        self.bluesky_notifications.clear()
        self.bluesky_session_creations = 0
        self.deleted.clear()
        self.deleted_media.clear()
        self.idempotency.clear()
        self._windows.clear()
        self.x_access_tokens.clear()
        self.x_refresh_tokens.clear()
        self.x_refreshes = self.x_expired_refusals = 0
        self._seed_refresh_tokens()
        self.faults = self.initial_faults()
        self._save()

    # -- persistence --

    def _load(self) -> None:
        path = self.settings.posts_file
        if path is None or not path.exists():
            return
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            for item in raw.get("posts", []):
                created = datetime.fromisoformat(item["created_at"]).timestamp()
                item.pop("author", None)  # derived from account_id and username
                post = StoredPost(**{**item, "created_at": created})
                self.posts[(post.platform, post.id)] = post
                for m in post.media:
                    file = self.media_dir / post.platform / str(m.get("file", ""))
                    self.media[(post.platform, m["id"])] = StoredMedia(
                        platform=post.platform,
                        id=m["id"],
                        account_id=post.account_id,
                        mime=m["mime"],
                        path=file,
                        size=m["size"],
                        sha256=m.get("sha256"),
                        state="succeeded",
                        attached_to=post.id,
                    )
            self._last_id = max(
                (int(p.id) for p in self.posts.values() if p.id.isdigit()), default=0
            )
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("could not read sandbox posts from %s: %s; starting empty", path, exc)
            self.posts.clear()
            self.media.clear()

    def _save(self) -> None:
        path = self.settings.posts_file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"posts": [p.public() for p in self.live_posts()]}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".posts-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        os.replace(tmp, path)


_DIGITS = re.compile(r"^[0-9]{1,19}$")


def mentions(text: str, username: str) -> bool:
    """``text`` @mentions ``username`` (``@name``, ``@name@instance``), not a longer name."""
    pattern = rf"(?<![\w@])@{re.escape(username)}(?![\w])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def is_snowflake(value: object) -> bool:
    return isinstance(value, str) and bool(_DIGITS.match(value))
