"""The port every social platform adapter implements, and the values it trades in."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from pydantic import SecretStr

from services.common.messages import Platform as PlatformName
from services.publish.exceptions import MediaMismatch
from services.publish.ratelimit import AccountBudget


@dataclass(frozen=True)
class SubtitleTrack:
    """A subtitle file on local disk to attach beside the video (SRT or WebVTT)."""

    path: Path
    mime: str
    sha256: str
    size: int
    #: BCP 47 code of its language.
    language: str


@dataclass(frozen=True)
class MediaFile:
    """A video on local disk: the rendition made for the reply's platform."""

    path: Path
    mime: str
    #: Lower-case hex SHA-256 of the file; checked while the file is streamed.
    sha256: str
    #: Size in bytes; checked before anything is sent.
    size: int
    #: The video's alt text (within the platform's limit).
    alt_text: str = ""
    #: Subtitle files to attach (only platforms that take them get any).
    subtitles: tuple[SubtitleTrack, ...] = ()


@dataclass(frozen=True)
class ReplyDraft:
    """A reply to post: its words, the post it answers and what goes with it."""

    text: str
    #: The platform's id (X, Mastodon) or AT URI (Bluesky) of the post it answers.
    in_reply_to: str
    #: The reply id: a repeated post returns the first where the platform keeps
    #: such keys (Mastodon, for an hour).
    idempotency_key: str
    #: Media ids from :meth:`Platform.upload_video`.
    media_ids: tuple[str, ...] = ()
    #: BCP 47 code of the text's language, where the platform takes one.
    language: str | None = None
    #: A post of its own instead of a reply, where the platform will not take a
    #: reply (only X has such a rule; the others post a reply).
    standalone: bool = False


@dataclass(frozen=True)
class PostedReply:
    """A reply that exists on the platform."""

    post_id: str
    url: str | None
    in_reply_to: str | None = None


class Platform(Protocol):
    """One account on one social platform.

    Every method raises only :mod:`services.publish.exceptions`: ``RateLimited``
    (the account's :attr:`budget` is paused; try after ``reset_at``),
    ``RetryableError`` (5xx/network, still failing after the adapter's own
    retries) or ``FinalError`` (the platform refused; the error body is kept).
    """

    name: PlatformName
    #: The account's rate-limit state; consult ``budget.wait_s(bucket)`` before a call.
    budget: AccountBudget
    #: The budget buckets a reply's post uses, and those its video upload adds: a
    #: reply waits only for its own (an exhausted delete window holds back nothing).
    reply_buckets: tuple[str, ...]
    media_buckets: tuple[str, ...]

    async def upload_video(self, media: MediaFile) -> str:
        """Upload the file (streamed, never whole in memory); return the platform's
        media id once the platform has finished processing it."""
        ...

    async def post_reply(self, draft: ReplyDraft) -> PostedReply:
        """Post ``draft.text`` as a reply to the post ``draft.in_reply_to`` with the
        media attached (or as a post of its own where ``draft.standalone``).

        ``draft.idempotency_key`` makes a repeated call return the first post where
        the platform supports it (Mastodon, for an hour). X has no such key: the
        adapter's own retries look for the reply before posting again, but a caller
        that gets an error out of this method and tries later must call
        :meth:`find_reply` first (the post may have gone out).
        """
        ...

    async def find_reply(
        self, *, in_reply_to: str, text: str | None = None, standalone: bool = False
    ) -> PostedReply | None:
        """Find a reply this account already posted to ``in_reply_to`` (reconciliation
        after a crash). Any reply of ours counts: the asker gets one reply, never two.
        ``text`` picks among several. No platform lists the idempotency keys it was
        sent, so the post answered is what a reply is found by."""
        ...

    async def delete_post(self, post_id: str) -> bool:
        """Delete one of this account's posts (consent withdrawn). True when this call
        deleted it, False when it was already gone."""
        ...


@dataclass(frozen=True)
class SeenReply:
    """A post someone else wrote under one of our posts (read by the watcher)."""

    native_id: str
    author_id: str
    author_handle: str
    text: str
    created_at: datetime
    url: str | None = None
    lang: str | None = None
    #: ``reply`` or ``quote``.
    kind: str = "reply"


