"""Protection's use cases on a real ledger (SQLite and Postgres) with a fake platform:
the watcher keeps each reply under a published answer once, before it is announced,
and a watcher killed before announcing loses nothing; hide / unhide commands are
signed, done once (a redelivery repeats the outcome without a second call), wait for
the account's budget, and are refused for a post the watcher did not read under one
of our answers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.common import topics
from services.common.codec import decode, encode
from services.common.kafka import KafkaSettings
from services.common.messages import (
    Author,
    ModerateReply,
    ModerationAction,
    ModerationOutcome,
    Platform,
    ReplyModerated,
    ReplyReceived,
)
from services.common.signing import SignatureError
from services.publish.agents import Agents
from services.publish.config import PublishSettings
from services.publish.db import migrate
from services.publish.exceptions import FinalError, RateLimited, RetryableError
from services.publish.models import Reply, ReplyState
from services.publish.outcomes import Retry
from services.publish.platforms.base import ReplyTarget, SeenReply
from services.publish.protect_ledger import ProtectLedger
from services.publish.protector import Moderated, Protector
from services.publish.ratelimit import AccountBudget
from tests.helpers.db import KINDS, empty_database
from tests.publish.helpers import KEYS, SimulatedCrash

NOW = datetime.now(UTC)


class FakeX:
    """A platform's moderation calls, scripted."""

    name: Platform = Platform.X
    watch_buckets: tuple[str, ...] = ("tweets_search",)
    moderate_buckets: tuple[str, ...] = ("tweets_hidden",)

    def __init__(self) -> None:
        self.budget = AccountBudget("x", "campaign")
        self.replies: dict[str, list[SeenReply]] = {}
        self.hides: list[tuple[str, bool]] = []
        self.reads: list[tuple[str, str | None]] = []
        self.fail_with: Exception | None = None

    async def replies_under(self, post_id: str, *, since_id: str | None = None) -> list[SeenReply]:
        self.reads.append((post_id, since_id))
        return [
            r for r in self.replies.get(post_id, []) if since_id is None or r.native_id > since_id
        ]

    async def hide_reply(self, target: ReplyTarget, hidden: bool) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.hides.append((target.native_id, hidden))
        return "hidden" if hidden else "shown"


class FakeMastodon(FakeX):
    """Mastodon's moderation, scripted: a hide mutes the author, and each report does
    what ``report_script`` says next (filed or not, then an error or none)."""

    name: Platform = Platform.MASTODON
    watch_buckets: tuple[str, ...] = ("account",)
    moderate_buckets: tuple[str, ...] = ("account", "reports")

    def __init__(self) -> None:
        super().__init__()
        self.budget = AccountBudget("mastodon", "campaign")
        #: The replies the instance's moderators got a report of.
        self.filed: list[str] = []
        self.report_script: list[tuple[bool, BaseException | None]] = []

    async def hide_reply(self, target: ReplyTarget, hidden: bool) -> str:
        await super().hide_reply(target, hidden)
        return "muted" if hidden else "unmuted"

    async def report_reply(self, target: ReplyTarget, reason: str) -> None:
        filed, error = self.report_script.pop(0) if self.report_script else (True, None)
        if filed:
            self.filed.append(target.native_id)
        if error is not None:
            raise error


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> object:
        self.sent.append((topic, key, value))
        return None


@pytest.fixture(params=KINDS)
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ProtectLedger]:
    async with empty_database(request.param, tmp_path) as (engine, _, _):
        await migrate(engine)
        async with async_sessionmaker(engine)() as session:
            for post_id, published, platform in (
                ("8001", NOW, "x"),
                ("8002", NOW - timedelta(days=20), "x"),
                ("8003", NOW, "mastodon"),
            ):
                session.add(
                    Reply(
                        reply_id=f"reply-{post_id}",
                        question_id=f"q-{post_id}",
                        platform=platform,
                        mention_id="x:1",
                        in_reply_to=f"1{post_id}",
                        author_id="a",
                        author_handle="a",
                        speaker_ref="Amina",
                        consent_at=NOW,
                        state=ReplyState.PUBLISHED.value,
                        post_id=post_id,
                        created_at=NOW,
                        updated_at=NOW,
                        published_at=published,
                    )
                )
            await session.commit()
        yield ProtectLedger(engine)


def seen(native: str, text: str = "go back") -> SeenReply:
    return SeenReply(
        native_id=native, author_id="66", author_handle="troll", text=text, created_at=NOW
    )


def command(action: ModerationAction = ModerationAction.HIDE, **overrides: Any) -> ModerateReply:
    fields: dict[str, Any] = {
        "action_id": uuid.uuid4().hex,
        "reply_id": "x:9001",
        "platform": Platform.X,
        "native_id": "9001",
        "answer_post_id": "8001",
        "author": Author(id="66", handle="troll"),
        "action": action,
        "decided_by": "rules r-1",
        "requested_at": NOW,
    }
    fields.update(overrides)
    return ModerateReply(**fields)


