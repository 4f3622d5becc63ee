"""The publisher's use cases against the sandbox platform and a SQLite ledger:
the governor's refusals recorded, at most one post whatever happens, errors
sorted, a paused person's replies held, consent withdrawn, opt-outs learnt from
mentions."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from services.common import topics
from services.common.codec import encode
from services.common.messages import (
    Author,
    Consent,
    ConsentWithdrawn,
    Media,
    Platform,
    PublishReply,
    ReplyFailed,
    ReplyPublished,
    Source,
    SpeakerPaused,
    SubtitleFile,
)
from services.common.replies import Template, Templates
from services.publish import domain
from services.publish.config import PublishSettings
from services.publish.exceptions import FinalError
from services.publish.ledger import Ledger
from services.publish.models import ReplyState
from services.publish.outcomes import Done, Retry
from services.publish.platforms import build_platforms
from services.publish.platforms.base import MediaFile, PostedReply, ReplyDraft
from services.publish.platforms.mastodon import STATUSES_DELETE
from services.publish.platforms.x import TWEETS_DELETE
from services.publish.publisher import Publisher
from services.publish.ratelimit import Window
from services.publish.spend import SpendLedger
from tests.helpers.sandbox import FakeClock, SandboxServer, posts, set_faults
from tests.publish.helpers import (
    KEYS,
    CrashAfterPost,
    SimulatedCrash,
    TimeoutAfterPost,
    engage,
    mention_for,
    migrated_ledger,
    request_factory,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with migrated_ledger("sqlite", tmp_path) as ledger:
        yield ledger


PublisherFactory = Callable[..., Publisher]


@dataclass
class Env:
    """The ledger, the sandbox and a way to make publishers for them."""

    ledger: Ledger
    sandbox: SandboxServer
    http: httpx.AsyncClient
    clock: FakeClock
    make_publisher: PublisherFactory

    async def posts(self) -> list[dict[str, Any]]:
        return await posts(self.http, self.sandbox)


@pytest.fixture
def make_publisher(
    ledger: Ledger,
    publish_settings: Callable[..., PublishSettings],
    http: httpx.AsyncClient,
    clock: FakeClock,
) -> PublisherFactory:
    def make(
        *, templates: Templates | None = None, wrap: Any = None, **overrides: Any
    ) -> Publisher:
        fields: dict[str, Any] = {"reply_retry_initial_s": 10.0, "max_attempts": 2}
        fields.update(overrides)
        settings = publish_settings(**fields)
        platforms: dict[Platform, Any] = dict(
            build_platforms(settings, http, sleep=clock.sleep, clock=clock)
        )
        if wrap is not None:
            platforms = {name: wrap(p) for name, p in platforms.items()}
        return Publisher(
            ledger=ledger, platforms=platforms, settings=settings, templates=templates, clock=clock
        )

    return make


async def engaged(ledger: Ledger, **overrides: Any) -> PublishReply:
    request = request_factory(**overrides)
    await engage(ledger, request)
    return request


def published(outcome: object) -> ReplyPublished:
    assert isinstance(outcome, Done), outcome
    assert isinstance(outcome.message, ReplyPublished), outcome
    return outcome.message


def failed(outcome: object) -> ReplyFailed:
    assert isinstance(outcome, Done), outcome
    assert isinstance(outcome.message, ReplyFailed), outcome
    return outcome.message


@pytest.fixture
def env(
    ledger: Ledger,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
    make_publisher: PublisherFactory,
) -> Env:
    return Env(ledger, sandbox, http, clock, make_publisher)


# --- publishing ----------------------------------------------------------------------


@pytest.mark.parametrize("platform", [Platform.X, Platform.MASTODON])
async def test_a_reply_with_its_video_goes_out_threaded_and_is_recorded(
    platform: Platform,
    env: Env,
    media_factory: Callable[..., MediaFile],
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    video = media_factory(200 * 1024)
    media = Media(uri=video.path.as_uri(), mime=video.mime, bytes=video.size, sha256=video.sha256)
    request = await engaged(ledger, platform=platform, media=media)

    message = published(await make_publisher().handle(request))

    [post] = await env.posts()
    assert post["platform"] == platform.value
    assert post["in_reply_to"] == request.in_reply_to
    assert request.text in post["text"]
    assert post["media"][0]["sha256"] == video.sha256
    assert (message.reply_id, message.post_id, message.url) == (
        request.reply_id, post["id"], post["url"] if platform is Platform.MASTODON else message.url,
    )  # fmt: skip
    row = await ledger.get(request.reply_id)
    assert row is not None
    assert (row.state, row.post_id, row.attempts) == (ReplyState.PUBLISHED, post["id"], 1)
    assert row.url == message.url
    decisions = await ledger.decisions(request.reply_id)
    assert [(d.rule, d.verdict) for d in decisions] == [("governor", "allow")]


async def test_a_reply_x_would_refuse_fails_for_good_before_any_upload(
    env: Env, media_factory: Callable[..., MediaFile]
) -> None:
    """A hashtag-only post (not summoning the account): X would answer 403, so the
    reply is refused with the reason, and its video is never uploaded."""
    video = media_factory(200 * 1024)
    media = Media(uri=video.path.as_uri(), mime=video.mime, bytes=video.size, sha256=video.sha256)
    request = await engaged(env.ledger, media=media, summoned=False)

    message = failed(await env.make_publisher().handle(request))

    assert not message.retryable
    assert "x_reply_allowed: X would refuse this reply" in message.error
    assert "@mentions it or quotes one of its posts" in message.error
    assert await env.posts() == []
    assert env.sandbox.state.media == {}  # nothing uploaded
    row = await env.ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.REFUSED


async def test_a_standalone_post_answers_what_x_will_not_let_us_reply_to(env: Env) -> None:
    """The moderator chose a standalone post: it goes out on the account, not under
    the asker's post, with no @mention; handled again, it is found, not posted twice."""
    request = await engaged(
        env.ledger, summoned=False, standalone=True, text="@asker see our answer."
    )
    publisher = env.make_publisher()

    published(await publisher.handle(request))

    [post] = await env.posts()
    assert post["in_reply_to"] is None
    assert not post["text"].startswith("@")
    assert "see our answer." in post["text"]
    row = await env.ledger.get(request.reply_id)
    assert row is not None
    # After a crash between posting and recording it, the post is found, not redone.
    found = await publisher.platforms[request.platform].find_reply(
        in_reply_to=request.in_reply_to, text=row.text, standalone=True
    )
    assert found is not None
    assert found.post_id == post["id"]


#: An answer X gives back otherwise than it was written: ``&`` and ``<`` HTML-escaped,
#: the link shortened to t.co.
ESCAPED_BY_X = "Q&A <3: what we miss most https://example.org/answer?a=1&b=2"
#: A bare domain, which X turns into a link: given back as t.co, expanded with http://.
BARE_DOMAIN = "Read more at unhcr.org/kenya, and e.g. ask again."


