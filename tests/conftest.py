"""Shared fixtures: a real Kafka-protocol broker for the session, unique topics
per test, factories for messages, and the sandbox platform (with its fake clock)
that the publisher's and the sandbox's tests talk to."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.kafka import KafkaSettings
from services.common.messages import Author, MentionReceived, Platform, Source, mention_id
from services.devstack.broker import EmbeddedBroker, free_port
from services.sandbox import SandboxSettings, create_app
from tests.helpers import ROOT
from tests.helpers.media import phone_clips
from tests.helpers.sandbox import FakeClock, SandboxServer, sandbox_fields

#: The test files that take minutes (whole stacks through ``make run``, fuzzing,
#: retraining), handed out first (``make test --durations``, 2 cores, 2026-12-04).
#: ``make test`` gives whole files to its two workers (``--dist loadfile
#: --no-loadscope-reorder``) in collection order; these go first, so that none of
#: them starts last while the other worker has nothing left to do. The broker-kill
#: fault test (3-7 min, timing-sensitive) comes after the other stacks, so that it
#: runs beside light tests rather than beside another whole stack.
SLOW_FIRST = (
    "tests/devstack/test_stack.py",
    "tests/triage/web/test_openapi_fuzz.py",
    "tests/devstack/test_stop.py",
    "tests/devstack/test_protect_stack.py",
    "tests/triage/web/test_learning_retrain.py",
    "tests/devstack/test_faults.py",
    "tests/triage/worker/test_functional.py",
    "tests/devstack/test_demo_triage.py",
    "tests/triage/web/test_browser.py",
    "tests/triage/web/test_browser_workday.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow files first (:data:`SLOW_FIRST`), then the others by their number
    of tests, most first (what xdist's own reordering did); a file's tests keep
    their order."""
    rank = {path: n for n, path in enumerate(SLOW_FIRST)}
    files = Counter(item.nodeid.split("::", 1)[0] for item in items)

    def key(item: pytest.Item) -> tuple[int, int, str]:
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank)), -files[path], path

    items.sort(key=key)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real broker: ``TEST_KAFKA_BOOTSTRAP_SERVERS`` if set,
    else a Tansu broker started for this session on a free port."""
    external = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    log_path = ROOT / "var" / "log" / f"test-broker-{os.getpid()}.log"
    with EmbeddedBroker(free_port(), log_path=log_path) as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Kafka settings with a unique topic prefix: each test gets its own topics."""
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        partitions=2,
        request_timeout_ms=5000,
    )


@pytest.fixture
def mention_factory() -> Callable[..., MentionReceived]:
    counter = iter(range(1, 10**9))

    def make(**overrides: Any) -> MentionReceived:
        n = next(counter)
        platform = overrides.pop("platform", Platform.X)
        native_id = overrides.pop("native_id", f"{1_800_000_000_000 + n}")
        fields: dict[str, Any] = {
            "id": mention_id(platform, native_id),
            "platform": platform,
            "native_id": native_id,
            "author": Author(id=f"{n}", handle=f"asker{n}", display_name=f"Asker {n}"),
            "text": f"@IWelcomeRefugees what do you miss most about home? #{n}",
            "lang": "en",
            "created_at": datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
            "received_at": datetime(2026, 11, 23, 12, 0, 1, tzinfo=UTC),
            "source": Source.WEBHOOK,
        }
        fields.update(overrides)
        return MentionReceived(**fields)

    return make


@pytest.fixture
def item_factory() -> Callable[..., dict[str, Any]]:
    """Webhook items (``POST /v1/mentions`` shape), as plain JSON-able dicts."""
    counter = iter(range(1, 10**9))

    def make(**overrides: Any) -> dict[str, Any]:
        n = next(counter)
        item: dict[str, Any] = {
            "platform": "x",
            "id": f"{1_900_000_000_000 + n}-{uuid.uuid4().hex[:6]}",
            "author": {"id": f"{n}", "handle": f"asker{n}"},
            "text": f"@IWelcomeRefugees what would you like people here to know? ({n})",
            "created_at": "2026-11-23T12:00:00Z",
            "lang": "en",
        }
        item.update(overrides)
        return item

    return make


# --- the sandbox platform ------------------------------------------------------------


@pytest.fixture(scope="module")
def _module_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clock(_module_clock: FakeClock) -> FakeClock:
    """The fake clock of this module's sandbox, set to now with no sleeps recorded."""
    _module_clock.now = time.time()
    _module_clock.sleeps.clear()
    return _module_clock


@pytest.fixture
def sandbox_settings(tmp_path: Path) -> Callable[..., SandboxSettings]:
    def make(**overrides: Any) -> SandboxSettings:
        return SandboxSettings(**{**sandbox_fields(tmp_path), **overrides})

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
    settings = SandboxSettings(**sandbox_fields(tmp_path_factory.mktemp("publish")))
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


# --- videos --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def phone_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small clip of each kind phones send, and an MP4 cut short (made once)."""
    return phone_clips(tmp_path_factory.mktemp("phone-videos"))
