"""The Bluesky adapter against the sandbox's AT Protocol subset: one session reused
and refreshed, a threaded reply with its video, found again, taken down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.publish.config import PublishSettings
from services.publish.exceptions import RetryableError
from services.publish.platforms import BlueskyClient, MediaFile, ReplyDraft, bluesky
from tests.helpers.sandbox import SandboxServer, live_sandbox

pytestmark = pytest.mark.timeout(60)

ACCOUNT = "takeaction_sandbox"
PASSWORD = "bluesky-app-password-for-tests"


@pytest.fixture
def bsky(tmp_path: Path) -> Iterator[SandboxServer]:
    with live_sandbox(tmp_path, tokens={PASSWORD: ACCOUNT}) as server:
        yield server


@pytest.fixture
async def client(bsky: SandboxServer) -> AsyncIterator[BlueskyClient]:
    settings = PublishSettings(
        bluesky_service_url=bsky.base_url,
        bluesky_video_url=bsky.base_url,
        bluesky_identifier=ACCOUNT,
        bluesky_app_password=SecretStr(PASSWORD),
    )
    async with httpx.AsyncClient(timeout=10) as http:

        async def no_wait(_: float) -> None:
            await asyncio.sleep(0)

        yield BlueskyClient(settings, http, sleep=no_wait)


async def ask(bsky: SandboxServer, text: str, **fields: Any) -> str:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{bsky.base_url}/sandbox/posts",
            json={
                "platform": "bluesky",
                "author": {"id": "77", "handle": "amina.test"},
                "text": text,
                **fields,
            },
        )
    assert response.status_code == 201, response.text
    uri: str = response.json()["id"]
    return uri


async def test_a_threaded_video_reply_goes_out_is_found_again_and_taken_down(
    client: BlueskyClient, bsky: SandboxServer, media_factory: Callable[..., MediaFile]
) -> None:
    question = await ask(bsky, f"@{ACCOUNT} what is school like?")
    follow_up = await ask(bsky, "and the food?", in_reply_to=question)

    job = await client.upload_video(media_factory(alt_text="a refugee answers"))
    posted = await client.post_reply(
        ReplyDraft(
            text="An answer from the camp.",
            in_reply_to=follow_up,
            media_ids=(job,),
            language="en",
            idempotency_key="r-1",
        )
    )

    record = bsky.state.bluesky_records[posted.post_id]
    assert record["reply"]["parent"]["uri"] == follow_up
    assert record["reply"]["root"]["uri"] == question  # the thread's root, not the parent
    assert record["embed"]["$type"] == "app.bsky.embed.video"
    assert record["embed"]["alt"] == "a refugee answers"
    assert record["langs"] == ["en"]
    found = await client.find_reply(in_reply_to=follow_up, text="An answer from the camp.")
    assert found is not None
    assert found.post_id == posted.post_id
    assert client.sessions_created == 1  # one session for everything
    assert bsky.state.bluesky_session_creations == 1

    assert await client.delete_post(posted.post_id) is True
    assert ("bluesky", posted.post_id) not in bsky.state.posts
    assert await client.find_reply(in_reply_to=follow_up) is None


async def test_a_standalone_post_is_found_again_as_a_post_of_its_own(
    client: BlueskyClient, bsky: SandboxServer
) -> None:
    question = await ask(bsky, "#TakeAction what is school like?")
    posted = await client.post_reply(
        ReplyDraft(
            text="An answer from the camp.",
            in_reply_to=question,
            idempotency_key="r-1",
            standalone=True,
        )
    )

    found = await client.find_reply(
        in_reply_to=question, text="An answer from the camp.", standalone=True
    )

    assert "reply" not in bsky.state.bluesky_records[posted.post_id]
    assert found is not None
    assert found.post_id == posted.post_id
    assert await client.find_reply(in_reply_to=question, text="An answer from the camp.") is None
    assert await client.find_reply(in_reply_to=question, text="Another.", standalone=True) is None


async def test_an_expired_token_is_refreshed_not_a_new_session(
    client: BlueskyClient, bsky: SandboxServer
) -> None:
    question = await ask(bsky, f"@{ACCOUNT} hello?")
    await client.find_reply(in_reply_to=question)
    for session in bsky.state.bluesky_sessions.values():
        session.expires_at = 0.0  # every access token expired

    posted = await client.post_reply(
        ReplyDraft(text="hi", in_reply_to=question, idempotency_key="r-2")
    )

    assert posted.post_id.startswith("at://")
    assert bsky.state.bluesky_session_creations == 1  # refreshed, not created again
    assert client.budget.account == ACCOUNT


async def test_rate_limit_headers_are_read(client: BlueskyClient, bsky: SandboxServer) -> None:
    question = await ask(bsky, f"@{ACCOUNT} hello?")
    await client.find_reply(in_reply_to=question)
    assert client.budget.wait_s("read") == 0.0
    windows = client.budget._windows["read"]
    assert windows[0].limit == 3000
    assert windows[0].remaining is not None


async def test_an_uploaded_video_is_forgotten_once_posted_and_never_posted_ones_are_bounded(
    client: BlueskyClient,
    bsky: SandboxServer,
    media_factory: Callable[..., MediaFile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The blob of each upload is kept until its post: a long-running publisher must
    not keep every video it ever sent (nor those held or refused after the upload)."""
    monkeypatch.setattr(bluesky, "MAX_UPLOADS_KEPT", 2, raising=False)
    question = await ask(bsky, f"@{ACCOUNT} what is school like?")
    job = await client.upload_video(media_factory())
    await client.post_reply(
        ReplyDraft(text="An answer.", in_reply_to=question, media_ids=(job,), idempotency_key="r")
    )
    assert len(client._blobs) == 0

    for _ in range(3):  # uploaded, then never posted (a pause, a withdrawal meanwhile)
        last = await client.upload_video(media_factory())
    assert len(client._blobs) == 2
    again = await ask(bsky, f"@{ACCOUNT} and the food?")
    posted = await client.post_reply(
        ReplyDraft(text="Another.", in_reply_to=again, media_ids=(last,), idempotency_key="r2")
    )
    assert bsky.state.bluesky_records[posted.post_id]["embed"]["$type"] == "app.bsky.embed.video"
    with pytest.raises(RetryableError, match="upload it again"):
        await client.post_reply(
            ReplyDraft(text="Gone.", in_reply_to=again, media_ids=(job,), idempotency_key="r3")
        )