@pytest.mark.parametrize("text", [ESCAPED_BY_X, BARE_DOMAIN])
async def test_a_standalone_post_is_found_at_start_though_x_gives_its_text_back_escaped(
    env: Env, text: str
) -> None:
    """Posted standalone, then a crash before the ledger heard of it: the start's
    reconciliation looks for it as it was sent (on the timeline, by its text as X
    gives it back) and finds it; the redelivered request posts nothing."""
    request = await engaged(env.ledger, summoned=False, standalone=True, text=text)
    with pytest.raises(SimulatedCrash):
        await env.make_publisher(x_allow_urls=True, wrap=CrashAfterPost).handle(request)
    [post] = await env.posts()
    assert post["in_reply_to"] is None
    assert text in post["text"]

    restarted = env.make_publisher(x_allow_urls=True)
    [announced] = await restarted.reconcile_sending()
    message = published(await restarted.handle(request))

    assert announced.post_id == message.post_id == post["id"]
    assert len(await env.posts()) == 1


async def test_a_standalone_post_whose_last_answer_was_lost_is_published_and_comes_down(
    env: Env,
) -> None:
    """The last allowed try posted but its answer was lost: the standalone post is
    found and recorded published (not failed), so a withdrawal takes it down."""
    publisher = env.make_publisher(reply_max_attempts=1, x_allow_urls=True, wrap=TimeoutAfterPost)
    request = await engaged(env.ledger, summoned=False, standalone=True, text=ESCAPED_BY_X)

    message = published(await publisher.handle(request))

    [post] = await env.posts()
    assert message.post_id == post["id"]
    await _withdraw(publisher, request.consent.speaker_ref)
    assert await env.posts() == []
    row = await env.ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.WITHDRAWN


async def test_a_bluesky_mention_gets_one_threaded_video_reply_even_after_a_restart(
    env: Env, media_factory: Callable[..., MediaFile]
) -> None:
    """The same governor, ledger and never-twice rule as X and Mastodon: answered
    once with the video embedded under the asker's post; a restarted publisher
    handling the request again posts nothing (the take-down: test_bluesky_client)."""
    asked = await env.http.post(
        f"{env.sandbox.base_url}/sandbox/posts",
        json={
            "platform": "bluesky",
            "author": {"id": "did:plc:aminaaminaaminaaminaami", "handle": "amina.test"},
            "text": "@takeaction_sandbox what is school like?",
        },
    )
    uri = asked.json()["id"]
    video = media_factory(200 * 1024)
    media = Media(uri=video.path.as_uri(), mime=video.mime, bytes=video.size, sha256=video.sha256)
    request = await engaged(
        env.ledger,
        platform=Platform.BLUESKY,
        in_reply_to=uri,
        media=media,
        summoned=True,
        author=Author(id="did:plc:aminaaminaaminaaminaami", handle="amina.test"),
    )

    message = published(await env.make_publisher().handle(request))
    again = await env.make_publisher().handle(request)  # a restarted publisher

    assert isinstance(again, Done)
    replies = [p for p in await env.posts() if p["in_reply_to"] == uri]
    assert [p["id"] for p in replies] == [message.post_id]
    record = env.sandbox.state.bluesky_records[message.post_id]
    assert record["reply"]["parent"]["uri"] == uri
    assert record["embed"]["$type"] == "app.bsky.embed.video"
    assert replies[0]["media"][0]["sha256"] == video.sha256


