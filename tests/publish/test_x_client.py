"""The X client against the sandbox: chunked upload, processing, replies, rate
limits, retries, reconciliation and deletion."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.publish.config import PublishSettings
from services.publish.exceptions import FinalError, RateLimited, RetryableError
from services.publish.platforms.base import MediaFile, ReplyDraft
from services.publish.platforms.x import TWEETS_CREATE, XClient
from services.publish.spend import CallClass
from tests.helpers.sandbox import FakeClock, SandboxServer, posts, set_faults
from tests.publish.helpers import MiB, retry_after_rate_limits

pytestmark = pytest.mark.timeout(60)

SettingsFactory = Callable[..., PublishSettings]
MediaFactory = Callable[..., MediaFile]


@pytest.fixture
def x_client(
    publish_settings: SettingsFactory, http: httpx.AsyncClient, clock: FakeClock
) -> Callable[..., XClient]:
    def make(**overrides: Any) -> XClient:
        return XClient(publish_settings(**overrides), http, sleep=clock.sleep, clock=clock)

    return make


async def test_a_40mb_video_goes_out_in_5mb_chunks_under_the_mention(
    x_client: Callable[..., XClient],
    media_factory: MediaFactory,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    mention_id: Callable[[], str],
) -> None:
    client = x_client(x_chunk_bytes=5 * MiB)
    video = media_factory(40 * MiB)
    mention = mention_id()

    media_id = await client.upload_video(video)
    reply = await client.post_reply(ReplyDraft(
        text="Answer from the camp", in_reply_to=mention, media_ids=(media_id,),
        idempotency_key="reply-1",
    ))  # fmt: skip

    uploaded = sandbox.state.media[("x", media_id)]
    assert uploaded.segments == dict.fromkeys(range(8), 5 * MiB)
    [post] = await posts(http, sandbox)
    assert post["platform"] == "x"
    assert post["id"] == reply.post_id
    assert post["in_reply_to"] == mention
    assert post["text"] == "Answer from the camp"
    [media] = post["media"]
    assert media["sha256"] == video.sha256
    assert media["size"] == 40 * MiB
    assert reply.url == f"{sandbox.base_url}/i/web/status/{reply.post_id}"


async def test_an_uneven_file_ends_with_a_short_last_chunk(
    x_client: Callable[..., XClient], media_factory: MediaFactory, sandbox: SandboxServer
) -> None:
    media_id = await x_client(x_chunk_bytes=64 * 1024).upload_video(media_factory(150 * 1024))

    assert sandbox.state.media[("x", media_id)].segments == {0: 65536, 1: 65536, 2: 22528}


async def test_processing_is_polled_after_check_after_secs(
    x_client: Callable[..., XClient],
    media_factory: MediaFactory,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
) -> None:
    await set_faults(http, sandbox, x={"media_processing_s": 7.5})

    media_id = await x_client().upload_video(media_factory())

    assert clock.sleeps == [8.0]  # finalize said check_after_secs=8; then STATUS said succeeded
    assert sandbox.state.media[("x", media_id)].state == "succeeded"


async def test_failed_processing_is_final_with_the_platform_error(
    x_client: Callable[..., XClient],
    media_factory: MediaFactory,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    await set_faults(http, sandbox, x={"media_processing_s": 2, "media_fail": 1})

    with pytest.raises(FinalError) as caught:
        await x_client().upload_video(media_factory())

    assert caught.value.error["state"] == "failed"
    assert caught.value.error["error"]["name"] == "InvalidMedia"


async def test_a_file_that_does_not_match_its_checksum_is_never_finalized(
    x_client: Callable[..., XClient], media_factory: MediaFactory, sandbox: SandboxServer
) -> None:
    video = media_factory(sha256="0" * 64)

    with pytest.raises(FinalError, match="sha256"):
        await x_client().upload_video(video)

    assert [m.state for m in sandbox.state.media.values()] == ["uploading"]


async def test_a_file_of_the_wrong_size_is_refused_before_any_request(
    x_client: Callable[..., XClient], media_factory: MediaFactory, sandbox: SandboxServer
) -> None:
    video = media_factory(1000)
    wrong = MediaFile(video.path, video.mime, video.sha256, 999)

    with pytest.raises(FinalError, match="999"):
        await x_client().upload_video(wrong)

    assert sandbox.state.media == {}


async def test_a_file_that_cannot_be_read_fails_for_good(
    x_client: Callable[..., XClient], media_factory: MediaFactory
) -> None:
    """Unreadable (or gone since it was checked): a final error, not a retry forever."""
    video = media_factory(1000)
    video.path.chmod(0)
    if os.access(video.path, os.R_OK):  # root reads anything: make it a folder instead
        video.path.unlink()
        video.path.mkdir()
        (video.path / "pad").write_bytes(b"x" * 1000)
        video = MediaFile(video.path, video.mime, video.sha256, video.path.stat().st_size)

    with pytest.raises(FinalError, match="cannot read"):
        await x_client().upload_video(video)


async def test_a_429_burst_pauses_the_account_and_resumes_with_no_loss(
    x_client: Callable[..., XClient],
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
    mention_id: Callable[[], str],
) -> None:
    client = x_client()
    await set_faults(
        http, sandbox, x={"429_burst": 3, "reset_after_s": 30, "endpoints": ["tweets_create"]}
    )
    mention = mention_id()

    async def post() -> Any:
        return await client.post_reply(
            ReplyDraft(text="hello", in_reply_to=mention, idempotency_key="r1")
        )

    with pytest.raises(RateLimited) as caught:
        await post()
    assert caught.value.reset_at == pytest.approx(clock() + 30, abs=1)
    assert caught.value.account == "x-campaign"
    assert client.budget.wait_s(TWEETS_CREATE) == pytest.approx(30, abs=1)

    # Paused: the next call is refused here, without a request.
    with pytest.raises(RateLimited):
        await post()
    assert sandbox.state.faults.x.rate_limit_burst == 2

    reply = await retry_after_rate_limits(post, client.budget, sleep=clock.sleep)

    assert [p["id"] for p in await posts(http, sandbox)] == [reply.post_id]
    assert len(clock.sleeps) == 3
    assert all(s == pytest.approx(30, abs=1) for s in clock.sleeps)
    assert client.budget.wait_s(TWEETS_CREATE) == 0


async def test_a_spent_window_is_a_429_with_that_windows_reset(
    x_client: Callable[..., XClient],
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
) -> None:
    await set_faults(http, sandbox, x={"rate_limit": 2, "rate_window_s": 900})
    client = x_client()
    started = clock()

    assert await client.find_reply(in_reply_to="1") is None  # users/me, then the timeline
    windows = client.budget.snapshot()["buckets"]["user_tweets"]
    assert windows[0]["remaining"] == 1
    assert windows[0]["limit"] == 2
    await client.find_reply(in_reply_to="1")
    # The headers said remaining 0 until the window's reset: the third call must wait for it.
    with pytest.raises(RateLimited) as caught:
        await client.find_reply(in_reply_to="1")
    assert caught.value.bucket == "user_tweets"
    assert caught.value.reset_at == pytest.approx(started + 900, abs=1)


async def test_5xx_is_retried_with_backoff_and_jitter_then_succeeds(
    x_client: Callable[..., XClient],
    media_factory: MediaFactory,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
) -> None:
    await set_faults(http, sandbox, x={"5xx": 2, "server_error_status": 503})

    media_id = await x_client().upload_video(media_factory())

    assert sandbox.state.media[("x", media_id)].state == "succeeded"
    first, second = clock.sleeps
    assert 1.0 <= first <= 2.0  # 1 s, plus up to 1 s of jitter
    assert 2.0 <= second <= 3.0


async def test_5xx_that_outlasts_the_attempts_is_retryable(
    x_client: Callable[..., XClient],
    media_factory: MediaFactory,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
) -> None:
    await set_faults(http, sandbox, x={"5xx": 10, "server_error_status": 502})

    with pytest.raises(RetryableError) as caught:
        await x_client(max_attempts=3).upload_video(media_factory())

    assert caught.value.status == 502
    assert caught.value.error["title"] == "Service Unavailable"
    assert len(clock.sleeps) == 2


async def test_a_4xx_is_final_with_the_platforms_error_and_not_retried(
    x_client: Callable[..., XClient],
    http: httpx.AsyncClient,
    sandbox: SandboxServer,
    clock: FakeClock,
    mention_id: Callable[[], str],
) -> None:
    client = x_client()
    await client.post_reply(
        ReplyDraft(text="same words", in_reply_to=mention_id(), idempotency_key="a")
    )

    with pytest.raises(FinalError) as caught:
        await client.post_reply(
            ReplyDraft(text="same words", in_reply_to=mention_id(), idempotency_key="b")
        )

    assert caught.value.status == 403
    assert "duplicate content" in caught.value.error["detail"]
    assert clock.sleeps == []
    assert len(await posts(http, sandbox)) == 1


async def test_a_bad_token_is_final(
    serve: Any,
    sandbox_settings: Callable[..., Any],
    http: httpx.AsyncClient,
    clock: FakeClock,
    publish_settings: SettingsFactory,
) -> None:
    async with serve(sandbox_settings(tokens={"the-real-token": "campaign"})) as strict:
        settings = publish_settings(x_api_base_url=strict.base_url, x_access_token="wrong")
        client = XClient(settings, http, sleep=clock.sleep, clock=clock)

        with pytest.raises(FinalError) as caught:
            await client.user_id()

    assert caught.value.status == 401
    assert caught.value.error["title"] == "Unauthorized"


async def test_a_dropped_connection_is_retried(
    x_client: Callable[..., XClient],
    media_factory: MediaFactory,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    clock: FakeClock,
) -> None:
    await set_faults(http, sandbox, x={"drop": 2, "endpoints": ["media_upload"]})

    media_id = await x_client().upload_video(media_factory())

    assert sandbox.state.media[("x", media_id)].state == "succeeded"
    assert len(clock.sleeps) == 2
    assert sandbox.state.faults.x.drop == 0


async def test_a_post_whose_answer_was_lost_is_found_not_posted_twice(
    x_client: Callable[..., XClient],
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    mention_id: Callable[[], str],
) -> None:
    await set_faults(http, sandbox, x={"drop_after": 1, "endpoints": ["tweets_create"]})
    mention = mention_id()

    reply = await x_client().post_reply(
        ReplyDraft(text="once", in_reply_to=mention, idempotency_key="k")
    )

    [post] = await posts(http, sandbox)
    assert post["id"] == reply.post_id
    assert post["in_reply_to"] == mention


async def test_a_standalone_post_whose_answer_was_lost_is_found_though_x_escapes_its_text(
    x_client: Callable[..., XClient],
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    mention_id: Callable[[], str],
) -> None:
    """X gives a post's text back HTML-escaped with its link on t.co: the retry after
    the lost answer still recognises the post, and posts nothing twice."""
    text = "Q&A <3: what we miss most https://example.org/answer?a=1&b=2"
    await set_faults(http, sandbox, x={"drop_after": 1, "endpoints": ["tweets_create"]})

    reply = await x_client().post_reply(
        ReplyDraft(text=text, in_reply_to=mention_id(), idempotency_key="k", standalone=True)
    )

    [post] = await posts(http, sandbox)
    assert (post["id"], post["in_reply_to"], post["text"]) == (reply.post_id, None, text)


async def test_a_standalone_post_is_found_by_its_text_not_by_another_one(
    x_client: Callable[..., XClient], mention_id: Callable[[], str]
) -> None:
    client = x_client()
    asked = mention_id()
    ours = await client.post_reply(
        ReplyDraft(text="Fish & <chips>", in_reply_to=asked, idempotency_key="a", standalone=True)
    )
    await client.post_reply(
        ReplyDraft(text="Fish & chips", in_reply_to=asked, idempotency_key="b", standalone=True)
    )

    found = await client.find_reply(in_reply_to=asked, text="Fish & <chips>", standalone=True)

    assert found is not None
    assert found.post_id == ours.post_id
    assert await client.find_reply(in_reply_to=asked, text="Fish & <chips>") is None  # threaded
    assert await client.find_reply(in_reply_to=asked, text="Fish", standalone=True) is None


async def test_find_reply_finds_our_reply_among_others(
    x_client: Callable[..., XClient], mention_id: Callable[[], str]
) -> None:
    client = x_client(find_reply_max_pages=3)
    target = mention_id()
    for n in range(12):  # more than one page of 5 would need; the sandbox pages by 100
        await client.post_reply(
            ReplyDraft(text=f"other {n}", in_reply_to=mention_id(), idempotency_key=f"{n}")
        )
    ours = await client.post_reply(
        ReplyDraft(text="the answer", in_reply_to=target, idempotency_key="t")
    )
    await client.post_reply(
        ReplyDraft(text="later", in_reply_to=mention_id(), idempotency_key="later")
    )

    found = await client.find_reply(in_reply_to=target, text="the answer")

    assert found is not None
    assert found.post_id == ours.post_id
    assert found.in_reply_to == target
    assert await client.find_reply(in_reply_to=mention_id()) is None


async def test_delete_post_removes_it_and_a_second_delete_says_gone(
    x_client: Callable[..., XClient],
    media_factory: MediaFactory,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    mention_id: Callable[[], str],
) -> None:
    client = x_client()
    media_id = await client.upload_video(media_factory())
    mention = mention_id()
    reply = await client.post_reply(ReplyDraft(
        text="consent later withdrawn", in_reply_to=mention, media_ids=(media_id,),
        idempotency_key="w",
    ))  # fmt: skip

    assert await client.delete_post(reply.post_id) is True
    assert await posts(http, sandbox) == []
    assert await client.find_reply(in_reply_to=mention) is None
    assert await client.delete_post(reply.post_id) is False


class _Spent:
    """What the adapter says X bills (a :class:`SpendMeter`)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def record(self, call_class: CallClass, calls: int = 1) -> None:
        self.calls += [call_class.value] * calls

    async def pause(self) -> tuple[float, str] | None:
        return None


@pytest.mark.parametrize(
    ("text", "billed"),
    [
        ("see https://example.org/answer", "post_with_url"),
        ("see unhcr.org/kenya", "post_with_url"),  # X links a bare domain too
        ("made with Node.js, e.g. here", "reply"),  # not links to X
    ],
)
async def test_a_post_with_a_link_is_billed_as_one(
    publish_settings: Callable[..., PublishSettings],
    http: httpx.AsyncClient,
    clock: FakeClock,
    mention_id: Callable[[], str],
    *,
    text: str,
    billed: str,
) -> None:
    spent = _Spent()
    client = XClient(publish_settings(), http, spend=spent, sleep=clock.sleep, clock=clock)
    await client.post_reply(ReplyDraft(text=text, in_reply_to=mention_id(), idempotency_key="k"))
    assert spent.calls == [billed]
