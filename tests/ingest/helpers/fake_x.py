"""A local fake of the X API v2 filtered stream, over real HTTP.

It speaks the wire format of the real thing closely enough to exercise a
client end to end: bearer-token checks (401 in X's problem shape), the rules
endpoints with validation, pagination, ``DuplicateRule`` and ``invalid-rules``
answers, and a stream endpoint driven by a script: one list of steps per
connection, so a test can say "the first connection emits two posts and drops
mid-line, the second re-sends the last post".

Served by uvicorn on a free port, as a task of the test's own event loop::

    async with FakeX() as fake:
        fake.script([Emit(post(...)), Drop()], [Emit(post(...))])
        ...  # point the client at fake.base_url
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOKEN = "fake-x-bearer-token"
MAX_RULE_CHARS = 1024
KEEP_ALIVE = b"\r\n"

# --- the script of a stream connection ------------------------------------------


@dataclass(frozen=True)
class Emit:
    """Send one JSON object as a line (``\\r\\n``-terminated, as X does)."""

    payload: Any


@dataclass(frozen=True)
class EmitRaw:
    """Send these bytes as they are."""

    data: bytes


@dataclass(frozen=True)
class KeepAlive:
    """Send the keep-alive X sends every ~20 s: a bare ``\\r\\n``."""


@dataclass(frozen=True)
class Pause:
    """Send nothing for this long (a stalled connection when it is long enough)."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Send the start of a line, then cut the connection (no end of the chunked body)."""

    partial: bytes = b'{"data":{"id":"17'


@dataclass(frozen=True)
class Close:
    """End the response normally (X closed the stream)."""


@dataclass(frozen=True)
class Refuse:
    """Answer the connection with an HTTP error instead of a stream (only as the first step)."""

    status: int
    body: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


Step = Emit | EmitRaw | KeepAlive | Pause | Drop | Close | Refuse


def rate_limited(reset_at: int, *, limit: int = 50) -> Refuse:
    """A 429 as X sends it, with the ``x-rate-limit-*`` headers."""
    return Refuse(
        429,
        {
            "title": "Too Many Requests",
            "detail": "Too Many Requests",
            "type": "about:blank",
            "status": 429,
        },
        {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(reset_at),
        },
    )


def unavailable(status: int = 503) -> Refuse:
    return Refuse(
        status,
        {
            "title": "Service Unavailable",
            "detail": "Service Unavailable",
            "type": "about:blank",
            "status": status,
        },
    )


def too_many_connections() -> Refuse:
    return Refuse(
        429,
        {
            "title": "ConnectionException",
            "detail": "This stream is currently at the maximum allowed connection limit.",
            "connection_issue": "TooManyConnections",
            "type": "https://api.twitter.com/2/problems/streaming-connection",
        },
    )


OPERATIONAL_DISCONNECT: dict[str, Any] = {
    "errors": [
        {
            "title": "operational-disconnect",
            "disconnect_type": "UpstreamOperationalDisconnect",
            "detail": "This stream has been disconnected upstream for operational reasons.",
            "type": "https://api.twitter.com/2/problems/operational-disconnect",
        }
    ]
}

# --- real-shaped posts ----------------------------------------------------------------

_ids = itertools.count(1)


