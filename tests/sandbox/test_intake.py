"""Posts by anyone (``POST /sandbox/posts``), delivered by the platforms' own intake
to the real ingest sources, and X's rule on replies, enforced as X does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.common.media.profiles import bluesky_upload_refusal
from services.ingest.config import IngestSettings, XStreamRule
from services.ingest.sources.bluesky import BlueskyNotifications
from services.ingest.sources.mastodon import MastodonStream
from services.ingest.sources.x import XFilteredStream
from services.sandbox.state import StoredPost
from services.sandbox.x_stream import rule_matches
from tests.helpers.sandbox import MASTODON_TOKEN, X_TOKEN, SandboxServer, live_sandbox
from tests.ingest.helpers.sink import FakeSink

ACCOUNT = "takeaction_sandbox"
ASKER = {"id": "9001", "handle": "amina"}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    tokens = {X_TOKEN: ACCOUNT, MASTODON_TOKEN: ACCOUNT, "ingest-token": ACCOUNT}
    with live_sandbox(tmp_path, tokens=tokens, x_stream_keepalive_s=0.2) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def post(http: httpx.AsyncClient, sandbox: SandboxServer, **fields: Any) -> dict[str, Any]:
    body = {"platform": "x", "author": ASKER, **fields}
    response = await http.post(f"{sandbox.base_url}/sandbox/posts", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(task: Callable[[], Any]) -> AsyncIterator[None]:
    job = asyncio.create_task(task())
    try:
        yield
    finally:
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job


def _post(text: str, **fields: Any) -> StoredPost:
    return StoredPost("x", "1", "9", "amina", None, text, [], 0.0, "", **fields)


def test_stream_rules_evaluate_and_before_or_with_parentheses() -> None:
    hashtag_rule = "(#AskRefugees OR #IWelcome) -is:retweet"
    assert rule_matches("@takeaction_sandbox -is:retweet", _post("@takeaction_sandbox hi?"))
    assert not rule_matches("@takeaction_sandbox -is:retweet", _post("RT @takeaction_sandbox"))
    assert rule_matches(hashtag_rule, _post("school? #iwelcome"))
    assert not rule_matches(hashtag_rule, _post("RT @x: school? #IWelcome"))
    # Without parentheses AND binds first: "#AskRefugees OR (#IWelcome -is:retweet)".
    assert rule_matches("#AskRefugees OR #IWelcome -is:retweet", _post("RT @x #AskRefugees"))


async def test_posts_by_anyone_are_listed_with_their_author(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    first = await post(http, sandbox, text="@takeaction_sandbox what is school like?")
    reply = await post(http, sandbox, text="and football?", in_reply_to=first["id"])
    listed = (await http.get(f"{sandbox.base_url}/sandbox/posts")).json()
    assert [(p["id"], p["in_reply_to"]) for p in listed] == [
        (first["id"], None),
        (reply["id"], first["id"]),
    ]
    fields = {"platform", "author", "text", "in_reply_to", "media", "hidden"}
    assert all(fields <= set(p) for p in listed)
    assert listed[0]["author"] == {"id": "9001", "handle": "amina"}
    assert listed[0]["hidden"] is False
    bad = await http.post(
        f"{sandbox.base_url}/sandbox/posts",
        json={"platform": "x", "author": ASKER, "text": "x", "in_reply_to": "123"},
    )
    assert bad.status_code == 422


async def test_x_refuses_a_reply_to_a_post_that_did_not_summon_the_account(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    hashtag_only = await post(http, sandbox, text="what is school like? #AskRefugees")
    summoned = await post(http, sandbox, text="@TakeAction_Sandbox what is school like?")
    auth = {"Authorization": f"Bearer {X_TOKEN}"}

    async def reply(to: str, text: str) -> httpx.Response:
        body = {"text": text, "reply": {"in_reply_to_tweet_id": to}}
        return await http.post(f"{sandbox.base_url}/2/tweets", json=body, headers=auth)

    refused = await reply(hashtag_only["id"], "an answer")
    assert refused.status_code == 403
    assert refused.json() == {
        "title": "Forbidden",
        "detail": "Reply to this conversation is not allowed because you have not been "
        "mentioned or otherwise engaged by the author of the post you are replying to.",
        "type": "about:blank",
        "status": 403,
    }
    assert (await reply(summoned["id"], "another answer")).status_code == 201
    # Quoting one of the account's posts summons it too.
    ours = (await http.get(f"{sandbox.base_url}/sandbox/posts")).json()[-1]
    quote = await post(http, sandbox, text="this! #AskRefugees", quote_of=ours["id"])
    assert (await reply(quote["id"], "a third answer")).status_code == 201


async def test_the_x_filtered_stream_delivers_matching_posts_to_ingest(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    settings = IngestSettings(
        x_bearer_token=SecretStr("ingest-token"),
        x_api_base_url=sandbox.base_url,
        x_rules=[
            XStreamRule(value=f"@{ACCOUNT} -is:retweet", tag="account"),
            XStreamRule(value="(#AskRefugees) -is:retweet", tag="listen-only:hashtag"),
        ],
        campaign_handles=[ACCOUNT],
    )
    sink = FakeSink()
    stream = XFilteredStream(settings, http, sink, stall_timeout_s=2.0)
    async with running(stream.run):
        await eventually(lambda: len(sandbox.state.listeners) == 1)
        summoned = await post(http, sandbox, text=f"@{ACCOUNT} is school free? #AskRefugees")
        hashtag_only = await post(http, sandbox, text="is school free? #AskRefugees")
        await post(http, sandbox, text="nothing to do with us")
        await eventually(lambda: len(sink.accepted) == 2)
    by_id = {m.native_id: m for m in sink.accepted}
    assert by_id[summoned["id"]].summoned is True
    assert set(by_id[summoned["id"]].matched_rules) == {"account", "listen-only:hashtag"}
    assert by_id[hashtag_only["id"]].summoned is False
    assert by_id[hashtag_only["id"]].matched_rules == ("listen-only:hashtag",)


async def test_mastodon_mentions_come_as_notifications_to_ingest(
    sandbox: SandboxServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    before = await post(
        http, sandbox, platform="mastodon", text=f"@{ACCOUNT} asked before ingest started"
    )
    settings = IngestSettings(
        mastodon_base_url=sandbox.base_url,
        mastodon_access_token=SecretStr(MASTODON_TOKEN),
        campaign_handles=[ACCOUNT],
        state_dir=tmp_path,
    )
    sink = FakeSink()
    stream = MastodonStream(settings, http, sink)
    async with running(stream.run):
        await eventually(lambda: len(sink.accepted) == 1)  # the first catch-up
        await eventually(lambda: len(sandbox.state.listeners) == 1)
        live = await post(http, sandbox, platform="mastodon", text=f"@{ACCOUNT} what is lunch?")
        await post(http, sandbox, platform="mastodon", text="not for us")
        await eventually(lambda: len(sink.accepted) == 2)
    assert [m.native_id for m in sink.accepted] == [before["id"], live["id"]]
    assert all(m.summoned for m in sink.accepted)


async def test_bluesky_video_upload_limits_answer_like_the_video_service(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    url = f"{sandbox.base_url}/xrpc/app.bsky.video.getUploadLimits"
    assert (await http.get(url)).status_code == 401
    auth = {"Authorization": "Bearer service-auth-token"}
    limits = (await http.get(url, headers=auth)).json()
    assert limits == {
        "canUpload": True,
        "remainingDailyVideos": 25,
        "remainingDailyBytes": 10 * 1024**3,
    }
    assert bluesky_upload_refusal(limits, 50_000_000) is None
    sandbox.state.bluesky_video_bytes.extend([1000] * 25)
    spent = (await http.get(url, headers=auth)).json()
    assert spent["canUpload"] is False
    assert (
        bluesky_upload_refusal(spent, 1000) == "Bluesky: You have reached your daily upload limit"
    )


async def test_bluesky_mentions_are_read_from_notifications_with_a_persisted_cursor(
    sandbox: SandboxServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    settings = IngestSettings(
        bluesky_service_url=sandbox.base_url,
        bluesky_identifier=ACCOUNT,
        bluesky_app_password=SecretStr("ingest-token"),
        bluesky_cursor_file=tmp_path / "cursor",
        campaign_handles=[ACCOUNT],
    )
    author = {"id": "did:plc:aminaaminaaminaaminaami", "handle": "amina.test"}
    first = await post(
        http, sandbox, platform="bluesky", author=author, text=f"@{ACCOUNT} what is school like?"
    )
    await post(http, sandbox, platform="bluesky", author=author, text="nothing for us")
    sink = FakeSink()
    source = BlueskyNotifications(settings, http, sink)

    assert await source.poll_once() == 1
    assert await source.poll_once() == 0  # nothing new
    [mention] = sink.accepted
    assert mention.id == f"bluesky:{first['id']}"
    assert (mention.author.id, mention.author.handle) == (author["id"], "amina.test")
    assert mention.summoned is True
    assert mention.matched_rules == ("bluesky:mention",)

    restarted = BlueskyNotifications(settings, http, sink)  # the cursor survived
    assert await restarted.poll_once() == 0
    reply = await post(
        http,
        sandbox,
        platform="bluesky",
        author=author,
        text=f"@{ACCOUNT} and the food?",
        in_reply_to=first["id"],
    )
    assert await restarted.poll_once() == 1
    assert sink.accepted[-1].in_reply_to == first["id"]
    assert sink.accepted[-1].native_id == reply["id"]
