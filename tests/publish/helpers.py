"""Helpers for the publisher's ledger, publisher and stream tests: ledger
databases (SQLite file or a Postgres schema of its own), reply requests,
consumers that need no group rebalance, platforms that crash on cue, and
waiting out rate limits."""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from services.common.consume import ConsumeLoop
from services.common.kafka import KafkaSettings, make_consumer
from services.common.messages import (
    Author,
    Consent,
    MentionReceived,
    Platform,
    PublishReply,
    mention_id,
)
from services.common.signing import CommandKeys
from services.publish.db import migrate
from services.publish.exceptions import RateLimited, RetryableError
from services.publish.ledger import Ledger
from services.publish.platforms.base import MediaFile, PostedReply, ReplyDraft
from services.publish.ratelimit import AccountBudget
from tests.helpers.db import empty_database

T = TypeVar("T")

CAMPAIGN = "TakeActionCamps"
#: The command keys of the tests (what the triage web would sign with).
KEYS = CommandKeys("test", {"test": SecretStr("the tests' command signing key - 32+ chars")})
MiB = 1024 * 1024


@contextlib.asynccontextmanager
async def migrated_ledger(kind: str, tmp_path: Path) -> AsyncIterator[Ledger]:
    async with empty_database(kind, tmp_path) as (engine, _, _):
        await migrate(engine)
        yield Ledger(engine)


_numbers = itertools.count(1)


def request_factory(**overrides: Any) -> PublishReply:
    """A reply request: a numeric mention id older than anything the sandbox makes,
    consent an hour old, a text of its own."""
    n = next(_numbers)
    platform = Platform(overrides.pop("platform", Platform.X))
    native = overrides.pop("in_reply_to", str(1_790_000_000_000_000_000 + n))
    author = overrides.pop("author", Author(id=f"a{n}", handle=f"asker{n}"))
    fields: dict[str, Any] = {
        "reply_id": f"r-{uuid.uuid4().hex[:10]}",
        "question_id": f"q-{uuid.uuid4().hex[:10]}",
        "mention_id": mention_id(platform, native),
        "platform": platform,
        "in_reply_to": native,
        "author": author,
        "text": f"Answer number {n} from the camp.",
        "language": "en",
        "consent": Consent(
            speaker_ref=f"speaker-{n}",
            scope="campaign-social",
            recorded_by="team-a",
            at=datetime.now(UTC) - timedelta(hours=1),
        ),
        "approved_by": "mod1",
        "requested_at": datetime.now(UTC),
    }
    fields.update(overrides)
    return PublishReply(**fields)


def mention_for(
    request: PublishReply, text: str | None = None, **overrides: Any
) -> MentionReceived:
    """The mention a request answers (by default it mentions the campaign account)."""
    fields: dict[str, Any] = {
        "id": request.mention_id,
        "platform": request.platform,
        "native_id": request.in_reply_to,
        "author": request.author,
        "text": text if text is not None else f"@{CAMPAIGN} what do you miss most?",
        "created_at": datetime.now(UTC) - timedelta(hours=2),
        "received_at": datetime.now(UTC) - timedelta(hours=2),
    }
    fields.update(overrides)
    return MentionReceived(**fields)


async def engage(
    ledger: Ledger, request: PublishReply, how: tuple[str, ...] = ("account",)
) -> None:
    """Record that the request's mention engaged the campaign."""
    await ledger.record_engagement(
        request.mention_id,
        platform=request.platform.value,
        author_id=request.author.id,
        how=how,
        at=datetime.now(UTC),
    )


async def assigned_consumer(kafka: KafkaSettings, topic: str, group: str) -> AIOKafkaConsumer:
    """A consumer of every partition of ``topic`` committing to ``group``, without
    the seconds a group rebalance costs (a restart in a test is instant)."""
    consumer = make_consumer(kafka, group_id=group)
    await consumer.start()
    physical = kafka.topic(topic)
    partitions = consumer.partitions_for_topic(physical)
    if not partitions:
        await consumer.force_metadata_update()
        partitions = consumer.partitions_for_topic(physical) or set()
    consumer.assign([TopicPartition(physical, p) for p in sorted(partitions)])
    return consumer


async def drain(
    loop: ConsumeLoop, *, until: Callable[[], Any] | None = None, timeout_s: float = 20.0
) -> None:
    """Run the loop until every assigned partition is read to its end (as of now)
    with nothing put off, and ``until`` (awaited if async) holds."""
    consumer = loop.consumer
    ends = await consumer.end_offsets(list(consumer.assignment()))
    deadline = time.monotonic() + timeout_s
    while True:
        await loop.run_once()
        positions = {tp: await consumer.position(tp) for tp in ends}
        done = not loop.deferred and all(positions[tp] >= end for tp, end in ends.items())
        if done and until is not None:
            result = until()
            if hasattr(result, "__await__"):
                result = await result
            done = bool(result)
        if done:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"not drained: positions {positions}, ends {ends}, deferred {loop.deferred}"
            )


class SimulatedCrash(BaseException):
    """The process dies here (nothing after it runs, nothing catches it)."""


class CrashAfterPost:
    """A platform that posts for real, then dies before the ledger hears of it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.budget = inner.budget
        self.reply_buckets = inner.reply_buckets
        self.media_buckets = inner.media_buckets

    def lost(self) -> BaseException:
        return SimulatedCrash()

    async def upload_video(self, media: MediaFile) -> str:
        result: str = await self.inner.upload_video(media)
        return result

    async def post_reply(self, draft: ReplyDraft) -> PostedReply:
        await self.inner.post_reply(draft)
        raise self.lost()

    async def find_reply(self, **kwargs: Any) -> PostedReply | None:
        found: PostedReply | None = await self.inner.find_reply(**kwargs)
        return found

    async def delete_post(self, post_id: str) -> bool:
        deleted: bool = await self.inner.delete_post(post_id)
        return deleted


class TimeoutAfterPost(CrashAfterPost):
    """A platform that posts for real, then the answer is lost (a read timeout)."""

    def lost(self) -> BaseException:
        return RetryableError(
            "read timeout", platform=self.name.value, account="campaign", status=None
        )


async def retry_after_rate_limits(
    call: Callable[[], Awaitable[T]],
    budget: AccountBudget,
    *,
    sleep: Callable[[float], Awaitable[None]],
    max_pauses: int = 10,
) -> T:
    """Run ``call``; on :class:`RateLimited` sleep until the reset and run it again.

    The publisher itself pauses the partition instead (tests/publish/test_agents_kafka);
    the client tests use this to show a paused account resumes with no loss.
    """
    for _ in range(max_pauses):
        try:
            return await call()
        except RateLimited as exc:
            await sleep(max(0.0, exc.reset_at - budget.clock()))
    return await call()
