"""The publisher's consumers through the real broker and the sandbox platform:
redelivery, a crash between the post and the ledger, rate limits, errors, dead
letters, consent withdrawals, paused people and opt-outs, as records on topics."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import BaseModel, SecretStr

from services.common import topics
from services.common.bootstrap import ensure_topics
from services.common.codec import decode, encode, encode_key
from services.common.consume import ConsumeLoop, RecordHandler
from services.common.kafka import KafkaSettings, make_producer
from services.common.messages import (
    ConsentWithdrawn,
    DeadLetter,
    Media,
    Platform,
    PublishReply,
    ReplyFailed,
    ReplyPublished,
    SpeakerPaused,
)
from services.common.signing import CommandKeys
from services.devstack import forge
from services.publish import metrics
from services.publish.agents import Agents, consume_loop
from services.publish.config import PublishSettings
from services.publish.ledger import Ledger
from services.publish.models import ReplyState
from services.publish.platforms import build_platforms
from services.publish.publisher import Publisher
from tests.helpers.kafka import read_all
from tests.helpers.sandbox import (
    MASTODON_TOKEN,
    X_TOKEN,
    SandboxServer,
    live_sandbox,
    posts,
    set_faults,
)
from tests.publish.helpers import (
    KEYS,
    CrashAfterPost,
    SimulatedCrash,
    assigned_consumer,
    drain,
    engage,
    mention_for,
    migrated_ledger,
    request_factory,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

GROUP = "publish-test"


@dataclass
class Stack:
    """One publisher (ledger, platforms, producer) and the loops of its consumers."""

    kafka: KafkaSettings
    ledger: Ledger
    sandbox: SandboxServer
    http: httpx.AsyncClient
    producer: AIOKafkaProducer
    settings: PublishSettings
    consumers: list[AIOKafkaConsumer] = field(default_factory=list)

    def publisher(self, wrap: Any = None) -> Publisher:
        platforms: dict[Platform, Any] = dict(build_platforms(self.settings, self.http))
        if wrap is not None:
            platforms = {name: wrap(p) for name, p in platforms.items()}
        return Publisher(ledger=self.ledger, platforms=platforms, settings=self.settings)

    def agents(self, publisher: Publisher | None = None) -> Agents:
        return Agents(
            publisher=publisher or self.publisher(),
            producer=self.producer,
            kafka=self.kafka,
            keys=KEYS,
        )

    async def loop(self, topic: str, handle: RecordHandler, group: str = GROUP) -> ConsumeLoop:
        consumer = await assigned_consumer(self.kafka, topic, group)
        self.consumers.append(consumer)
        return consume_loop(
            consumer, handle, name=topic, producer=self.producer, poll_timeout_ms=100
        )

    async def stop(self, loop: ConsumeLoop) -> None:
        """Stop a consumer the way a killed process does: nothing more is committed."""
        await loop.consumer.stop()
        self.consumers.remove(loop.consumer)

    async def send(self, topic: str, value: bytes, key: str | None = None) -> None:
        await self.producer.send_and_wait(self.kafka.topic(topic), value, key=encode_key(key))

    async def command(self, topic: str, message: BaseModel, key: str) -> None:
        """Send ``message`` signed, as the triage web's outbox does."""
        await self.send(topic, KEYS.sign(topic, encode(message)), key)

    async def request(self, request: PublishReply, times: int = 1) -> None:
        for _ in range(times):
            await self.command(topics.REPLIES_REQUESTED, request, request.question_id)

    async def out(self, topic: str, model: type[Any]) -> list[Any]:
        return [decode(model, r.value) for r in await read_all(self.kafka, self.kafka.topic(topic))]

    async def posts(self) -> list[dict[str, Any]]:
        return await posts(self.http, self.sandbox)

    async def committed(self, loop: ConsumeLoop) -> int:
        consumer = loop.consumer
        total = 0
        for tp in consumer.assignment():
            total += await consumer.committed(TopicPartition(tp.topic, tp.partition)) or 0
        return total


StackFactory = Callable[..., contextlib.AbstractAsyncContextManager[Stack]]


