"""Faults injected at the ASGI level, before routing: dropped connections (before
or after the request is handled), 5xx answers and bursts of 429s."""

from __future__ import annotations

import logging
import re

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.sandbox.common import server_error, too_many
from services.sandbox.state import PlatformKey, SandboxState

_X_UPLOAD = r"^/2/media/upload/(initialize|[^/]+/append|[^/]+/finalize)$"
_ROUTES: list[tuple[str, re.Pattern[str], PlatformKey, str]] = [
    ("POST", re.compile(_X_UPLOAD), "x", "media_upload"),
    ("GET", re.compile(r"^/2/media/upload$"), "x", "media_status"),
    ("POST", re.compile(r"^/2/tweets$"), "x", "tweets_create"),
    ("DELETE", re.compile(r"^/2/tweets/[^/]+$"), "x", "tweets_delete"),
    ("GET", re.compile(r"^/2/users/me$"), "x", "users_me"),
    ("GET", re.compile(r"^/2/users/[^/]+/tweets$"), "x", "user_tweets"),
    ("POST", re.compile(r"^/2/oauth2/token$"), "x", "oauth2_token"),
    ("POST", re.compile(r"^/api/v2/media$"), "mastodon", "media"),
    ("GET", re.compile(r"^/api/v1/media/[^/]+$"), "mastodon", "media_status"),
    ("POST", re.compile(r"^/api/v1/statuses$"), "mastodon", "statuses_create"),
    ("GET", re.compile(r"^/api/v1/statuses/[^/]+/context$"), "mastodon", "statuses_context"),
    ("GET", re.compile(r"^/api/v1/statuses/[^/]+$"), "mastodon", "statuses_get"),
    ("DELETE", re.compile(r"^/api/v1/statuses/[^/]+$"), "mastodon", "statuses_delete"),
    ("GET", re.compile(r"^/api/v1/accounts/verify_credentials$"), "mastodon", "verify_credentials"),
]  # fmt: skip

#: Every bucket name, for validating ``endpoints`` in a fault request.
BUCKETS = frozenset(bucket for *_, bucket in _ROUTES)


def classify(method: str, path: str) -> tuple[PlatformKey, str] | None:
    """(platform, bucket) of a platform API request; None for everything else."""
    for route_method, pattern, platform, bucket in _ROUTES:
        if method == route_method and pattern.match(path):
            return platform, bucket
    return None


class SandboxDrop(Exception):
    """Raised after a response has started, so that the server aborts the connection."""


class QuietDrops(logging.Filter):
    """Keep uvicorn from logging the connection drops the sandbox causes on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BaseExceptionGroup):
            return exc.subgroup(SandboxDrop) is None
        return not isinstance(exc, SandboxDrop)


QUIET_DROPS = QuietDrops()


class FaultMiddleware:
    """Inject the configured faults into platform API requests."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = classify(scope["method"], scope["path"]) if scope["type"] == "http" else None
        fault = self.state.take_fault(*route) if route else None
        if route is None or fault is None:
            await self.app(scope, receive, send)
            return
        platform = route[0]
        if fault == "drop":
            await self._drop(send)
        elif fault == "drop_after":

            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            await self._drop(send)
        elif fault == "server_errors":
            status = self.state.platform_faults(platform).server_error_status
            error = server_error(platform, status)
            await JSONResponse(error.body, status_code=status)(scope, receive, send)
        else:
            limit, _ = self.state.rate_budget(platform)
            reset_at = self.state.clock() + self.state.platform_faults(platform).reset_after_s
            error = too_many(platform, limit, reset_at)
            response = JSONResponse(error.body, status_code=429, headers=error.headers)
            await response(scope, receive, send)

    @staticmethod
    async def _drop(send: Send) -> None:
        """Start an answer that promises a body, then abort: the client sees the
        connection close mid-response, as when a proxy or the network drops it."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        raise SandboxDrop("sandbox fault: connection dropped")
