"""Per-account rate-limit state, kept from the platforms' own response headers.

One :class:`AccountBudget` per (platform, account). The platform clients update
it from every response (``x-rate-limit-*`` on X, ``X-RateLimit-*`` on Mastodon),
pause it on a 429 until the reset time, and consult it before each request, so a
paused account never touches the network. The publisher consults it too before
taking the next reply for that account (:meth:`AccountBudget.wait_s`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from services.publish.exceptions import RateLimited

log = logging.getLogger(__name__)


#: Bucket name for limits that cover every endpoint of the account.
ACCOUNT = "account"
#: The longest a platform's reset time may stop an account (seconds): X's longest
#: windows are a day (the daily post caps), Bluesky's and Mastodon's shorter. A
#: reset further off (a bogus header, ``Retry-After: inf``) is read as this long.
MAX_WAIT_S = 86_400.0


@dataclass(frozen=True)
class Window:
    """One rate-limit window as a response announced it."""

    #: Requests allowed in the window (``None`` when the header was absent).
    limit: int | None
    #: Requests left in the window.
    remaining: int | None
    #: When the window resets, epoch seconds.
    reset_at: float | None
    #: Which window: ``15min`` (per endpoint), ``user-24h``, ``app-24h``, ...
    name: str = "window"

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


class AccountBudget:
    """What one account may still do on one platform.

    ``buckets`` are endpoint families (``tweets_create``, ``media_upload``, ...):
    X counts limits per endpoint, Mastodon per account (one ``account`` bucket).
    A 429 pauses the whole account until its reset time.
    """

    def __init__(
        self, platform: str, account: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.platform = platform
        self.account = account
        self.clock = clock
        self._windows: dict[str, tuple[Window, ...]] = {}
        self._paused_until = 0.0

    def bounded(self, until: float) -> float:
        """``until`` (epoch seconds), or :data:`MAX_WAIT_S` from now when it is later
        or not a finite number."""
        latest = self.clock() + MAX_WAIT_S
        return until if math.isfinite(until) and until <= latest else latest

    def update(self, bucket: str, windows: Iterable[Window]) -> None:
        """Record the windows one response announced for ``bucket`` (their resets
        :meth:`bounded`)."""
        seen = tuple(
            w if w.reset_at is None else dataclasses.replace(w, reset_at=self.bounded(w.reset_at))
            for w in windows
            if w.remaining is not None or w.reset_at is not None
        )
        if seen:
            self._windows[bucket] = seen

    def pause(self, until: float) -> None:
        """Stop every call of this account until ``until`` (epoch seconds,
        :meth:`bounded`)."""
        until = self.bounded(until)
        if until > self._paused_until:
            self._paused_until = until
            log.warning(
                "%s account %s paused for %.0f s (rate limited)",
                self.platform,
                self.account,
                max(0.0, until - self.clock()),
            )

    @property
    def paused_until(self) -> float | None:
        """When a 429 pause ends, or None when the account is not paused."""
        return self._paused_until if self._paused_until > self.clock() else None

    def resume_at(self, bucket: str) -> float | None:
        """Epoch seconds when a call to ``bucket`` may go, or None: now."""
        now = self.clock()
        waits = [self._paused_until] if self._paused_until > now else []
        for name in (bucket, ACCOUNT):
            for window in self._windows.get(name, ()):
                if window.exhausted and window.reset_at is not None and window.reset_at > now:
                    waits.append(window.reset_at)
        return max(waits) if waits else None

    def wait_s(self, bucket: str) -> float:
        """Seconds to wait before a call to ``bucket``; 0: go."""
        resume = self.resume_at(bucket)
        return 0.0 if resume is None else max(0.0, resume - self.clock())

    def check(self, bucket: str) -> None:
        """Raise :class:`RateLimited` when a call to ``bucket`` must not go now."""
        resume = self.resume_at(bucket)
        if resume is not None:
            raise RateLimited(
                f"{self.platform} account {self.account} is rate limited until {resume:.0f} "
                f"({resume - self.clock():.0f} s)",
                platform=self.platform,
                account=self.account,
                reset_at=resume,
                bucket=bucket,
            )

    def snapshot(self) -> dict[str, Any]:
        """The state, for health pages and logs."""
        return {
            "platform": self.platform,
            "account": self.account,
            "paused_until": self.paused_until,
            "buckets": {
                name: [
                    {
                        "name": w.name,
                        "limit": w.limit,
                        "remaining": w.remaining,
                        "reset": w.reset_at,
                    }
                    for w in windows
                ]
                for name, windows in self._windows.items()
            },
        }