@pytest.fixture
def stack(kafka_settings: KafkaSettings, tmp_path: Path) -> StackFactory:
    @contextlib.asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Stack]:
        names = [
            topics.REPLIES_REQUESTED, topics.REPLIES_PUBLISHED, topics.REPLIES_FAILED,
            topics.MENTIONS_RAW, topics.CONSENT_WITHDRAWN, topics.SPEAKERS_PAUSED,
        ]  # fmt: skip
        specs = [topics.spec_for(n) for n in names] + [
            topics.spec_for(topics.dlq(n)) for n in names
        ]
        await ensure_topics(kafka_settings, specs)
        with live_sandbox(tmp_path) as sandbox:
            fields: dict[str, Any] = {
                "x_api_base_url": sandbox.base_url,
                "x_web_base_url": sandbox.base_url,
                "x_access_token": X_TOKEN,
                "mastodon_base_url": sandbox.base_url,
                "mastodon_access_token": MASTODON_TOKEN,
                "max_attempts": 1,
                "backoff_initial_s": 1.0,  # unused with max_attempts=1 (see the report)
                "reply_retry_initial_s": 0.05,
                "media_root": tmp_path,
            }
            fields.update(overrides)
            settings = PublishSettings(**fields)
            producer = make_producer(kafka_settings)
            await producer.start()
            async with (
                migrated_ledger("sqlite", tmp_path) as ledger,
                httpx.AsyncClient(timeout=10.0) as http,
            ):
                built = Stack(kafka_settings, ledger, sandbox, http, producer, settings)
                try:
                    yield built
                finally:
                    for consumer in built.consumers:
                        await consumer.stop()
                    await producer.stop()

    return make


async def test_the_same_request_delivered_five_times_yields_exactly_one_post(
    stack: StackFactory,
) -> None:
    async with stack() as s:
        request = request_factory()
        await engage(s.ledger, request)
        await s.request(request, times=5)
        loop = await s.loop(topics.REPLIES_REQUESTED, s.agents().on_reply_requested)

        await drain(loop)

        [post] = await s.posts()
        [announced] = await s.out(topics.REPLIES_PUBLISHED, ReplyPublished)
        assert (announced.reply_id, announced.post_id) == (request.reply_id, post["id"])
        assert await s.out(topics.REPLIES_FAILED, ReplyFailed) == []
        assert await s.committed(loop) == 5


async def test_a_publisher_killed_between_post_and_ledger_then_restarted_posts_once(
    stack: StackFactory,
) -> None:
    async with stack() as s:
        request = request_factory()
        await engage(s.ledger, request)
        await s.request(request)
        doomed = s.agents(s.publisher(wrap=CrashAfterPost))
        loop = await s.loop(topics.REPLIES_REQUESTED, doomed.on_reply_requested)

        with pytest.raises(SimulatedCrash):
            await drain(loop)
        await s.stop(loop)
        row = await s.ledger.get(request.reply_id)
        assert row is not None
        assert row.state == ReplyState.SENDING
        assert len(await s.posts()) == 1

        restarted = s.agents()
        await restarted.reconcile_at_start()
        loop = await s.loop(topics.REPLIES_REQUESTED, restarted.on_reply_requested)
        await drain(loop)

        [post] = await s.posts()
        [announced] = await s.out(topics.REPLIES_PUBLISHED, ReplyPublished)
        assert announced.post_id == post["id"]
        assert await s.committed(loop) == 1


async def test_a_429_burst_pauses_the_account_and_every_reply_still_goes_out_once(
    stack: StackFactory,
) -> None:
    async with stack() as s:
        await set_faults(
            s.http, s.sandbox,
            mastodon={"429_burst": 3, "reset_after_s": 0.4, "endpoints": ["statuses_create"]},
        )  # fmt: skip
        requests = [request_factory(platform=Platform.MASTODON) for _ in range(4)]
        for request in requests:
            await engage(s.ledger, request)
            await s.request(request)
        agents = s.agents()
        calls: list[float] = []

        async def counting(record: Any) -> float | None:
            calls.append(time.monotonic())
            return await agents.on_reply_requested(record)

        pauses = metrics.RATE_LIMIT_PAUSES.labels("mastodon")._value.get()
        loop = await s.loop(topics.REPLIES_REQUESTED, counting)
        started = time.monotonic()

        await drain(loop)

        assert len(await s.posts()) == 4
        published = await s.out(topics.REPLIES_PUBLISHED, ReplyPublished)
        assert sorted(m.reply_id for m in published) == sorted(r.reply_id for r in requests)
        assert metrics.RATE_LIMIT_PAUSES.labels("mastodon")._value.get() >= pauses + 3
        assert time.monotonic() - started >= 1.0  # it did wait out three resets
        assert len(calls) <= 4 + 3 * 3  # woken at the reset, not polling the account
        assert await s.committed(loop) == 4