def protector(ledger: ProtectLedger, x: FakeX) -> Protector:
    settings = PublishSettings(reply_retry_initial_s=1.0, reply_max_attempts=2)
    return Protector(ledger=ledger, platforms={x.name: x}, settings=settings)


def report_command(**overrides: Any) -> ModerateReply:
    """A hide of a reply under our Mastodon answer 8003 that also reports it."""
    fields: dict[str, Any] = {
        "reply_id": "mastodon:9301",
        "platform": Platform.MASTODON,
        "native_id": "9301",
        "answer_post_id": "8003",
        "report": True,
        "reason": "threat",
    }
    return command(**{**fields, **overrides})


async def watching_mastodon(ledger: ProtectLedger) -> tuple[Protector, FakeMastodon]:
    mastodon = FakeMastodon()
    mastodon.replies = {"8003": [seen("9301")]}
    guard = protector(ledger, mastodon)
    await guard.sweep()
    return guard, mastodon


async def _killed(*args: object, **kwargs: object) -> NoReturn:
    raise SimulatedCrash


async def test_the_watcher_keeps_each_reply_under_a_watched_answer_once(
    ledger: ProtectLedger,
) -> None:
    x = FakeX()
    x.replies = {"8001": [seen("9001"), seen("9002", "lovely")], "8002": [seen("9100")]}
    watcher = protector(ledger, x)
    assert await watcher.sweep() == 2  # 8002 was published 20 days ago: no longer watched
    assert [r for r, _ in x.reads] == ["8001"]
    assert await watcher.sweep() == 0
    assert x.reads[-1] == ("8001", "9002")  # X: only what is newer than the last seen
    kept = await ledger.unannounced()
    message = decode(ReplyReceived, kept[0].payload.encode())
    assert (message.id, message.answer_post_id, message.speaker_ref) == ("x:9001", "8001", "Amina")


async def test_a_watcher_killed_before_announcing_announces_at_the_next_round(
    ledger: ProtectLedger,
) -> None:
    x = FakeX()
    x.replies = {"8001": [seen("9001")]}
    await protector(ledger, x).sweep()  # kept, then "killed": nothing announced
    producer = Producer()
    agents = Agents(
        publisher=None,  # type: ignore[arg-type]
        producer=producer,
        kafka=KafkaSettings(),
        keys=KEYS,
        protector=protector(ledger, x),  # a new process
    )
    await agents._announce_seen()
    await agents._announce_seen()
    assert [(t, k) for t, k, _ in producer.sent] == [(topics.REPLIES_RECEIVED, b"8001")]
    assert await ledger.unannounced() == []


async def test_a_hide_is_done_once_and_a_redelivery_repeats_the_outcome(
    ledger: ProtectLedger,
) -> None:
    x = FakeX()
    x.replies = {"8001": [seen("9001")]}
    guard = protector(ledger, x)
    await guard.sweep()
    hide = command()
    first = await guard.moderate(hide)
    again = await guard.moderate(hide)
    assert isinstance(first, Moderated)
    assert isinstance(again, Moderated)
    assert (first.message.outcome, first.message.how) == (ModerationOutcome.DONE, "hidden")
    assert again.message.outcome is ModerationOutcome.DONE
    assert x.hides == [("9001", True)]
    assert (await ledger.watched("x:9001")).hidden is True  # type: ignore[union-attr]
    shown = await guard.moderate(command(ModerationAction.UNHIDE))
    assert isinstance(shown, Moderated)
    assert x.hides[-1] == ("9001", False)


@pytest.mark.parametrize(
    "overrides",
    [
        {"reply_id": "x:5555", "native_id": "5555"},  # never read under one of our answers
        {"answer_post_id": "8002"},  # not under that answer
        {"author": Author(id="67", handle="someone-else")},  # by someone else
    ],
)
async def test_a_post_not_read_under_our_answer_is_refused_and_not_touched(
    ledger: ProtectLedger, overrides: dict[str, Any]
) -> None:
    x = FakeX()
    x.replies = {"8001": [seen("9001")]}
    guard = protector(ledger, x)
    await guard.sweep()
    outcome = await guard.moderate(command(**overrides))
    assert isinstance(outcome, Moderated)
    assert outcome.message.outcome is ModerationOutcome.REFUSED
    assert x.hides == []


async def test_budget_rate_limits_and_failures(ledger: ProtectLedger) -> None:
    x = FakeX()
    x.replies = {"8001": [seen("9001")]}
    guard = protector(ledger, x)
    await guard.sweep()
    x.budget.pause(datetime.now(UTC).timestamp() + 60)
    waiting = await guard.moderate(command())
    assert isinstance(waiting, Retry)
    assert x.hides == []
    x.budget = AccountBudget("x", "campaign")
    x.fail_with = RateLimited("429", platform="x", account="c", reset_at=123.0)
    assert await guard.moderate(command()) == Retry(123.0, "429")
    x.fail_with = RetryableError("503", platform="x", account="c")
    retried = command()
    assert isinstance(await guard.moderate(retried), Retry)
    failed = await guard.moderate(retried)  # the second attempt of two
    assert isinstance(failed, Moderated)
    assert failed.message.outcome is ModerationOutcome.FAILED
    x.fail_with = FinalError("403 Forbidden", platform="x", account="c", status=403)
    refused = await guard.moderate(command())
    assert isinstance(refused, Moderated)
    assert refused.message.error is not None
    assert "403" in refused.message.error


