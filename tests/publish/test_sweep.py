"""The take-down sweep's loop, which a failed sweep must not end, and what it does
for the replies still held for a person resumed."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy.exc import OperationalError

from services.common import topics
from services.common.codec import encode
from services.common.kafka import KafkaSettings
from services.common.messages import PublishReply, SpeakerPaused
from services.publish.agents import Agents
from services.publish.ledger import Ledger
from tests.publish.helpers import KEYS, migrated_ledger, request_factory


class NothingHeld:
    async def held_for_resumed(self, speaker_ref: str | None = None) -> list[Any]:
        return []


class FlakyPublisher:
    """A publisher whose take-down sweeps fail twice (database down, a bug), then work."""

    def __init__(self) -> None:
        self.sweeps = 0
        self.ledger = NothingHeld()

    async def take_down_withdrawn(self) -> int:
        self.sweeps += 1
        if self.sweeps == 1:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))
        if self.sweeps == 2:
            raise RuntimeError("a bug in one sweep")
        return 1


async def test_the_take_down_sweep_outlives_a_failed_sweep() -> None:
    publisher = FlakyPublisher()
    agents = Agents(
        publisher=publisher,  # type: ignore[arg-type]
        producer=cast(Any, None),
        kafka=KafkaSettings(),
        keys=KEYS,
    )
    sweep = asyncio.create_task(agents.sweep_take_downs(0.01))
    try:
        for _ in range(200):
            if publisher.sweeps >= 4:
                break
            await asyncio.sleep(0.01)
        assert publisher.sweeps >= 4
        assert not sweep.done()
    finally:
        sweep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweep


class NothingToTakeDown:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def take_down_withdrawn(self) -> int:
        return 0


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> None:
        self.sent.append((topic, value, key))


def _decision(request: PublishReply, paused: bool, at: datetime) -> SpeakerPaused:
    return SpeakerPaused(
        speaker_ref=request.consent.speaker_ref, paused=paused, decided_by="mod-a", at=at
    )


async def _held(ledger: Ledger, request: PublishReply, at: datetime) -> bytes:
    command = KEYS.sign(topics.REPLIES_REQUESTED, encode(request))
    assert await ledger.record_pause(_decision(request, True, at))
    await ledger.open(request)
    assert await ledger.hold_if_paused(request, command) is not None
    return command


async def test_the_sweep_requests_again_what_is_still_held_for_a_person_resumed(
    tmp_path: Path,
) -> None:
    """A publisher stopped between recording a resume and requesting the held replies
    again: the sweep does it; a person still paused keeps theirs."""
    async with migrated_ledger("sqlite", tmp_path) as ledger:
        resumed, still_paused = request_factory(), request_factory()
        now = datetime.now(UTC)
        command = await _held(ledger, resumed, now)
        await _held(ledger, still_paused, now)
        assert await ledger.record_pause(_decision(resumed, False, now + timedelta(seconds=1)))
        publisher = NothingToTakeDown(ledger)
        producer = Producer()
        kafka = KafkaSettings(topic_prefix="t.")
        agents = Agents(
            publisher=publisher,  # type: ignore[arg-type]
            producer=producer,
            kafka=kafka,
            keys=KEYS,
        )
        sweep = asyncio.create_task(agents.sweep_take_downs(0.01))
        try:
            for _ in range(200):  # until the request is sent and the hold let go
                if producer.sent and not await ledger.held_for_resumed(resumed.consent.speaker_ref):
                    break
                await asyncio.sleep(0.01)
        finally:
            sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweep

        assert producer.sent == [("t.replies.requested", command, resumed.question_id.encode())]
        assert [h.reply_id for h in await ledger.held_for_resumed()] == []
        decisions = await ledger.decisions(resumed.reply_id)
        assert [(d.rule, d.verdict) for d in decisions] == [
            ("speaker_paused", "hold"),
            ("speaker_paused", "release"),
        ]
        await ledger.record_pause(_decision(still_paused, False, now + timedelta(seconds=1)))
        [left] = await ledger.held_for_resumed()
        assert left.reply_id == still_paused.reply_id
