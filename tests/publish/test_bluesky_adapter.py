"""The Bluesky adapter against a scripted PDS (``httpx.MockTransport``): what the
sandbox does not do — more of the account's posts than one ``listRecords`` page,
and a PDS answering a success with a body that does not fit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.publish.config import PublishSettings
from services.publish.exceptions import RateLimited, RetryableError
from services.publish.platforms import BlueskyClient, MediaFile, ReplyDraft
from services.publish.ratelimit import MAX_WAIT_S

pytestmark = pytest.mark.timeout(30)

DID = "did:plc:campaign"
PDS = "https://pds.test"
ASKED = "at://did:plc:asker/app.bsky.feed.post/3asked"
OURS = f"at://{DID}/app.bsky.feed.post/3ours"

Route = Callable[[httpx.Request], httpx.Response]


def _session(_: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, json={"did": DID, "handle": "campaign.test", "accessJwt": "a", "refreshJwt": "r"}
    )


def _record(uri: str, parent: str, text: str) -> dict[str, Any]:
    ref = {"uri": parent, "cid": "bafyparent"}
    return {
        "uri": uri,
        "cid": "bafy" + uri[-6:],
        "value": {
            "$type": "app.bsky.feed.post",
            "text": text,
            "reply": {"root": ref, "parent": ref},
        },
    }


def _client(routes: dict[str, Route], **overrides: Any) -> tuple[BlueskyClient, httpx.AsyncClient]:
    def handle(request: httpx.Request) -> httpx.Response:
        route = routes.get(request.url.path.rsplit("/", 1)[-1])
        if route is None:
            return httpx.Response(404, json={"error": "NotFound"})
        return route(request)

    routes.setdefault("com.atproto.server.createSession", _session)
    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    settings = PublishSettings(
        bluesky_service_url=PDS,
        bluesky_identifier="campaign.test",
        bluesky_app_password=SecretStr("app-password-for-tests"),
        **overrides,
    )

    async def no_wait(_: float) -> None:
        await asyncio.sleep(0)

    return BlueskyClient(settings, http, sleep=no_wait), http


async def test_find_reply_reads_past_the_first_page_of_the_accounts_posts() -> None:
    """Our reply behind 100 newer posts of the account is still found: not finding it
    would post it a second time."""
    newer = [
        _record(f"at://{DID}/app.bsky.feed.post/3n{n:04d}", f"at://other/p/{n}", "another")
        for n in range(100)
    ]
    pages = {
        None: {"records": newer, "cursor": "page-2"},
        "page-2": {"records": [_record(OURS, ASKED, "Our answer.")]},
    }
    asked_for: list[str | None] = []

    def list_records(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        asked_for.append(cursor)
        return httpx.Response(200, json=pages[cursor])

    client, http = _client({"com.atproto.repo.listRecords": list_records})
    async with http:
        found = await client.find_reply(in_reply_to=ASKED, text="Our answer.")

    assert found is not None
    assert found.post_id == OURS
    assert asked_for == [None, "page-2"]


async def test_find_reply_reads_no_more_pages_than_configured() -> None:
    calls = 0

    def list_records(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        other = _record(f"at://{DID}/app.bsky.feed.post/3n{calls:04d}", "at://other/p", "x")
        return httpx.Response(200, json={"records": [other], "cursor": f"c{calls}"})

    client, http = _client({"com.atproto.repo.listRecords": list_records}, find_reply_max_pages=3)
    async with http:
        assert await client.find_reply(in_reply_to=ASKED, text="Our answer.") is None
    assert calls == 3


def _thread(_: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, json={"posts": [{"uri": ASKED, "cid": "bafyasked", "record": {"text": "?"}}]}
    )


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"cid": "bafyours"}),  # no uri
        httpx.Response(200, text="<html>gateway</html>"),  # not JSON
        httpx.Response(200, json=["not", "an", "object"]),
    ],
    ids=["no-uri", "not-json", "not-an-object"],
)
async def test_a_create_answered_with_a_body_that_does_not_fit_is_retryable(
    answer: httpx.Response,
) -> None:
    """The post may have gone out: the publisher must be told to try again (and look
    for it first), not be handed a KeyError that dead-letters the request and leaves
    the reply ``sending`` for ever."""
    client, http = _client(
        {
            "app.bsky.feed.getPosts": _thread,
            "com.atproto.repo.createRecord": lambda _: answer,
            "com.atproto.repo.listRecords": lambda _: httpx.Response(200, json={"records": []}),
        }
    )
    async with http:
        with pytest.raises(RetryableError, match="createRecord"):
            await client.post_reply(
                ReplyDraft(text="Our answer.", in_reply_to=ASKED, idempotency_key="r-1")
            )


async def test_a_create_whose_answer_does_not_fit_but_went_out_is_found() -> None:
    posted: list[dict[str, Any]] = []

    def create(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content)["record"])
        return httpx.Response(200, text="")

    def list_records(_: httpx.Request) -> httpx.Response:
        records = [_record(OURS, ASKED, r["text"]) for r in posted]
        return httpx.Response(200, json={"records": records})

    client, http = _client(
        {
            "app.bsky.feed.getPosts": _thread,
            "com.atproto.repo.createRecord": create,
            "com.atproto.repo.listRecords": list_records,
        }
    )
    async with http:
        found = await client.post_reply(
            ReplyDraft(text="Our answer.", in_reply_to=ASKED, idempotency_key="r-1")
        )
    assert found.post_id == OURS
    assert len(posted) == 1


async def test_a_parent_without_a_cid_is_retryable_not_a_key_error() -> None:
    client, http = _client(
        {"app.bsky.feed.getPosts": lambda _: httpx.Response(200, json={"posts": [{"uri": ASKED}]})}
    )
    async with http:
        with pytest.raises(RetryableError, match="getPosts"):
            await client.post_reply(
                ReplyDraft(text="Our answer.", in_reply_to=ASKED, idempotency_key="r-1")
            )


async def test_a_429_waits_for_retry_after_on_the_budgets_clock() -> None:
    """A 429 with only ``Retry-After`` pauses the account that long (it paused 60 s
    by the wall clock, whatever the PDS said); a far-off reset a day at most."""
    now = 1_800_000_000.0

    def limited(_: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "120"}, json={"error": "RateLimit"})

    client, http = _client({"com.atproto.repo.listRecords": limited})
    client.budget.clock = lambda: now
    async with http:
        with pytest.raises(RateLimited) as caught:
            await client.find_reply(in_reply_to=ASKED, text="Our answer.")
    assert caught.value.reset_at == now + 120
    assert client.budget.paused_until == now + 120

    def far_off(_: httpx.Request) -> httpx.Response:
        headers = {"ratelimit-remaining": "0", "ratelimit-reset": "99999999999"}
        return httpx.Response(429, headers=headers, json={"error": "RateLimit"})

    client, http = _client({"com.atproto.repo.listRecords": far_off})
    client.budget.clock = lambda: now
    async with http:
        with pytest.raises(RateLimited) as caught:
            await client.find_reply(in_reply_to=ASKED, text="Our answer.")
    assert caught.value.reset_at == now + MAX_WAIT_S


def _video_routes(upload: Route, job_status: Route) -> dict[str, Route]:
    def answer(body: dict[str, Any]) -> Route:
        return lambda _: httpx.Response(200, json=body)

    return {
        "com.atproto.server.getServiceAuth": answer({"token": "service-token"}),
        "com.atproto.server.describeServer": answer({"did": "did:web:pds.test"}),
        "app.bsky.video.getUploadLimits": answer({"canUpload": True}),
        "app.bsky.video.uploadVideo": upload,
        "app.bsky.video.getJobStatus": job_status,
    }


def _done(_: httpx.Request) -> httpx.Response:
    blob = {"$type": "blob", "ref": {"$link": "bafyvideo"}, "mimeType": "video/mp4", "size": 9}
    return httpx.Response(200, json={"jobStatus": {"state": "JOB_STATE_COMPLETED", "blob": blob}})


async def test_the_video_goes_up_with_the_uploads_timeout_not_the_api_calls(
    media_factory: Callable[..., MediaFile],
) -> None:
    """A phone's video may take minutes to send: the upload gets PUBLISH_UPLOAD_TIMEOUT_S
    (it ran on the shared client's 30 s, as every API call)."""
    timeouts: list[dict[str, Any]] = []

    def upload(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return httpx.Response(200, json={"jobStatus": {"jobId": "job-1", "state": "QUEUED"}})

    client, http = _client(_video_routes(upload, _done), upload_timeout_s=420.0)
    async with http:
        assert await client.upload_video(media_factory()) == "job-1"
    assert timeouts[0]["read"] == 420.0
    assert timeouts[0]["connect"] == 10.0


@pytest.mark.parametrize(
    ("upload_body", "status_body"),
    [
        (b"<html>busy</html>", None),
        (b'{"jobStatus": "queued"}', None),
        (b'{"jobId": "job-1"}', b'{"jobStatus": ["done"]}'),
        (b'{"jobId": "job-1"}', b"[]"),
    ],
)
async def test_a_video_service_answer_that_does_not_fit_is_retryable(
    media_factory: Callable[..., MediaFile], upload_body: bytes, status_body: bytes | None
) -> None:
    """Not a KeyError, AttributeError or JSONDecodeError that dead-letters the reply."""

    def upload(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=upload_body)

    def job_status(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=status_body or b"{}")

    client, http = _client(_video_routes(upload, job_status))
    async with http:
        with pytest.raises(RetryableError, match="unexpected bluesky response"):
            await client.upload_video(media_factory())
