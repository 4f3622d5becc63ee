"""The sandbox platform in tests: served by uvicorn on a free port in a thread of
its own (one server can outlive a test's event loop and serve a whole module), the
fake clock it shares with the clients, and raw calls to its control API."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from services.sandbox import SandboxSettings, create_app
from services.sandbox.state import SandboxState

X_TOKEN = "sandbox-x-token"
MASTODON_TOKEN = "sandbox-mastodon-token"


class FakeClock:
    """Epoch seconds that move only when someone sleeps."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class _Server(uvicorn.Server):
    """uvicorn in a thread of its own: leave the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SandboxServer:
    """The sandbox served by uvicorn on a free port, in a background thread (so one
    server can outlive a test's event loop and serve a whole module)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> SandboxState:
        state: SandboxState = self.app.state.sandbox
        return state

    @property
    def base_url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self.app, loop="asyncio", log_level="warning", lifespan="off", access_log=False,
            timeout_graceful_shutdown=2,
        )  # fmt: skip
        server = self._server = _Server(config)
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[self._socket]), name="sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._socket.close()


def sandbox_fields(root: Path) -> dict[str, Any]:
    """The tests' sandbox: its media checks off (the protocol tests send bytes that are no
    video); ``tests/sandbox/test_media_limits.py`` turns them on."""
    return {"media_dir": root / "sandbox", "public_url": "http://sandbox", "check_media": False}


@contextlib.contextmanager
def live_sandbox(tmp_path: Path, **overrides: Any) -> Iterator[SandboxServer]:
    """A sandbox on the real clock (rate-limit resets pass by themselves)."""
    settings = SandboxSettings(**{**sandbox_fields(tmp_path), **overrides})
    server = SandboxServer(create_app(settings, clock=time.time))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def set_faults(http: httpx.AsyncClient, sandbox: SandboxServer, **faults: Any) -> None:
    response = await http.post(f"{sandbox.base_url}/sandbox/faults", json=faults)
    assert response.status_code == 200, response.text


async def posts(http: httpx.AsyncClient, sandbox: SandboxServer) -> list[dict[str, Any]]:
    response = await http.get(f"{sandbox.base_url}/sandbox/posts")
    assert response.status_code == 200
    result: list[dict[str, Any]] = response.json()
    return result
