"""A FastAPI app served by uvicorn on a free port of 127.0.0.1, on an event loop
in a background thread (its lifespan running): for a browser, or for a client
that needs a real socket (Schemathesis)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

T = TypeVar("T")


class _Server(uvicorn.Server):
    """uvicorn in a thread of its own: leave the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LiveServer:
    """The app served by uvicorn on a free port of 127.0.0.1 (a secure context for
    ``crypto.subtle``), on an event loop in a background thread."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout_s: float = 30.0) -> None:
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", access_log=False, ws="none",
            timeout_graceful_shutdown=2,
        )  # fmt: skip
        server = self._server = _Server(config)

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(server.serve(sockets=[self._socket]))
            finally:  # what asyncio.run does: no task left pending on a closed loop
                pending = asyncio.all_tasks(self.loop)
                for task in pending:
                    task.cancel()
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())

        self._thread = threading.Thread(target=run, name="triage-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the triage web did not start")
            time.sleep(0.01)

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(_await(fn, *args, **kwargs), self.loop)
        return future.result(timeout=60)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(15)
        self._socket.close()
        if self._thread is None or not self._thread.is_alive():
            self.loop.close()


async def _await(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    return await fn(*args, **kwargs)


@contextlib.contextmanager
def served(app: FastAPI) -> Iterator[LiveServer]:
    """``app`` served until the block ends."""
    server = LiveServer(app)
    server.start()
    try:
        yield server
    finally:
        server.stop()