@dataclass(frozen=True)
class ReplyTarget:
    """The reply a hide or unhide is about, under our post ``answer_post_id``."""

    native_id: str
    author_id: str
    answer_post_id: str
    #: ``reply`` or ``quote`` (as the watcher saw it).
    kind: str = "reply"


@runtime_checkable
class Moderation(Protocol):
    """What protection needs of a platform: the replies under one of our posts, and
    hiding one as the platform allows (X hides it, Bluesky's thread gate hides it,
    Mastodon mutes its author for the account). Raises only
    :mod:`services.publish.exceptions`, like :class:`Platform`."""

    name: PlatformName
    budget: AccountBudget
    #: The budget buckets reading replies uses, and those hiding one uses.
    watch_buckets: tuple[str, ...]
    moderate_buckets: tuple[str, ...]

    async def replies_under(self, post_id: str, *, since_id: str | None = None) -> list[SeenReply]:
        """Replies (and quotes, where the platform lists them) under our post
        ``post_id`` by anyone but us, oldest first; ``since_id`` (X): only newer."""
        ...

    async def hide_reply(self, target: ReplyTarget, hidden: bool) -> str:
        """Hide (``hidden``) or show again the reply; returns how (``hidden``,
        ``muted``, ``shown``, ...). Doing it twice changes nothing."""
        ...


@runtime_checkable
class Reporting(Protocol):
    """A platform whose moderators a reply can be reported to (Mastodon's instance).
    A report is not idempotent: each call files one more."""

    async def report_reply(self, target: ReplyTarget, reason: str) -> None:
        """Report the reply, in one request, never retried: a
        :class:`~services.publish.exceptions.RetryableError` (5xx, network) means it
        may or may not have been filed; ``RateLimited`` and ``FinalError``, that it
        was not."""
        ...


class Credentials(Protocol):
    """Where an adapter gets its bearer token."""

    async def token(self) -> SecretStr:
        """The token to send now (refreshed first when it is about to expire)."""
        ...

    async def refreshed(self, stale: SecretStr) -> SecretStr | None:
        """A new token after the platform refused ``stale`` (401); None when this
        credential cannot be refreshed (the 401 stands)."""
        ...


class StaticToken:
    """A token that is what it is (Mastodon's do not expire; an X token without a
    refresh token works until it expires)."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    async def token(self) -> SecretStr:
        return self._token

    async def refreshed(self, stale: SecretStr) -> SecretStr | None:
        return None


def parse_time(raw: str | None) -> datetime:
    """A platform's ISO 8601 timestamp, UTC; now when it is missing or unreadable."""
    if raw:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def check_size(media: MediaFile) -> None:
    """Refuse a file whose size differs from the one declared (before any upload)."""
    actual = os.stat(media.path).st_size
    if actual != media.size:
        raise MediaMismatch(f"{media.path} has {actual} bytes, the answer declared {media.size}")


class ChunkReader:
    """Read a file in chunks off the event loop, hashing as it goes."""

    def __init__(self, media: MediaFile, chunk_bytes: int) -> None:
        self.media = media
        self.chunk_bytes = chunk_bytes
        self.read_bytes = 0
        self._sha = hashlib.sha256()

    async def chunks(self) -> AsyncIterator[bytes]:
        handle: BinaryIO = await asyncio.to_thread(self.media.path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, self.chunk_bytes):
                self._sha.update(chunk)
                self.read_bytes += len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    def verify(self) -> None:
        """Raise :class:`MediaMismatch` unless what was read matches size and sha256."""
        if self.read_bytes != self.media.size:
            raise MediaMismatch(
                f"read {self.read_bytes} bytes from {self.media.path}, expected {self.media.size}"
            )
        if self._sha.hexdigest() != self.media.sha256.lower():
            raise MediaMismatch(f"sha256 of {self.media.path} does not match the answer's")


class HashingFile:
    """A binary file that hashes what is read from it, for httpx multipart uploads.

    httpx streams a file part in 64 KiB reads and seeks to 0 before each attempt,
    which restarts the hash, so a retried upload is checked again from the start.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._sha = hashlib.sha256()
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._sha.update(data)
        self.read_bytes += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        if position == 0:
            self._sha = hashlib.sha256()
            self.read_bytes = 0
        return position

    def tell(self) -> int:
        return self._handle.tell()

    def fileno(self) -> int:
        return self._handle.fileno()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
