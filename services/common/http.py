"""HTTP plumbing shared by the FastAPI services: one error body shape,
request-size limits, constant-time bearer tokens.

Every error any service returns looks like::

    {"error": {"code": "payload_too_large", "message": "...", "details": ...}}
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Mapping
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.lifecycle import die_with_parent, exit_deadline

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """An error with a status, a stable code and a human message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = details
        self.headers = headers


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code or _CODES.get(status, "error"), message, details),
        status_code=status,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map ApiError, HTTP errors and validation errors to the one error body."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(
            exc.status, exc.message, code=exc.code, details=exc.details, headers=exc.headers
        )

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(
            exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)
        )

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()[:20]
        ]
        return error_response(422, "request validation failed", details=details)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


def bearer_matches(authorization: str | None, expected: str) -> bool:
    """Constant-time check of an ``Authorization: Bearer <token>`` header."""
    if not expected or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413.

    Checks ``Content-Length`` up front and counts streamed (chunked) bodies as
    they arrive, so a lying or absent header cannot get past it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await self._reply(send, 400, "invalid Content-Length header")
                return
            if too_big:
                await self._reply(send, 413, self._message())
                return

        received = 0
        started = False
        #: The body went over the limit; an app that caught the error (FastAPI turns
        #: any error while reading a JSON body into a 400) still answers 413.
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                if not started:
                    started = True
                    await self._reply(send, 413, self._message())
                return  # what the app says instead is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception:  # _BodyTooLarge, maybe wrapped (a middleware's task group)
            if not exceeded:
                raise
            if not started:
                await self._reply(send, 413, self._message())

    def _message(self) -> str:
        return f"request body exceeds {self.max_bytes} bytes"

    @staticmethod
    async def _reply(send: Send, status: int, message: str) -> None:
        body = json.dumps(error_body(_CODES[status], message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


#: Seconds in-flight requests get to finish on shutdown (within the exit deadline).
GRACEFUL_SHUTDOWN_S = 5


class Server(uvicorn.Server):
    """uvicorn's server, gone at most :data:`~services.common.lifecycle.EXIT_DEADLINE_S`
    after the first SIGTERM or SIGINT, whatever its shutdown waits on."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        exit_deadline(sig)
        super().handle_exit(sig, frame)


def run_server(app: ASGIApp, host: str, port: int) -> None:
    """Run ``app`` until SIGINT/SIGTERM, the same way in every service: our logging
    (no uvicorn log config, no access log: requests carry hostile text), proxy headers
    honoured, five seconds to finish in-flight requests on shutdown, and out within
    the exit deadline even if a broker or database holds the shutdown; SIGTERM when
    the parent process dies (:mod:`services.common.lifecycle`)."""
    die_with_parent()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    Server(config).run()


def task_states(tasks: Mapping[str, asyncio.Task[Any]]) -> dict[str, str]:
    """What each background task of a service is doing, for ``/healthz``:
    ``running``, ``cancelled``, ``stopped`` or ``died: <error>``."""
    states = {}
    for name, task in tasks.items():
        if not task.done():
            states[name] = "running"
        elif task.cancelled():
            states[name] = "cancelled"
        else:
            exc = task.exception()
            states[name] = f"died: {type(exc).__name__}: {exc}" if exc else "stopped"
    return states


def liveness_response(tasks: Mapping[str, asyncio.Task[Any]], *, key: str) -> JSONResponse:
    """``/healthz``: 200 while every background task runs, 503 when one has ended
    (restart the process); the states under ``key``. A broker or database being
    down is readiness, not liveness: a restart would not bring them back."""
    states = task_states(tasks)
    alive = all(state == "running" for state in states.values())
    return JSONResponse(
        {"status": "ok" if alive else "dead", key: states}, status_code=200 if alive else 503
    )


def readiness_response(
    *,
    broker_error: str | None,
    database_error: str | None,
    tasks: Mapping[str, asyncio.Task[Any]],
    key: str,
) -> JSONResponse:
    """``/readyz``: 200 when the broker and the database answer, else 503 with
    what failed; the background tasks' states under ``key``."""
    ready = broker_error is None and database_error is None
    body: dict[str, Any] = {
        "status": "ok" if ready else "degraded",
        "broker": {"connected": broker_error is None, "error": broker_error},
        "database": {"connected": database_error is None, "error": database_error},
        key: task_states(tasks),
    }
    return JSONResponse(body, status_code=200 if ready else 503)
