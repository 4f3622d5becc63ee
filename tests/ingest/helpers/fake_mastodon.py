"""A local fake Mastodon instance: a real HTTP server speaking the wire format
the Mastodon source uses.

* SSE streams ``/api/v1/streaming/hashtag?tag=`` and
  ``/api/v1/streaming/user/notification``: a ``:)`` opening comment,
  ``:thump`` heartbeat comments, ``update`` / ``notification`` events, and
  connections the test can drop (cleanly or abruptly);
* REST ``/api/v1/timelines/tag/:hashtag`` and ``/api/v1/notifications`` with
  ``max_id`` / ``since_id`` / ``min_id`` / ``limit`` and ``Link`` headers;
* ``/api/v1/accounts/verify_credentials`` and ``/api/v2/instance``;
* a bearer token check (401) and 429 with ``X-RateLimit-Reset`` on demand.

It runs in the test's event loop (uvicorn on a socket bound to port 0), so a
test changes its state directly, without locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_DROP = b"drop"
_ABORT = b"abort"


class _Aborted(Exception):
    """Raised inside a streaming response to cut the connection mid-stream."""


class _QuietAborts(logging.Filter):
    """uvicorn logs the deliberate cut as an application error; drop that record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Aborted))


@dataclass
class Subscriber:
    stream: str  # "hashtag:<tag>" or "user:notification"
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)


@dataclass
class RateLimit:
    path_prefix: str
    remaining: int
    reset_in_s: float