async def test_a_final_refusal_goes_to_replies_failed_with_the_platform_s_error(
    stack: StackFactory,
) -> None:
    async with stack() as s:
        request = request_factory(in_reply_to="post-9")  # X takes only numeric ids
        await engage(s.ledger, request)
        await s.request(request)
        loop = await s.loop(topics.REPLIES_REQUESTED, s.agents().on_reply_requested)

        await drain(loop)

        [failure] = await s.out(topics.REPLIES_FAILED, ReplyFailed)
        assert failure.reply_id == request.reply_id
        assert not failure.retryable
        assert "HTTP 400" in failure.error
        assert "must match" in failure.error
        assert await s.posts() == []
        assert await s.committed(loop) == 1


async def test_retryable_errors_end_in_replies_failed_marked_retryable(
    stack: StackFactory,
) -> None:
    async with stack(reply_max_attempts=3) as s:
        await set_faults(s.http, s.sandbox, x={"5xx": 1000})
        request = request_factory()
        await engage(s.ledger, request)
        await s.request(request)
        loop = await s.loop(topics.REPLIES_REQUESTED, s.agents().on_reply_requested)

        await drain(loop)

        [failure] = await s.out(topics.REPLIES_FAILED, ReplyFailed)
        assert failure.retryable
        assert failure.attempts == 3
        assert "HTTP 503" in failure.error
        assert await s.committed(loop) == 1


async def test_a_bad_message_goes_to_the_dlq_and_the_stream_goes_on(stack: StackFactory) -> None:
    async with stack() as s:
        request = request_factory()
        await engage(s.ledger, request)
        await s.send(topics.REPLIES_REQUESTED, b'{"reply_id": "r1"', request.question_id)
        await s.request(request)
        loop = await s.loop(topics.REPLIES_REQUESTED, s.agents().on_reply_requested)

        await drain(loop)

        [letter] = await s.out(topics.dlq(topics.REPLIES_REQUESTED), DeadLetter)
        assert letter.stage == "publish.verify"  # a command is verified before anything
        assert "not a JSON command" in letter.error
        assert letter.value_b64 == "eyJyZXBseV9pZCI6ICJyMSI="  # the bytes as they came
        assert len(await s.out(topics.REPLIES_PUBLISHED, ReplyPublished)) == 1
        assert await s.committed(loop) == 2


async def test_a_consent_withdrawal_event_deletes_the_published_reply(stack: StackFactory) -> None:
    async with stack() as s:
        request = request_factory()
        await engage(s.ledger, request)
        await s.request(request)
        agents = s.agents()
        await drain(await s.loop(topics.REPLIES_REQUESTED, agents.on_reply_requested))
        [post] = await s.posts()
        event = ConsentWithdrawn(
            speaker_ref=request.consent.speaker_ref, withdrawn_by="team-b",
            reason="the speaker asked", at=datetime.now(UTC),
        )  # fmt: skip
        await s.command(topics.CONSENT_WITHDRAWN, event, event.speaker_ref)
        await s.send(topics.CONSENT_WITHDRAWN, b"\xff not a withdrawal", event.speaker_ref)

        consent = await s.loop(topics.CONSENT_WITHDRAWN, agents.on_consent_withdrawn, "c")
        await drain(consent)

        assert await s.posts() == []
        row = await s.ledger.get(request.reply_id)
        assert row is not None
        assert row.state == ReplyState.WITHDRAWN
        decision = (await s.ledger.decisions(request.reply_id))[-1]
        assert f"x post {post['id']} deleted" in decision.reason
        [letter] = await s.out(topics.dlq(topics.CONSENT_WITHDRAWN), DeadLetter)
        assert "utf-8" in letter.error


