"""Dead letters: an input a stage could not handle goes to ``<topic>.dlq``.

The original bytes travel with the error and the stage, so nothing is silently
dropped and a fixed consumer can replay them.
"""

from __future__ import annotations

import base64
import logging
from typing import Protocol

from services.common.codec import encode
from services.common.messages import DeadLetter, utcnow
from services.common.topics import dlq

log = logging.getLogger(__name__)


def dead_letter(
    *,
    topic: str,
    stage: str,
    error: str,
    value: bytes,
    key: bytes | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> DeadLetter:
    return DeadLetter(
        topic=topic,
        stage=stage,
        error=error[:4000] or "unknown error",
        partition=partition,
        offset=offset,
        key_b64=base64.b64encode(key).decode("ascii") if key is not None else None,
        value_b64=base64.b64encode(value).decode("ascii"),
        at=utcnow(),
    )


class Sender(Protocol):
    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> object: ...


async def send_dead_letter(
    producer: Sender, letter: DeadLetter, *, physical_topic: str | None = None
) -> None:
    """Produce ``letter`` to the DLQ of its topic (``physical_topic`` if prefixed)."""
    target = dlq(physical_topic or letter.topic)
    key = base64.b64decode(letter.key_b64) if letter.key_b64 else None
    await producer.send_and_wait(target, encode(letter), key=key)
    log.warning(
        "dead-lettered a message from %s at stage %s: %s", letter.topic, letter.stage, letter.error
    )