async def test_an_unsigned_command_is_refused_before_anything(ledger: ProtectLedger) -> None:
    x = FakeX()
    producer = Producer()
    agents = Agents(
        publisher=None,  # type: ignore[arg-type]
        producer=producer,
        kafka=KafkaSettings(),
        keys=KEYS,
        protector=protector(ledger, x),
    )

    class Record:
        topic, partition, offset, key = topics.REPLIES_ACTION, 0, 0, b"x:9001"
        value = encode(command())

    with pytest.raises(SignatureError):
        await agents.on_reply_action(Record())
    signed = Record()
    signed.value = KEYS.sign(topics.REPLIES_ACTION, encode(command()))
    await agents.on_reply_action(signed)
    [(topic, key, value)] = producer.sent
    assert (topic, key) == (topics.REPLIES_MODERATED, b"x:9001")
    assert decode(ReplyModerated, value).outcome is ModerationOutcome.REFUSED  # never watched
    assert x.hides == []


async def test_a_report_is_made_once_and_recorded_before_and_after(
    ledger: ProtectLedger,
) -> None:
    guard, mastodon = await watching_mastodon(ledger)
    hide = report_command()
    done = await guard.moderate(hide)
    again = await guard.moderate(hide)  # redelivered: final, the outcome repeated
    assert isinstance(done, Moderated)
    assert isinstance(again, Moderated)
    assert (done.message.outcome, done.message.how) == (ModerationOutcome.DONE, "muted+reported")
    assert again.message.how == "muted+reported"
    assert (mastodon.hides, mastodon.filed) == ([("9301", True)], ["9301"])
    assert (await ledger.action(hide.action_id)).report_state == "done"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("script", "dies_before_finishing", "how"),
    [
        ([(True, SimulatedCrash())], False, "muted+report-unconfirmed"),  # killed mid-request
        ([(True, None)], True, "muted+reported"),  # killed after it, before the outcome
    ],
    ids=["killed-during-the-report", "killed-after-the-report"],
)
async def test_a_redelivered_sending_action_does_not_report_again(
    ledger: ProtectLedger,
    monkeypatch: pytest.MonkeyPatch,
    script: list[tuple[bool, BaseException | None]],
    dies_before_finishing: bool,
    how: str,
) -> None:
    guard, mastodon = await watching_mastodon(ledger)
    mastodon.report_script = list(script)  # the parameter is shared by both databases
    hide = report_command()
    with monkeypatch.context() as patch:
        if dies_before_finishing:
            patch.setattr(ledger, "finish", _killed)
        with pytest.raises(SimulatedCrash):
            await guard.moderate(hide)
    assert (await ledger.action(hide.action_id)).state == "sending"  # type: ignore[union-attr]

    redelivered = await guard.moderate(hide)  # a new process, the command again

    assert isinstance(redelivered, Moderated)
    assert (redelivered.message.outcome, redelivered.message.how) == (
        ModerationOutcome.DONE, how,
    )  # fmt: skip
    assert mastodon.hides == [("9301", True), ("9301", True)]  # muting is idempotent
    assert mastodon.filed == ["9301"]  # reporting is not: once


async def test_a_report_without_an_answer_is_not_made_again(ledger: ProtectLedger) -> None:
    """A 5xx or a lost connection: the instance may have filed it; at most once."""
    guard, mastodon = await watching_mastodon(ledger)
    mastodon.report_script = [
        (True, RetryableError("HTTP 503", platform="mastodon", account="c", status=503))
    ]
    outcome = await guard.moderate(report_command())
    assert isinstance(outcome, Moderated)
    assert (outcome.message.outcome, outcome.message.how) == (
        ModerationOutcome.DONE, "muted+report-unconfirmed",
    )  # fmt: skip
    assert mastodon.filed == ["9301"]


async def test_a_report_surely_not_made_is_made_at_the_next_try(ledger: ProtectLedger) -> None:
    """A 429 files nothing: the action waits and reports then. A refusal (4xx) files
    nothing either: the action fails, its report step cleared."""
    guard, mastodon = await watching_mastodon(ledger)
    mastodon.report_script = [
        (False, RateLimited("429", platform="mastodon", account="c", reset_at=123.0))
    ]
    hide = report_command()
    assert await guard.moderate(hide) == Retry(123.0, "429")
    done = await guard.moderate(hide)
    assert isinstance(done, Moderated)
    assert done.message.how == "muted+reported"
    assert mastodon.filed == ["9301"]

    mastodon.report_script = [
        (False, FinalError("HTTP 422", platform="mastodon", account="c", status=422))
    ]
    refused = report_command()
    failed = await guard.moderate(refused)
    assert isinstance(failed, Moderated)
    assert failed.message.outcome is ModerationOutcome.FAILED
    assert (await ledger.action(refused.action_id)).report_state is None  # type: ignore[union-attr]
    assert mastodon.filed == ["9301"]
