"""Each platform's protection calls against the sandbox: the replies under one of
our answers are read (not ours, not elsewhere), one is hidden as the platform
allows — X hides it, Bluesky's thread gate hides it, Mastodon mutes its author
and reports it — shown again, and hiding twice changes nothing; a Mastodon report
is one request, never repeated."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from services.common.messages import Platform as PlatformName
from services.publish.config import PublishSettings
from services.publish.exceptions import FinalError, RetryableError
from services.publish.platforms import build_platforms
from services.publish.platforms.base import (
    Moderation,
    Platform,
    ReplyDraft,
    ReplyTarget,
    Reporting,
)
from services.publish.platforms.mastodon import MastodonClient
from tests.helpers.sandbox import SandboxServer, posts

pytestmark = pytest.mark.timeout(60)

ACCOUNT = "takeaction_sandbox"


@pytest.fixture
async def platforms(
    sandbox: SandboxServer, publish_settings: Callable[..., PublishSettings]
) -> AsyncIterator[dict[PlatformName, Platform]]:
    async def no_wait(_: float) -> None:
        await asyncio.sleep(0)

    async with httpx.AsyncClient(timeout=10) as client:
        yield build_platforms(publish_settings(), client, sleep=no_wait)


async def _post(http: httpx.AsyncClient, sandbox: SandboxServer, **fields: Any) -> str:
    response = await http.post(f"{sandbox.base_url}/sandbox/posts", json=fields)
    assert response.status_code == 201, response.text
    post_id: str = response.json()["id"]
    return post_id


async def _answer_with_replies(
    http: httpx.AsyncClient, sandbox: SandboxServer, platform: Platform
) -> tuple[str, list[str], str]:
    """An asker's post, our answer under it, two replies under the answer by others and
    one reply elsewhere in the thread: (answer id, the two reply ids, the other one)."""
    name = platform.name.value
    asked = await _post(
        http, sandbox, platform=name, author={"id": "11", "handle": "asker"},
        text=f"@{ACCOUNT} what do you dream of?",
    )  # fmt: skip
    answer = await platform.post_reply(
        ReplyDraft(text="To be a doctor.", in_reply_to=asked, idempotency_key=f"answer-{name}")
    )
    replies = [
        await _post(
            http,
            sandbox,
            platform=name,
            author={"id": str(20 + n), "handle": f"troll{n}"},
            text=text,
            in_reply_to=answer.post_id,
        )
        for n, text in enumerate(("go back where you came from", "what a lovely answer"))
    ]
    elsewhere = await _post(
        http, sandbox, platform=name, author={"id": "30", "handle": "other"},
        text="replying to the asker, not to us", in_reply_to=asked,
    )  # fmt: skip
    return answer.post_id, replies, elsewhere


def _hidden(listed: list[dict[str, Any]]) -> dict[str, bool]:
    return {p["id"]: p["hidden"] for p in listed}


@pytest.mark.parametrize("name", [PlatformName.X, PlatformName.MASTODON, PlatformName.BLUESKY])
async def test_replies_under_our_answer_are_read_hidden_and_shown_again(
    name: PlatformName,
    platforms: dict[PlatformName, Platform],
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    platform = platforms[name]
    assert isinstance(platform, Moderation)
    answer, (abusive, kind), elsewhere = await _answer_with_replies(http, sandbox, platform)

    seen = await platform.replies_under(answer)
    assert [r.native_id for r in seen] == [abusive, kind]
    assert [r.text for r in seen] == ["go back where you came from", "what a lovely answer"]
    if name is not PlatformName.BLUESKY:  # on Bluesky an author is a DID and a handle
        assert (seen[0].author_id, seen[0].author_handle) == ("20", "troll0")

    target = ReplyTarget(abusive, seen[0].author_id, answer)
    how = await platform.hide_reply(target, True)
    assert how == {"x": "hidden", "mastodon": "muted", "bluesky": "hidden"}[name.value]
    assert isinstance(platform, Reporting) is (name is PlatformName.MASTODON)
    if isinstance(platform, Reporting):
        await platform.report_reply(target, "threat")
    state = _hidden(await posts(http, sandbox))
    assert (state[abusive], state[kind], state[elsewhere], state[answer]) == (
        True, False, False, False,
    )  # fmt: skip
    await platform.hide_reply(target, True)  # again: nothing changes
    assert _hidden(await posts(http, sandbox))[abusive] is True
    calls = (await http.get(f"{sandbox.base_url}/sandbox/moderation")).json()
    changed = [c for c in calls if c.get("post_id") == abusive and c["changed"]]
    assert len(changed) == 1
    if name is PlatformName.MASTODON:
        [report] = [c for c in calls if c["call"] == "report"]
        assert (report["status_ids"], report["comment"]) == ([abusive], "threat")

    shown = await platform.hide_reply(target, False)
    assert shown in ("shown", "unmuted")
    assert _hidden(await posts(http, sandbox))[abusive] is False


async def test_a_mastodon_report_that_fails_without_an_answer_is_not_sent_again(
    publish_settings: Callable[..., PublishSettings],
) -> None:
    """No idempotency key for reports: after a 5xx (the instance may have filed it)
    the report is not sent again, though the next answer would be a success."""
    answers = [503, 200]
    reports: list[dict[str, Any]] = []

    def instance(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/api/v1/reports")
        reports.append(json.loads(request.content))
        code = answers.pop(0)
        body = {"id": "1"} if code == 200 else {"error": "upstream timed out"}
        return httpx.Response(code, json=body)

    async def no_wait(_: float) -> None:
        await asyncio.sleep(0)

    settings = publish_settings(mastodon_base_url="https://mastodon.test")
    async with httpx.AsyncClient(transport=httpx.MockTransport(instance)) as http:
        client = MastodonClient(settings, http, sleep=no_wait)
        with pytest.raises(RetryableError, match="503"):
            await client.report_reply(ReplyTarget("9001", "66", "8001"), "threat")
    assert reports == [
        {"account_id": "66", "status_ids": ["9001"], "comment": "threat", "forward": False}
    ]


async def test_x_refuses_to_hide_a_post_that_is_not_a_reply_to_ours(
    platforms: dict[PlatformName, Platform], sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    platform = platforms[PlatformName.X]
    assert isinstance(platform, Moderation)
    answer, _, elsewhere = await _answer_with_replies(http, sandbox, platform)
    with pytest.raises(FinalError, match="403"):
        await platform.hide_reply(ReplyTarget(elsewhere, "30", answer), True)
    assert _hidden(await posts(http, sandbox))[elsewhere] is False


async def test_x_reads_only_replies_newer_than_the_last_seen(
    platforms: dict[PlatformName, Platform], sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    platform = platforms[PlatformName.X]
    assert isinstance(platform, Moderation)
    answer, (first, second), _ = await _answer_with_replies(http, sandbox, platform)
    newer = await platform.replies_under(answer, since_id=first)
    assert [r.native_id for r in newer] == [second]


async def test_bluesky_quotes_are_read_and_detached_by_the_post_gate(
    platforms: dict[PlatformName, Platform], sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    platform = platforms[PlatformName.BLUESKY]
    assert isinstance(platform, Moderation)
    answer, (reply, _), _ = await _answer_with_replies(http, sandbox, platform)
    quote = await _post(
        http, sandbox, platform="bluesky", author={"id": "40", "handle": "quoter"},
        text="look at this nonsense, send them back", quote_of=answer,
    )  # fmt: skip
    seen = {r.native_id: r.kind for r in await platform.replies_under(answer)}
    assert seen[quote] == "quote"
    assert seen[reply] == "reply"
    target = ReplyTarget(quote, "did:plc:whoever", answer, kind="quote")
    assert await platform.hide_reply(target, True) == "detached"
    state = _hidden(await posts(http, sandbox))
    assert (state[quote], state[reply]) == (True, False)  # the thread gate is untouched
    assert await platform.hide_reply(target, False) == "attached"
    assert _hidden(await posts(http, sandbox))[quote] is False


async def test_x_replies_under_our_answer_read_as_they_were_written(
    platforms: dict[PlatformName, Platform], sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    """X gives texts back HTML-escaped with their links on t.co: read as written."""
    platform = platforms[PlatformName.X]
    assert isinstance(platform, Moderation)
    asked = await _post(
        http, sandbox, platform="x", author={"id": "11", "handle": "asker"},
        text=f"@{ACCOUNT} what do you dream of?",
    )  # fmt: skip
    answer = await platform.post_reply(
        ReplyDraft(text="To be a doctor.", in_reply_to=asked, idempotency_key="answer")
    )
    text = "you & <them> https://example.org/x?a=1&b=2"
    await _post(
        http, sandbox, platform="x", author={"id": "21", "handle": "someone"}, text=text,
        in_reply_to=answer.post_id,
    )  # fmt: skip

    [seen] = await platform.replies_under(answer.post_id)

    assert seen.text == text
