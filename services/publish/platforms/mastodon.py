"""Mastodon adapter: video upload and threaded replies for one account.

Wire format, as documented at docs.joinmastodon.org:

- ``POST /api/v2/media`` multipart ``file`` and ``description`` (the alt text,
  ≤ 1500 characters by default: the instance says in ``/api/v2/instance``) → 200 with a
  MediaAttachment when processed synchronously, or 202 with ``url: null`` while
  the full-size file is processed in the background;
- ``GET /api/v1/media/:id`` → 206 (empty body) while processing, 200 with the
  attachment (``url`` set) when done, 422 when processing failed;
- ``POST /api/v1/statuses`` (``status``, ``in_reply_to_id``, ``media_ids[]``,
  ``language``, ``visibility``) with an ``Idempotency-Key`` header: the server
  keeps keys for up to an hour and answers a repeated key with the first status;
- ``GET /api/v1/accounts/verify_credentials``, ``GET /api/v1/statuses/:id/context``
  (reconciliation: ``descendants`` by our account), ``DELETE /api/v1/statuses/:id``;
- protection: the same ``context`` (``descendants`` by others are the replies under
  our answer), ``POST /api/v1/accounts/:id/mute`` / ``unmute`` (Mastodon cannot hide a
  reply: its author is muted for the account) and ``POST /api/v1/reports``
  (``account_id``, ``status_ids[]``, ``comment``; not forwarded to remote instances;
  no idempotency key, so sent once, never retried).

Errors are ``{"error": "..."}``. Rate limits come as ``X-RateLimit-Limit``,
``-Remaining`` and ``-Reset`` (an ISO 8601 timestamp); the headers describe the
limit closest to running out (300 calls per 5 minutes per account; uploads and
deletions have stricter 30 per 30 minutes buckets).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, BinaryIO

import httpx
from pydantic import BaseModel, ConfigDict

from services.common.html_text import html_to_text
from services.common.messages import Platform as PlatformName
from services.publish.config import PublishSettings
from services.publish.exceptions import FinalError, MediaMismatch, RetryableError
from services.publish.platforms.base import (
    HashingFile,
    MediaFile,
    PostedReply,
    ReplyDraft,
    ReplyTarget,
    SeenReply,
    StaticToken,
    check_size,
    parse_time,
)
from services.publish.platforms.http import PlatformHttp, header_int
from services.publish.ratelimit import ACCOUNT, AccountBudget, Window

log = logging.getLogger(__name__)


#: Rate-limit buckets: the account-wide one, and the stricter upload and delete ones.
MEDIA = "media"
STATUSES_DELETE = "statuses_delete"
#: Reports (Mastodon limits them per account, apart from the rest).
REPORTS = "reports"

#: Longest wait between two media polls (seconds).
MAX_POLL_S = 5.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Attachment(_Model):
    id: str
    type: str | None = None
    url: str | None = None


class _Account(_Model):
    id: str
    acct: str | None = None
    username: str | None = None


class _Status(_Model):
    id: str
    url: str | None = None
    uri: str | None = None
    in_reply_to_id: str | None = None
    account: _Account | None = None
    created_at: str | None = None
    content: str = ""
    language: str | None = None


class _Context(_Model):
    ancestors: list[_Status] = []
    descendants: list[_Status] = []


def parse_reset(raw: str | None) -> float | None:
    """``X-RateLimit-Reset``: an ISO 8601 timestamp (epoch seconds tolerated too)."""
    if not raw:
        return None
    raw = raw.strip()
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return None


def parse_limits(headers: httpx.Headers) -> tuple[Window, ...]:
    reset = parse_reset(headers.get("x-ratelimit-reset"))
    remaining = header_int(headers, "x-ratelimit-remaining")
    if reset is None and remaining is None:
        return ()
    return (
        Window(
            limit=header_int(headers, "x-ratelimit-limit"),
            remaining=remaining,
            reset_at=reset,
            name="closest",
        ),
    )


def describe_error(body: Any) -> str:
    if isinstance(body, dict) and body.get("error"):
        detail = str(body["error"])
        if body.get("error_description"):
            detail += f": {body['error_description']}"
        return detail[:500]
    return str(body)[:300] if body else "(empty body)"


def mastodon_language(language: str | None) -> str | None:
    """Mastodon wants an ISO 639 code: ``ar-SY`` → ``ar``."""
    if not language:
        return None
    primary = language.replace("_", "-").split("-")[0].lower()
    return primary if 2 <= len(primary) <= 3 and primary.isalpha() else None


class MastodonClient:
    """The campaign's Mastodon account (implements the ``Platform`` port)."""

    name = PlatformName.MASTODON
    reply_buckets: tuple[str, ...] = (ACCOUNT,)
    media_buckets: tuple[str, ...] = (MEDIA,)
    watch_buckets: tuple[str, ...] = (ACCOUNT,)
    moderate_buckets: tuple[str, ...] = (ACCOUNT, REPORTS)

    def __init__(
        self,
        settings: PublishSettings,
        http: httpx.AsyncClient,
        *,
        budget: AccountBudget | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.mastodon_base_url or settings.mastodon_access_token is None:
            raise ValueError(
                "MastodonClient needs PUBLISH_MASTODON_BASE_URL and PUBLISH_MASTODON_ACCESS_TOKEN"
            )
        self.budget = budget or AccountBudget(
            self.name.value, settings.mastodon_account, clock=clock
        )
        self._api = PlatformHttp(
            settings=settings,
            http=http,
            base_url=settings.mastodon_base_url,
            credentials=StaticToken(settings.mastodon_access_token),
            budget=self.budget,
            parse_limits=parse_limits,
            describe_error=describe_error,
            sleep=sleep,
        )
        self._settings = settings
        self._sleep = sleep
        self._clock = clock
        self._account_id: str | None = None

    # -- media --

    async def upload_video(self, media: MediaFile) -> str:
        try:
            check_size(media)
            handle: BinaryIO = await asyncio.to_thread(media.path.open, "rb")
        except (MediaMismatch, OSError) as exc:
            raise self._final(f"cannot upload {media.path}: {exc}") from exc
        try:
            source = HashingFile(handle)
            response = await self._api.request(
                "POST",
                "/api/v2/media",
                bucket=MEDIA,
                files={"file": (media.path.name, source, media.mime)},
                data={"description": media.alt_text} if media.alt_text else None,
                timeout=self._api.upload_timeout,
            )
        finally:
            await asyncio.to_thread(handle.close)
        if source.read_bytes != media.size or source.hexdigest() != media.sha256.lower():
            # Uploaded but never attached: Mastodon removes unattached media itself.
            raise self._final(f"{media.path} changed on disk: its sha256 or size differs")
        attachment = self._api.parse(response, _Attachment)
        if response.status_code == 202 or attachment.url is None:
            await self._wait_processed(attachment.id)
        log.info("Mastodon media %s ready (%d bytes)", attachment.id, media.size)
        return attachment.id

    async def _wait_processed(self, media_id: str) -> None:
        """Poll ``GET /api/v1/media/:id`` until 200 with a url (206 means: still processing)."""
        deadline = self._clock() + self._settings.media_processing_timeout_s
        wait = self._settings.mastodon_poll_initial_s
        while True:
            if self._clock() + wait > deadline:
                raise RetryableError(
                    f"Mastodon media {media_id} still processing after "
                    f"{self._settings.media_processing_timeout_s:.0f} s",
                    platform=self.name.value,
                    account=self.budget.account,
                )
            await self._sleep(wait)
            response = await self._api.request(
                "GET", f"/api/v1/media/{media_id}", bucket=ACCOUNT, accept=(206,)
            )
            if response.status_code == 200 and self._api.parse(response, _Attachment).url:
                return
            wait = min(wait * 2, MAX_POLL_S)

    # -- statuses --

    async def post_reply(self, draft: ReplyDraft) -> PostedReply:
        # Mastodon takes every reply: ``standalone`` is always one.
        body: dict[str, Any] = {
            "status": draft.text,
            "in_reply_to_id": draft.in_reply_to,
            "media_ids": list(draft.media_ids),
            "visibility": self._settings.mastodon_visibility,
        }
        if (code := mastodon_language(draft.language)) is not None:
            body["language"] = code
        # Safe to retry as it is: the same Idempotency-Key returns the first status.
        response = await self._api.request(
            "POST",
            "/api/v1/statuses",
            bucket=ACCOUNT,
            json=body,
            headers={"Idempotency-Key": draft.idempotency_key},
        )
        status = self._api.parse(response, _Status)
        log.info(
            "posted Mastodon reply %s to %s (key %s)",
            status.id,
            draft.in_reply_to,
            draft.idempotency_key,
        )
        return PostedReply(status.id, status.url or status.uri, status.in_reply_to_id)

    async def find_reply(
        self, *, in_reply_to: str, text: str | None = None, standalone: bool = False
    ) -> PostedReply | None:
        # Mastodon keeps idempotency keys for an hour only and never lists them: the
        # thread is the lasting record. ``content`` is HTML, so ``text`` cannot be
        # compared exactly; the earliest reply of ours is the one.
        account_id = await self.account_id()
        response = await self._api.request(
            "GET", f"/api/v1/statuses/{in_reply_to}/context", bucket=ACCOUNT, accept=(404,)
        )
        if response.status_code == 404:
            return None
        ours = [
            s
            for s in self._api.parse(response, _Context).descendants
            if s.in_reply_to_id == in_reply_to
            and s.account is not None
            and s.account.id == account_id
        ]
        if not ours:
            return None
        first = min(ours, key=lambda s: (len(s.id), s.id))
        return PostedReply(first.id, first.url or first.uri, in_reply_to)

    async def delete_post(self, post_id: str) -> bool:
        # ``delete_media``: the video goes too, at once (else Mastodon keeps the
        # attachment for a possible redraft, reachable by its URL).
        response = await self._api.request(
            "DELETE",
            f"/api/v1/statuses/{post_id}",
            bucket=STATUSES_DELETE,
            accept=(404,),
            params={"delete_media": "true"},
        )
        if response.status_code == 404:
            log.info("Mastodon status %s was already gone", post_id)
            return False
        log.info("deleted Mastodon status %s", post_id)
        return True

    # -- protection (the replies under our answers) --

    async def replies_under(self, post_id: str, *, since_id: str | None = None) -> list[SeenReply]:
        """The descendants of our status by other accounts (the whole thread below it)."""
        mine = await self.account_id()
        response = await self._api.request(
            "GET", f"/api/v1/statuses/{post_id}/context", bucket=ACCOUNT, accept=(404,)
        )
        if response.status_code == 404:  # our status is gone (taken down)
            return []
        seen = []
        for status in self._api.parse(response, _Context).descendants:
            if status.account is None or status.account.id == mine:
                continue
            text = html_to_text(status.content)
            if not text:
                continue
            seen.append(
                SeenReply(
                    native_id=status.id,
                    author_id=status.account.id,
                    author_handle=status.account.acct or status.account.username or "unknown",
                    text=text,
                    created_at=parse_time(status.created_at),
                    url=status.url or status.uri,
                    lang=mastodon_language(status.language),
                )
            )
        return sorted(seen, key=lambda r: (len(r.native_id), r.native_id))

    async def hide_reply(self, target: ReplyTarget, hidden: bool) -> str:
        """Mute (or unmute) the reply's author for the account."""
        verb = "mute" if hidden else "unmute"
        await self._api.request(
            "POST", f"/api/v1/accounts/{target.author_id}/{verb}", bucket=ACCOUNT
        )
        how = "muted" if hidden else "unmuted"
        log.info("Mastodon reply %s: author %s %s", target.native_id, target.author_id, how)
        return how

    async def report_reply(self, target: ReplyTarget, reason: str) -> None:
        """Report the reply to the instance's moderators (not forwarded). One attempt:
        Mastodon takes no idempotency key for reports, and a 5xx or a lost answer may
        have filed one already."""
        await self._api.send(
            "POST",
            "/api/v1/reports",
            bucket=REPORTS,
            json={
                "account_id": target.author_id,
                "status_ids": [target.native_id],
                "comment": reason[:1000],
                "forward": False,
            },
        )
        log.info("Mastodon reply %s by %s reported", target.native_id, target.author_id)

    async def account_id(self) -> str:
        """The id of the account the token belongs to (asked once)."""
        if self._account_id is None:
            response = await self._api.request(
                "GET", "/api/v1/accounts/verify_credentials", bucket=ACCOUNT
            )
            self._account_id = self._api.parse(response, _Account).id
        return self._account_id

    # -- helpers --

    def _final(self, message: str) -> FinalError:
        return FinalError(
            message, platform=self.name.value, account=self.budget.account, status=None
        )
