"""Broker epochs: the sent log keeps a window, survives the process, and a new
cluster id sends the window again (once), before the new epoch is noted."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from services.common.epoch import EpochWatch, Sent, SentLog, cluster_id


class FakeClient:
    """An aiokafka client whose broker answers with ``self.cluster`` (None: down)."""

    def __init__(self, cluster: str | None) -> None:
        self.cluster = cluster

    def get_random_node(self) -> int:
        return 1

    async def send(self, node: int, request: Any) -> Any:
        if self.cluster is None:
            raise KafkaConnectionError("down")
        return type("Metadata", (), {"cluster_id": self.cluster})()


def test_the_log_keeps_the_window_and_outlives_the_process(tmp_path: Path) -> None:
    now = [1000.0]
    log = SentLog(tmp_path / "sent.db", window_s=60, clock=lambda: now[0])
    log.record("mentions.raw", b"k1", b"v1")
    now[0] += 50
    log.record("mentions.raw", None, b"v2")
    log.set_epoch("e1")
    log.close()

    now[0] += 20  # the first record is now 70 s old
    again = SentLog(tmp_path / "sent.db", window_s=60, clock=lambda: now[0])
    assert [(s.topic, s.key, s.value) for s in again.window()] == [("mentions.raw", None, b"v2")]
    assert again.epoch() == "e1"
    again.set_epoch("e2")
    assert again.epoch() == "e2"


def test_a_batch_is_written_whole_in_order_or_not_at_all(tmp_path: Path) -> None:
    log = SentLog(tmp_path / "sent.db", window_s=60)
    batch = [Sent("t.a", f"k{n}".encode(), f"v{n}".encode()) for n in range(300)]
    log.record_many(batch)
    log.record_many([])
    assert log.window() == batch
    with pytest.raises(sqlite3.Error):
        log.record_many([Sent("t.a", b"k", b"v"), Sent(None, b"k", b"v")])  # type: ignore[arg-type]
    assert len(log) == 300  # the failed batch left nothing behind
    log.record("t.b", None, b"after")  # and the log still takes records
    assert log.window()[-1] == Sent("t.b", None, b"after")


async def test_cluster_id_is_none_when_the_broker_is_down() -> None:
    assert await cluster_id(FakeClient("takeaction-1")) == "takeaction-1"
    assert await cluster_id(FakeClient(None)) is None


async def test_a_new_epoch_sends_the_window_again_once(tmp_path: Path) -> None:
    log = SentLog(tmp_path / "sent.db", window_s=900)
    client = FakeClient("e1")
    resent: list[tuple[str, bytes | None, bytes | None]] = []
    told: list[tuple[str, str]] = []

    async def resend(topic: str, key: bytes | None, value: bytes | None) -> Any:
        resent.append((topic, key, value))
        return _done()

    async def on_new(old: str, new: str) -> None:
        told.append((old, new))

    watch = EpochWatch(client=lambda: client, sent=log, resend=resend)
    watch.on_new_epoch(on_new)
    assert watch.first is None
    assert not await watch.check()  # first sight: noted, nothing sent
    assert log.epoch() == "e1"
    assert watch.first == watch.current == "e1"
    log.record("mentions.raw", b"a", b"1")
    log.record("mentions.classified", b"b", b"2")

    client.cluster = None  # the broker died
    assert not await watch.check()
    client.cluster = "e2"  # and came back empty
    assert await watch.check()
    assert resent == [("mentions.raw", b"a", b"1"), ("mentions.classified", b"b", b"2")]
    assert told == [("e1", "e2")]
    assert log.epoch() == "e2"
    assert (watch.first, watch.current) == ("e1", "e2")  # the epoch this process read first
    assert not await watch.check()  # once
    assert len(resent) == 2


async def test_a_process_that_was_down_during_the_restart_sends_its_window_at_start(
    tmp_path: Path,
) -> None:
    log = SentLog(tmp_path / "sent.db", window_s=900)
    log.set_epoch("e1")
    log.record("replies.requested", b"q", b"reply")
    resent: list[bytes | None] = []

    async def resend(topic: str, key: bytes | None, value: bytes | None) -> Any:
        resent.append(value)
        return _done()

    watch = EpochWatch(client=lambda: FakeClient("e2"), sent=log, resend=resend)
    told: list[str] = []

    async def on_new(old: str, new: str) -> None:
        told.append(new)

    watch.on_new_epoch(on_new)
    assert await watch.check()
    assert resent == [b"reply"]
    assert told == []  # this process never saw e1 itself: nothing to reset in it


async def test_a_failed_resend_is_tried_again_before_the_epoch_is_noted(tmp_path: Path) -> None:
    log = SentLog(tmp_path / "sent.db", window_s=900)
    log.set_epoch("e1")
    log.record("mentions.raw", b"a", b"1")
    attempts = [0]

    async def resend(topic: str, key: bytes | None, value: bytes | None) -> Any:
        attempts[0] += 1
        if attempts[0] == 1:
            raise KafkaConnectionError("topics not there yet")
        return _done()

    watch = EpochWatch(client=lambda: FakeClient("e2"), sent=log, resend=resend, retry_s=0)
    assert await watch.check()
    assert attempts[0] == 2
    assert log.epoch() == "e2"


async def test_the_metadata_is_read_again_before_the_window_goes_out(tmp_path: Path) -> None:
    """The client's partition counts are the old epoch's: they are read again first
    (tried again until the broker answers), then the window is sent."""
    log = SentLog(tmp_path / "sent.db", window_s=900)
    log.set_epoch("e1")
    log.record("replies.requested", b"q", b"1")
    steps: list[str] = []

    async def refresh() -> None:
        steps.append("refresh")
        if steps.count("refresh") == 1:
            raise KafkaConnectionError("no metadata yet")

    async def resend(topic: str, key: bytes | None, value: bytes | None) -> Any:
        steps.append("resend")
        return _done()

    watch = EpochWatch(
        client=lambda: FakeClient("e2"), sent=log, resend=resend, refresh=refresh, retry_s=0
    )
    assert await watch.check()
    assert steps == ["refresh", "refresh", "resend"]
    assert await watch.check() is False  # once
    assert steps == ["refresh", "refresh", "resend"]


async def test_a_metadata_read_that_never_answers_is_tried_again(tmp_path: Path) -> None:
    """aiokafka's metadata update has no timeout of its own: one that hangs (its
    sync task gone with the old broker) must not hold the new epoch for ever."""
    log = SentLog(tmp_path / "sent.db", window_s=900)
    log.set_epoch("e1")
    steps: list[str] = []

    async def refresh() -> None:
        steps.append("refresh")
        if steps.count("refresh") == 1:
            await asyncio.Event().wait()  # never answers

    async def resend(topic: str, key: bytes | None, value: bytes | None) -> Any:
        return _done()

    watch = EpochWatch(
        client=lambda: FakeClient("e2"),
        sent=log,
        resend=resend,
        refresh=refresh,
        retry_s=0,
        refresh_timeout_s=0.05,
    )
    assert await asyncio.wait_for(watch.check(), 5)
    assert steps == ["refresh", "refresh"]
    assert log.epoch() == "e2"


async def _done() -> None:
    return None


async def test_since_log_callbacks_hear_of_a_broker_restarted_while_the_process_was_down(
    tmp_path: Path,
) -> None:
    log = SentLog(tmp_path / "sent.db", window_s=60)
    log.record("replies.requested", b"q", b"v")
    log.set_epoch("e1")  # what the process saw before it stopped
    resent: list[bytes | None] = []
    heard: list[tuple[str, str]] = []
    in_process: list[tuple[str, str]] = []
    failures = [1]

    async def resend(topic: str, key: bytes | None, value: bytes | None) -> Any:
        resent.append(value)
        return _done()

    async def since_log(old: str, new: str) -> None:
        if failures[0]:
            failures[0] -= 1
            raise OSError("the database is away")
        heard.append((old, new))

    async def plain(old: str, new: str) -> None:
        in_process.append((old, new))

    client = FakeClient("e2")  # restarted while the process was down
    watch = EpochWatch(client=lambda: client, sent=log, resend=resend)
    watch.on_new_epoch(since_log, since_log=True)
    watch.on_new_epoch(plain)
    with pytest.raises(OSError, match="database is away"):
        await watch.check()  # the first look after the start: the callback failed ...
    assert log.epoch() == "e1"  # ... so the new epoch is not noted
    assert await watch.check()  # asked again at the next look
    assert heard == [("e1", "e2")]
    assert log.epoch() == "e2"
    assert in_process == []  # nothing changed under this process
    assert resent == [b"v", b"v"]  # the window with each try (the consumers are idempotent)
    assert not await watch.check()
    assert heard == [("e1", "e2")]
