"""The Mastodon client against the sandbox: async media, replies with an
Idempotency-Key, rate limits, retries, reconciliation and deletion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.publish.config import PublishSettings
from services.publish.exceptions import FinalError, RateLimited, RetryableError
from services.publish.platforms.base import MediaFile, ReplyDraft
from services.publish.platforms.mastodon import MastodonClient, mastodon_language, parse_reset
from tests.helpers.sandbox import FakeClock, SandboxServer, posts, set_faults
from tests.publish.helpers import MiB, retry_after_rate_limits

pytestmark = pytest.mark.timeout(60)

MediaFactory = Callable[..., MediaFile]


@pytest.fixture
def client(
    publish_settings: Callable[..., PublishSettings], http: httpx.AsyncClient, clock: FakeClock
) -> MastodonClient:
    return MastodonClient(publish_settings(), http, sleep=clock.sleep, clock=clock)


async def test_a_video_is_uploaded_polled_until_processed_and_posted_as_a_reply(
    client: MastodonClient,
    media_factory: MediaFactory,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
) -> None:
    await set_faults(http, sandbox, mastodon={"media_processing_s": 2.5})
    video = media_factory(3 * MiB)
    mention = "1790000000000000099"

    media_id = await client.upload_video(video)
    reply = await client.post_reply(ReplyDraft(
        text="Answer <from> the camp", in_reply_to=mention, media_ids=(media_id,),
        language="ar-SY", idempotency_key="reply-1",
    ))  # fmt: skip

    assert clock.sleeps == [1.0, 2.0]  # 206, then 200 with a url
    [post] = await posts(http, sandbox)
    assert post["platform"] == "mastodon"
    assert post["id"] == reply.post_id
    assert post["in_reply_to"] == mention
    assert post["language"] == "ar"
    assert post["visibility"] == "public"
    assert post["media"][0]["sha256"] == video.sha256
    assert reply.url == f"http://sandbox/@takeaction_sandbox/{reply.post_id}"


async def test_the_same_idempotency_key_returns_the_first_status(
    client: MastodonClient,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    mention_id: Callable[[], str],
) -> None:
    mention = mention_id()

    first = await client.post_reply(
        ReplyDraft(text="hi", in_reply_to=mention, idempotency_key="key-1")
    )
    again = await client.post_reply(
        ReplyDraft(text="hi", in_reply_to=mention, idempotency_key="key-1")
    )
    other = await client.post_reply(
        ReplyDraft(text="hi", in_reply_to=mention, idempotency_key="key-2")
    )

    assert again.post_id == first.post_id
    assert other.post_id != first.post_id
    assert len(await posts(http, sandbox)) == 2


async def test_an_answer_lost_after_posting_is_not_posted_twice(
    client: MastodonClient,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
    mention_id: Callable[[], str],
) -> None:
    await set_faults(http, sandbox, mastodon={"drop_after": 1, "endpoints": ["statuses_create"]})

    reply = await client.post_reply(
        ReplyDraft(text="once", in_reply_to=mention_id(), idempotency_key="k")
    )

    assert [p["id"] for p in await posts(http, sandbox)] == [reply.post_id]
    assert len(clock.sleeps) == 1


async def test_a_429_burst_pauses_the_account_and_resumes_with_no_loss(
    client: MastodonClient,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
    mention_id: Callable[[], str],
) -> None:
    await set_faults(http, sandbox, mastodon={"429_burst": 2, "reset_after_s": 300})
    mention = mention_id()

    async def post() -> Any:
        return await client.post_reply(
            ReplyDraft(text="hello", in_reply_to=mention, idempotency_key="r")
        )

    with pytest.raises(RateLimited) as caught:
        await post()
    assert caught.value.reset_at == pytest.approx(clock() + 300, abs=1)
    assert client.budget.paused_until == caught.value.reset_at

    reply = await retry_after_rate_limits(post, client.budget, sleep=clock.sleep)

    assert [p["id"] for p in await posts(http, sandbox)] == [reply.post_id]
    assert len(clock.sleeps) == 2


async def test_5xx_is_retried_then_succeeds(
    client: MastodonClient,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
    mention_id: Callable[[], str],
) -> None:
    await set_faults(http, sandbox, mastodon={"5xx": 2, "endpoints": ["statuses_create"]})

    await client.post_reply(
        ReplyDraft(text="after errors", in_reply_to=mention_id(), idempotency_key="e")
    )

    assert len(await posts(http, sandbox)) == 1
    assert len(clock.sleeps) == 2


async def test_5xx_that_outlasts_the_attempts_is_retryable(
    publish_settings: Callable[..., PublishSettings],
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
) -> None:
    await set_faults(http, sandbox, mastodon={"5xx": 5, "server_error_status": 500})
    client = MastodonClient(publish_settings(max_attempts=2), http, sleep=clock.sleep, clock=clock)

    with pytest.raises(RetryableError) as caught:
        await client.account_id()

    assert caught.value.status == 500
    assert caught.value.error == {"error": "Service Unavailable"}


async def test_a_4xx_is_final_with_the_platforms_error(
    client: MastodonClient, clock: FakeClock, mention_id: Callable[[], str]
) -> None:
    with pytest.raises(FinalError) as caught:
        await client.post_reply(
            ReplyDraft(text="x" * 501, in_reply_to=mention_id(), idempotency_key="long")
        )

    assert caught.value.status == 422
    assert caught.value.error == {
        "error": "Validation failed: Text character limit of 500 exceeded"
    }
    assert clock.sleeps == []


async def test_failed_media_processing_is_final(
    client: MastodonClient,
    media_factory: MediaFactory,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    await set_faults(http, sandbox, mastodon={"media_processing_s": 1, "media_fail": 1})

    with pytest.raises(FinalError) as caught:
        await client.upload_video(media_factory())

    assert caught.value.status == 422
    assert "error processing" in caught.value.error["error"]


async def test_a_file_that_changed_on_disk_is_not_used(
    client: MastodonClient, media_factory: MediaFactory
) -> None:
    with pytest.raises(FinalError, match="changed on disk"):
        await client.upload_video(media_factory(sha256="f" * 64))


async def test_a_dropped_upload_is_sent_again_from_the_start(
    client: MastodonClient,
    media_factory: MediaFactory,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    await set_faults(http, sandbox, mastodon={"drop": 1, "endpoints": ["media"]})
    video = media_factory(2 * MiB)

    media_id = await client.upload_video(video)

    stored = sandbox.state.media[("mastodon", media_id)]
    assert (stored.size, stored.sha256) == (video.size, video.sha256)


async def test_find_reply_finds_our_reply_in_the_thread(
    client: MastodonClient, mention_id: Callable[[], str]
) -> None:
    mention = mention_id()
    reply = await client.post_reply(
        ReplyDraft(text="ours", in_reply_to=mention, idempotency_key="f")
    )
    await client.post_reply(
        ReplyDraft(text="a reply to our reply", in_reply_to=reply.post_id, idempotency_key="g")
    )

    found = await client.find_reply(in_reply_to=mention)

    assert found is not None
    assert found.post_id == reply.post_id
    assert await client.find_reply(in_reply_to=mention_id()) is None  # unknown: 404


async def test_delete_post_removes_it_and_its_video_and_a_second_delete_says_gone(
    client: MastodonClient,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    mention_id: Callable[[], str],
    media_factory: MediaFactory,
) -> None:
    mention = mention_id()
    media_id = await client.upload_video(media_factory())
    reply = await client.post_reply(
        ReplyDraft(
            text="withdrawn", in_reply_to=mention, media_ids=(media_id,), idempotency_key="d"
        )
    )
    stored = sandbox.state.media[("mastodon", media_id)].path
    assert stored.exists()

    assert await client.delete_post(reply.post_id) is True
    assert await posts(http, sandbox) == []
    # delete_media=true: the video goes with the post, not kept for a redraft.
    assert ("mastodon", media_id) in sandbox.state.deleted_media
    assert not stored.exists()
    assert await client.delete_post(reply.post_id) is False
    assert await client.find_reply(in_reply_to=mention) is None


def test_reset_header_is_iso_8601() -> None:
    assert parse_reset("2026-03-22T22:10:00.000Z") == 1774217400.0
    assert parse_reset("1774217400") == 1774217400.0
    assert parse_reset("soon") is None


@pytest.mark.parametrize(
    ("given", "sent"), [("en", "en"), ("ar-SY", "ar"), ("pt_BR", "pt"), ("", None), ("x1", None)]
)
def test_language_is_sent_as_iso_639(given: str, sent: str | None) -> None:
    assert mastodon_language(given) == sent
