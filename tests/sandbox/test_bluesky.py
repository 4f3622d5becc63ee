"""The sandbox's Bluesky subset, as the publisher and ingest use it: a session, a
mention read from notifications, a threaded reply with its video, a take-down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.sandbox import SandboxServer, live_sandbox

ACCOUNT = "takeaction_sandbox"
PASSWORD = "sandbox-bluesky-app-password"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with live_sandbox(tmp_path, tokens={PASSWORD: ACCOUNT}) as server:
        yield server


@pytest.fixture
async def http(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as client:
        yield client


async def xrpc(
    http: httpx.AsyncClient, method: str, nsid: str, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.request(method, f"/xrpc/{nsid}", headers=headers, **kwargs)


async def test_a_mention_is_answered_by_a_threaded_video_reply_and_taken_down(
    http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    refused = await xrpc(
        http,
        "POST",
        "com.atproto.server.createSession",
        json={"identifier": ACCOUNT, "password": "wrong"},
    )
    assert refused.status_code == 401
    opened = await xrpc(
        http,
        "POST",
        "com.atproto.server.createSession",
        json={"identifier": ACCOUNT, "password": PASSWORD},
    )
    assert opened.status_code == 200
    session = opened.json()
    assert int(opened.headers["ratelimit-limit"]) > int(opened.headers["ratelimit-remaining"])
    token, did = session["accessJwt"], session["did"]

    asked = await http.post(
        "/sandbox/posts",
        json={
            "platform": "bluesky",
            "author": {"id": "9001", "handle": "amina.test"},
            "text": f"@{ACCOUNT} what is school like?",
        },
    )
    assert asked.status_code == 201
    listed = (await xrpc(http, "GET", "app.bsky.notification.listNotifications", token)).json()
    [note] = listed["notifications"]
    assert (note["reason"], note["uri"]) == ("mention", asked.json()["id"])
    parent = {"uri": note["uri"], "cid": note["cid"]}

    aud = (await xrpc(http, "GET", "com.atproto.server.describeServer")).json()["did"]
    service = (
        await xrpc(
            http,
            "GET",
            "com.atproto.server.getServiceAuth",
            token,
            params={"aud": aud, "lxm": "com.atproto.repo.uploadBlob"},
        )
    ).json()
    job = (
        await http.post(
            "/xrpc/app.bsky.video.uploadVideo",
            params={"did": did, "name": "a.mp4"},
            content=b"\x00" * 5000,
            headers={"Authorization": f"Bearer {service['token']}", "Content-Type": "video/mp4"},
        )
    ).json()
    status = (
        await xrpc(
            http,
            "GET",
            "app.bsky.video.getJobStatus",
            service["token"],
            params={"jobId": job["jobId"]},
        )
    ).json()["jobStatus"]
    assert status["state"] == "JOB_STATE_COMPLETED"
    record = {
        "$type": "app.bsky.feed.post",
        "text": "An answer from the camp.",
        "createdAt": datetime.now(UTC).isoformat(),
        "reply": {"root": parent, "parent": parent},
        "embed": {"$type": "app.bsky.embed.video", "video": status["blob"], "alt": "a refugee"},
    }
    bad_cid = {**record, "reply": {"root": parent, "parent": {**parent, "cid": "bafyreiwrong"}}}
    wrong = await xrpc(
        http,
        "POST",
        "com.atproto.repo.createRecord",
        token,
        json={"repo": did, "collection": "app.bsky.feed.post", "record": bad_cid},
    )
    assert (wrong.status_code, wrong.json()["error"]) == (400, "InvalidRequest")
    created = await xrpc(
        http,
        "POST",
        "com.atproto.repo.createRecord",
        token,
        json={"repo": did, "collection": "app.bsky.feed.post", "record": record},
    )
    assert created.status_code == 200, created.text
    uri = created.json()["uri"]
    posts = (await http.get("/sandbox/posts")).json()
    reply = next(p for p in posts if p["id"] == uri)
    assert reply["in_reply_to"] == parent["uri"]
    assert reply["media"][0]["alt_text"] == "a refugee"
    seen = (await xrpc(http, "GET", "app.bsky.feed.getPosts", token, params={"uris": uri})).json()
    assert seen["posts"][0]["record"]["reply"]["parent"] == parent

    rkey = uri.rsplit("/", 1)[-1]
    deleted = await xrpc(
        http,
        "POST",
        "com.atproto.repo.deleteRecord",
        token,
        json={"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey},
    )
    assert deleted.status_code == 200
    assert all(p["id"] != uri for p in (await http.get("/sandbox/posts")).json())
    assert sandbox.state.bluesky_session_creations == 1


async def test_an_expired_session_says_so_and_is_refreshed(tmp_path: Path) -> None:
    with live_sandbox(tmp_path, tokens={PASSWORD: ACCOUNT}, bluesky_access_ttl_s=0.01) as sandbox:
        async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
            session = (
                await xrpc(
                    http,
                    "POST",
                    "com.atproto.server.createSession",
                    json={"identifier": ACCOUNT, "password": PASSWORD},
                )
            ).json()
            await asyncio.sleep(0.05)
            expired = await xrpc(
                http, "GET", "app.bsky.notification.listNotifications", session["accessJwt"]
            )
            assert (expired.status_code, expired.json()["error"]) == (400, "ExpiredToken")
            fresh = await xrpc(
                http, "POST", "com.atproto.server.refreshSession", session["refreshJwt"]
            )
            assert fresh.status_code == 200
            again = await xrpc(
                http, "POST", "com.atproto.server.refreshSession", session["refreshJwt"]
            )
            assert again.status_code == 400  # a refresh token is good once
