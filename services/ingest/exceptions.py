"""Ingest's exceptions: what the webhook refuses (mapped to HTTP in one place,
``app.py``), what the X and Mastodon sources meet (the feed reconnects), and
what a replay stops at."""

from __future__ import annotations

from typing import Any


class IngestError(Exception):
    """Base of everything ingest raises on purpose."""


class BrokerUnavailable(IngestError):
    """Kafka did not take the mentions; nothing was lost, the caller may retry."""


class DedupeNotReady(BrokerUnavailable):
    """The dedupe memory is not rebuilt from the topic yet (or its reader died): a
    duplicate cannot be told apart, so nothing was produced; the caller may retry."""


# --- the sources ------------------------------------------------------------------


class XApiError(IngestError):
    """X answered a request with an HTTP error (or a body we cannot read)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        rate_limit_reset: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"X API answered HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        #: ``x-rate-limit-reset`` (epoch seconds) when X sent it.
        self.rate_limit_reset = rate_limit_reset
        #: The decoded JSON error body, when there was one.
        self.body = body


class MastodonError(IngestError):
    """The instance did not give us what we asked for; the feed reconnects."""

    reason = "error"


class MastodonUnauthorized(MastodonError):
    reason = "unauthorized"


class MastodonRateLimited(MastodonError):
    reason = "rate_limited"

    def __init__(self, message: str, wait_s: float | None) -> None:
        super().__init__(message)
        self.wait_s = wait_s


class MastodonHTTPError(MastodonError):
    reason = "http_error"


class MastodonProtocolError(MastodonError):
    reason = "protocol"


class StreamEnded(MastodonError):
    reason = "eof"


# --- replay ------------------------------------------------------------------------


class ReplayError(Exception):
    """Base of everything replay raises on purpose."""


class InvalidLine(ReplayError):
    """A line of the file is not a usable mention; the message says why."""


class ReplayAborted(ReplayError):
    """The replay cannot go on (bad API key, ingest unreachable); the message says why."""


class RetryableResponse(ReplayError):
    """Ingest answered with a status worth retrying (e.g. 503)."""

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        super().__init__(f"ingest answered {status}: {message}")
        self.status = status
        self.retry_after = retry_after