def sse(event: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


class FakeMastodon:
    def __init__(self, *, token: str, heartbeat_s: float | None = 0.05) -> None:
        self.token = token
        self.heartbeat_s = heartbeat_s
        self.domain = "fake.example"
        self.statuses: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self.subscribers: list[Subscriber] = []
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.rate_limits: list[RateLimit] = []
        self.stream_connects = 0
        #: The campaign account's notification policy (Mastodon 4.3); None: a 404.
        self.policy: dict[str, Any] | None = None
        self.now = datetime.now(UTC)
        self._status_seq = 110_000_000_000_000_000
        self._notification_seq = 1000
        self._account_seq = 100
        self.campaign = self.account("IWelcomeRefugees", followers=5000)
        self.streaming_url: str | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0
        self._quiet = _QuietAborts()
        self.app = Starlette(
            routes=[
                Route("/api/v1/streaming/hashtag", self._stream_hashtag),
                Route("/api/v1/streaming/user/notification", self._stream_notifications),
                Route("/api/v1/timelines/tag/{tag}", self._timeline_tag),
                Route("/api/v1/notifications", self._notifications),
                Route("/api/v1/accounts/verify_credentials", self._verify_credentials),
                Route("/api/v2/instance", self._instance),
                Route("/api/v2/notifications/policy", self._policy),
            ]
        )

    # -- lifecycle -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,  # leave the test's logging alone
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        logging.getLogger("uvicorn.error").addFilter(self._quiet)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        for _ in range(500):
            if self._server.started:
                return
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        raise RuntimeError("fake Mastodon did not start")

    async def stop(self) -> None:
        self.drop_streams()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)
        logging.getLogger("uvicorn.error").removeFilter(self._quiet)

    # -- what a test does --------------------------------------------------------

    def account(
        self, username: str, *, followers: int = 10, remote: str | None = None
    ) -> dict[str, Any]:
        self._account_seq += 1
        acct = f"{username}@{remote}" if remote else username
        return {
            "id": str(self._account_seq),
            "username": username,
            "acct": acct,
            "display_name": username.title(),
            "followers_count": followers,
            "following_count": 3,
            "statuses_count": 7,
            "url": f"https://{remote or self.domain}/@{username}",
            "bot": False,
        }

    def status(
        self,
        content: str,
        *,
        tags: Sequence[str] = (),
        author: dict[str, Any] | None = None,
        mention: bool = False,
        visibility: str = "public",
        age: timedelta = timedelta(0),
        **extra: Any,
    ) -> dict[str, Any]:
        """A Status entity (not yet posted)."""
        self._status_seq += 1
        sid = str(self._status_seq)
        author = author or self.account(f"asker{self._status_seq % 1000}")
        created = (self.now - age).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        status: dict[str, Any] = {
            "id": sid,
            "created_at": created,
            "in_reply_to_id": None,
            "in_reply_to_account_id": None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": visibility,
            "language": "en",
            "uri": f"https://{self.domain}/users/{author['username']}/statuses/{sid}",
            "url": f"https://{self.domain}/@{author['username']}/{sid}",
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "content": content,
            "reblog": None,
            "account": author,
            "media_attachments": [],
            "mentions": [
                {
                    "id": self.campaign["id"],
                    "username": self.campaign["username"],
                    "acct": self.campaign["acct"],
                    "url": self.campaign["url"],
                }
            ]
            if mention
            else [],
            "tags": [{"name": t, "url": f"https://{self.domain}/tags/{t}"} for t in tags],
            "emojis": [],
            "card": None,
            "poll": None,
        }
        status.update(extra)
        return status

    def post(self, content: str, **kwargs: Any) -> dict[str, Any]:
        """Publish a status: it goes to the timelines and to every stream open now."""
        status = self.status(content, **kwargs)
        self.add(status)
        return status

    def add(self, status: dict[str, Any]) -> None:
        self.statuses.append(status)
        payload = json.dumps(status)
        for tag in {t["name"].lower() for t in status["tags"]}:
            self.push(f"hashtag:{tag}", "update", payload)
        if any(m["id"] == self.campaign["id"] for m in status["mentions"]):
            self.notify("mention", status["account"], status)

    def notify(
        self, kind: str, account: dict[str, Any], status: dict[str, Any] | None
    ) -> dict[str, Any]:
        self._notification_seq += 1
        notification = {
            "id": str(self._notification_seq),
            "type": kind,
            "created_at": status["created_at"] if status else self.now.isoformat(),
            "account": account,
            "status": status,
        }
        self.notifications.append(notification)
        self.push("user:notification", "notification", json.dumps(notification))
        return notification

    def push(self, stream: str, event: str, data: str) -> None:
        """Send a raw event to every open connection of ``stream``."""
        for subscriber in self.subscribers:
            if subscriber.stream == stream:
                subscriber.queue.put_nowait(sse(event, data))

    def drop_streams(self, *, abrupt: bool = False) -> None:
        """End every open stream now; nothing posted afterwards reaches them."""
        for subscriber in self.subscribers:
            subscriber.queue.put_nowait(_ABORT if abrupt else _DROP)
        self.subscribers.clear()

    def rate_limit(self, path_prefix: str, *, times: int = 1, reset_in_s: float = 42.0) -> None:
        self.rate_limits.append(RateLimit(path_prefix, times, reset_in_s))

    async def wait_for_streams(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.subscribers) < count:  # noqa: ASYNC110 - polling server state
                await asyncio.sleep(0.01)

    def requests_to(self, path: str) -> list[dict[str, list[str]]]:
        return [query for p, query in self.requests if p == path]

    # -- HTTP ------------------------------------------------------------------------------

    def _gate(self, request: Request) -> Response | None:
        query: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            query.setdefault(key, []).append(value)
        self.requests.append((request.url.path, query))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": "The access token is invalid"}, status_code=401)
        for limit in self.rate_limits:
            if limit.remaining > 0 and request.url.path.startswith(limit.path_prefix):
                limit.remaining -= 1
                reset = datetime.now(UTC) + timedelta(seconds=limit.reset_in_s)
                return JSONResponse(
                    {"error": "Too many requests"},
                    status_code=429,
                    headers={
                        "X-RateLimit-Limit": "300",
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": reset.isoformat(timespec="milliseconds").replace(
                            "+00:00", "Z"
                        ),
                    },
                )
        return None

    async def _stream_hashtag(self, request: Request) -> Response:
        tag = request.query_params.get("tag", "").lower()
        return self._gate(request) or self._open_stream(f"hashtag:{tag}")

    async def _stream_notifications(self, request: Request) -> Response:
        return self._gate(request) or self._open_stream("user:notification")

    def _open_stream(self, stream: str) -> Response:
        subscriber = Subscriber(stream)
        self.subscribers.append(subscriber)
        self.stream_connects += 1
        return StreamingResponse(self._events(subscriber), media_type="text/event-stream")

    async def _events(self, subscriber: Subscriber) -> AsyncIterator[bytes]:
        try:
            yield b":)\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(subscriber.queue.get(), self.heartbeat_s)
                except TimeoutError:
                    yield b":thump\n\n"
                    continue
                if item is _DROP:
                    return
                if item is _ABORT:
                    raise _Aborted
                yield item
        finally:
            if subscriber in self.subscribers:
                self.subscribers.remove(subscriber)

    async def _timeline_tag(self, request: Request) -> Response:
        tag = request.path_params["tag"].lower()
        entries = [
            s
            for s in self.statuses
            if tag in {t["name"].lower() for t in s["tags"]} and s["visibility"] == "public"
        ]
        return self._gate(request) or self._page(request, entries, default_limit=20, max_limit=40)

    async def _notifications(self, request: Request) -> Response:
        types = request.query_params.getlist("types[]")
        entries = [n for n in self.notifications if not types or n["type"] in types]
        return self._gate(request) or self._page(request, entries, default_limit=40, max_limit=80)

    async def _verify_credentials(self, request: Request) -> Response:
        return self._gate(request) or JSONResponse(self.campaign)

    async def _policy(self, request: Request) -> Response:
        if self.policy is None:
            return JSONResponse({"error": "Record not found"}, status_code=404)
        return self._gate(request) or JSONResponse(self.policy)

    async def _instance(self, request: Request) -> Response:
        streaming = self.streaming_url or f"ws://127.0.0.1:{self.port}"
        return JSONResponse(
            {"domain": self.domain, "configuration": {"urls": {"streaming": streaming}}}
        )

    def _page(
        self, request: Request, entries: list[dict[str, Any]], *, default_limit: int, max_limit: int
    ) -> Response:
        """Mastodon's id pagination: newest first; ``min_id`` takes the entries
        immediately newer than it, the others the newest ones in range."""
        params = request.query_params
        limit = min(int(params.get("limit", default_limit)), max_limit)
        max_id, since_id, min_id = (
            int(params[k]) if k in params else None for k in ("max_id", "since_id", "min_id")
        )
        chosen = sorted(
            (
                e
                for e in entries
                if (max_id is None or int(e["id"]) < max_id)
                and (since_id is None or int(e["id"]) > since_id)
                and (min_id is None or int(e["id"]) > min_id)
            ),
            key=lambda e: int(e["id"]),
        )
        chosen = chosen[:limit] if min_id is not None else chosen[-limit:]
        page = list(reversed(chosen))
        headers: dict[str, str] = {}
        if page:
            kept = [(k, v) for k, v in params.multi_items() if k in ("limit", "types[]")]
            base = str(request.url.replace(query=""))
            next_url = f"{base}?{urlencode([*kept, ('max_id', page[-1]['id'])])}"
            prev_url = f"{base}?{urlencode([*kept, ('min_id', page[0]['id'])])}"
            headers["Link"] = f'<{next_url}>; rel="next", <{prev_url}>; rel="prev"'
        return JSONResponse(page, headers=headers)
