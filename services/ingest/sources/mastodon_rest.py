"""Mastodon source: the instance's REST API (everything but the stream).

:class:`MastodonREST` holds what the stream (:mod:`services.ingest.sources.mastodon`)
asks the instance over REST: the campaign account (``verify_credentials``), its
notification policy (Mastodon 4.3+), where the streaming API is
(``/api/v2/instance``), and the pages and ``Link`` headers of the REST catch-up.
It also turns an HTTP answer into the source's errors (:meth:`MastodonREST.check`,
honouring ``X-RateLimit-Reset``), for the stream's own connection too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from services.ingest.config import IngestSettings
from services.ingest.exceptions import (
    MastodonHTTPError,
    MastodonProtocolError,
    MastodonRateLimited,
    MastodonUnauthorized,
)

#: The Mastodon source's logger (its records keep the name they had in one module).
log = logging.getLogger("services.ingest.sources.mastodon")

#: Longest wait honoured for a rate limit reset (Mastodon's windows are 5 minutes).
MAX_RATE_LIMIT_WAIT_S = 3600.0


def rate_limit_wait(response: httpx.Response, now: datetime) -> float | None:
    """Seconds until the rate limit resets: ``X-RateLimit-Reset`` (ISO 8601, what
    Mastodon sends), else ``Retry-After`` seconds; None when neither is usable."""
    reset = response.headers.get("x-ratelimit-reset")
    wait: float | None = None
    if reset:
        try:
            at = datetime.fromisoformat(reset.strip())
        except ValueError:
            at = None
        if at is not None and at.tzinfo is not None:
            wait = (at - now).total_seconds()
    if wait is None:
        try:
            wait = float(response.headers.get("retry-after", ""))
        except ValueError:
            return None
    return min(max(wait, 0.0), MAX_RATE_LIMIT_WAIT_S)


class MastodonREST:
    """The REST calls of one instance, with the campaign account's token."""

    def __init__(
        self,
        settings: IngestSettings,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.http = http
        self.base_url = base_url
        self._clock = clock

    # -- start-up ----------------------------------------------------------------

    async def check_notification_policy(self) -> None:
        """Say when the account's notification policy (Mastodon 4.3+) hides mentions:
        filtered ones are caught up over REST (``include_filtered``), never streamed;
        dropped ones are lost. The campaign account needs ``accept`` for every kind
        (README)."""
        response = await self.http.get(
            f"{self.base_url}/api/v2/notifications/policy", headers=self.headers()
        )
        if response.status_code in (403, 404, 410):
            return  # before 4.3, or a token without read:notifications
        self.check(response, "notification policy")
        policy = self.json(response)
        if not isinstance(policy, dict):
            return
        kinds = (
            "for_not_following",
            "for_not_followers",
            "for_new_accounts",
            "for_limited_accounts",
        )
        dropped = [k for k in kinds if policy.get(k) == "drop"]
        filtered = [k for k in kinds if policy.get(k) == "filter"]
        if dropped:
            log.error(
                "the Mastodon campaign account drops mentions (%s): those questions are lost; "
                "set them to accept (PATCH /api/v2/notifications/policy)",
                ", ".join(dropped),
            )
        if filtered:
            log.warning(
                "the Mastodon campaign account filters mentions (%s): they arrive only with "
                "the REST catch-up, not live; set them to accept",
                ", ".join(filtered),
            )

    async def verify_credentials(self) -> str | None:
        response = await self.http.get(
            f"{self.base_url}/api/v1/accounts/verify_credentials", headers=self.headers()
        )
        if response.status_code == 403:
            # A token without read:accounts still streams; only self-filtering is lost.
            log.warning(
                "the Mastodon token may not read its own account; own posts are not skipped"
            )
            return None
        self.check(response, "verify_credentials")
        body = self.json(response)
        account_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(account_id, str):
            raise MastodonProtocolError("verify_credentials: no account id in the answer")
        log.info("Mastodon campaign account is %s (id %s)", body.get("acct"), account_id)
        return account_id

    async def discover_streaming_base(self) -> str:
        """``configuration.urls.streaming`` of ``/api/v2/instance`` (wss -> https);
        the base URL when the instance does not say, or says something unsafe."""
        try:
            response = await self.http.get(
                f"{self.base_url}/api/v2/instance", headers=self.headers()
            )
            response.raise_for_status()
            advertised = response.json()["configuration"]["urls"]["streaming"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.info(
                "no streaming URL advertised by %s (%s); using it for streaming", self.base_url, exc
            )
            return self.base_url
        if not isinstance(advertised, str):
            return self.base_url
        url = re.sub(r"^wss://", "https://", re.sub(r"^ws://", "http://", advertised.strip()))
        https_base = self.base_url.startswith("https://")
        if not url.startswith("https://") and (https_base or not url.startswith("http://")):
            log.warning("ignoring streaming URL %r advertised by %s", advertised, self.base_url)
            return self.base_url
        return url.rstrip("/")

    # -- catch-up pages ----------------------------------------------------------------

    async def get_page(
        self, url: str, params: httpx.QueryParams | None, what: str
    ) -> tuple[list[Any], httpx.Response]:
        response = await self.http.get(url, params=params, headers=self.headers())
        self.check(response, what)
        body = self.json(response)
        if not isinstance(body, list):
            raise MastodonProtocolError(f"{what}: expected a JSON array")
        return body, response

    def link(self, response: httpx.Response, rel: str) -> str | None:
        """The ``rel`` Link of a page, if it stays on the instance (the token goes with it)."""
        target = response.links.get(rel, {}).get("url")
        if not target:
            return None
        url = response.url.join(target)
        base = httpx.URL(self.base_url)
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            log.warning("not following a Link to another host: %s", url.host)
            return None
        return str(url)

    # -- answers -------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        token = self.settings.mastodon_access_token
        return {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}

    def check(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (401, 403):
            raise MastodonUnauthorized(f"{what}: HTTP {status}, the access token was refused")
        if status == 429:
            raise MastodonRateLimited(
                f"{what}: rate limited", rate_limit_wait(response, self._clock())
            )
        raise MastodonHTTPError(f"{what}: HTTP {status}")

    @staticmethod
    def json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise MastodonProtocolError(f"{response.url.path}: the answer is not JSON") from exc