async def test_a_stop_reply_on_mentions_raw_refuses_the_next_reply(stack: StackFactory) -> None:
    async with stack() as s:
        request = request_factory()
        question = mention_for(request)
        stop = mention_for(
            request_factory(author=request.author), "@TakeActionCamps stop",
        )  # fmt: skip
        for mention in (question, stop):
            await s.send(topics.MENTIONS_RAW, encode(mention), mention.id)
        agents = s.agents()
        await drain(await s.loop(topics.MENTIONS_RAW, agents.on_mention, "m"))
        await s.request(request)

        await drain(await s.loop(topics.REPLIES_REQUESTED, agents.on_reply_requested))

        [failure] = await s.out(topics.REPLIES_FAILED, ReplyFailed)
        assert failure.error.startswith("refused by the governor: opted_out: ")
        assert await s.posts() == []


# --- forged commands (issue 17): never posted, dead-lettered with the reason, counted ---


def rejected(reason: str) -> float:
    value: float = metrics.REJECTED_COMMANDS.labels(topics.REPLIES_REQUESTED, reason)._value.get()
    return value


async def test_unsigned_and_wrongly_signed_requests_are_never_posted(stack: StackFactory) -> None:
    async with stack() as s:
        unsigned, forged, genuine = (request_factory() for _ in range(3))
        for request in (unsigned, forged, genuine):
            await engage(s.ledger, request)
        before = rejected("unsigned"), rejected("bad_signature")
        await s.send(topics.REPLIES_REQUESTED, encode(unsigned), unsigned.question_id)
        wrong = CommandKeys("test", {"test": SecretStr("an attacker's guess at the key, long")})
        await s.send(
            topics.REPLIES_REQUESTED,
            wrong.sign(topics.REPLIES_REQUESTED, encode(forged)),
            forged.question_id,
        )
        await s.request(genuine)
        loop = await s.loop(topics.REPLIES_REQUESTED, s.agents().on_reply_requested)

        await drain(loop)

        [post] = await s.posts()
        [published] = await s.out(topics.REPLIES_PUBLISHED, ReplyPublished)
        assert (published.reply_id, published.post_id) == (genuine.reply_id, post["id"])
        letters = await s.out(topics.dlq(topics.REPLIES_REQUESTED), DeadLetter)
        assert sorted((x.stage, x.error) for x in letters) == [
            ("publish.verify", "bad signature (key id 'test')"),
            ("publish.verify", "unsigned command on replies.requested"),
        ]
        assert (rejected("unsigned"), rejected("bad_signature")) == (before[0] + 1, before[1] + 1)
        assert await s.ledger.get(unsigned.reply_id) is None
        assert await s.ledger.get(forged.reply_id) is None
        assert await s.committed(loop) == 3


