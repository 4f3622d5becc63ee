"""Dead letters: an input a stage could not handle goes to ``<topic>.dlq``.

The original bytes travel with the error and the stage, so nothing is silently
dropped and a fixed consumer can replay them. :func:`dead_letter` builds the
envelope, :func:`send_dead_letter` produces it, and :class:`DeadLetters` does
both for a record a service's consumer could not handle.

A letter must fit where it goes: base64 makes a value a third larger, so a record
of ~800 KB would make a letter over the broker's 1 MB limit, refused for ever
(and the partition behind it stopped). Such a letter keeps the value's head
(:data:`HEAD_BYTES`), its length and sha256, where it came from and the error; a
broker whose limit is lower still gets the head cut to :data:`MIN_HEAD_BYTES`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from services.common.codec import encode
from services.common.messages import DeadLetter, utcnow
from services.common.topics import dlq

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

log = logging.getLogger(__name__)

#: Largest letter sent as it is: under aiokafka's ``max_request_size`` and Kafka's
#: ``message.max.bytes`` (both about 1 MiB by default), with room for the batch.
MAX_LETTER_BYTES = 900_000
#: What a letter too large keeps of the value (and of the key).
HEAD_BYTES = 64 * 1024
#: The head kept when the broker refuses even that (its limit set lower).
MIN_HEAD_BYTES = 4 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def truncated(letter: DeadLetter, head_bytes: int) -> DeadLetter:
    """``letter`` with only the head of its value (and key): length and sha256 stay."""
    value = base64.b64decode(letter.value_b64)
    key = base64.b64decode(letter.key_b64) if letter.key_b64 is not None else None
    return letter.model_copy(
        update={
            "value_b64": _b64(value[:head_bytes]),
            "key_b64": _b64(key[:head_bytes]) if key is not None else None,
            "value_bytes": letter.value_bytes if letter.value_bytes is not None else len(value),
            "value_sha256": letter.value_sha256 or hashlib.sha256(value).hexdigest(),
            "value_truncated": True,
        }
    )


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
    letter = DeadLetter(
        topic=topic,
        stage=stage,
        error=error[:4000] or "unknown error",
        partition=partition,
        offset=offset,
        key_b64=_b64(key) if key is not None else None,
        value_b64=_b64(value),
        value_bytes=len(value),
        value_sha256=hashlib.sha256(value).hexdigest(),
        at=utcnow(),
    )
    if len(encode(letter)) > MAX_LETTER_BYTES:
        return truncated(letter, HEAD_BYTES)
    return letter


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
    """Produce ``letter`` to the DLQ of its topic (``physical_topic`` if prefixed).

    A letter the producer or the broker finds too large is cut to the value's head
    and sent again (see the module docstring); any other broker error is raised, for
    the caller to try again later."""
    target = dlq(physical_topic or letter.topic)
    if len(encode(letter)) > MAX_LETTER_BYTES:
        letter = truncated(letter, HEAD_BYTES)
    key = base64.b64decode(letter.key_b64) if letter.key_b64 else None
    try:
        await producer.send_and_wait(target, encode(letter), key=key)
    except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
        log.warning("dead letter from %s too large for the broker (%s): head only", target, exc)
        letter = truncated(letter, MIN_HEAD_BYTES)
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
