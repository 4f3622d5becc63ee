"""The take-down sweep's loop, which a failed sweep must not end."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from sqlalchemy.exc import OperationalError

from services.common.kafka import KafkaSettings
from services.publish.agents import Agents
from tests.publish.helpers import KEYS


class FlakyPublisher:
    """A publisher whose take-down sweeps fail twice (database down, a bug), then work."""

    def __init__(self) -> None:
        self.sweeps = 0

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
