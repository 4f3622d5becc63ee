"""The publisher's exceptions: what a platform call can end in, and what the
ledger and the publisher refuse.

::

    PublishError
    ├── RateLimited      the account must wait until ``reset_at``; nothing was posted
    ├── RetryableError   a 5xx or a network failure that outlasted the client's retries
    └── FinalError       the platform refused the request (a 4xx other than 429);
                         retrying the same request cannot help: it goes to replies.failed
    AlreadyReplied       another reply to the question or the post became live first
    CommandRejected      a command refused before anything was done (a DecodeError:
                         dead-lettered at stage publish.verify)
    UnknownReply         no reply with that id in the ledger (a LookupError)
    UnsupportedMedia     the answer's media is not a local file the publisher can read
    └── MediaOutsideRoot it resolves outside PUBLISH_MEDIA_ROOT
    MediaMismatch        the file on disk is not the one the message described

Every error names the platform and the account, so the publisher can pause the
right budget and dead-letter with context.
"""

from __future__ import annotations

from typing import Any

from services.common.codec import DecodeError


class PublishError(Exception):
    """Base of everything the publisher raises on purpose."""

    def __init__(self, message: str, *, platform: str, account: str) -> None:
        super().__init__(message)
        self.message = message
        self.platform = platform
        self.account = account


class RateLimited(PublishError):
    """The platform answered 429, or the account's budget is spent: wait until ``reset_at``.

    ``reset_at`` is epoch seconds (UTC). Nothing was done by the refused request.
    """

    def __init__(
        self,
        message: str,
        *,
        platform: str,
        account: str,
        reset_at: float,
        bucket: str | None = None,
    ) -> None:
        super().__init__(message, platform=platform, account=account)
        self.reset_at = reset_at
        #: The rate-limit bucket (endpoint family) that ran out; None: the whole account.
        self.bucket = bucket


class RetryableError(PublishError):
    """A 5xx or a transport failure, still failing after the client's own retries.

    The same request may succeed later. ``status`` is None for network failures.
    """

    def __init__(
        self,
        message: str,
        *,
        platform: str,
        account: str,
        status: int | None = None,
        error: Any = None,
    ) -> None:
        super().__init__(message, platform=platform, account=account)
        self.status = status
        self.error = error


class FinalError(PublishError):
    """The platform refused the request for good (a 4xx other than 429, a failed
    media processing, a local file that does not match its checksum).

    ``status`` is the HTTP status (None for a local check); ``error`` is the
    platform's decoded error body, kept for ``replies.failed``.
    """

    def __init__(
        self,
        message: str,
        *,
        platform: str,
        account: str,
        status: int | None,
        error: Any = None,
    ) -> None:
        super().__init__(message, platform=platform, account=account)
        self.status = status
        self.error = error


class AlreadyReplied(Exception):
    """Another reply to the question, or to the post, became live first (a unique
    index said so)."""


class CommandRejected(DecodeError):
    """A command refused before anything was done (its signature, its media outside
    the media root, a second reply to a post): dead-lettered at stage
    ``publish.verify``. ``reason`` labels the metric."""

    step = "verify"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnknownReply(LookupError):
    """No reply with that id in the ledger."""


class UnsupportedMedia(ValueError):
    """The reply's media is not a local file the publisher can read, or not a video its
    platform takes as it is (not the rendition made for it)."""


class MediaOutsideRoot(UnsupportedMedia):
    """The reply's media (or a subtitle file) resolves outside the media root."""


class MediaMismatch(ValueError):
    """The file on disk is not the one the message described."""
