"""Fixtures for the publisher: the sandbox platform served by uvicorn in the test's
own loop, a fake clock shared by the sandbox and the clients (so waits cost
nothing), settings pointing at the sandbox, and video files made on the spot."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from services.publish.config import PublishSettings
from services.publish.exceptions import RateLimited
from services.publish.platforms.base import MediaFile
from services.publish.ratelimit import AccountBudget
from services.publish.sandbox import SandboxSettings, create_app
from services.publish.sandbox.state import SandboxState

T = TypeVar("T")

X_TOKEN = "sandbox-x-token"
MASTODON_TOKEN = "sandbox-mastodon-token"
MiB = 1024 * 1024


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


@pytest.fixture(scope="module")
def _module_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clock(_module_clock: FakeClock) -> FakeClock:
    """The fake clock of this module's sandbox, set to now with no sleeps recorded."""
    _module_clock.now = time.time()
    _module_clock.sleeps.clear()
    return _module_clock


def _sandbox_fields(root: Path) -> dict[str, Any]:
    return {"media_dir": root / "sandbox", "public_url": "http://sandbox"}


@pytest.fixture
def sandbox_settings(tmp_path: Path) -> Callable[..., SandboxSettings]:
    def make(**overrides: Any) -> SandboxSettings:
        return SandboxSettings(**{**_sandbox_fields(tmp_path), **overrides})

    return make


ServeFactory = Callable[[SandboxSettings], contextlib.AbstractAsyncContextManager[SandboxServer]]


@pytest.fixture
def serve(clock: FakeClock) -> ServeFactory:
    """Serve a sandbox of its own with these settings, for the test's duration."""

    @contextlib.asynccontextmanager
    async def run(settings: SandboxSettings) -> AsyncIterator[SandboxServer]:
        server = SandboxServer(create_app(settings, clock=clock))
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)

    return run


@pytest.fixture(scope="module")
def _module_sandbox(
    tmp_path_factory: pytest.TempPathFactory, _module_clock: FakeClock
) -> Iterator[SandboxServer]:
    settings = SandboxSettings(**_sandbox_fields(tmp_path_factory.mktemp("publish")))
    server = SandboxServer(create_app(settings, clock=_module_clock))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(_module_sandbox: SandboxServer, clock: FakeClock) -> SandboxServer:
    """This module's sandbox, emptied: no posts, media, keys, windows or faults."""
    _module_sandbox.state.reset()
    return _module_sandbox


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0)) as client:
        yield client


@pytest.fixture
def publish_settings(sandbox: SandboxServer) -> Callable[..., PublishSettings]:
    """Publisher settings aimed at the sandbox; fast retries."""

    def make(**overrides: Any) -> PublishSettings:
        fields: dict[str, Any] = {
            "x_api_base_url": sandbox.base_url,
            "x_web_base_url": sandbox.base_url,
            "x_access_token": X_TOKEN,
            "mastodon_base_url": sandbox.base_url,
            "mastodon_access_token": MASTODON_TOKEN,
            "max_attempts": 4,
            "backoff_initial_s": 1.0,
            "backoff_max_s": 8.0,
        }
        fields.update(overrides)
        return PublishSettings(**fields)

    return make


@pytest.fixture
def media_factory(tmp_path: Path) -> Callable[..., MediaFile]:
    """Video files of random bytes (not committed), with their true sha256 and size."""
    counter = itertools.count(1)

    def make(size: int = 300 * 1024, *, mime: str = "video/mp4", **overrides: Any) -> MediaFile:
        path = tmp_path / f"answer-{next(counter)}.mp4"
        sha = hashlib.sha256()
        with path.open("wb") as handle:
            left = size
            while left > 0:
                block = os.urandom(min(left, MiB))
                sha.update(block)
                handle.write(block)
                left -= len(block)
        fields: dict[str, Any] = {
            "path": path,
            "mime": mime,
            "sha256": sha.hexdigest(),
            "size": size,
        }
        fields.update(overrides)
        return MediaFile(**fields)

    return make


@pytest.fixture
def mention_id() -> Callable[[], str]:
    """Ids of original mentions: numeric, older than anything the sandbox creates."""
    counter = itertools.count(1_790_000_000_000_000_001)
    return lambda: str(next(counter))


async def set_faults(http: httpx.AsyncClient, sandbox: SandboxServer, **faults: Any) -> None:
    response = await http.post(f"{sandbox.base_url}/sandbox/faults", json=faults)
    assert response.status_code == 200, response.text


async def posts(http: httpx.AsyncClient, sandbox: SandboxServer) -> list[dict[str, Any]]:
    response = await http.get(f"{sandbox.base_url}/sandbox/posts")
    assert response.status_code == 200
    result: list[dict[str, Any]] = response.json()
    return result


async def retry_after_rate_limits(
    call: Callable[[], Awaitable[T]],
    budget: AccountBudget,
    *,
    sleep: Callable[[float], Awaitable[None]],
    max_pauses: int = 10,
) -> T:
    """Run ``call``; on :class:`RateLimited` sleep until the reset and run it again.

    The publisher itself pauses the partition instead (tests/publish/test_agents_kafka);
    the client tests use this to show a paused account resumes with no loss.
    """
    for _ in range(max_pauses):
        try:
            return await call()
        except RateLimited as exc:
            await sleep(max(0.0, exc.reset_at - budget.clock()))
    return await call()
