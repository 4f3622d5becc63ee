"""Dead letters: an input a stage could not handle goes to ``<topic>.dlq``.

The original bytes travel with the error and the stage, so nothing is silently
dropped and a fixed consumer can replay them. :func:`dead_letter` builds the
envelope, :func:`send_dead_letter` produces it, and :class:`DeadLetters` does
both for a record a service's consumer could not handle.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from services.common.codec import encode
from services.common.messages import DeadLetter, utcnow
from services.common.topics import dlq

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

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


class Consumed(Protocol):
    """A record as it came from the broker (an aiokafka record, the worker's own)."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def partition(self) -> int | None: ...

    @property
    def offset(self) -> int | None: ...


def letter_for(record: Consumed, *, topic: str, stage: str, error: str) -> DeadLetter:
    """The dead letter of ``record`` (read from ``topic``), with its original bytes."""
    return dead_letter(
        topic=topic,
        stage=stage,
        error=error,
        value=record.value or b"",
        key=record.key,
        partition=record.partition,
        offset=record.offset,
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


def _not_counted(record: ConsumerRecord[bytes, bytes], step: str) -> None:
    """The default of :attr:`DeadLetters.counted`."""


@dataclass(frozen=True)
class DeadLetters:
    """Where one service's consumers send the records they cannot handle:
    ``<topic>.dlq``, stage ``<service>.<step>`` (``decode``, ``handle``)."""

    producer: Sender
    service: str
    #: Called once a dead letter is acknowledged (the service's metrics).
    counted: Callable[[ConsumerRecord[bytes, bytes], str], None] = _not_counted

    async def send(self, record: ConsumerRecord[bytes, bytes], step: str, error: str) -> None:
        """Produce the record's dead letter (raises the broker's error if it is not sent)."""
        letter = letter_for(record, topic=record.topic, stage=f"{self.service}.{step}", error=error)
        await send_dead_letter(self.producer, letter, physical_topic=record.topic)
        self.counted(record, step)
