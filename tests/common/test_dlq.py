"""Dead letters that fit: a record over the broker's size limit still lands in the
DLQ, with its head, length, sha256, where it came from and the error (issue 17)."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from services.common.codec import decode, encode
from services.common.dlq import HEAD_BYTES, MAX_LETTER_BYTES, dead_letter, send_dead_letter
from services.common.messages import DeadLetter


class Producer:
    """Refuses what is over ``max_bytes`` as aiokafka does (``max_request_size``)."""

    def __init__(self, max_bytes: int = 1_048_576, fail: list[Exception] | None = None) -> None:
        self.max_bytes = max_bytes
        self.fail = fail or []
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> None:
        if self.fail:
            raise self.fail.pop(0)
        if len(value or b"") > self.max_bytes:
            raise MessageSizeTooLargeError(f"{len(value or b'')} bytes")
        self.sent.append((topic, value or b"", key))


def letter_of(value: bytes) -> DeadLetter:
    return dead_letter(
        topic="replies.requested",
        stage="publish.verify",
        error="not a JSON command",
        value=value,
        key=b"q1",
        partition=2,
        offset=41,
    )


def test_a_small_record_travels_whole_with_its_length_and_sha256() -> None:
    letter = letter_of(b'{"reply_id": "r1"')
    assert base64.b64decode(letter.value_b64) == b'{"reply_id": "r1"'
    assert letter.value_bytes == 17
    assert letter.value_sha256 == hashlib.sha256(b'{"reply_id": "r1"').hexdigest()
    assert not letter.value_truncated


def test_an_800_kb_record_keeps_its_head_length_sha256_origin_and_error() -> None:
    value = os.urandom(800 * 1024)
    letter = letter_of(value)
    assert len(encode(letter)) <= MAX_LETTER_BYTES
    assert letter.value_truncated
    assert base64.b64decode(letter.value_b64) == value[:HEAD_BYTES]
    assert letter.value_bytes == len(value)
    assert letter.value_sha256 == hashlib.sha256(value).hexdigest()
    assert (letter.topic, letter.partition, letter.offset) == ("replies.requested", 2, 41)
    assert letter.error == "not a JSON command"
    assert base64.b64decode(letter.key_b64 or "") == b"q1"


async def test_the_letter_of_an_800_kb_record_is_sent() -> None:
    """Today's letter of it (1.07 MB of base64) was refused by the producer, the
    record put off, and its partition stopped for good."""
    producer = Producer()
    await send_dead_letter(producer, letter_of(os.urandom(800 * 1024)))
    [(topic, value, key)] = producer.sent
    assert (topic, key) == ("replies.requested.dlq", b"q1")
    assert decode(DeadLetter, value).value_bytes == 800 * 1024


async def test_a_broker_with_a_smaller_limit_gets_the_head_alone() -> None:
    """The broker's ``message.max.bytes`` can be below ours: the letter is cut to its
    head and sent again, never retried as it was forever."""
    producer = Producer(max_bytes=64 * 1024)
    value = os.urandom(200 * 1024)
    await send_dead_letter(producer, letter_of(value))
    [(_, sent, _)] = producer.sent
    letter = decode(DeadLetter, sent)
    assert letter.value_truncated
    assert letter.value_bytes == len(value)
    assert letter.value_sha256 == hashlib.sha256(value).hexdigest()


async def test_a_broker_that_is_down_is_still_an_error_the_caller_waits_out() -> None:
    producer = Producer(fail=[KafkaConnectionError("gone")])
    with pytest.raises(KafkaConnectionError):
        await send_dead_letter(producer, letter_of(b"{}"))
    assert producer.sent == []