def _outside_media(uri: str) -> Media:
    """Media naming ``uri`` with the size and sha256 of /etc/hostname (what the audit's
    forged message posted as a "video")."""
    data = Path("/etc/hostname").read_bytes()
    return Media(
        uri=uri, mime="video/mp4", bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


async def test_a_signed_request_with_media_outside_the_media_root_is_never_posted(
    stack: StackFactory, tmp_path: Path
) -> None:
    root = tmp_path / "media"
    root.mkdir()
    (root / "escape.mp4").symlink_to("/etc/hostname")
    async with stack(media_root=root) as s:
        requests = [
            request_factory(media=_outside_media(uri))
            for uri in (
                "file:///etc/hostname",
                str(root / ".." / ".." / ".." / "etc" / "hostname"),
                (root / "escape.mp4").as_uri(),
            )
        ]
        for request in requests:
            await engage(s.ledger, request)
            await s.request(request)
        before = rejected("media_outside_root")
        loop = await s.loop(topics.REPLIES_REQUESTED, s.agents().on_reply_requested)

        await drain(loop)

        assert await s.posts() == []
        letters = await s.out(topics.dlq(topics.REPLIES_REQUESTED), DeadLetter)
        assert len(letters) == 3
        assert all(x.stage == "publish.verify" for x in letters)
        assert all("outside the media root" in x.error for x in letters)
        failures = await s.out(topics.REPLIES_FAILED, ReplyFailed)
        assert sorted(f.reply_id for f in failures) == sorted(r.reply_id for r in requests)
        assert not any(f.retryable for f in failures)
        assert rejected("media_outside_root") == before + 3
        assert await s.committed(loop) == 3


async def test_a_second_reply_to_an_answered_post_is_never_posted(stack: StackFactory) -> None:
    async with stack() as s:
        first = request_factory()
        second = request_factory(
            in_reply_to=first.in_reply_to, mention_id=first.mention_id, author=first.author
        )
        await engage(s.ledger, first)
        await s.request(first)
        loop = await s.loop(topics.REPLIES_REQUESTED, s.agents().on_reply_requested)
        await drain(loop)
        await s.request(second)  # another question id, the same post
        before = rejected("post_already_answered")

        await drain(loop)

        [post] = await s.posts()
        [published] = await s.out(topics.REPLIES_PUBLISHED, ReplyPublished)
        assert published.reply_id == first.reply_id
        [letter] = await s.out(topics.dlq(topics.REPLIES_REQUESTED), DeadLetter)
        assert letter.stage == "publish.verify"
        assert f"x post {first.in_reply_to} already has a reply" in letter.error
        [failure] = await s.out(topics.REPLIES_FAILED, ReplyFailed)
        assert (failure.reply_id, failure.retryable) == (second.reply_id, False)
        assert rejected("post_already_answered") == before + 1
        assert post["in_reply_to"] == first.in_reply_to


async def test_a_reply_to_another_post_than_the_mention_is_never_posted(
    stack: StackFactory,
) -> None:
    async with stack() as s:
        request = request_factory()
        elsewhere = request.model_copy(update={"in_reply_to": "1790000000000999999"})
        await engage(s.ledger, elsewhere)
        await s.request(elsewhere)
        before = rejected("not_the_mention")
        loop = await s.loop(topics.REPLIES_REQUESTED, s.agents().on_reply_requested)

        await drain(loop)

        assert await s.posts() == []
        [letter] = await s.out(topics.dlq(topics.REPLIES_REQUESTED), DeadLetter)
        assert "is not the mention's own post" in letter.error
        assert rejected("not_the_mention") == before + 1


async def test_an_unsigned_consent_withdrawal_takes_nothing_down(stack: StackFactory) -> None:
    async with stack() as s:
        request = request_factory()
        await engage(s.ledger, request)
        await s.request(request)
        agents = s.agents()
        await drain(await s.loop(topics.REPLIES_REQUESTED, agents.on_reply_requested))
        event = ConsentWithdrawn(
            speaker_ref=request.consent.speaker_ref, withdrawn_by="attacker", at=datetime.now(UTC),
        )  # fmt: skip
        await s.send(topics.CONSENT_WITHDRAWN, encode(event), event.speaker_ref)

        await drain(await s.loop(topics.CONSENT_WITHDRAWN, agents.on_consent_withdrawn, "c"))

        assert len(await s.posts()) == 1
        [letter] = await s.out(topics.dlq(topics.CONSENT_WITHDRAWN), DeadLetter)
        assert (letter.stage, letter.error) == (
            "publish.verify",
            "unsigned command on consent.withdrawn",
        )


def _pause(request: PublishReply, paused: bool, at: datetime, by: str) -> SpeakerPaused:
    return SpeakerPaused(
        speaker_ref=request.consent.speaker_ref, paused=paused, decided_by=by, at=at,
        reason="threat: a threat from @someone" if paused else "",
    )  # fmt: skip


async def test_a_paused_person_s_reply_is_held_the_partition_goes_on_and_a_resume_sends_it(
    stack: StackFactory,
) -> None:
    async with stack() as s:
        paused, other = request_factory(), request_factory()
        for request in (paused, other):
            await engage(s.ledger, request)
        now = datetime.now(UTC)
        await s.command(
            topics.SPEAKERS_PAUSED, _pause(paused, True, now, "rules"), paused.consent.speaker_ref
        )
        agents = s.agents()
        pauses = await s.loop(topics.SPEAKERS_PAUSED, agents.on_speaker_paused, "p")
        await drain(pauses)
        for request in (paused, other):  # one partition: the other reply behind the held one
            await s.producer.send_and_wait(
                s.kafka.topic(topics.REPLIES_REQUESTED),
                KEYS.sign(topics.REPLIES_REQUESTED, encode(request)),
                key=encode_key(request.question_id),
                partition=0,
            )
        replies = await s.loop(topics.REPLIES_REQUESTED, agents.on_reply_requested)

        await drain(replies)  # nothing put off: the held reply does not stop the partition

        [post] = await s.posts()
        assert post["in_reply_to"] == other.in_reply_to
        assert await s.committed(replies) == 2
        assert await s.out(topics.REPLIES_FAILED, ReplyFailed) == []  # held, not refused

        resume = _pause(paused, False, now + timedelta(seconds=1), "mod-a")
        await s.command(topics.SPEAKERS_PAUSED, resume, paused.consent.speaker_ref)
        await drain(pauses)  # the held request goes back on replies.requested
        await drain(replies)

        assert len(await s.posts()) == 2
        outcomes = await s.out(topics.REPLIES_PUBLISHED, ReplyPublished)
        assert sorted(m.reply_id for m in outcomes) == sorted([paused.reply_id, other.reply_id])
        assert await s.ledger.held_for_resumed() == []


async def test_an_unsigned_or_forged_resume_is_dead_lettered_and_the_reply_stays_held(
    stack: StackFactory,
) -> None:
    async with stack() as s:
        request = request_factory()
        await engage(s.ledger, request)
        speaker, now = request.consent.speaker_ref, datetime.now(UTC)
        await s.command(topics.SPEAKERS_PAUSED, _pause(request, True, now, "rules"), speaker)
        later = _pause(request, False, now + timedelta(seconds=1), "attacker")
        await s.send(topics.SPEAKERS_PAUSED, encode(later), speaker)
        wrong = CommandKeys("test", {"test": SecretStr("an attacker's guess at the key, long")})
        await s.send(
            topics.SPEAKERS_PAUSED, wrong.sign(topics.SPEAKERS_PAUSED, encode(later)), speaker
        )
        agents = s.agents()
        await drain(await s.loop(topics.SPEAKERS_PAUSED, agents.on_speaker_paused, "p"))
        await s.request(request)

        await drain(await s.loop(topics.REPLIES_REQUESTED, agents.on_reply_requested))

        assert await s.posts() == []
        letters = await s.out(topics.dlq(topics.SPEAKERS_PAUSED), DeadLetter)
        assert [(x.stage, x.error) for x in letters] == [
            ("publish.verify", "unsigned command on speakers.paused"),
            ("publish.verify", "bad signature (key id 'test')"),
        ]


@pytest.mark.parametrize("kind", ["unsigned", "bad-signature", "outside-media", "second-reply"])
async def test_the_forge_tool_s_commands_come_back_as_dead_letters(
    stack: StackFactory, kind: str
) -> None:
    """``python -m services.devstack.forge`` (the check from outside, README): what it
    writes is refused, and it finds the dead letter."""
    async with stack() as s:
        answered = request_factory()
        await engage(s.ledger, answered)
        await s.request(answered)
        loop = await s.loop(topics.REPLIES_REQUESTED, s.agents().on_reply_requested)
        await drain(loop)
        args = forge.parser().parse_args(
            [kind, "--in-reply-to", answered.in_reply_to, "--wait-s", "20"]
        )
        sent = asyncio.create_task(forge.forge(kind, args, s.kafka, KEYS))
        while not sent.done():
            await loop.run_once()
        letter = await sent

        assert letter is not None
        assert letter.stage == "publish.verify"
        assert len(await s.posts()) == 1


async def test_an_800_kb_bad_record_is_dead_lettered_and_the_partition_goes_on(
    stack: StackFactory,
) -> None:
    """Issue 17 (Medium 1): its whole letter would be over the broker's limit; the
    partition used to stop at it for good. Now its head, length and sha256 go."""
    async with stack() as s:
        request = request_factory()
        await engage(s.ledger, request)
        huge = b"{" + b"x" * (800 * 1024)
        await s.send(topics.REPLIES_REQUESTED, huge, request.question_id)
        await s.request(request)  # the same key: the same partition, behind it
        loop = await s.loop(topics.REPLIES_REQUESTED, s.agents().on_reply_requested)

        await drain(loop)

        [letter] = await s.out(topics.dlq(topics.REPLIES_REQUESTED), DeadLetter)
        assert letter.value_truncated
        assert letter.value_bytes == len(huge)
        assert letter.value_sha256 == hashlib.sha256(huge).hexdigest()
        assert letter.offset is not None
        assert letter.stage == "publish.verify"
        assert len(await s.out(topics.REPLIES_PUBLISHED, ReplyPublished)) == 1
        assert await s.committed(loop) == 2
