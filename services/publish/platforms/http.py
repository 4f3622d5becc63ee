"""One request to a platform, the way both adapters make it: the budget is
consulted first, the rate-limit headers of every response update it, and the
answer is sorted into success, :class:`RateLimited`, :class:`RetryableError`
(5xx, network) or :class:`FinalError` (any other 4xx). A 401 gets one more try
with a refreshed token when the credentials can refresh (X). ``request`` retries
the retryable ones with exponential backoff and jitter (tenacity)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from services.publish import metrics
from services.publish.config import PublishSettings
from services.publish.exceptions import FinalError, RateLimited, RetryableError
from services.publish.platforms.base import Credentials
from services.publish.ratelimit import AccountBudget, Window

log = logging.getLogger(__name__)

#: Reads a response's rate-limit headers into windows (platform-specific).
LimitParser = Callable[[httpx.Headers], tuple[Window, ...]]
#: Says in one line what a platform's error body means.
ErrorDescriber = Callable[[Any], str]

#: Error bodies are kept up to this many bytes (for replies.failed and logs).
MAX_ERROR_BODY_BYTES = 8_192
USER_AGENT = "takeaction-publisher/0.1"


def decode_body(response: httpx.Response) -> Any:
    """The JSON body, or the start of the text when it is not JSON (None when empty)."""
    raw = response.content[:MAX_ERROR_BODY_BYTES]
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def describe_transport(exc: httpx.TransportError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("attempt %d failed (%s); retrying in %.2f s", state.attempt_number, exc, wait)


M = TypeVar("M", bound=BaseModel)

#: How long publishing waits after X said the account's credits are exhausted (s).
CREDITS_RETRY_S = 3600.0
#: X's problem titles and types for a pay-per-use account without credits.
_CREDIT_TITLES = frozenset({"CreditsDepleted", "CreditsExhausted", "UsageCapExceeded"})


def credits_exhausted(status: int, body: Any) -> bool:
    """Is this X's "credits exhausted" answer (402, or a CreditsDepleted /
    UsageCapExceeded problem)?"""
    if status == 402:
        return True
    if not isinstance(body, dict):
        return False
    kind = str(body.get("type") or "")
    return body.get("title") in _CREDIT_TITLES or "credits" in kind or "usage-capped" in kind


class PlatformHttp:
    """The shared HTTP half of a platform adapter, for one account."""

    def __init__(
        self,
        *,
        settings: PublishSettings,
        http: httpx.AsyncClient,
        base_url: str,
        credentials: Credentials,
        budget: AccountBudget,
        parse_limits: LimitParser,
        describe_error: ErrorDescriber,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.platform = budget.platform
        self.account = budget.account
        self.budget = budget
        self.base_url = base_url.rstrip("/")
        self._http = http
        self.credentials = credentials
        self._parse_limits = parse_limits
        self._describe_error = describe_error
        self._sleep = sleep
        self._settings = settings
        self.api_timeout = httpx.Timeout(
            settings.request_timeout_s, connect=settings.connect_timeout_s
        )
        self.upload_timeout = httpx.Timeout(
            settings.upload_timeout_s, connect=settings.connect_timeout_s
        )

    def parse(self, response: httpx.Response, model: type[M]) -> M:
        """The body as ``model``; a body that does not fit is the platform misbehaving,
        which is worth another try, not a final refusal."""
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise RetryableError(
                f"unexpected {self.platform} response to {response.request.method} "
                f"{response.request.url.path}: {exc.error_count()} problems",
                platform=self.platform,
                account=self.account,
                status=response.status_code,
            ) from exc

    def retrying(self) -> AsyncRetrying:
        """Attempts of one logical request: retry :class:`RetryableError` with backoff."""
        s = self._settings
        return AsyncRetrying(
            retry=retry_if_exception_type(RetryableError),
            stop=stop_after_attempt(s.max_attempts),
            wait=wait_exponential_jitter(
                multiplier=s.backoff_initial_s, max=s.backoff_max_s, jitter=s.backoff_initial_s
            ),
            sleep=self._sleep,
            before_sleep=_log_retry,
            reraise=True,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        bucket: str,
        accept: Collection[int] = (),
        **kwargs: Any,
    ) -> httpx.Response:
        """:meth:`send`, retried on 5xx and network errors. Use only for requests that
        are safe to repeat (reads, deletes, uploads, mutes, Mastodon posts with a key);
        the others (an X post, a Mastodon report) go through :meth:`send`."""
        async for attempt in self.retrying():
            with attempt:
                return await self.send(method, path, bucket=bucket, accept=accept, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(
        self,
        method: str,
        path: str,
        *,
        bucket: str,
        accept: Collection[int] = (),
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One attempt (two when a 401 made the credentials refresh their token).
        Returns 2xx responses and those whose status is in ``accept``."""
        self.budget.check(bucket)
        token = await self.credentials.token()
        options = {"headers": headers, "timeout": timeout, **kwargs}
        response = await self._call(method, path, token, options)
        if response.status_code == 401:
            fresh = await self.credentials.refreshed(token)
            if fresh is not None:
                self.budget.update(bucket, self._parse_limits(response.headers))
                response = await self._call(method, path, fresh, options)
        windows = self._parse_limits(response.headers)
        self.budget.update(bucket, windows)
        status = response.status_code
        if 200 <= status < 300 or status in accept:
            return response
        body = decode_body(response)
        detail = self._describe_error(body)
        where = f"{self.platform} {method} {path}"
        if status == 429:
            reset_at = self._reset_at(response, windows)
            self.budget.pause(reset_at)
            raise RateLimited(
                f"{where}: HTTP 429: {detail}",
                platform=self.platform,
                account=self.account,
                reset_at=reset_at,
                bucket=bucket,
            )
        if status >= 500:
            raise RetryableError(
                f"{where}: HTTP {status}: {detail}",
                platform=self.platform,
                account=self.account,
                status=status,
                error=body,
            )
        if credits_exhausted(status, body):
            # X's pay-per-use: nothing more goes until the account is topped up.
            reset_at = self.budget.clock() + CREDITS_RETRY_S
            self.budget.pause(reset_at)
            log.error(
                "%s: the %s account's credits are exhausted (HTTP %d: %s); publishing "
                "paused for %.0f s: top the account up",
                where, self.platform, status, detail, CREDITS_RETRY_S,
            )  # fmt: skip
            metrics.X_CREDITS_EXHAUSTED.labels(self.account).inc()
            raise RateLimited(
                f"{where}: credits exhausted (HTTP {status}: {detail})",
                platform=self.platform,
                account=self.account,
                reset_at=reset_at,
            )
        log.warning("%s refused: HTTP %d: %s", where, status, detail)
        raise FinalError(
            f"{where}: HTTP {status}: {detail}",
            platform=self.platform,
            account=self.account,
            status=status,
            error=body,
        )

    async def _call(
        self, method: str, path: str, token: SecretStr, options: dict[str, Any]
    ) -> httpx.Response:
        """The request itself: ``options`` are httpx's (headers are added to ours)."""
        options = dict(options)
        headers = {
            "Authorization": f"Bearer {token.get_secret_value()}",
            "User-Agent": USER_AGENT,
            **(options.pop("headers", None) or {}),
        }
        timeout = options.pop("timeout", None) or self.api_timeout
        try:
            return await self._http.request(
                method, self.base_url + path, headers=headers, timeout=timeout, **options
            )
        except httpx.TransportError as exc:
            raise RetryableError(
                f"{self.platform} {method} {path}: {describe_transport(exc)}",
                platform=self.platform,
                account=self.account,
            ) from exc

    def _reset_at(self, response: httpx.Response, windows: tuple[Window, ...]) -> float:
        return reset_after_429(
            response.headers, windows, self.budget, self._settings.rate_limit_fallback_s
        )


def reset_after_429(
    headers: httpx.Headers, windows: tuple[Window, ...], budget: AccountBudget, fallback_s: float
) -> float:
    """When a 429 ends (epoch seconds): the latest reset of the exhausted windows, else
    of any window, else ``Retry-After`` (seconds or an HTTP date), else ``fallback_s``
    from now; never more than :data:`~services.publish.ratelimit.MAX_WAIT_S` away."""
    now = budget.clock()
    exhausted = [w.reset_at for w in windows if w.exhausted and w.reset_at is not None]
    announced = [w.reset_at for w in windows if w.reset_at is not None]
    for candidates in (exhausted, announced):
        future = [t for t in candidates if t > now]
        if future:
            return budget.bounded(max(future))
    retry_after = retry_after_s(headers.get("retry-after"), now)
    return budget.bounded(now + (fallback_s if retry_after is None else retry_after))


def retry_after_s(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds from ``now`` (RFC 9110: a number of seconds or an
    HTTP date); None when absent or unreadable (``inf`` and ``nan`` included)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            at = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if at.tzinfo is None:  # RFC 9110 dates are GMT
            at = at.replace(tzinfo=UTC)
        seconds = at.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


def header_int(headers: httpx.Headers, name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None