def post(
    *,
    id: str | None = None,
    text: str = "@IWelcomeRefugees what do you cook on holidays?",
    author_id: str = "2244994945",
    username: str = "asker",
    name: str = "An Asker",
    followers: int = 120,
    created_at: str = "2024-05-01T12:00:00.000Z",
    lang: str = "en",
    conversation_id: str | None = None,
    referenced: list[tuple[str, str]] | None = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """One filtered-stream object as X sends it with ``expansions=author_id`` and the
    tweet/user fields ingest asks for. ``referenced`` is ``[(type, id)]``."""
    post_id = id or str(1_790_000_000_000_000_000 + next(_ids))
    data: dict[str, Any] = {
        "id": post_id,
        "text": text,
        "author_id": author_id,
        "created_at": created_at,
        "lang": lang,
        "conversation_id": conversation_id or post_id,
        "edit_history_tweet_ids": [post_id],
    }
    if referenced:
        data["referenced_tweets"] = [{"type": kind, "id": ref} for kind, ref in referenced]
    return {
        "data": data,
        "includes": {
            "users": [
                {
                    "id": author_id,
                    "name": name,
                    "username": username,
                    "public_metrics": {
                        "followers_count": followers,
                        "following_count": 10,
                        "tweet_count": 1000,
                        "listed_count": 1,
                        "like_count": 5,
                    },
                }
            ]
        },
        "matching_rules": [
            {"id": str(1_600_000_000_000_000_000 + n), "tag": tag}
            for n, tag in enumerate(tags or ["campaign"])
        ],
    }


def line(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\r\n"


# --- the server ----------------------------------------------------------------------


@dataclass(frozen=True)
class FakeRule:
    id: str
    value: str
    tag: str | None = None


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    user_agent: str | None = None


class _DropConnectionError(Exception):
    """Raised inside a streaming response so that uvicorn aborts the connection."""


class _QuietDrops(logging.Filter):
    """Keep uvicorn from logging the connection drops we cause on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BaseExceptionGroup):
            return exc.subgroup(_DropConnectionError) is None
        return not isinstance(exc, _DropConnectionError)


class _Server(uvicorn.Server):
    """uvicorn as a task of the test's loop: leave the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"title": title, "detail": detail, "type": "about:blank", "status": status, **extra},
        status_code=status,
    )


def _invalid_request(message: str) -> JSONResponse:
    return JSONResponse(
        {
            "errors": [{"parameters": {}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        },
        status_code=400,
    )


def _rule_problem(value: str) -> str | None:
    if not value.strip():
        return "Rule must not be empty"
    if len(value) > MAX_RULE_CHARS:
        return f"Rule length exceeds {MAX_RULE_CHARS} characters"
    if value.count("(") != value.count(")"):
        return "Unbalanced parentheses"
    if all(term.startswith("-") for term in value.split()):
        return "Rules must contain a non-negation term (at position 1)"
    return None


class FakeX:
    """The fake X API. ``rules`` and ``requests`` are there to inspect."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        rules_page_size: int = 1000,
        keep_alive_s: float = 0.5,
    ) -> None:
        self.token = token
        self.rules_page_size = rules_page_size
        self.keep_alive_s = keep_alive_s
        self.rules: dict[str, FakeRule] = {}
        self.requests: list[Recorded] = []
        #: Stream requests answered, and those answered 200 (connections).
        self.stream_requests = 0
        self.connections = 0
        self._script: deque[list[Step]] = deque()
        self._rule_ids = itertools.count(1_700_000_000_000_000_001)
        self._closing = asyncio.Event()
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self._filter = _QuietDrops()
        self.app = Starlette(
            routes=[
                Route("/2/tweets/search/stream/rules", self._get_rules, methods=["GET"]),
                Route("/2/tweets/search/stream/rules", self._post_rules, methods=["POST"]),
                Route("/2/tweets/search/stream", self._stream, methods=["GET"]),
            ]
        )

    # -- test API --

    @property
    def base_url(self) -> str:
        assert self._socket is not None, "start the fake first"
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def script(self, *connections: list[Step]) -> None:
        """Queue what the next stream connections do, one list of steps each. When the
        script runs out, a connection stays open sending keep-alives (a quiet stream)."""
        self._script.extend(connections)

    def add_rule(self, value: str, tag: str | None = None) -> str:
        rule = FakeRule(str(next(self._rule_ids)), value, tag)
        self.rules[rule.id] = rule
        return rule.id

    def rule_pairs(self) -> set[tuple[str, str | None]]:
        return {(r.value, r.tag) for r in self.rules.values()}

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    async def start(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
            access_log=False,
        )
        self._server = _Server(config)
        logging.getLogger("uvicorn.error").addFilter(self._filter)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        async with asyncio.timeout(5):
            while not self._server.started:
                if self._task.done():
                    await self._task  # raises what went wrong
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._closing.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._socket is not None:
            self._socket.close()
        logging.getLogger("uvicorn.error").removeFilter(self._filter)

    async def __aenter__(self) -> FakeX:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- endpoints --

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        self.requests.append(
            Recorded(
                request.method,
                request.url.path,
                dict(request.query_params),
                body,
                request.headers.get("user-agent"),
            )
        )
        return body

    def _unauthorized(self, request: Request) -> Response | None:
        if request.headers.get("authorization") == f"Bearer {self.token}":
            return None
        return _problem(401, "Unauthorized", "Unauthorized")

    async def _get_rules(self, request: Request) -> Response:
        await self._record(request)
        if refused := self._unauthorized(request):
            return refused
        rules = list(self.rules.values())
        if ids := request.query_params.get("ids"):
            rules = [r for r in rules if r.id in ids.split(",")]
        start = int(request.query_params.get("pagination_token") or 0)
        page = rules[start : start + self.rules_page_size]
        meta: dict[str, Any] = {"sent": _now(), "result_count": len(page)}
        if start + self.rules_page_size < len(rules):
            meta["next_token"] = str(start + self.rules_page_size)
        if not page:
            return JSONResponse({"meta": meta})
        data = [{"id": r.id, "value": r.value, **({"tag": r.tag} if r.tag else {})} for r in page]
        return JSONResponse({"data": data, "meta": meta})

    async def _post_rules(self, request: Request) -> Response:
        body = await self._record(request)
        if refused := self._unauthorized(request):
            return refused
        if not isinstance(body, dict) or len(set(body) & {"add", "delete"}) != 1 or len(body) != 1:
            return _invalid_request("The request body must hold exactly one of 'add' or 'delete'")
        dry_run = request.query_params.get("dry_run") == "true"
        if "delete" in body:
            return self._delete(body["delete"], dry_run=dry_run)
        return self._add(body["add"], dry_run=dry_run)

    def _delete(self, delete: Any, *, dry_run: bool) -> Response:
        ids = delete.get("ids") if isinstance(delete, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            return _invalid_request("delete.ids must be a non-empty list of rule ids")
        known = [i for i in ids if i in self.rules]
        if not dry_run:
            for rule_id in known:
                del self.rules[rule_id]
        payload: dict[str, Any] = {
            "meta": {
                "sent": _now(),
                "summary": {"deleted": len(known), "not_deleted": len(ids) - len(known)},
            }
        }
        missing = [i for i in ids if i not in known]
        if missing:
            payload["errors"] = [
                {
                    "id": i,
                    "title": "RuleNotFound",
                    "detail": "Rule does not exist",
                    "type": "https://api.twitter.com/2/problems/resource-not-found",
                }
                for i in missing
            ]
        return JSONResponse(payload)

    def _add(self, add: Any, *, dry_run: bool) -> Response:
        if not isinstance(add, list) or not add:
            return _invalid_request("add must be a non-empty list of rules")
        for rule in add:
            if not isinstance(rule, dict) or not isinstance(rule.get("value"), str):
                return _invalid_request("every rule needs a string 'value'")
            if rule.keys() - {"value", "tag"}:
                return _invalid_request(f"unknown rule fields: {sorted(rule.keys())}")
        invalid = [
            {
                "value": rule["value"],
                "details": [problem],
                "title": "Invalid Rule",
                "type": "https://api.twitter.com/2/problems/invalid-rules",
            }
            for rule in add
            if (problem := _rule_problem(rule["value"]))
        ]
        if invalid:  # X creates nothing when one rule of the batch is invalid
            summary = {
                "created": 0,
                "not_created": len(add),
                "valid": len(add) - len(invalid),
                "invalid": len(invalid),
            }
            return JSONResponse(
                {"meta": {"sent": _now(), "summary": summary}, "errors": invalid}, status_code=400
            )
        created: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        by_value = {r.value: r for r in self.rules.values()}
        for rule in add:
            if (existing := by_value.get(rule["value"])) is not None:
                errors.append(
                    {
                        "value": rule["value"],
                        "id": existing.id,
                        "title": "DuplicateRule",
                        "type": "https://api.twitter.com/2/problems/duplicate-rules",
                    }
                )
                continue
            new = FakeRule(str(next(self._rule_ids)), rule["value"], rule.get("tag"))
            by_value[new.value] = new
            if not dry_run:
                self.rules[new.id] = new
            created.append(
                {"value": new.value, "id": new.id, **({"tag": new.tag} if new.tag else {})}
            )
        payload: dict[str, Any] = {
            "meta": {
                "sent": _now(),
                "summary": {
                    "created": len(created),
                    "not_created": len(errors),
                    "valid": len(created),
                    "invalid": len(errors),
                },
            }
        }
        if created:
            payload["data"] = created
        if errors:
            payload["errors"] = errors
        return JSONResponse(payload, status_code=201 if created else 200)

    async def _stream(self, request: Request) -> Response:
        await self._record(request)
        self.stream_requests += 1
        if refused := self._unauthorized(request):
            return refused
        steps = self._script.popleft() if self._script else []
        if steps and isinstance(steps[0], Refuse):
            first = steps[0]
            return JSONResponse(
                dict(first.body), status_code=first.status, headers=dict(first.headers)
            )
        self.connections += 1
        return StreamingResponse(self._emit(steps), media_type="application/json")

    async def _emit(self, steps: list[Step]) -> AsyncIterator[bytes]:
        for step in steps:
            if isinstance(step, Emit):
                yield line(step.payload)
            elif isinstance(step, EmitRaw):
                yield step.data
            elif isinstance(step, KeepAlive):
                yield KEEP_ALIVE
            elif isinstance(step, Pause):
                await self._idle(step.seconds)
            elif isinstance(step, Drop):
                yield step.partial
                await asyncio.sleep(0.05)  # let the partial line reach the client first
                raise _DropConnectionError
            elif isinstance(step, Close):
                return
            else:
                raise TypeError(f"{step!r} can only be the first step of a connection")
        while not self._closing.is_set():  # a quiet but healthy stream
            yield KEEP_ALIVE
            await self._idle(self.keep_alive_s)

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
