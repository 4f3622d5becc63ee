"""The Bluesky source against the real Bluesky server software (``@atproto/dev-env``:
a PDS, a PLC directory and the AppView; ``make pds``): the AppView honours the
``reasons`` the source asks for, so likes, reposts and follows do not fill its
pages, and a backlog bigger than one poll is read down to the cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.ingest.config import IngestSettings
from services.ingest.sources import bluesky
from services.ingest.sources.bluesky import BlueskyNotifications
from tests.ingest.helpers.sink import FakeSink
from tests.publish.test_bluesky_pds import Network, ask, network

__all__ = ["network"]  # the module-scoped fixture, shared with the publisher's test

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def _session(network: Network, http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    account = network.account(name)
    response = await http.post(
        f"{network.pds}/xrpc/com.atproto.server.createSession",
        json={"identifier": account["handle"], "password": account["password"]},
    )
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


async def _create(
    network: Network, http: httpx.AsyncClient, session: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any]:
    record = {**record, "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
    response = await http.post(
        f"{network.pds}/xrpc/com.atproto.repo.createRecord",
        json={"repo": session["did"], "collection": record["$type"], "record": record},
        headers={"Authorization": f"Bearer {session['accessJwt']}"},
    )
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_only_questions_are_listed_and_a_backlog_is_read_down_to_the_cursor(
    network: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bluesky, "PAGE", 2)  # a backlog of a few entries spans pages
    listed: list[dict[str, Any]] = []

    async def keep_listed(response: httpx.Response) -> None:
        if response.url.path.endswith("listNotifications") and response.is_success:
            await response.aread()
            listed.extend(response.json()["notifications"])

    campaign = network.account("campaign")
    async with httpx.AsyncClient(timeout=30, event_hooks={"response": [keep_listed]}) as http:
        owner = await _session(network, http, "campaign")
        asker = await _session(network, http, "asker")
        posts = [
            await _create(
                network, http, owner, {"$type": "app.bsky.feed.post", "text": f"answer {n}"}
            )
            for n in range(4)
        ]
        first = await ask(network, http, campaign)
        network.process_all()
        sink = FakeSink()
        source = BlueskyNotifications(
            IngestSettings(
                bluesky_service_url=network.pds,
                bluesky_identifier=campaign["handle"],
                bluesky_app_password=SecretStr(campaign["password"]),
                state_dir=tmp_path,
                bluesky_max_pages=1,
            ),
            http,
            sink,
        )
        assert await source.poll_once() == 1  # no cursor yet: the newest page
        assert sink.ids == [first]

        # Away: 5 questions among likes, reposts and a follow.
        questions = []
        for n in range(5):
            questions.append(await ask(network, http, campaign))
            subject = {"uri": posts[n % 4]["uri"], "cid": posts[n % 4]["cid"]}
            await _create(network, http, asker, {"$type": "app.bsky.feed.like", "subject": subject})
            if n % 2:
                await _create(
                    network, http, asker, {"$type": "app.bsky.feed.repost", "subject": subject}
                )
        await _create(
            network, http, asker, {"$type": "app.bsky.graph.follow", "subject": owner["did"]}
        )
        network.process_all()
        listed.clear()

        # One page (the AppView filters each page it reads: it may give fewer than 2).
        await source.poll_once()
        assert source.catching_up
        while source.catching_up:
            await source.poll_once()

        assert sorted(sink.ids[-5:]) == sorted(questions)
        assert len(sink.submitted) == len(set(sink.submitted))
        assert {entry["reason"] for entry in listed} == {"mention"}, "the AppView filtered"
        newest = max((e["indexedAt"], e["uri"]) for e in listed)
        assert source.cursor == newest
        assert newest[1] == questions[-1]