async def test_a_request_handled_five_times_posts_once(
    env: Env,
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    request = await engaged(ledger)
    publisher = make_publisher()

    outcomes = [await publisher.handle(request) for _ in range(5)]

    assert len(await env.posts()) == 1
    assert {published(o).post_id for o in outcomes} == {published(outcomes[0]).post_id}
    await ledger.mark_announced(request.reply_id)
    assert await publisher.handle(request) == Done(None)  # announced: nothing to repeat
    # Asked again longer after it was announced than the resend window (the outcome
    # lost with an empty embedded broker, the web still waiting): announced again.
    later = ledger.now() + timedelta(seconds=publisher.reannounce_after_s + 1)
    ledger.now = lambda: later
    again = await publisher.handle(request)
    assert published(again).post_id == published(outcomes[0]).post_id
    assert len(await env.posts()) == 1


async def test_a_crash_between_the_post_and_the_ledger_then_a_restart_posts_once(
    env: Env,
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    request = await engaged(ledger)
    with pytest.raises(SimulatedCrash):
        await make_publisher(wrap=CrashAfterPost).handle(request)
    row = await ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.SENDING  # posted, but the ledger never heard
    assert len(await env.posts()) == 1

    restarted = make_publisher()
    [announced] = await restarted.reconcile_sending()
    message = published(await restarted.handle(request))  # the redelivered request

    [post] = await env.posts()
    assert announced.post_id == message.post_id == post["id"]
    row = await ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.PUBLISHED


@pytest.mark.parametrize("platform", [Platform.X, Platform.MASTODON])
async def test_a_crash_then_a_redelivery_without_the_start_sweep_posts_once(
    platform: Platform,
    env: Env,
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    sandbox = env.sandbox
    request = await engaged(ledger, platform=platform)
    with pytest.raises(SimulatedCrash):
        await make_publisher(wrap=CrashAfterPost).handle(request)
    sandbox.state.idempotency.clear()  # Mastodon's key expired: the thread must tell

    published(await make_publisher().handle(request))

    assert len(await env.posts()) == 1


async def test_a_sending_reply_that_never_reached_the_platform_is_posted(
    env: Env,
) -> None:
    """A crash after ``sending`` was written and before the post: looked up, not
    found, posted (once)."""
    make_publisher = env.make_publisher
    ledger = env.ledger
    request = await engaged(ledger)
    await ledger.open(request)
    await ledger.start_sending(request.reply_id, text="Thank you. Answer.", template_id="en-thanks")

    publisher = make_publisher()
    assert await publisher.reconcile_sending() == []
    published(await publisher.handle(request))

    [post] = await env.posts()
    assert post["text"] == "Thank you. Answer."


# --- the governor, through the ledger ---------------------------------------------------


async def _setup_engaged(ledger: Ledger, publisher: Publisher) -> PublishReply:
    return await engaged(ledger)


async def _setup_not_engaged(ledger: Ledger, publisher: Publisher) -> PublishReply:
    return request_factory()


async def _setup_opted_out(ledger: Ledger, publisher: Publisher) -> PublishReply:
    request = await engaged(ledger)
    await ledger.add_opt_out("x", request.author.id, source="moderator", reason="by e-mail")
    return request


async def _setup_consent_scope(ledger: Ledger, publisher: Publisher) -> PublishReply:
    consent = Consent(
        speaker_ref="s-internal", scope="research-only", recorded_by="team-a",
        at=datetime.now(UTC) - timedelta(hours=1),
    )  # fmt: skip
    return await engaged(ledger, consent=consent)


async def _setup_consent_withdrawn(ledger: Ledger, publisher: Publisher) -> PublishReply:
    request = await engaged(ledger)
    await ledger.record_withdrawal(
        ConsentWithdrawn(
            speaker_ref=request.consent.speaker_ref, withdrawn_by="team-b", at=datetime.now(UTC)
        )
    )
    return request


async def _setup_second_reply(ledger: Ledger, publisher: Publisher) -> PublishReply:
    first = await engaged(ledger)
    published(await publisher.handle(first))
    return request_factory(
        question_id=first.question_id, author=first.author, in_reply_to=first.in_reply_to,
        mention_id=first.mention_id,
    )  # fmt: skip


async def _setup_daily_cap(ledger: Ledger, publisher: Publisher) -> PublishReply:
    author = Author(id="keen", handle="keen")
    for _ in range(2):  # the cap is 2
        published(await publisher.handle(await engaged(ledger, author=author)))
    return await engaged(ledger, author=author)


async def _setup_variation(ledger: Ledger, publisher: Publisher) -> PublishReply:
    publisher.templates = Templates(
        {"en": (Template(id="only", text="@{handle} {text}"),)}
    )  # one template that names the asker: no variation possible for the same asker
    author = Author(id="same", handle="same")
    published(await publisher.handle(await engaged(ledger, text="Same words.", author=author)))
    return await engaged(ledger, text="Same words.", author=author)


RULE_SETUPS = {
    domain.ENGAGED: (_setup_not_engaged, "no record of mention"),
    domain.OPTED_OUT: (_setup_opted_out, "opted out (moderator) at"),
    f"{domain.CONSENT}-scope": (_setup_consent_scope, "'research-only' of s-internal"),
    f"{domain.CONSENT}-withdrawn": (_setup_consent_withdrawn, "withdrawn by team-b"),
    domain.ONE_REPLY_PER_QUESTION: (_setup_second_reply, "already has reply"),
    domain.AUTHOR_DAILY_CAP: (_setup_daily_cap, "got 2 replies in 24 h (cap 2)"),
    domain.VARIATION: (_setup_variation, "every template renders the text"),
}


@pytest.mark.parametrize("case", sorted(RULE_SETUPS))
async def test_every_governor_rule_refuses_with_its_reason_recorded(
    case: str,
    env: Env,
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    setup, reason = RULE_SETUPS[case]
    rule = case.split("-", maxsplit=1)[0]
    publisher = make_publisher(engagement_wait_s=0)  # refuse an unknown mention at once
    request = await setup(ledger, publisher)
    before = len(await env.posts())

    message = failed(await publisher.handle(request))

    assert len(await env.posts()) == before  # nothing went out
    assert not message.retryable
    assert message.error.startswith(f"refused by the governor: {rule}: ")
    assert reason in message.error
    row = await ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.REFUSED
    [decision] = await ledger.decisions(request.reply_id)
    assert (decision.rule, decision.verdict) == (rule, "refuse")
    assert reason in decision.reason


async def test_a_request_that_comes_before_its_mention_waits_for_it(env: Env) -> None:
    """mentions.raw is read on its own consumer group and can lag behind
    replies.requested: the reply is put off, not refused, and goes out once the
    mention is read."""
    publisher = env.make_publisher(engagement_wait_s=60)
    request = request_factory()

    outcome = await publisher.handle(request)

    assert isinstance(outcome, Retry), outcome
    assert env.clock() < outcome.at <= env.clock() + 60
    assert "not read from mentions.raw yet" in outcome.reason
    assert await env.posts() == []
    row = await env.ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.PENDING
    await engage(env.ledger, request)
    published(await publisher.handle(request))


async def test_a_mention_that_never_comes_is_refused_after_the_wait(env: Env) -> None:
    publisher = env.make_publisher(engagement_wait_s=0.2)
    request = request_factory()
    assert isinstance(await publisher.handle(request), Retry)
    await asyncio.sleep(0.3)

    message = failed(await publisher.handle(request))

    assert "no record of mention" in message.error
    assert await env.posts() == []


async def test_a_request_refused_for_another_reason_does_not_wait(env: Env) -> None:
    """Only a mention not read yet is worth waiting for: an opted-out asker is
    refused at once even when the mention is unknown."""
    publisher = env.make_publisher(engagement_wait_s=60)
    request = request_factory()
    await env.ledger.add_opt_out("x", request.author.id, source="moderator", reason="asked")

    message = failed(await publisher.handle(request))

    assert "opted_out" in message.error


async def test_an_allowed_reply_is_the_control_of_the_refusals(
    env: Env,
) -> None:
    """The setups above refuse because of their one difference: this one posts."""
    ledger = env.ledger
    make_publisher = env.make_publisher
    publisher = make_publisher()
    published(await publisher.handle(await _setup_engaged(ledger, publisher)))


async def test_the_governor_is_asked_again_before_a_retry(
    env: Env,
) -> None:
    """Sending, not on the platform, and the author opted out meanwhile: refused."""
    make_publisher = env.make_publisher
    ledger = env.ledger
    request = await engaged(ledger)
    await ledger.open(request)
    await ledger.start_sending(request.reply_id, text="Hello.", template_id="en-thanks")
    await ledger.add_opt_out("x", request.author.id, source="reply")

    message = failed(await make_publisher().handle(request))

    assert "opted_out" in message.error
    assert await env.posts() == []


async def test_consecutive_replies_with_the_same_approved_text_differ(
    env: Env,
) -> None:
    """X refuses a text that repeats one of the account's posts: the first reply of
    an approved text goes out as it is, the next ones name their asker, all in the
    one wrapping of that answer (the refusal when even that repeats: the governor
    rule tests)."""
    publisher = env.make_publisher()
    askers = [Author(id=f"a{n}", handle=f"asker{n}") for n in range(6)]
    for author in askers:
        published(
            await publisher.handle(
                await engaged(env.ledger, text="Watch our answer.", author=author)
            )
        )
    texts = [p["text"] for p in await env.posts()]
    assert len(set(texts)) == 6
    assert not any(t.startswith("@") for t in texts)  # X: never a leading @handle
    assert sum("(asker" in t for t in texts) == 5, texts
    assert len({t.split("Watch our answer.")[0] for t in texts}) == 1  # one wrapping


# --- platform errors ------------------------------------------------------------------


async def test_a_final_refusal_fails_the_reply_with_the_platform_s_error(
    env: Env,
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    request = await engaged(ledger, in_reply_to="post-9")  # X takes only numeric ids

    message = failed(await make_publisher().handle(request))

    assert not message.retryable
    assert "HTTP 400" in message.error
    assert "must match ^[0-9]{1,19}$" in message.error  # the platform's own words
    assert message.attempts == 1
    row = await ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.FAILED
    assert await env.posts() == []


async def test_retryable_errors_are_retried_later_then_fail_as_retryable(
    env: Env,
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    sandbox = env.sandbox
    http = env.http
    clock = env.clock
    await set_faults(http, sandbox, x={"5xx": 100})
    publisher = make_publisher(reply_max_attempts=2, reply_retry_initial_s=10.0)
    request = await engaged(ledger)

    first = await publisher.handle(request)
    assert isinstance(first, Retry)
    assert first.at == pytest.approx(clock() + 10.0)
    assert "HTTP 503" in first.reason

    message = failed(await publisher.handle(request))
    assert message.retryable
    assert message.attempts == 2
    assert "after 2 tries" in message.error
    assert await env.posts() == []


async def test_a_last_try_whose_answer_was_lost_is_found_published_not_failed(
    env: Env,
) -> None:
    """The post went out but its answer timed out on the last allowed try: the
    reply is looked up and recorded as published, so the one-per-question guard
    still covers it."""
    publisher = env.make_publisher(reply_max_attempts=1, wrap=TimeoutAfterPost)
    request = await engaged(env.ledger)
    message = published(await publisher.handle(request))
    assert message.reply_id == request.reply_id
    assert len(await env.posts()) == 1
    row = await env.ledger.get(request.reply_id)
    assert row is not None
    assert row.state == "published"


async def test_a_rate_limited_reply_waits_for_the_reset_without_counting_a_try(
    env: Env,
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    sandbox = env.sandbox
    http = env.http
    clock = env.clock
    await set_faults(
        http, sandbox, x={"429_burst": 1, "reset_after_s": 90, "endpoints": ["tweets_create"]}
    )
    publisher = make_publisher()
    request = await engaged(ledger)

    put_off = await publisher.handle(request)
    assert isinstance(put_off, Retry)
    assert put_off.at >= clock() + 89
    again = await publisher.handle(request)  # before the reset: not even a request
    assert isinstance(again, Retry)
    row = await ledger.get(request.reply_id)
    assert row is not None
    assert row.attempts == 0

    await clock.sleep(put_off.at - clock() + 1)
    published(await publisher.handle(request))
    assert len(await env.posts()) == 1


@pytest.mark.parametrize(
    ("platform", "delete_bucket"),
    [(Platform.X, TWEETS_DELETE), (Platform.MASTODON, STATUSES_DELETE)],
)
async def test_a_reply_waits_only_for_the_rate_limit_windows_it_uses(
    platform: Platform,
    delete_bucket: str,
    env: Env,
    media_factory: Callable[..., MediaFile],
) -> None:
    """Spent delete and upload windows hold back a video reply, not a text one."""
    publisher = env.make_publisher()
    account = publisher.platforms[platform]
    reopens = env.clock() + 600
    for bucket in (delete_bucket, *account.media_buckets):
        account.budget.update(bucket, [Window(limit=50, remaining=0, reset_at=reopens)])
    video = media_factory(1024)
    media = Media(uri=video.path.as_uri(), mime=video.mime, bytes=video.size, sha256=video.sha256)
    with_video = await engaged(env.ledger, platform=platform, media=media)
    text_only = await engaged(env.ledger, platform=platform)

    put_off = await publisher.handle(with_video)
    message = published(await publisher.handle(text_only))

    assert isinstance(put_off, Retry)
    assert put_off.at == pytest.approx(reopens)
    [post] = await env.posts()
    assert (post["id"], post["media"]) == (message.post_id, [])
    row = await env.ledger.get(with_video.reply_id)
    assert row is not None
    assert row.attempts == 0


async def test_media_that_is_not_a_local_file_fails_the_reply(
    env: Env,
) -> None:
    ledger = env.ledger
    make_publisher = env.make_publisher
    media = Media(uri="https://cdn.example/v.mp4", mime="video/mp4", bytes=10, sha256="a" * 64)
    message = failed(await make_publisher().handle(await engaged(ledger, media=media)))
    assert "not a local file" in message.error
    assert not message.retryable


@pytest.mark.parametrize("platform", [Platform.X, Platform.MASTODON])
async def test_an_original_the_platform_would_refuse_is_never_posted(
    platform: Platform, env: Env, phone_videos: dict[str, Path]
) -> None:
    """The reply's media must be the rendition made for its platform: a phone's HEVC
    original is refused before anything is uploaded, for good."""
    original = phone_videos["hevc_mov"]
    data = original.read_bytes()
    media = Media(
        uri=original.as_uri(),
        mime="video/quicktime",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    publisher = env.make_publisher(media_root=original.parent)
    request = await engaged(env.ledger, platform=platform, media=media)
    message = failed(await publisher.handle(request))
    assert "video codec hevc is not h264" in message.error
    assert "not a video" in message.error
    assert not message.retryable
    assert await env.posts() == []


class CountingUploads(CrashAfterPost):
    """A platform that counts what reaches it (and posts for real)."""

    uploads = 0

    async def upload_video(self, media: MediaFile) -> str:
        type(self).uploads += 1
        return await super().upload_video(media)

    async def post_reply(self, draft: ReplyDraft) -> PostedReply:
        return await self.inner.post_reply(draft)  # type: ignore[no-any-return]


@pytest.mark.parametrize("what", ["video", "subtitles"])
async def test_a_file_that_is_not_the_one_approved_sends_not_one_byte(
    what: str, env: Env, media_factory: Callable[..., MediaFile], tmp_path: Path
) -> None:
    """Issue 17: the sha256 is checked before the first byte goes to a platform
    (the adapters only found out after streaming the file)."""
    video = media_factory(300 * 1024)
    srt = b"1\n00:00:00,000 --> 00:00:00,500\nWe need water.\n"
    (tmp_path / "s.srt").write_bytes(srt)
    subtitles = SubtitleFile(
        uri=(tmp_path / "s.srt").as_uri(),
        mime="application/x-subrip",
        bytes=len(srt),
        sha256=("0" * 64) if what == "subtitles" else hashlib.sha256(srt).hexdigest(),
        language="en",
    )
    media = Media(
        uri=video.path.as_uri(),
        mime=video.mime,
        bytes=video.size,
        sha256=("0" * 64) if what == "video" else video.sha256,
        subtitles=(subtitles,),
    )
    CountingUploads.uploads = 0
    message = failed(
        await env.make_publisher(wrap=CountingUploads).handle(
            await engaged(env.ledger, media=media)
        )
    )
    assert "is not the file approved" in message.error
    assert not message.retryable
    assert CountingUploads.uploads == 0
    assert await env.posts() == []


@pytest.mark.parametrize("where", ["outside", "symlink", "subtitles"])
async def test_media_outside_the_media_root_is_a_final_failure(
    where: str, env: Env, media_factory: Callable[..., MediaFile], tmp_path: Path
) -> None:
    """Issue 17: a reply reads its files only from PUBLISH_MEDIA_ROOT (resolved, no
    symlink escape), subtitle files too."""
    video = media_factory(100 * 1024)
    root = tmp_path / "root"
    root.mkdir()
    inside = root / "answer.mp4"
    inside.write_bytes(video.path.read_bytes())
    if where == "symlink":
        inside.unlink()
        inside.symlink_to(video.path)
    srt = video.path.read_bytes()
    subtitles = SubtitleFile(
        uri=video.path.as_uri(),
        mime="application/x-subrip",
        bytes=len(srt),
        sha256=hashlib.sha256(srt).hexdigest(),
        language="en",
    )
    media = Media(
        uri=video.path.as_uri() if where == "outside" else inside.as_uri(),
        mime=video.mime,
        bytes=video.size,
        sha256=video.sha256,
        subtitles=(subtitles,) if where == "subtitles" else (),
    )
    CountingUploads.uploads = 0
    publisher = env.make_publisher(media_root=root, wrap=CountingUploads)
    message = failed(await publisher.handle(await engaged(env.ledger, media=media)))
    assert "is outside the media root" in message.error
    assert not message.retryable
    assert CountingUploads.uploads == 0
    assert await env.posts() == []


async def test_alt_text_and_subtitles_go_with_the_video(
    env: Env, media_factory: Callable[..., MediaFile], tmp_path: Path
) -> None:
    video = media_factory(100 * 1024)
    srt = b"1\n00:00:00,000 --> 00:00:00,500\nWe need water.\n"
    (tmp_path / "s.srt").write_bytes(srt)
    subtitles = SubtitleFile(
        uri=(tmp_path / "s.srt").as_uri(),
        mime="application/x-subrip",
        bytes=len(srt),
        sha256=hashlib.sha256(srt).hexdigest(),
        language="en",
    )
    for platform in (Platform.X, Platform.MASTODON):
        media = Media(
            uri=video.path.as_uri(),
            mime=video.mime,
            bytes=video.size,
            sha256=video.sha256,
            alt_text="A refugee in Kakuma answers.",
            subtitles=(subtitles,),
        )
        published(
            await env.make_publisher().handle(
                await engaged(env.ledger, platform=platform, media=media)
            )
        )
    posts = {p["platform"]: p for p in await env.posts()}
    assert posts["x"]["media"][0]["alt_text"] == "A refugee in Kakuma answers."
    assert posts["mastodon"]["media"][0]["alt_text"] == "A refugee in Kakuma answers."
    [track] = posts["x"]["media"][0]["subtitles"]
    assert (track["language_code"], track["display_name"]) == ("EN", "English")
    assert posts["mastodon"]["media"][0]["subtitles"] == []  # Mastodon takes none


async def test_a_platform_that_is_not_configured_fails_the_reply_as_retryable(
    env: Env,
) -> None:
    ledger = env.ledger
    make_publisher = env.make_publisher
    publisher = make_publisher(mastodon_base_url=None)
    message = failed(await publisher.handle(await engaged(ledger, platform=Platform.MASTODON)))
    assert message.retryable
    assert "not configured" in message.error


# --- paused people -----------------------------------------------------------------------


def _pause(
    request: PublishReply, paused: bool = True, *, at: datetime | None = None, by: str = "rules"
) -> SpeakerPaused:
    """The triage web's pause (or resume) of the person filmed in ``request``."""
    return SpeakerPaused(
        speaker_ref=request.consent.speaker_ref, paused=paused,
        reason="threat: a threat from @someone" if paused else "", decided_by=by,
        at=at or datetime.now(UTC),
    )  # fmt: skip


def _signed(request: PublishReply) -> bytes:
    """``request`` as the triage web's outbox sends it."""
    return KEYS.sign(topics.REPLIES_REQUESTED, encode(request))


async def test_a_reply_waiting_for_the_x_budget_is_held_once_its_person_is_paused(
    env: Env,
) -> None:
    """The defect: replies approved while X was rate limited (or over budget) went out
    at the reset although the rules had paused the person since (a threat under an
    earlier answer). Now the reply is held — nothing posted, nothing refused, the
    partition moves on — and goes out once the person is resumed."""
    publisher = env.make_publisher()
    account = publisher.platforms[Platform.X]
    reopens = env.clock() + 600
    for bucket in account.reply_buckets:
        account.budget.update(bucket, [Window(limit=50, remaining=0, reset_at=reopens)])
    request = await engaged(env.ledger)
    command = _signed(request)
    assert isinstance(await publisher.handle(request, command), Retry)

    assert await publisher.pause(_pause(request))
    await env.clock.sleep(reopens - env.clock() + 1)
    assert await publisher.handle(request, command) == Done(None)
    assert await publisher.handle(request, command) == Done(None)  # redelivered: still held

    assert await env.posts() == []
    row = await env.ledger.get(request.reply_id)
    assert row is not None
    assert (row.state, row.attempts) == (ReplyState.PENDING, 0)
    [decision] = await env.ledger.decisions(request.reply_id)
    assert (decision.rule, decision.verdict) == (domain.SPEAKER_PAUSED, "hold")
    assert f"publishing {request.consent.speaker_ref} paused by rules" in decision.reason
    assert "(threat: a threat from @someone)" in decision.reason
    assert await env.ledger.held_for_resumed() == []  # nothing to request again yet

    assert await publisher.pause(_pause(request, paused=False, by="mod-a"))
    [held] = await env.ledger.held_for_resumed()
    assert (held.reply_id, held.question_id, held.command) == (
        request.reply_id, request.question_id, command,
    )  # fmt: skip
    published(await publisher.handle(request, command))  # requested again (Agents.release_held)
    assert await env.ledger.release(request.reply_id)
    assert len(await env.posts()) == 1
    assert await env.ledger.held_for_resumed() == []


async def test_another_person_s_reply_is_not_held(env: Env) -> None:
    publisher = env.make_publisher()
    paused = await engaged(env.ledger)
    other = await engaged(env.ledger)
    await publisher.pause(_pause(paused))

    assert await publisher.handle(paused) == Done(None)
    published(await publisher.handle(other))
    assert len(await env.posts()) == 1


async def test_an_older_resume_does_not_lift_a_newer_pause(env: Env) -> None:
    """Commands come again (a redelivery, a resend at a new broker epoch) and out of
    order: the latest decision about a person stands."""
    publisher = env.make_publisher()
    request = await engaged(env.ledger)
    now = datetime.now(UTC)
    assert await publisher.pause(_pause(request, at=now))
    assert not await publisher.pause(_pause(request, False, at=now - timedelta(seconds=1)))
    assert not await publisher.pause(_pause(request, False, at=now))  # the same instant: held
    assert await publisher.handle(request) == Done(None)
    assert await env.posts() == []

    assert await publisher.pause(_pause(request, False, at=now + timedelta(seconds=1)))
    assert not await publisher.pause(_pause(request, at=now))  # the old pause, sent again
    published(await publisher.handle(request))
    assert len(await env.posts()) == 1


class PausedDuringUpload(CrashAfterPost):
    """Uploads and posts for real; the person is paused while the video uploads."""

    pause: Callable[[], Any] | None = None

    async def upload_video(self, media: MediaFile) -> str:
        media_id = await super().upload_video(media)
        if self.pause is not None:
            await self.pause()
        return media_id

    async def post_reply(self, draft: ReplyDraft) -> PostedReply:
        return await self.inner.post_reply(draft)  # type: ignore[no-any-return]


async def test_a_pause_that_comes_during_the_upload_holds_the_post(
    env: Env, media_factory: Callable[..., MediaFile]
) -> None:
    publisher = env.make_publisher(wrap=PausedDuringUpload)
    video = media_factory(200 * 1024)
    media = Media(uri=video.path.as_uri(), mime=video.mime, bytes=video.size, sha256=video.sha256)
    request = await engaged(env.ledger, media=media)
    account = publisher.platforms[Platform.X]
    assert isinstance(account, PausedDuringUpload)
    account.pause = lambda: publisher.pause(_pause(request))

    assert await publisher.handle(request, _signed(request)) == Done(None)
    assert await env.posts() == []
    row = await env.ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.SENDING  # looked for on X before it is ever posted

    account.pause = None
    await publisher.pause(_pause(request, paused=False))
    published(await publisher.handle(request, _signed(request)))
    assert len(await env.posts()) == 1


# --- consent withdrawal ------------------------------------------------------------------


async def _withdraw(publisher: Publisher, speaker: str, questions: Sequence[str] = ()) -> None:
    event = ConsentWithdrawn(
        speaker_ref=speaker, question_ids=tuple(questions), withdrawn_by="team-b",
        reason="the speaker asked", at=datetime.now(UTC),
    )  # fmt: skip
    assert await publisher.withdraw(event) == Done()


@pytest.mark.parametrize("platform", [Platform.X, Platform.MASTODON])
async def test_a_withdrawal_deletes_the_published_reply_and_records_it(
    platform: Platform,
    env: Env,
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    publisher = make_publisher()
    request = await engaged(ledger, platform=platform)
    other = await engaged(ledger, platform=platform)  # another speaker: stays up
    post_id = published(await publisher.handle(request)).post_id
    published(await publisher.handle(other))

    await _withdraw(publisher, request.consent.speaker_ref)

    assert [p["id"] for p in await env.posts()] != [post_id]
    assert post_id not in {p["id"] for p in await env.posts()}
    assert len(await env.posts()) == 1
    row = await ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.WITHDRAWN
    assert row.withdrawn_at is not None
    decision = (await ledger.decisions(request.reply_id))[-1]
    assert (decision.rule, decision.verdict) == ("withdrawal", "withdraw")
    assert f"{platform.value} post {post_id} deleted" in decision.reason
    assert "withdrawn by team-b" in decision.reason

    await _withdraw(publisher, request.consent.speaker_ref)  # redelivered: nothing more
    assert len(await ledger.decisions(request.reply_id)) == 2


async def test_a_withdrawal_of_one_question_leaves_the_speaker_s_other_answers(
    env: Env,
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    publisher = make_publisher()
    one = await engaged(ledger)
    two = await engaged(ledger, consent=one.consent)
    published(await publisher.handle(one))
    kept = published(await publisher.handle(two))

    await _withdraw(publisher, one.consent.speaker_ref, [one.question_id])

    assert [p["id"] for p in await env.posts()] == [kept.post_id]


async def test_a_withdrawal_naming_an_answer_refuses_its_later_askers_whatever_it_names(
    env: Env,
) -> None:
    """A cluster asker added after the withdrawal went out: its question is not named,
    its answer is, and that is enough. Another answer of the same speaker stays as
    before (its question not named: it goes out), and so does an older command
    without an answer id (speaker and questions only)."""
    ledger = env.ledger
    publisher = env.make_publisher()
    first = await engaged(ledger, answer_id="answer-a")
    published(await publisher.handle(first))
    await publisher.withdraw(
        ConsentWithdrawn(
            speaker_ref=first.consent.speaker_ref, question_ids=(first.question_id,),
            answer_id="answer-a", withdrawn_by="team-b", at=datetime.now(UTC),
        )
    )  # fmt: skip
    later_asker = await engaged(ledger, consent=first.consent, answer_id="answer-a")
    other_answer = await engaged(ledger, consent=first.consent, answer_id="answer-b")
    old_command = await engaged(ledger, consent=first.consent)

    message = failed(await publisher.handle(later_asker))

    assert message.error.startswith(f"refused by the governor: {domain.CONSENT}: ")
    assert "withdrawn by team-b" in message.error
    row = await ledger.get(later_asker.reply_id)
    assert row is not None
    assert row.state == ReplyState.REFUSED
    published(await publisher.handle(other_answer))
    published(await publisher.handle(old_command))


async def test_a_withdrawal_naming_an_answer_keeps_to_consent_given_again_after_it(
    env: Env,
) -> None:
    """Withdrawn, then given again for the answer: a request with the newer consent
    goes out, as with a withdrawal by speaker."""
    ledger = env.ledger
    publisher = env.make_publisher()
    old = await engaged(ledger, answer_id="answer-a")
    await ledger.record_withdrawal(
        ConsentWithdrawn(
            speaker_ref=old.consent.speaker_ref, question_ids=(old.question_id,),
            answer_id="answer-a", withdrawn_by="team-b",
            at=datetime.now(UTC) - timedelta(minutes=30),
        )
    )  # fmt: skip
    again = old.consent.model_copy(update={"at": datetime.now(UTC) - timedelta(minutes=1)})
    published(await publisher.handle(await engaged(ledger, consent=again, answer_id="answer-a")))
    failed(await publisher.handle(await engaged(ledger, consent=old.consent, answer_id="answer-a")))


class WithdrawnDuringUpload(PausedDuringUpload):
    """Uploads and posts for real; the consent is withdrawn while the video uploads
    (the ``consent.withdrawn`` consumer finds nothing published to take down)."""


@pytest.mark.parametrize("names_answer_only", [False, True])
async def test_a_withdrawal_that_comes_during_the_upload_refuses_the_post(
    env: Env, media_factory: Callable[..., MediaFile], names_answer_only: bool
) -> None:
    """Nothing goes out once the withdrawal is recorded, not even for a moment: also a
    withdrawal that names the reply's answer but not its question (a cluster asker),
    which the take-down after publishing (speaker and question) would not cover."""
    publisher = env.make_publisher(wrap=WithdrawnDuringUpload)
    video = media_factory(200 * 1024)
    media = Media(uri=video.path.as_uri(), mime=video.mime, bytes=video.size, sha256=video.sha256)
    request = await engaged(env.ledger, media=media, answer_id="answer-a")
    account = publisher.platforms[Platform.X]
    assert isinstance(account, WithdrawnDuringUpload)
    event = ConsentWithdrawn(
        speaker_ref=request.consent.speaker_ref,
        question_ids=("another-question",) if names_answer_only else (),
        answer_id="answer-a", withdrawn_by="team-b", at=datetime.now(UTC),
    )  # fmt: skip
    account.pause = lambda: publisher.withdraw(event)

    message = failed(await publisher.handle(request, _signed(request)))

    assert await env.posts() == []
    assert message.error.startswith(f"refused by the governor: {domain.CONSENT}: ")
    row = await env.ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.REFUSED


async def test_a_post_already_gone_is_recorded_as_withdrawn(
    env: Env,
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    sandbox = env.sandbox
    publisher = make_publisher()
    request = await engaged(ledger)
    post_id = published(await publisher.handle(request)).post_id
    sandbox.state.delete_post("x", post_id)

    await _withdraw(publisher, request.consent.speaker_ref)

    decision = (await ledger.decisions(request.reply_id))[-1]
    assert "already gone" in decision.reason


async def test_a_withdrawal_that_the_platform_rate_limits_is_retried(
    env: Env,
) -> None:
    make_publisher = env.make_publisher
    ledger = env.ledger
    sandbox = env.sandbox
    http = env.http
    clock = env.clock
    publisher = make_publisher()
    request = await engaged(ledger)
    published(await publisher.handle(request))
    await set_faults(
        http, sandbox, x={"429_burst": 1, "reset_after_s": 30, "endpoints": ["tweets_delete"]}
    )
    event = ConsentWithdrawn(
        speaker_ref=request.consent.speaker_ref, withdrawn_by="team-b", at=datetime.now(UTC)
    )

    put_off = await publisher.withdraw(event)
    assert isinstance(put_off, Retry)
    await clock.sleep(put_off.at - clock() + 1)
    assert await publisher.withdraw(event) == Done()
    assert await env.posts() == []


async def test_a_reply_published_after_its_consent_was_withdrawn_comes_down_at_once(
    env: Env,
) -> None:
    """The withdrawal arrives while the reply is being sent (it was not published
    yet, so the withdrawal found nothing to delete)."""
    make_publisher = env.make_publisher
    ledger = env.ledger
    request = await engaged(ledger)
    with pytest.raises(SimulatedCrash):
        await make_publisher(wrap=CrashAfterPost).handle(request)
    publisher = make_publisher()
    await _withdraw(publisher, request.consent.speaker_ref)  # the reply is still "sending"
    assert len(await env.posts()) == 1

    published(await publisher.handle(request))  # found on the platform, then taken down

    assert await env.posts() == []
    row = await ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.WITHDRAWN


class RefusesDelete(CrashAfterPost):
    """A platform that posts and finds as usual but refuses every delete for good."""

    async def post_reply(self, draft: ReplyDraft) -> PostedReply:
        posted: PostedReply = await self.inner.post_reply(draft)
        return posted

    async def delete_post(self, post_id: str) -> bool:
        raise FinalError("403 forbidden", platform=self.name.value, account="campaign", status=403)


async def test_a_late_take_down_that_fails_is_done_by_the_sweep(env: Env) -> None:
    """The reply is published after its withdrawal and the delete then fails
    (the platform is down): it stays up only until the next sweep."""
    ledger = env.ledger
    request = await engaged(ledger)
    with pytest.raises(SimulatedCrash):
        await env.make_publisher(wrap=CrashAfterPost).handle(request)
    publisher = env.make_publisher()
    await _withdraw(publisher, request.consent.speaker_ref)
    await set_faults(env.http, env.sandbox, x={"5xx": 50, "endpoints": ["tweets_delete"]})

    published(await publisher.handle(request))  # found; its take-down fails
    assert len(await env.posts()) == 1
    row = await ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.PUBLISHED

    assert await publisher.take_down_withdrawn() == 0  # still down: tried, left
    assert (await env.http.delete(f"{env.sandbox.base_url}/sandbox/faults")).status_code == 200
    assert await publisher.take_down_withdrawn() == 1

    assert await env.posts() == []
    row = await ledger.get(request.reply_id)
    assert row is not None
    assert row.state == ReplyState.WITHDRAWN
    assert await publisher.take_down_withdrawn() == 0  # nothing left to do


async def test_the_sweep_takes_down_a_reply_left_up_by_a_crash(env: Env) -> None:
    """Killed between publishing and taking down: the withdrawal event was already
    committed, so only the sweep can still take the reply down."""
    ledger = env.ledger
    publisher = env.make_publisher()
    request = await engaged(ledger)
    kept = await engaged(ledger)  # consent withdrawn, then given again: stays up
    post_id = published(await publisher.handle(request)).post_id
    await ledger.record_withdrawal(
        ConsentWithdrawn(
            speaker_ref=request.consent.speaker_ref, withdrawn_by="team-b", at=datetime.now(UTC)
        )
    )
    await ledger.record_withdrawal(
        ConsentWithdrawn(
            speaker_ref=kept.consent.speaker_ref,
            withdrawn_by="team-b",
            at=kept.consent.at - timedelta(hours=1),
        )
    )
    kept_id = published(await publisher.handle(kept)).post_id

    assert await publisher.take_down_withdrawn() == 1

    assert [p["id"] for p in await env.posts()] == [kept_id]
    assert post_id != kept_id
    decision = (await ledger.decisions(request.reply_id))[-1]
    assert (decision.rule, decision.verdict) == ("withdrawal", "withdraw")


async def test_a_take_down_the_platform_refuses_is_recorded_once_for_people(env: Env) -> None:
    ledger = env.ledger
    publisher = env.make_publisher(wrap=RefusesDelete)
    request = await engaged(ledger)
    published(await publisher.handle(request))
    await ledger.record_withdrawal(
        ConsentWithdrawn(
            speaker_ref=request.consent.speaker_ref, withdrawn_by="team-b", at=datetime.now(UTC)
        )
    )

    assert await publisher.take_down_withdrawn() == 0
    assert await publisher.take_down_withdrawn() == 0

    errors = [d for d in await ledger.decisions(request.reply_id) if d.verdict == "error"]
    assert [d.rule for d in errors] == ["withdrawal"]
    assert "403 forbidden" in errors[0].reason
    assert len(await env.posts()) == 1


async def test_a_take_down_on_a_platform_no_longer_configured_is_recorded_once(
    env: Env,
) -> None:
    ledger = env.ledger
    request = await engaged(ledger)
    other = await engaged(ledger)
    published(await env.make_publisher().handle(request))
    published(await env.make_publisher().handle(other))
    settings = env.make_publisher().settings
    unconfigured = Publisher(ledger=ledger, platforms={}, settings=settings, clock=env.clock)

    await _withdraw(unconfigured, request.consent.speaker_ref)  # the consumer's path
    await ledger.record_withdrawal(  # the sweep's: a withdrawal it finds in the ledger
        ConsentWithdrawn(
            speaker_ref=other.consent.speaker_ref, withdrawn_by="team-b", at=datetime.now(UTC)
        )
    )
    assert await unconfigured.take_down_withdrawn() == 0
    assert await unconfigured.take_down_withdrawn() == 0

    for reply_id in (request.reply_id, other.reply_id):
        errors = [d for d in await ledger.decisions(reply_id) if d.verdict == "error"]
        assert [(d.rule, d.reason) for d in errors] == [
            ("withdrawal", "x is not configured on this publisher")
        ]
    assert len(await env.posts()) == 2
    assert await ledger.still_up_after_withdrawal() == []


# --- mentions: engagement and opt-outs ----------------------------------------------------


async def test_a_mention_of_the_campaign_is_recorded_as_engagement(
    env: Env,
) -> None:
    ledger = env.ledger
    make_publisher = env.make_publisher
    publisher = make_publisher()
    request = request_factory()
    await publisher.observe_mention(mention_for(request, "#TakeAction how is school?"))
    snapshot = await ledger.snapshot(request)
    assert snapshot.engagement is not None
    assert snapshot.engagement.how == {"hashtag"}

    unrelated = request_factory()
    await publisher.observe_mention(mention_for(unrelated, "nice weather today"))
    assert (await ledger.snapshot(unrelated)).engagement is None


async def test_a_stop_reply_to_the_campaign_opts_the_author_out(
    env: Env,
) -> None:
    ledger = env.ledger
    make_publisher = env.make_publisher
    publisher = make_publisher()
    request = await engaged(ledger)
    stop = request_factory(author=request.author)

    await publisher.observe_mention(mention_for(stop, "@TakeActionCamps STOP"))

    [opt_out] = await ledger.opt_outs()
    assert (opt_out.author_id, opt_out.source, opt_out.mention_id) == (
        request.author.id, "reply", stop.mention_id,
    )  # fmt: skip
    message = failed(await publisher.handle(request))
    assert "opted_out" in message.error


async def test_a_stop_reply_under_one_of_our_replies_opts_the_author_out(
    env: Env,
) -> None:
    ledger = env.ledger
    make_publisher = env.make_publisher
    publisher = make_publisher()
    request = await engaged(ledger)
    ours = published(await publisher.handle(request))
    stop = request_factory(author=request.author)

    await publisher.observe_mention(mention_for(stop, "stop", in_reply_to=ours.post_id))

    assert [o.author_id for o in await ledger.opt_outs()] == [request.author.id]


async def test_a_stop_that_is_not_addressed_to_the_campaign_is_not_an_opt_out(
    env: Env,
) -> None:
    ledger = env.ledger
    make_publisher = env.make_publisher
    publisher = make_publisher()
    await publisher.observe_mention(mention_for(request_factory(), "stop"))
    await publisher.observe_mention(
        mention_for(request_factory(), "@TakeActionCamps please don't stop!")
    )
    assert await ledger.opt_outs() == []


class _EngagementFailsOnce(Ledger):
    """A ledger whose first engagement write fails: the database went away after the
    mention's post read was counted, and the consumer retries the record."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger.engine)
        self.failures = 1

    async def record_engagement(self, mention_id: str, **fields: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise OperationalError("INSERT INTO engagements", {}, Exception("connection lost"))
        await super().record_engagement(mention_id, **fields)


async def test_a_mention_from_xs_stream_is_billed_one_post_read_however_often_it_comes(
    env: Env, publish_settings: Callable[..., PublishSettings]
) -> None:
    settings = publish_settings()
    spend = SpendLedger(env.ledger.engine, settings)
    publisher = Publisher(
        ledger=_EngagementFailsOnce(env.ledger),
        platforms={},
        settings=settings,
        spend=spend,
        clock=env.clock,
    )
    request = request_factory()
    mention = mention_for(request, source=Source.X_STREAM)

    with pytest.raises(OperationalError):
        await publisher.observe_mention(mention)  # counted, then the engagement failed
    await publisher.observe_mention(mention)  # the record retried
    await publisher.observe_mention(mention)  # redelivered (a new broker epoch, a rebalance)
    await publisher.observe_mention(mention_for(request_factory(), source=Source.X_STREAM))

    reads = (await spend.report()).month_by_class["post_read"]
    assert (reads.calls, round(reads.usd, 6)) == (2, 0.01)
    assert (await env.ledger.snapshot(request)).engagement is not None


class _LetsAnotherGoFirst(Ledger):
    """A ledger whose governor snapshot first lets ``meanwhile`` run: a rebalance while
    this publisher is in the rule checks, and the new owner handles the same record."""

    def __init__(self, ledger: Ledger, meanwhile: Callable[[], Any]) -> None:
        super().__init__(ledger.engine)
        self.meanwhile = meanwhile

    async def snapshot(self, request: PublishReply) -> domain.Snapshot:
        await self.meanwhile()
        return await super().snapshot(request)


async def test_two_publishers_that_read_one_reply_pending_post_it_once(env: Env) -> None:
    """Publisher A reads the reply ``pending`` and is in the governor when B, after a
    rebalance, reads the same record and publishes it. A must not mark it sending
    and post again: it is told another publisher has it, and then repeats B's outcome."""
    request = await engaged(env.ledger)
    b = env.make_publisher()
    outcomes: list[object] = []

    async def b_goes_first() -> None:
        if not outcomes:
            outcomes.append(await b.handle(request))

    a = env.make_publisher()
    a.ledger = _LetsAnotherGoFirst(env.ledger, b_goes_first)

    put_off = await a.handle(request)

    assert isinstance(put_off, Retry)
    assert put_off.reason == "another publisher is sending it"
    [post] = await env.posts()
    assert published(outcomes[0]).post_id == post["id"]
    assert published(await a.handle(request)).post_id == post["id"]  # B's outcome, repeated
    assert len(await env.posts()) == 1
    decisions = await env.ledger.decisions(request.reply_id)
    assert [(d.rule, d.verdict) for d in decisions] == [("governor", "allow")]


async def test_a_reply_another_publisher_is_sending_waits_for_its_lease(env: Env) -> None:
    """After a rebalance, the new owner of the partition finds the reply ``sending``
    by a publisher that may be posting it right now: it waits for that lease to
    run out before it posts (and looks on the platform again first)."""
    ledger = env.ledger
    request = await engaged(ledger)
    await ledger.open(request)
    lease_end = datetime.now(UTC) + timedelta(minutes=20)
    await ledger.start_sending(
        request.reply_id,
        text="Hello.",
        template_id="en-thanks",
        owner="other",
        lease_until=lease_end,
    )
    publisher = env.make_publisher()

    put_off = await publisher.handle(request)

    assert isinstance(put_off, Retry)
    assert put_off.at == pytest.approx(lease_end.timestamp())
    assert await env.posts() == []

    ledger.now = lambda: datetime.now(UTC) + timedelta(minutes=21)  # the lease ran out
    published(await publisher.handle(request))
    assert len(await env.posts()) == 1


def _answer_withdrawn(request: PublishReply) -> ConsentWithdrawn:
    """A withdrawal naming the request's answer and another question only (a cluster
    asker whose reply the triage web had not counted yet)."""
    return ConsentWithdrawn(
        speaker_ref=request.consent.speaker_ref, question_ids=("another-question",),
        answer_id=request.answer_id, withdrawn_by="team-b", at=datetime.now(UTC),
    )  # fmt: skip


async def test_a_withdrawal_naming_the_answer_takes_down_its_published_replies(
    env: Env,
) -> None:
    """Every way a published reply comes down reads the answer it posts: the withdrawal
    consumer, the take-down right after a late publish, and the sweep (they matched
    speaker and question only, so such a reply stayed up)."""
    ledger, publisher = env.ledger, env.make_publisher()
    consumed = await engaged(ledger, answer_id="answer-a")
    published(await publisher.handle(consumed))
    assert await publisher.withdraw(_answer_withdrawn(consumed)) == Done()
    assert await env.posts() == []

    late = await engaged(ledger, answer_id="answer-b")
    with pytest.raises(SimulatedCrash):
        await env.make_publisher(wrap=CrashAfterPost).handle(late)
    assert await publisher.withdraw(_answer_withdrawn(late)) == Done()  # still sending
    published(await publisher.handle(late))  # found on the platform, then taken down
    assert await env.posts() == []

    swept = await engaged(ledger, answer_id="answer-c")
    published(await publisher.handle(swept))
    await ledger.record_withdrawal(_answer_withdrawn(swept))  # its take-down never ran
    assert await publisher.take_down_withdrawn() == 1
    assert await env.posts() == []
    for request in (consumed, late, swept):
        row = await ledger.get(request.reply_id)
        assert row is not None
        assert (row.state, row.answer_id) == (ReplyState.WITHDRAWN, request.answer_id)
