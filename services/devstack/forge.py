"""Write a forged ``replies.requested`` straight to the topic, as an attacker with
write access to Kafka would, and show what the publisher made of it: the dead
letter (stage, reason) it must land as, never a post.

    python -m services.devstack.forge unsigned
    python -m services.devstack.forge bad-signature
    python -m services.devstack.forge outside-media              # signed, /etc/hostname
    python -m services.devstack.forge second-reply --in-reply-to <native id of a post
                                                   already answered> [--platform x]

Against ``make run`` (or any stack: ``KAFKA_*`` as the services have them). The
signed kinds sign with ``COMMAND_SIGNING_*`` (the development key under ``make
run``): even a validly signed command is refused when its media is outside the
publisher's media root or its post was answered already. Exit status 0 when the
dead letter came back within ``--wait-s``, 1 otherwise. Development tool only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from services.common import topics
from services.common.codec import decode, encode, encode_key
from services.common.kafka import KafkaSettings, make_consumer, make_producer
from services.common.messages import (
    Author,
    Consent,
    DeadLetter,
    Media,
    Platform,
    PublishReply,
    mention_id,
)
from services.common.signing import CommandKeys, SigningSettings

KINDS = ("unsigned", "bad-signature", "outside-media", "second-reply")
#: The file an outside-media command points at (what the audit's forgery posted).
OUTSIDE_FILE = Path("/etc/hostname")


def forged_request(kind: str, *, platform: Platform, in_reply_to: str | None) -> PublishReply:
    """The command of ``kind`` (unsigned yet)."""
    tag = uuid.uuid4().hex[:10]
    native = in_reply_to or str(1_790_000_000_000_000_000 + secrets.randbelow(10**9))
    media = None
    if kind == "outside-media":
        data = OUTSIDE_FILE.read_bytes()
        media = Media(
            uri=OUTSIDE_FILE.as_uri(),
            mime="video/mp4",
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    now = datetime.now(UTC)
    return PublishReply(
        reply_id=f"forged-{tag}",
        question_id=f"forged-q-{tag}",
        mention_id=mention_id(platform, native),
        platform=platform,
        in_reply_to=native,
        author=Author(id=f"forged-{tag}", handle="forged_asker"),
        text=f"Forged reply {tag}: this must never be posted.",
        language="en",
        media=media,
        consent=Consent(
            speaker_ref="forged-speaker",
            scope="campaign-social",
            recorded_by="nobody",
            at=now - timedelta(hours=1),
        ),
        approved_by="nobody",
        requested_at=now,
    )


def forged_bytes(kind: str, request: PublishReply, keys: CommandKeys) -> bytes:
    value = encode(request)
    if kind == "unsigned":
        return value
    if kind == "bad-signature":  # the right key id, a guessed secret
        guess = CommandKeys(keys.signing_id, {keys.signing_id: SecretStr(secrets.token_hex(32))})
        return guess.sign(topics.REPLIES_REQUESTED, value)
    return keys.sign(topics.REPLIES_REQUESTED, value)


def _reply_id(letter: DeadLetter) -> str | None:
    try:
        value = json.loads(base64.b64decode(letter.value_b64))
    except ValueError:
        return None
    found = value.get("reply_id") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


async def forge(
    kind: str, args: argparse.Namespace, kafka: KafkaSettings, keys: CommandKeys
) -> DeadLetter | None:
    """Send the forged command; the dead letter the publisher wrote for it, or None."""
    request = forged_request(kind, platform=Platform(args.platform), in_reply_to=args.in_reply_to)
    value = forged_bytes(kind, request, keys)
    dlq = kafka.topic(topics.dlq(topics.REPLIES_REQUESTED))
    consumer = make_consumer(kafka, dlq, group_id=None, auto_offset_reset="latest")
    producer = make_producer(kafka)
    await consumer.start()
    await producer.start()
    try:
        await consumer.getmany(timeout_ms=500)  # positioned at the end before sending
        await producer.send_and_wait(
            kafka.topic(topics.REPLIES_REQUESTED), value, key=encode_key(request.question_id)
        )
        sys.stdout.write(f"sent {kind} replies.requested reply_id={request.reply_id}\n")
        deadline = time.monotonic() + args.wait_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    letter = decode(DeadLetter, record.value)
                    if _reply_id(letter) == request.reply_id:
                        return letter
        return None
    finally:
        await producer.stop()
        await consumer.stop()


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.devstack.forge", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--platform", choices=[p.value for p in Platform], default="x")
    parser.add_argument("--in-reply-to", help="native id of the post (second-reply: answered)")
    parser.add_argument("--wait-s", type=float, default=30.0, help="wait for the dead letter")
    return parser


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.kind == "second-reply" and not args.in_reply_to:
        cli.error("second-reply needs --in-reply-to (a post the stack already answered)")
    keys = SigningSettings().command_keys()
    letter = asyncio.run(forge(args.kind, args, KafkaSettings(), keys))
    if letter is None:
        sys.stderr.write(f"no dead letter within {args.wait_s:.0f} s\n")
        return 1
    sys.stdout.write(f"dead-lettered: stage={letter.stage} error={letter.error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
