"""The worker's faust runner: its consumer thread commits offsets only to the broker
epoch the process reads (a memory-only broker restarted empty takes an old member's
commit, and the next worker would skip that many of the new epoch's records), and
it exits within the deadline however its stop began."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as aiokafka_driver

from services.common.epoch import EpochWatch
from services.triage.worker import app as worker_app

OFFSETS = {("mentions.raw", 0): 267}


@pytest.fixture
def committed(monkeypatch: pytest.MonkeyPatch) -> list[dict[Any, int]]:
    """What reaches faust's own commit (the broker)."""
    seen: list[dict[Any, int]] = []

    async def commit(self: Any, offsets: dict[Any, int]) -> bool:
        seen.append(dict(offsets))
        return True

    monkeypatch.setattr(aiokafka_driver.AIOKafkaConsumerThread, "_commit", commit)
    return seen


def _thread(monkeypatch: pytest.MonkeyPatch, watch: EpochWatch | None, broker: str | None) -> Any:
    """A consumer thread of an app with ``watch``, talking to a broker of epoch ``broker``."""

    async def cluster_id(client: Any, timeout_s: float = 3.0) -> str | None:
        assert client == "the consumer's client"
        return broker

    monkeypatch.setattr(worker_app, "cluster_id", cluster_id)
    thread: Any = object.__new__(worker_app._ConsumerThread)
    thread.app = SimpleNamespace(epoch_watch=watch) if watch is not None else SimpleNamespace()
    thread._ensure_consumer = lambda: SimpleNamespace(_client="the consumer's client")
    return thread


def _watch(first: str | None, current: str | None = None) -> EpochWatch:
    watch = EpochWatch(client=lambda: None)
    watch.first, watch.current = first, current or first
    return watch


async def test_offsets_are_committed_to_the_epoch_the_worker_reads(
    monkeypatch: pytest.MonkeyPatch, committed: list[dict[Any, int]]
) -> None:
    thread = _thread(monkeypatch, _watch("takeaction-a"), "takeaction-a")
    assert await thread._commit(OFFSETS) is True
    assert committed == [OFFSETS]


@pytest.mark.parametrize(
    ("watch", "broker"),
    [
        # The broker restarted empty; the watch has not looked yet.
        (_watch("takeaction-a"), "takeaction-b"),
        # The watch saw it and is about to exit (current is already the new one).
        (_watch("takeaction-a", current="takeaction-b"), "takeaction-b"),
        # No broker answers.
        (_watch("takeaction-a"), None),
        # The watch has not seen any broker yet.
        (_watch(None), "takeaction-a"),
    ],
    ids=["new-epoch", "watch-exiting", "no-broker", "not-seen-yet"],
)
async def test_old_epoch_offsets_never_reach_another_epoch(
    monkeypatch: pytest.MonkeyPatch,
    committed: list[dict[Any, int]],
    watch: EpochWatch,
    broker: str | None,
) -> None:
    thread = _thread(monkeypatch, watch, broker)
    assert await thread._commit(OFFSETS) is False
    assert committed == []


async def test_without_an_epoch_watch_offsets_are_committed_as_faust_does(
    monkeypatch: pytest.MonkeyPatch, committed: list[dict[Any, int]]
) -> None:
    thread = _thread(monkeypatch, None, None)
    assert await thread._commit(OFFSETS) is True
    assert committed == [OFFSETS]


def test_a_worker_that_stops_for_any_reason_exits_within_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crash (no signal) stops faust's worker too; its stop must not hang."""
    armed: list[bool] = []
    monkeypatch.setattr(worker_app, "exit_deadline", lambda: armed.append(True))
    runner: Any = object.__new__(worker_app._Worker)
    runner.spinner = None
    runner._setproctitle = lambda title: None
    runner.on_worker_shutdown()
    assert armed == [True]


class _Thread:
    """A stand-in for the threading.Thread faust's consumer thread runs in."""

    def __init__(self, alive: bool) -> None:
        self.alive = alive

    def is_alive(self) -> bool:
        return self.alive


def _app(*, crashed: bool = False, thread: Any = None) -> Any:
    consumer = SimpleNamespace(_thread=thread) if thread is not None else None
    return SimpleNamespace(crashed=crashed, crash_reason=None, _consumer=consumer)


@pytest.mark.parametrize(
    ("app", "dead"),
    [
        (_app(), []),  # before the consumer exists (starting)
        (_app(thread=SimpleNamespace(_thread=None, crashed=False)), []),  # not started yet
        (_app(thread=SimpleNamespace(_thread=_Thread(alive=True), crashed=False)), []),
        (
            _app(thread=SimpleNamespace(_thread=_Thread(alive=False), crashed=False)),
            ["faust's consumer thread died"],
        ),
        (
            _app(thread=SimpleNamespace(_thread=_Thread(True), crashed=True, crash_reason=None)),
            ["faust's consumer thread crashed: None"],
        ),
        (_app(crashed=True), ["faust's app crashed: None"]),
    ],
    ids=["starting", "thread-not-started", "running", "thread-died", "thread-crashed", "crashed"],
)
def test_liveness_says_when_the_worker_is_up_but_consumes_nothing(
    app: Any, dead: list[str]
) -> None:
    assert worker_app.Health(app).dead() == dead
