"""X API v2 adapter: chunked video upload and threaded replies for one account.

Wire format, as documented at docs.x.com (2025 media endpoints):

- ``POST /2/media/upload/initialize`` JSON ``{media_type, total_bytes,
  media_category}`` → ``{"data": {"id", "media_key", "expires_after_secs"}}``;
- ``POST /2/media/upload/{id}/append`` multipart ``segment_index`` (0-999) and
  ``media`` (the chunk bytes) → ``{"data": {"expires_at"}}``;
- ``POST /2/media/upload/{id}/finalize`` → ``{"data": {..., "processing_info":
  {"state", "check_after_secs", "progress_percent"}}}``;
- ``GET /2/media/upload?command=STATUS&media_id=`` → the same shape, polled
  after ``check_after_secs`` until ``state`` is ``succeeded`` (or ``failed``);
- ``POST /2/media/metadata`` JSON ``{id, metadata: {alt_text: {text}}}`` (≤ 1000
  characters): the video's alt text;
- subtitles: an SRT file uploaded the same chunked way with ``media_category``
  ``subtitles``, then ``POST /2/media/subtitles`` JSON ``{id, media_category,
  subtitles: {id, language_code, display_name}}`` ties it to the video;
- ``POST /2/tweets`` JSON ``{text, reply: {in_reply_to_tweet_id}, media:
  {media_ids}}`` → 201 ``{"data": {"id", "text"}}``;
- ``GET /2/users/me``, ``GET /2/users/{id}/tweets`` (reconciliation),
  ``DELETE /2/tweets/{id}`` → ``{"data": {"deleted": true}}``.

Posts read back carry their ``text`` HTML-escaped (``&amp;``, ``&lt;``, ``&gt;``)
with every link shortened to ``https://t.co/...``; ``entities.urls`` maps each
back to its ``expanded_url``.

Errors are RFC 7807 problems (``title``/``detail``/``type``), validation errors
carry an ``errors`` list. Every response carries ``x-rate-limit-limit``,
``-remaining`` and ``-reset`` (epoch seconds) for its endpoint; posting also
carries the 24-hour ``x-user-limit-24hour-*`` and ``x-app-limit-24hour-*``.
Authentication is an OAuth 2.0 user-context bearer token, refreshed with the
refresh token when one is configured (:mod:`services.publish.platforms.oauth`).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import time
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict

from services.common.messages import Platform as PlatformName
from services.common.replies import x_links
from services.publish.config import PublishSettings
from services.publish.exceptions import FinalError, MediaMismatch, RateLimited, RetryableError
from services.publish.platforms.base import (
    ChunkReader,
    Credentials,
    MediaFile,
    PostedReply,
    ReplyDraft,
    ReplyTarget,
    SeenReply,
    StaticToken,
    SubtitleTrack,
    check_size,
    parse_time,
)
from services.publish.platforms.http import PlatformHttp, header_int
from services.publish.platforms.oauth import (
    TOKEN_PATH,
    MemoryTokenStore,
    RefreshingToken,
    TokenStore,
)
from services.publish.ratelimit import AccountBudget, Window
from services.publish.spend import CallClass

log = logging.getLogger(__name__)


#: Rate-limit buckets (X counts limits per endpoint).
MEDIA_UPLOAD = "media_upload"
MEDIA_STATUS = "media_status"
TWEETS_CREATE = "tweets_create"
TWEETS_DELETE = "tweets_delete"
USERS_ME = "users_me"
USER_TWEETS = "user_tweets"
TWEETS_SEARCH = "tweets_search"
TWEETS_HIDDEN = "tweets_hidden"

#: ``POST /2/media/subtitles`` names the video's category the v1.1 way.
_CATEGORY_NAMES = {
    "tweet_video": "TweetVideo",
    "amplify_video": "AmplifyVideo",
    "dm_video": "DmVideo",
}
#: What a subtitle track is called in X's player menu.
_LANGUAGE_NAMES = {
    "EN": "English",
    "AR": "العربية",
    "SO": "Soomaali",
    "SW": "Kiswahili",
    "FR": "Français",
    "AM": "አማርኛ",
    "TI": "ትግርኛ",
}

#: Longest wait between two STATUS polls, whatever ``check_after_secs`` says.
MAX_CHECK_AFTER_S = 60.0
#: X's most results per page of ``GET /2/users/{id}/tweets``.
PAGE_SIZE = 100


# --- X response shapes ------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ProcessingInfo(_Model):
    state: str
    check_after_secs: float | None = None
    progress_percent: int | None = None
    error: dict[str, Any] | None = None


class _MediaData(_Model):
    id: str
    media_key: str | None = None
    processing_info: ProcessingInfo | None = None


class _MediaResponse(_Model):
    data: _MediaData


class _Created(_Model):
    id: str
    text: str | None = None


class _CreatedResponse(_Model):
    data: _Created


class _User(_Model):
    id: str
    username: str | None = None


class _UserResponse(_Model):
    data: _User


class _Reference(_Model):
    type: str
    id: str


class _Link(_Model):
    url: str
    expanded_url: str | None = None


class _Entities(_Model):
    urls: list[_Link] = []


class _Tweet(_Model):
    id: str
    text: str = ""
    entities: _Entities = _Entities()
    referenced_tweets: list[_Reference] = []
    author_id: str | None = None
    created_at: str | None = None
    lang: str | None = None


class _Includes(_Model):
    users: list[_User] = []


class _TimelineMeta(_Model):
    result_count: int = 0
    next_token: str | None = None


class _Timeline(_Model):
    data: list[_Tweet] = []
    meta: _TimelineMeta = _TimelineMeta()


class _Search(_Model):
    data: list[_Tweet] = []
    includes: _Includes = _Includes()
    meta: _TimelineMeta = _TimelineMeta()


def parse_limits(headers: httpx.Headers) -> tuple[Window, ...]:
    """X's windows: the endpoint's 15-minute window and the 24-hour posting caps."""
    windows = []
    for prefix, name in (
        ("x-rate-limit", "15min"),
        ("x-user-limit-24hour", "user-24h"),
        ("x-app-limit-24hour", "app-24h"),
    ):
        reset = header_int(headers, f"{prefix}-reset")
        remaining = header_int(headers, f"{prefix}-remaining")
        if reset is None and remaining is None:
            continue
        windows.append(
            Window(
                limit=header_int(headers, f"{prefix}-limit"),
                remaining=remaining,
                reset_at=float(reset) if reset is not None else None,
                name=name,
            )
        )
    return tuple(windows)


def describe_error(body: Any) -> str:
    """One line from an X problem body (``title``/``detail``/``errors[]``)."""
    if not isinstance(body, dict):
        return str(body)[:300] if body else "(empty body)"
    parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
    for problem in (body.get("errors") or [])[:3]:
        if isinstance(problem, dict):
            parts.append(str(problem.get("message") or problem.get("detail") or problem))
    return ": ".join(parts)[:500] or str(body)[:300]


def x_credentials(
    settings: PublishSettings,
    http: httpx.AsyncClient,
    store: TokenStore,
    clock: Callable[[], float] = time.time,
) -> Credentials:
    """The access token as configured, refreshing itself when a refresh token is."""
    if settings.x_refresh_token is not None and settings.x_client_id is not None:
        return RefreshingToken(
            http=http,
            token_url=settings.x_api_base_url.rstrip("/") + TOKEN_PATH,
            client_id=settings.x_client_id,
            client_secret=settings.x_client_secret,
            access_token=settings.x_access_token,
            refresh_token=settings.x_refresh_token,
            store=store,
            platform=PlatformName.X.value,
            account=settings.x_account,
            timeout=httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s),
            margin_s=settings.x_token_refresh_margin_s,
            clock=clock,
        )
    if settings.x_access_token is None:
        raise ValueError("XClient needs PUBLISH_X_ACCESS_TOKEN or PUBLISH_X_REFRESH_TOKEN")
    return StaticToken(settings.x_access_token)


def written_text(tweet: _Tweet) -> str:
    """A post's text as it was written: X sends it HTML-escaped (``&amp;``, ``&lt;``,
    ``&gt;``) and with every link shortened to t.co; ``entities.urls`` (asked for
    in ``tweet.fields``) gives the links back."""
    text = html.unescape(tweet.text)
    for link in tweet.entities.urls:
        if link.expanded_url:
            text = text.replace(link.url, link.expanded_url)
    return text


def _comparable(text: str) -> str:
    # X stores text NFC-normalized and may give a link back otherwise than it was
    # written (a slash added, ``http://`` before a bare domain): links are compared
    # as links.
    text = unicodedata.normalize("NFC", text)
    parts: list[str] = []
    at = 0
    for start, end in x_links(text):
        parts += [text[at:start], "<link>"]
        at = end
    parts.append(text[at:])
    return "".join(parts).strip()


def same_text(tweet: _Tweet, text: str | None) -> bool:
    """Whether ``tweet`` is a post of ``text`` (what we sent)."""
    if text is None:
        return False
    written = written_text(tweet)
    return written == text or _comparable(written) == _comparable(text)


class SpendMeter(Protocol):
    """Where the adapter counts what X bills (:class:`services.publish.spend.SpendLedger`)."""

    async def record(self, call_class: CallClass, calls: int = 1) -> None: ...

    async def pause(self) -> tuple[float, str] | None: ...


class XClient:
    """The campaign's X account (implements :class:`~services.publish.platforms.base.Platform`)."""

    name = PlatformName.X
    reply_buckets: tuple[str, ...] = (TWEETS_CREATE,)
    media_buckets: tuple[str, ...] = (MEDIA_UPLOAD, MEDIA_STATUS)
    watch_buckets: tuple[str, ...] = (TWEETS_SEARCH,)
    moderate_buckets: tuple[str, ...] = (TWEETS_HIDDEN,)

    def __init__(
        self,
        settings: PublishSettings,
        http: httpx.AsyncClient,
        *,
        budget: AccountBudget | None = None,
        token_store: TokenStore | None = None,
        spend: SpendMeter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budget = budget or AccountBudget(self.name.value, settings.x_account, clock=clock)
        self.spend = spend
        self.credentials = x_credentials(settings, http, token_store or MemoryTokenStore(), clock)
        self._api = PlatformHttp(
            settings=settings,
            http=http,
            base_url=settings.x_api_base_url,
            credentials=self.credentials,
            budget=self.budget,
            parse_limits=parse_limits,
            describe_error=describe_error,
            sleep=sleep,
        )
        self._settings = settings
        self._sleep = sleep
        self._clock = clock
        self._web = settings.x_web_base_url.rstrip("/")
        self._user_id: str | None = None

    # -- media --

    async def upload_video(self, media: MediaFile) -> str:
        await self._within_budget()
        try:
            check_size(media)
        except (MediaMismatch, OSError) as exc:
            raise self._final(f"cannot upload {media.path}: {exc}") from exc
        init = await self._api.request(
            "POST",
            "/2/media/upload/initialize",
            bucket=MEDIA_UPLOAD,
            json={
                "media_type": media.mime,
                "total_bytes": media.size,
                "media_category": self._settings.x_media_category,
            },
        )
        media_id = self._api.parse(init, _MediaResponse).data.id
        log.info("X upload %s started: %d bytes of %s", media_id, media.size, media.mime)
        reader = ChunkReader(media, self._settings.x_chunk_bytes)
        segment = 0
        try:
            async for chunk in reader.chunks():
                await self._api.request(
                    "POST",
                    f"/2/media/upload/{media_id}/append",
                    bucket=MEDIA_UPLOAD,
                    data={"segment_index": str(segment)},
                    files={"media": ("blob", chunk, "application/octet-stream")},
                    timeout=self._api.upload_timeout,
                )
                segment += 1
        except OSError as exc:  # unreadable, or gone since it was checked: no retry helps
            raise self._final(f"cannot read {media.path} for X upload {media_id}: {exc}") from exc
        try:
            reader.verify()
        except MediaMismatch as exc:
            raise self._final(f"X upload {media_id} not finalized: {exc}") from exc
        finalized = await self._api.request(
            "POST", f"/2/media/upload/{media_id}/finalize", bucket=MEDIA_UPLOAD
        )
        info = self._api.parse(finalized, _MediaResponse).data.processing_info
        await self._wait_processed(media_id, info)
        log.info("X upload %s ready (%d segments)", media_id, segment)
        if media.alt_text:
            await self._api.request(
                "POST",
                "/2/media/metadata",
                bucket=MEDIA_UPLOAD,
                json={"id": media_id, "metadata": {"alt_text": {"text": media.alt_text[:1000]}}},
            )
        for track in media.subtitles:
            await self._attach_subtitles(media_id, track)
        return media_id

    async def _attach_subtitles(self, video_id: str, track: SubtitleTrack) -> None:
        """Upload the SRT file (category ``subtitles``) and tie it to the video."""
        body = await asyncio.to_thread(track.path.read_bytes)
        if len(body) != track.size or hashlib.sha256(body).hexdigest() != track.sha256:
            raise self._final(f"subtitles {track.path.name} changed on disk")
        init = await self._api.request(
            "POST",
            "/2/media/upload/initialize",
            bucket=MEDIA_UPLOAD,
            json={
                "media_type": "text/srt",
                "total_bytes": len(body),
                "media_category": "subtitles",
            },
        )
        subtitles_id = self._api.parse(init, _MediaResponse).data.id
        await self._api.request(
            "POST",
            f"/2/media/upload/{subtitles_id}/append",
            bucket=MEDIA_UPLOAD,
            data={"segment_index": "0"},
            files={"media": ("subtitles.srt", body, "application/octet-stream")},
        )
        await self._api.request(
            "POST", f"/2/media/upload/{subtitles_id}/finalize", bucket=MEDIA_UPLOAD
        )
        language = track.language.split("-")[0].upper()
        await self._api.request(
            "POST",
            "/2/media/subtitles",
            bucket=MEDIA_UPLOAD,
            json={
                "id": video_id,
                "media_category": _CATEGORY_NAMES.get(
                    self._settings.x_media_category, self._settings.x_media_category
                ),
                "subtitles": {
                    "id": subtitles_id,
                    "language_code": language,
                    "display_name": _LANGUAGE_NAMES.get(language, language),
                },
            },
        )
        log.info("X subtitles %s (%s) tied to video %s", subtitles_id, language, video_id)

    async def _wait_processed(self, media_id: str, info: ProcessingInfo | None) -> None:
        """Poll STATUS, waiting ``check_after_secs`` each time, until ``succeeded``."""
        deadline = self._clock() + self._settings.media_processing_timeout_s
        while info is not None and info.state != "succeeded":
            if info.state == "failed":
                raise self._final(
                    f"X could not process media {media_id}: {describe_error(info.error)}",
                    error=info.model_dump(exclude_none=True),
                )
            wait = min(max(info.check_after_secs or 1.0, 0.0), MAX_CHECK_AFTER_S)
            if self._clock() + wait > deadline:
                raise RetryableError(
                    f"X media {media_id} still {info.state} after "
                    f"{self._settings.media_processing_timeout_s:.0f} s",
                    platform=self.name.value,
                    account=self.budget.account,
                )
            log.debug(
                "X media %s %s (%s%%); next check in %.0f s",
                media_id,
                info.state,
                info.progress_percent,
                wait,
            )
            await self._sleep(wait)
            status = await self._api.request(
                "GET",
                "/2/media/upload",
                bucket=MEDIA_STATUS,
                params={"command": "STATUS", "media_id": media_id},
            )
            info = self._api.parse(status, _MediaResponse).data.processing_info

    # -- posts --

    async def post_reply(self, draft: ReplyDraft) -> PostedReply:
        # X has no language parameter (it detects the language) and no idempotency
        # key: a retry after an ambiguous failure (5xx, dropped connection) first
        # looks for the reply, so a post that did go out is not posted twice.
        await self._within_budget()
        body: dict[str, Any] = {"text": draft.text}
        if not draft.standalone:  # a standalone post: X would refuse the reply (not summoned)
            body["reply"] = {"in_reply_to_tweet_id": draft.in_reply_to}
        if draft.media_ids:
            body["media"] = {"media_ids": list(draft.media_ids)}
        async for attempt in self._api.retrying():
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    found = await self.find_reply(
                        in_reply_to=draft.in_reply_to, text=draft.text, standalone=draft.standalone
                    )
                    if found is not None:
                        log.info(
                            "reply %s to X post %s went out before the failure; not posting again",
                            found.post_id,
                            draft.in_reply_to,
                        )
                        return found
                response = await self._api.send(
                    "POST", "/2/tweets", bucket=TWEETS_CREATE, json=body
                )
                post_id = self._api.parse(response, _CreatedResponse).data.id
                log.info(
                    "posted X reply %s to %s (key %s)",
                    post_id,
                    draft.in_reply_to,
                    draft.idempotency_key,
                )
                await self._spent(
                    CallClass.POST_WITH_URL if x_links(draft.text) else CallClass.REPLY
                )
                return self._posted(post_id, draft.in_reply_to)
        raise AssertionError("unreachable")  # pragma: no cover

    async def find_reply(
        self, *, in_reply_to: str, text: str | None = None, standalone: bool = False
    ) -> PostedReply | None:
        user_id = await self.user_id()
        params: dict[str, str] = {
            "max_results": str(PAGE_SIZE),
            "tweet.fields": "referenced_tweets,conversation_id,created_at,entities",
            "exclude": "retweets",
        }
        if in_reply_to.isdigit():
            params["since_id"] = in_reply_to  # a reply is newer than what it answers
        candidates: list[_Tweet] = []
        for _ in range(self._settings.find_reply_max_pages):
            response = await self._api.request(
                "GET", f"/2/users/{user_id}/tweets", bucket=USER_TWEETS, params=params
            )
            page = self._api.parse(response, _Timeline)
            await self._spent(CallClass.OWN_READ, len(page.data))
            candidates.extend(
                tweet
                for tweet in page.data
                if (
                    # A standalone post answering ``in_reply_to``: newer, not a reply, its text.
                    not tweet.referenced_tweets and same_text(tweet, text)
                    if standalone
                    else any(
                        r.type == "replied_to" and r.id == in_reply_to
                        for r in tweet.referenced_tweets
                    )
                )
            )
            if not page.meta.next_token:
                break
            params["pagination_token"] = page.meta.next_token
        if not candidates:
            return None
        exact = [t for t in candidates if same_text(t, text)]
        chosen = (exact or candidates)[-1]  # newest first: the last is the earliest reply
        return self._posted(chosen.id, in_reply_to)

    async def delete_post(self, post_id: str) -> bool:
        response = await self._api.request(
            "DELETE", f"/2/tweets/{post_id}", bucket=TWEETS_DELETE, accept=(404,)
        )
        if response.status_code == 404:
            log.info("X post %s was already gone", post_id)
            return False
        data = response.json().get("data") if response.content else None
        deleted = bool(isinstance(data, dict) and data.get("deleted"))
        log.info("deleted X post %s: %s", post_id, deleted)
        return deleted

    async def user_id(self) -> str:
        """The numeric id of the account the token belongs to (asked once)."""
        if self._user_id is None:
            response = await self._api.request("GET", "/2/users/me", bucket=USERS_ME)
            self._user_id = self._api.parse(response, _UserResponse).data.id
            await self._spent(CallClass.OWN_READ)
        return self._user_id

    # -- protection (the replies under our answers) --

    async def replies_under(self, post_id: str, *, since_id: str | None = None) -> list[SeenReply]:
        """``GET /2/tweets/search/recent?query=in_reply_to_tweet_id:<post>`` (the last
        7 days; each post read is billed): the replies to our post, not ours."""
        await self._within_budget()
        mine = await self.user_id()
        params: dict[str, str] = {
            "query": f"in_reply_to_tweet_id:{post_id}",
            "max_results": str(PAGE_SIZE),
            "tweet.fields": "author_id,created_at,conversation_id,referenced_tweets,lang,entities",
            "expansions": "author_id",
            "user.fields": "username",
        }
        if since_id:
            params["since_id"] = since_id
        seen: list[SeenReply] = []
        for _ in range(self._settings.find_reply_max_pages):
            response = await self._api.request(
                "GET", "/2/tweets/search/recent", bucket=TWEETS_SEARCH, params=params
            )
            page = self._api.parse(response, _Search)
            await self._spent(CallClass.POST_READ, len(page.data))
            handles = {u.id: u.username or u.id for u in page.includes.users}
            seen.extend(
                SeenReply(
                    native_id=t.id,
                    author_id=t.author_id or "",
                    author_handle=handles.get(t.author_id or "", t.author_id or "unknown"),
                    text=written_text(t),
                    created_at=parse_time(t.created_at),
                    url=f"{self._web}/i/web/status/{t.id}",
                    lang=t.lang if t.lang not in (None, "und", "zxx", "qme") else None,
                )
                for t in page.data
                if t.author_id and t.author_id != mine and t.text.strip()
            )
            if not page.meta.next_token:
                break
            params["next_token"] = page.meta.next_token
        return sorted(seen, key=lambda r: (len(r.native_id), r.native_id))

    async def hide_reply(self, target: ReplyTarget, hidden: bool) -> str:
        """``PUT /2/tweets/:id/hidden`` (scope ``tweet.moderate.write``); X has no
        report endpoint (moderators report by hand)."""
        await self._within_budget()
        await self._api.request(
            "PUT",
            f"/2/tweets/{target.native_id}/hidden",
            bucket=TWEETS_HIDDEN,
            json={"hidden": hidden},
        )
        await self._spent(CallClass.MODERATE)
        log.info("X reply %s %s", target.native_id, "hidden" if hidden else "shown again")
        return "hidden" if hidden else "shown"

    # -- spend (X bills per use) --

    async def _within_budget(self) -> None:
        """Raise :class:`RateLimited` while a daily or monthly X budget is spent:
        publishing pauses (take-downs still go), never silently."""
        pause = await self.spend.pause() if self.spend is not None else None
        if pause is None:
            return
        until, why = pause
        log.error("publishing on X paused until %.0f: %s", until, why)
        raise RateLimited(
            f"X budget spent: {why}; publishing paused",
            platform=self.name.value,
            account=self.budget.account,
            reset_at=until,
        )

    async def _spent(self, call_class: CallClass, calls: int = 1) -> None:
        if self.spend is not None:
            await self.spend.record(call_class, calls)

    # -- helpers --

    def _posted(self, post_id: str, in_reply_to: str) -> PostedReply:
        return PostedReply(post_id, f"{self._web}/i/web/status/{post_id}", in_reply_to)

    def _final(self, message: str, *, error: Any = None) -> FinalError:
        return FinalError(
            message, platform=self.name.value, account=self.budget.account, status=None, error=error
        )
