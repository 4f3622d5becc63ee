"""Bluesky source against a fake PDS (HTTP boundary): a backlog bigger than one poll
is read down to the cursor and nothing in it is lost; every error of a poll is
logged and the source polls again."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.common.messages import MentionReceived, Source
from services.ingest.config import IngestSettings
from services.ingest.sink import SubmitResult
from services.ingest.sources.bluesky import (
    MAX_RATE_LIMIT_WAIT_S,
    BlueskyError,
    BlueskyNotifications,
    rate_limit_wait_s,
)
from tests.ingest.helpers.fake_bluesky import CREATE_SESSION, NOTIFICATIONS, FakePds
from tests.ingest.helpers.sink import FakeSink

QUESTIONS = ("mention", "reply", "quote")
NOISE = ("like", "like", "repost", "follow")


@pytest.fixture
def pds() -> FakePds:
    return FakePds()


@pytest.fixture
async def http(pds: FakePds) -> AsyncIterator[httpx.AsyncClient]:
    async with pds.client() as client:
        yield client


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., IngestSettings]:
    def make(**overrides: Any) -> IngestSettings:
        fields: dict[str, Any] = {
            "bluesky_service_url": "https://pds.test",
            "bluesky_identifier": "takeaction.test",
            "bluesky_app_password": SecretStr("app-password"),
            "state_dir": tmp_path / "state",
            "bluesky_poll_s": 10.0,
        }
        fields.update(overrides)
        return IngestSettings(**fields)

    return make


def cursor_file(settings: IngestSettings) -> dict[str, str]:
    saved: dict[str, str] = json.loads(settings.bluesky_cursor_path.read_text(encoding="utf-8"))
    return saved


def key(entry: dict[str, Any]) -> tuple[str, str]:
    return (entry["indexedAt"], entry["uri"])


class Stop(Exception):
    """Ends a run() loop from its sleep, the one place outside its error handling."""


class Sleeps:
    """Injected sleep: records the waits; the ``polls``-th ends the run."""

    def __init__(self, polls: int) -> None:
        self.polls = polls
        self.waits: list[float] = []

    async def __call__(self, wait: float) -> None:
        self.waits.append(wait)
        if len(self.waits) >= self.polls:
            raise Stop


# --- a backlog bigger than one poll ---------------------------------------------------


@pytest.mark.parametrize("honours_reasons", [True, False], ids=["reasons", "no-reasons"])
async def test_a_backlog_bigger_than_one_poll_is_read_down_to_the_cursor(
    pds: FakePds,
    http: httpx.AsyncClient,
    settings_factory: Callable[..., IngestSettings],
    honours_reasons: bool,
) -> None:
    pds.honours_reasons = honours_reasons
    settings = settings_factory(bluesky_max_pages=2)  # 100 notifications a poll
    sink = FakeSink(expect_source=Source.BLUESKY)
    source = BlueskyNotifications(settings, http, sink)
    first = pds.notify("mention")
    assert await source.poll_once() == 1
    assert source.cursor == key(first)

    # Ingest away: 180 questions among 450 likes, reposts and follows.
    questions = []
    for n in range(180):
        questions.append(pds.notify(QUESTIONS[n % 3]))
        for reason in NOISE[: 1 + n % 4]:
            pds.notify(reason)
    assert len(pds.notifications) > 600

    polls = 0
    before = pds.pages_read()
    while True:
        await source.poll_once()
        polls += 1
        if not source.catching_up:
            break
        # Until the backlog is read down to the cursor, the cursor stays.
        assert source.cursor == key(first)
        assert cursor_file(settings) == {"indexedAt": first["indexedAt"], "uri": first["uri"]}
        assert polls < 20

    expected = [first, *questions]
    assert sorted(m.native_id for m in sink.accepted) == sorted(e["uri"] for e in expected)
    assert len(sink.submitted) == len(set(sink.submitted)), "each mention submitted once"
    newest = pds.notifications[-1] if not honours_reasons else questions[-1]
    assert source.cursor == key(newest)
    assert cursor_file(settings) == {"indexedAt": newest["indexedAt"], "uri": newest["uri"]}
    pages = pds.pages_read() - before
    assert pages == (4 if honours_reasons else 13)  # 181 vs 631 entries, 50 a page
    asked = [q for nsid, q in pds.calls if nsid == NOTIFICATIONS]
    assert all(sorted(q["reasons"]) == ["mention", "quote", "reply"] for q in asked)

    # Caught up: the next poll reads one page and takes only what is new.
    later = pds.notify("reply")
    pds.notify("like")
    assert await source.poll_once() == 1
    assert sink.accepted[-1].native_id == later["uri"]

    # A restart resumes from the file.
    restarted = BlueskyNotifications(settings, http, sink)
    assert restarted.cursor == source.cursor
    assert await restarted.poll_once() == 0


async def test_a_backlog_poll_the_sink_refuses_is_read_again(
    pds: FakePds, http: httpx.AsyncClient, settings_factory: Callable[..., IngestSettings]
) -> None:
    settings = settings_factory(bluesky_max_pages=1)
    sink = FakeSink()
    source = BlueskyNotifications(settings, http, sink)
    first = pds.notify("mention")
    await source.poll_once()
    backlog = [pds.notify("mention") for _ in range(120)]

    assert await source.poll_once() == 50
    assert source.catching_up
    sink.fail_submits = 1  # the broker goes away for the second part
    with pytest.raises(Exception, match="fake outage"):
        await source.poll_once()
    assert source.catching_up
    assert source.cursor == key(first)
    while source.catching_up:
        await source.poll_once()

    assert sorted(sink.ids) == sorted(e["uri"] for e in [first, *backlog])
    assert source.cursor == key(backlog[-1])


async def test_the_first_start_takes_one_poll_of_pages(
    pds: FakePds, http: httpx.AsyncClient, settings_factory: Callable[..., IngestSettings]
) -> None:
    """No cursor yet: no known point to read down to; the newest pages are taken."""
    everything = [pds.notify("mention") for _ in range(120)]  # within the last hour
    sink = FakeSink()
    source = BlueskyNotifications(settings_factory(bluesky_max_pages=2), http, sink)

    assert await source.poll_once() == 100
    assert not source.catching_up
    assert sink.ids == [e["uri"] for e in everything[20:]]  # oldest first
    assert source.cursor == key(everything[-1])


async def test_the_first_start_takes_only_the_dedupe_window(
    pds: FakePds, http: httpx.AsyncClient, settings_factory: Callable[..., IngestSettings]
) -> None:
    """Older mentions may have been produced before, and the dedupe memory would not
    recognise them: a first start (or a lost cursor) does not produce them again."""
    older = [pds.notify("mention", age=timedelta(hours=h)) for h in (80, 73)]
    recent = [pds.notify("mention", age=timedelta(hours=h)) for h in (71, 2)]
    sink = FakeSink()
    source = BlueskyNotifications(settings_factory(dedupe_window_hours=72), http, sink)

    assert await source.poll_once() == 2
    assert sink.ids == [e["uri"] for e in recent]
    assert source.cursor == key(recent[-1])
    assert older[-1]["uri"] not in sink.ids


async def test_a_server_repeating_a_page_cursor_is_an_error(
    pds: FakePds, http: httpx.AsyncClient, settings_factory: Callable[..., IngestSettings]
) -> None:
    source = BlueskyNotifications(settings_factory(), http, FakeSink())
    entry = pds.notify("mention")
    page = {"notifications": [entry], "cursor": "same"}
    pds.answer_next(NOTIFICATIONS, httpx.Response(200, json=page))
    pds.answer_next(NOTIFICATIONS, httpx.Response(200, json=page))
    with pytest.raises(BlueskyError, match="same page cursor"):
        await source.poll_once()
    assert source.cursor is None


# --- errors: logged, and the source polls again -----------------------------------------


class FlakySink(FakeSink):
    """Raises an error no one foresaw on the first submit."""

    failed: bool = False

    async def submit(self, mentions: Sequence[MentionReceived], source: Source) -> SubmitResult:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a bug in the sink")
        return await super().submit(mentions, source)


def _unwritable_cursor(pds: FakePds, tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    return {"state_dir": tmp_path / "a-file"}


def _non_json_answer(pds: FakePds, tmp_path: Path) -> dict[str, Any]:
    pds.answer_next(NOTIFICATIONS, httpx.Response(200, text="<html>maintenance</html>"))
    return {}


def _non_object_entries(pds: FakePds, tmp_path: Path) -> dict[str, Any]:
    good = pds.notifications[-1]  # the mention, among entries of no use
    page = {"notifications": [42, "text", {"reason": "mention"}, good, ["a", "list"]]}
    pds.answer_next(NOTIFICATIONS, httpx.Response(200, json=page))
    return {}


def _no_access_token(pds: FakePds, tmp_path: Path) -> dict[str, Any]:
    pds.answer_next(CREATE_SESSION, httpx.Response(200, json={"did": "did:plc:x"}))
    return {}


def _sink_bug(pds: FakePds, tmp_path: Path) -> dict[str, Any]:
    return {}


@pytest.mark.parametrize(
    "case",
    [
        (_unwritable_cursor, "cannot write the Bluesky cursor"),
        (_non_json_answer, "the answer is not JSON"),
        (_non_object_entries, "not a notification object"),
        (_no_access_token, "no accessJwt"),
        (_sink_bug, "Bluesky poll failed unexpectedly"),
    ],
    ids=["cursor-not-writable", "non-json-body", "non-object-entry", "no-access-jwt", "bug"],
)
async def test_an_error_in_a_poll_is_logged_and_the_source_polls_again(
    pds: FakePds,
    settings_factory: Callable[..., IngestSettings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    case: tuple[Callable[[FakePds, Path], dict[str, Any]], str],
) -> None:
    breaks, logged = case
    mention = pds.notify("mention")
    settings = settings_factory(**breaks(pds, tmp_path))
    sink = FlakySink() if breaks is _sink_bug else FakeSink()
    sleeps = Sleeps(polls=3)

    async with pds.client() as http:
        source = BlueskyNotifications(settings, http, sink, sleep=sleeps)
        with caplog.at_level(logging.INFO), pytest.raises(Stop):
            await source.run()  # ends only when the third sleep says so

    assert len(sleeps.waits) == 3
    assert pds.pages_read() >= 2, "it polled again after the error"
    assert any(logged in r.getMessage() for r in caplog.records), logged
    assert sink.ids == [mention["uri"]], "taken in once"
    assert source.cursor == key(mention)
    if breaks is _non_object_entries:
        assert len(sink.dead_letters) == 4  # 42, "text", one without indexedAt/uri, a list


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"ratelimit-reset": "1800000300"}, 300.0),
        ({"ratelimit-reset": "99999999999"}, MAX_RATE_LIMIT_WAIT_S),  # bogus: an hour at most
        ({"retry-after": "45"}, 45.0),
        ({"ratelimit-reset": "1799999000"}, 1.0),  # passed already
        ({}, 60.0),
        ({"retry-after": "inf"}, 60.0),
    ],
)
def test_a_429s_wait_is_read_from_its_headers_and_bounded(
    headers: dict[str, str], wait: float
) -> None:
    assert rate_limit_wait_s(httpx.Headers(headers), 1_800_000_000.0) == wait
