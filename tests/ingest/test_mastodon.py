"""Mastodon source: the pure mapping, the backoff policy, and the stream against
a real local fake instance (SSE + REST)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from services.common.html_text import html_to_text
from services.common.messages import Source
from services.ingest.config import IngestSettings
from services.ingest.domain import InvalidMention, status_to_item
from services.ingest.sources.mastodon import Backoff, MastodonStream
from services.ingest.sources.mastodon_entries import MENTION_RULE, id_key
from services.ingest.sources.mastodon_rest import rate_limit_wait
from tests.ingest.helpers.fake_mastodon import FakeMastodon
from tests.ingest.helpers.sink import FakeSink

TOKEN = "fake-token-0123456789"


# --- fakes and fixtures --------------------------------------------------------


class Sleeps:
    """Injected sleep: records the delays, waits only a moment."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0.005)


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - polling state owned by other tasks
            await asyncio.sleep(0.01)


def reconnects(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "ingest_source_reconnects_total", {"source": "mastodon", "reason": reason}
    )
    return value or 0.0


def connected() -> float | None:
    return REGISTRY.get_sample_value("ingest_source_connected", {"source": "mastodon"})


def saved_cursors(stream: MastodonStream) -> dict[str, str] | None:
    """The feeds' cursors in the file, if it was written."""
    path = stream.settings.mastodon_cursor_path
    if not path.exists():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["instance"] == stream.base_url
    feeds: dict[str, str] = saved["feeds"]
    return feeds


@pytest.fixture
async def fake() -> AsyncIterator[FakeMastodon]:
    server = FakeMastodon(token=TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@dataclass
class Harness:
    fake: FakeMastodon
    sink: FakeSink
    sleeps: Sleeps
    stream: MastodonStream
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.stream.run())


@pytest.fixture
async def harness_factory(
    fake: FakeMastodon, http: httpx.AsyncClient, tmp_path: Path
) -> AsyncIterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(sink: FakeSink | None = None, **overrides: Any) -> Harness:
        fields: dict[str, Any] = {
            "state_dir": tmp_path / "state",
            "mastodon_base_url": fake.base_url,
            "mastodon_access_token": SecretStr(TOKEN),
            "mastodon_hashtags": ["AskRefugees"],
            "mastodon_mentions": True,
            "mastodon_backoff_initial_s": 0.5,
            "mastodon_backoff_max_s": 8.0,
        }
        fields.update(overrides)
        settings = IngestSettings(**fields)
        sink = sink or FakeSink(expect_source=Source.MASTODON)
        sleeps = Sleeps()
        stream = MastodonStream(settings, http, sink, sleep=sleeps, rng=random.Random(7))
        harness = Harness(fake, sink, sleeps, stream)
        made.append(harness)
        harness.start()
        return harness

    yield make
    for harness in made:
        if harness.task is not None:
            harness.task.cancel()
            await asyncio.gather(harness.task, return_exceptions=True)


# --- mapping ---------------------------------------------------------------------


def a_status(**overrides: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "id": "110000000000000001",
        "created_at": "2026-11-23T12:00:00.000Z",
        "in_reply_to_id": None,
        "spoiler_text": "",
        "visibility": "public",
        "language": "en",
        "uri": "https://fake.example/users/amal/statuses/110000000000000001",
        "url": "https://fake.example/@amal/110000000000000001",
        "content": "<p>What do you miss most about home?</p>",
        "reblog": None,
        "account": {
            "id": "42",
            "username": "amal",
            "acct": "amal@other.example",
            "display_name": "Amal",
            "followers_count": 321,
        },
        "mentions": [],
        "tags": [],
    }
    status.update(overrides)
    return status


def test_status_maps_to_an_item() -> None:
    item = status_to_item(a_status(), rules=["mastodon:hashtag:askrefugees"])

    assert item.platform.value == "mastodon"
    assert item.id == "110000000000000001"
    assert item.author.id == "42"
    assert item.author.handle == "amal@other.example"
    assert item.author.display_name == "Amal"
    assert item.author.followers == 321
    assert item.text == "What do you miss most about home?"
    assert item.created_at == datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert item.lang == "en"
    assert item.in_reply_to is None
    assert item.url == "https://fake.example/@amal/110000000000000001"
    assert item.matched_rules == ["mastodon:hashtag:askrefugees"]


def test_html_content_becomes_plain_text() -> None:
    content = (
        '<p><span class="h-card"><a href="https://fake.example/@IWelcomeRefugees" '
        'class="u-url mention">@<span>IWelcomeRefugees</span></a></span> Tom &amp; Jerry '
        "&lt;3<br>second line<br/>third</p><p>New paragraph "
        '<a href="https://example.org/a/long/path" rel="nofollow"><span class="invisible">https://'
        '</span><span class="ellipsis">example.org/a/long</span><span class="invisible">/path'
        '</span></a> <a href="https://fake.example/tags/AskRefugees" class="mention hashtag">'
        "#<span>AskRefugees</span></a></p>"
    )

    assert html_to_text(content) == (
        "@IWelcomeRefugees Tom & Jerry <3\nsecond line\nthird\n\n"
        "New paragraph https://example.org/a/long/path #AskRefugees"
    )


def test_spoiler_text_is_prepended() -> None:
    item = status_to_item(a_status(spoiler_text="war, loss", content="<p>Is it safe now?</p>"))

    assert item.text == "war, loss\n\nIs it safe now?"


def test_reply_keeps_the_status_it_answers() -> None:
    item = status_to_item(a_status(in_reply_to_id="109999"))

    assert item.in_reply_to == "109999"


def test_boost_maps_to_the_boosted_status() -> None:
    original = a_status()
    boost = a_status(
        id="110000000000000099",
        content="",
        account={"id": "7", "acct": "booster", "display_name": "B", "followers_count": 1},
        reblog=original,
    )

    item = status_to_item(boost, rules=[MENTION_RULE])

    assert item.id == original["id"]
    assert item.author.handle == "amal@other.example"
    assert item.text == "What do you miss most about home?"
    assert item.matched_rules == [MENTION_RULE]


def test_missing_optional_fields_are_none() -> None:
    status = a_status(language=None, url=None, uri=None, in_reply_to_id=None)
    del status["spoiler_text"]
    status["account"] = {"id": "42", "acct": "amal", "followers_count": -1}

    item = status_to_item(status)

    assert item.lang is None
    assert item.url is None
    assert item.author.display_name is None
    assert item.author.followers is None
    assert item.matched_rules == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ({k: v for k, v in a_status().items() if k != "account"}, "account"),
        (a_status(content=None), "content"),
        ({k: v for k, v in a_status().items() if k != "id"}, "id"),
        (a_status(created_at="yesterday"), "created_at"),
        (a_status(reblog="oops"), "reblog"),
    ],
)
def test_unusable_status_is_refused_with_the_reason(status: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidMention, match=reason):
        status_to_item(status)


def test_ids_sort_by_numeric_value() -> None:
    assert id_key("99") < id_key("100") < id_key("110000000000000001")


# --- backoff and rate limits -----------------------------------------------------------


def test_backoff_grows_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(1.0, 8.0, rng=random.Random(1))

    delays = [backoff.next_delay() for _ in range(6)]

    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_rate_limit_wait_reads_the_iso_reset() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    response = httpx.Response(429, headers={"X-RateLimit-Reset": "2026-11-23T12:05:00.000Z"})

    assert rate_limit_wait(response, now) == 300.0
    assert rate_limit_wait(httpx.Response(429, headers={"Retry-After": "7"}), now) == 7.0
    assert rate_limit_wait(httpx.Response(429), now) is None


# --- streaming against the fake instance ---------------------------------------------------


async def test_hashtag_stream_delivers_updates(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    h = harness_factory(mastodon_mentions=False, mastodon_backfill_max_pages=0)
    await fake.wait_for_streams(1)

    status = fake.post(
        "<p>How do you spend your evenings?</p>", tags=["AskRefugees", "Other"], language="ar"
    )

    await eventually(lambda: len(h.sink.accepted) == 1)
    mention = h.sink.by_id[f"mastodon:{status['id']}"]
    assert mention.text == "How do you spend your evenings?"
    assert mention.lang == "ar"
    assert mention.source is Source.MASTODON
    assert mention.matched_rules == ("mastodon:hashtag:askrefugees",)
    assert connected() == 1.0
    assert fake.requests_to("/api/v1/streaming/hashtag")[0]["tag"] == ["askrefugees"]


async def test_mentions_come_from_notifications(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    h = harness_factory(mastodon_hashtags=[], mastodon_backfill_max_pages=0)
    await fake.wait_for_streams(1)

    asker = fake.account("noor", remote="other.example")
    question = fake.post("<p>@IWelcomeRefugees what do you cook?</p>", author=asker, mention=True)
    fake.notify("favourite", asker, question)  # not a mention: ignored
    fake.notify("follow", asker, None)

    await eventually(lambda: len(h.sink.accepted) == 1)
    await eventually(lambda: h.stream.feeds[0].cursor == fake.notifications[-1]["id"])
    mention = h.sink.by_id[f"mastodon:{question['id']}"]
    assert mention.author.handle == "noor@other.example"
    assert mention.matched_rules == (MENTION_RULE,)
    assert mention.summoned is True  # a mention notification: it named the account
    assert h.sink.submitted == [mention.id]
    assert h.sink.dead_letters == []


async def test_private_posts_and_our_own_posts_are_skipped(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    h = harness_factory(mastodon_backfill_max_pages=0)
    await fake.wait_for_streams(2)

    fake.post("<p>@IWelcomeRefugees a secret question</p>", mention=True, visibility="direct")
    fake.post("<p>Our answer #AskRefugees</p>", tags=["AskRefugees"], author=fake.campaign)
    last = fake.post(
        "<p>@IWelcomeRefugees public question #AskRefugees</p>", tags=["AskRefugees"], mention=True
    )

    await eventually(lambda: len(h.sink.accepted) == 1)
    await eventually(lambda: h.stream.feeds[1].cursor == fake.notifications[-1]["id"])
    mention = h.sink.by_id[f"mastodon:{last['id']}"]
    # Heard on both feeds, submitted once, with both rules.
    assert h.sink.submitted == [mention.id]
    assert set(mention.matched_rules) == {"mastodon:hashtag:askrefugees", MENTION_RULE}


async def test_heartbeats_keep_the_stream_alive(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    before = reconnects("timeout")
    h = harness_factory(mastodon_mentions=False, mastodon_stream_read_timeout_s=0.3)
    await fake.wait_for_streams(1)

    await asyncio.sleep(1.0)  # many heartbeats (every 0.05 s), no event

    assert fake.stream_connects == 1
    assert reconnects("timeout") == before
    assert h.sink.submitted == []
    assert h.sink.dead_letters == []


async def test_silent_stream_times_out_and_reconnects(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    fake.heartbeat_s = 5.0
    before = reconnects("timeout")
    harness_factory(mastodon_mentions=False, mastodon_stream_read_timeout_s=0.2)

    await eventually(lambda: fake.stream_connects >= 2)

    assert reconnects("timeout") > before


@pytest.mark.parametrize("abrupt", [False, True], ids=["closed", "cut"])
async def test_drop_reconnects_and_backfills_what_was_missed(
    fake: FakeMastodon, harness_factory: Callable[..., Harness], abrupt: bool
) -> None:
    h = harness_factory(mastodon_backfill_page_size=2)
    await fake.wait_for_streams(2)
    first = fake.post("<p>before the drop</p>", tags=["AskRefugees"])
    first_mention = fake.post("<p>@IWelcomeRefugees mention before</p>", mention=True)
    await eventually(lambda: len(h.sink.accepted) == 2)

    fake.drop_streams(abrupt=abrupt)
    missed = [fake.post(f"<p>missed {n}</p>", tags=["AskRefugees"]) for n in range(5)]
    missed_mentions = [
        fake.post(f"<p>@IWelcomeRefugees missed {n}</p>", mention=True) for n in range(3)
    ]
    await fake.wait_for_streams(2)
    after = fake.post("<p>after the reconnect</p>", tags=["AskRefugees"])

    expected = [first, first_mention, *missed, *missed_mentions, after]
    await eventually(lambda: len(h.sink.accepted) == len(expected))
    await eventually(lambda: h.stream.feeds[0].cursor == after["id"])
    await eventually(lambda: h.stream.feeds[1].cursor == fake.notifications[-1]["id"])
    assert set(h.sink.by_id) == {f"mastodon:{s['id']}" for s in expected}
    assert len(h.sink.submitted) == len(set(h.sink.submitted))  # nothing resubmitted
    hashtag_order = [i for i in h.sink.ids if i in {s["id"] for s in [*missed, after]}]
    assert hashtag_order == [s["id"] for s in [*missed, after]]  # oldest first
    catch_up = [q for q in fake.requests_to("/api/v1/timelines/tag/askrefugees") if "min_id" in q]
    # 2 per page, each next page from the newest id of the last: rel="prev" was followed.
    assert [q["min_id"] for q in catch_up[:3]] == [
        [first["id"]],
        [missed[1]["id"]],
        [missed[3]["id"]],
    ]
    mention_catch_up = [q for q in fake.requests_to("/api/v1/notifications") if "min_id" in q]
    assert mention_catch_up[0]["types[]"] == ["mention"]
    assert mention_catch_up[0]["min_id"] == [fake.notifications[0]["id"]]
    assert reconnects("eof" if not abrupt else "network") >= 1


async def test_a_restart_resumes_from_the_persisted_cursors(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    """Not the last 24 hours again: only what was posted while ingest was away."""
    h = harness_factory(mastodon_backfill_page_size=2)
    await fake.wait_for_streams(2)
    heard = fake.post("<p>before the restart</p>", tags=["AskRefugees"])
    heard_mention = fake.post("<p>@IWelcomeRefugees a mention before</p>", mention=True)
    await eventually(lambda: len(h.sink.accepted) == 2)
    cursors = {"#askrefugees": heard["id"], "mentions": fake.notifications[-1]["id"]}
    await eventually(lambda: saved_cursors(h.stream) == cursors)
    assert h.task is not None
    h.task.cancel()
    await asyncio.gather(h.task, return_exceptions=True)
    fake.drop_streams()

    missed = [fake.post(f"<p>missed {n}</p>", tags=["AskRefugees"]) for n in range(3)]
    missed_mention = fake.post("<p>@IWelcomeRefugees missed mention</p>", mention=True)
    tag_asked = len(fake.requests_to("/api/v1/timelines/tag/askrefugees"))
    mentions_asked = len(fake.requests_to("/api/v1/notifications"))
    restarted = harness_factory(
        FakeSink(expect_source=Source.MASTODON), mastodon_backfill_page_size=2
    )
    assert [feed.cursor for feed in restarted.stream.feeds] == list(cursors.values())

    await fake.wait_for_streams(2)
    await eventually(lambda: len(restarted.sink.accepted) == 4)
    await eventually(
        lambda: (
            saved_cursors(restarted.stream)
            == {"#askrefugees": missed[-1]["id"], "mentions": fake.notifications[-1]["id"]}
        )
    )
    assert sorted(restarted.sink.ids) == sorted(s["id"] for s in [*missed, missed_mention])
    assert heard["id"] not in restarted.sink.ids
    assert heard_mention["id"] not in restarted.sink.ids
    tag_catch_up = fake.requests_to("/api/v1/timelines/tag/askrefugees")[tag_asked]
    assert tag_catch_up["min_id"] == [heard["id"]]
    mention_catch_up = fake.requests_to("/api/v1/notifications")[mentions_asked]
    assert mention_catch_up["min_id"] == [cursors["mentions"]]


async def test_the_persisted_cursor_moves_only_once_the_sink_took_the_mentions(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    sink = FakeSink(fail_submits=10**6, expect_source=Source.MASTODON)
    h = harness_factory(sink, mastodon_mentions=False, mastodon_backfill_max_pages=0)
    await fake.wait_for_streams(1)
    status = fake.post("<p>are you there?</p>", tags=["AskRefugees"])

    await eventually(lambda: sink.attempts >= 3)
    assert saved_cursors(h.stream) is None
    sink.fail_submits = 0
    await eventually(lambda: saved_cursors(h.stream) == {"#askrefugees": status["id"]})
    assert h.sink.ids == [status["id"]]


async def test_cursors_of_another_instance_or_unreadable_are_not_used(
    fake: FakeMastodon, harness_factory: Callable[..., Harness], tmp_path: Path
) -> None:
    path = tmp_path / "state" / "mastodon-cursors"
    path.parent.mkdir()
    path.write_text(
        json.dumps({"instance": "https://elsewhere.example", "feeds": {"#askrefugees": "9"}})
    )
    other = harness_factory(mastodon_mentions=False, mastodon_backfill_max_pages=0)
    assert other.stream.feeds[0].cursor is None
    path.write_text("{not json")
    broken = harness_factory(mastodon_mentions=False, mastodon_backfill_max_pages=0)
    assert broken.stream.feeds[0].cursor is None


async def test_first_start_backfill_is_bounded_by_age_and_pages(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    fake.post("<p>too old</p>", tags=["AskRefugees"], age=timedelta(hours=30))
    recent = [
        fake.post(f"<p>recent {n}</p>", tags=["AskRefugees"], age=timedelta(hours=5 - n))
        for n in range(5)
    ]

    h = harness_factory(
        mastodon_mentions=False,
        mastodon_backfill_page_size=2,
        mastodon_backfill_max_pages=2,
        mastodon_backfill_max_age_hours=24,
    )

    await eventually(lambda: len(h.sink.accepted) == 4)
    await fake.wait_for_streams(1)
    await eventually(lambda: h.stream.feeds[0].cursor == recent[-1]["id"])
    assert h.sink.ids == [s["id"] for s in recent[1:]]  # newest 2 pages, oldest first
    assert len(fake.requests_to("/api/v1/timelines/tag/askrefugees")) == 2


async def test_first_start_skips_posts_older_than_the_age_limit(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    old = fake.post("<p>too old</p>", tags=["AskRefugees"], age=timedelta(hours=3))
    h = harness_factory(mastodon_mentions=False, mastodon_backfill_max_age_hours=1)
    await fake.wait_for_streams(1)
    new = fake.post("<p>new</p>", tags=["AskRefugees"])

    await eventually(lambda: len(h.sink.accepted) == 1)
    assert list(h.sink.by_id) == [f"mastodon:{new['id']}"]
    assert h.stream.feeds[0].cursor == new["id"]
    # The first page reached past the age limit: no older page was asked for.
    assert len(fake.requests_to("/api/v1/timelines/tag/askrefugees")) == 1
    assert old["id"] < new["id"]


@pytest.mark.parametrize(
    "data",
    ['{"id": "1", "content": <broken', '{"id": "110000000000000777", "content": "<p>x</p>"}'],
)
async def test_malformed_event_is_dead_lettered_and_the_stream_goes_on(
    fake: FakeMastodon, harness_factory: Callable[..., Harness], data: str
) -> None:
    h = harness_factory(mastodon_mentions=False, mastodon_backfill_max_pages=0)
    await fake.wait_for_streams(1)

    fake.push("hashtag:askrefugees", "update", data)
    good = fake.post("<p>still here?</p>", tags=["AskRefugees"])

    await eventually(lambda: len(h.sink.accepted) == 1 and len(h.sink.dead_letters) == 1)
    error, raw = h.sink.dead_letters[0]
    assert raw == data.encode()
    assert "#askrefugees" in error
    assert list(h.sink.by_id) == [f"mastodon:{good['id']}"]
    assert fake.stream_connects == 1


async def test_a_status_of_an_unforeseen_shape_does_not_stop_the_feed(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    """A tag whose name is not a string: the status is still read (the feed's rule),
    and the ones after it too."""
    h = harness_factory(mastodon_mentions=False, mastodon_backfill_max_pages=0)
    await fake.wait_for_streams(1)

    odd = fake.status("<p>odd tags</p>", tags=["AskRefugees"])
    odd["tags"] = [{"name": 5}, "not an object"]
    fake.push("hashtag:askrefugees", "update", json.dumps(odd))
    good = fake.post("<p>still here?</p>", tags=["AskRefugees"])

    await eventually(lambda: len(h.sink.accepted) == 2)
    assert list(h.sink.by_id) == [f"mastodon:{odd['id']}", f"mastodon:{good['id']}"]
    assert h.sink.dead_letters == []


async def test_other_events_are_ignored(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    h = harness_factory(mastodon_mentions=False, mastodon_backfill_max_pages=0)
    await fake.wait_for_streams(1)

    fake.push("hashtag:askrefugees", "delete", "110000000000000001")
    fake.push("hashtag:askrefugees", "status.update", "{not even json")
    fake.push("hashtag:askrefugees", "filters_changed", "")
    good = fake.post("<p>hello</p>", tags=["AskRefugees"])

    await eventually(lambda: len(h.sink.accepted) == 1)
    assert list(h.sink.by_id) == [f"mastodon:{good['id']}"]
    assert h.sink.dead_letters == []


async def test_broker_unavailable_is_retried_without_losing_the_mention(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    h = harness_factory(
        FakeSink(fail_submits=3, expect_source=Source.MASTODON),
        mastodon_mentions=False,
        mastodon_backfill_max_pages=0,
    )
    await fake.wait_for_streams(1)

    status = fake.post("<p>are you there?</p>", tags=["AskRefugees"])

    await eventually(lambda: len(h.sink.accepted) == 1)
    assert list(h.sink.by_id) == [f"mastodon:{status['id']}"]
    assert h.sink.fail_submits == 0
    retries = h.sleeps.delays[-3:]
    assert retries[0] <= 0.5 < retries[2] <= 2.0  # capped exponential backoff
    assert fake.stream_connects == 1  # the stream was kept, not reconnected


async def test_dead_letter_is_retried_when_the_broker_is_away(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    h = harness_factory(
        FakeSink(fail_dead_letters=2, expect_source=Source.MASTODON),
        mastodon_mentions=False,
        mastodon_backfill_max_pages=0,
    )
    await fake.wait_for_streams(1)

    fake.push("hashtag:askrefugees", "update", "not json")

    await eventually(lambda: len(h.sink.dead_letters) == 1)
    assert len(h.sleeps.delays) == 2


async def test_refused_token_is_retried_with_backoff_and_never_logged(
    fake: FakeMastodon,
    harness_factory: Callable[..., Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.token = "another-token-entirely"
    before = reconnects("unauthorized")

    h = harness_factory()

    await eventually(lambda: len(h.sleeps.delays) >= 4)
    assert reconnects("unauthorized") - before >= 4
    assert h.sleeps.delays[3] > h.sleeps.delays[0]  # backing off
    assert fake.stream_connects == 0
    assert h.sink.submitted == []
    assert "access token was refused" in caplog.text
    assert TOKEN not in caplog.text


async def test_rate_limited_stream_waits_until_the_reset(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    fake.rate_limit("/api/v1/streaming/hashtag", reset_in_s=42)
    before = reconnects("rate_limited")

    h = harness_factory(mastodon_mentions=False)

    await fake.wait_for_streams(1)
    assert reconnects("rate_limited") == before + 1
    assert 40 <= h.sleeps.delays[0] <= 42
    status = fake.post("<p>after the limit</p>", tags=["AskRefugees"])
    await eventually(lambda: f"mastodon:{status['id']}" in h.sink.by_id)


async def test_rate_limited_backfill_waits_and_resumes(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    old = fake.post("<p>asked an hour ago</p>", tags=["AskRefugees"], age=timedelta(hours=1))
    fake.rate_limit("/api/v1/timelines/tag", reset_in_s=120)

    h = harness_factory(mastodon_mentions=False)

    await eventually(lambda: f"mastodon:{old['id']}" in h.sink.by_id)
    assert 118 <= h.sleeps.delays[0] <= 120


async def test_streaming_host_is_discovered_from_the_instance(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    fake.streaming_url = f"ws://127.0.0.1:{fake.port}/"
    h = harness_factory(mastodon_base_url=f"http://localhost:{fake.port}", mastodon_mentions=False)

    await fake.wait_for_streams(1)

    assert h.stream.streaming_base_url == f"http://127.0.0.1:{fake.port}"


async def test_cancellation_stops_cleanly(
    fake: FakeMastodon, harness_factory: Callable[..., Harness]
) -> None:
    h = harness_factory()
    await fake.wait_for_streams(2)
    assert h.task is not None

    h.task.cancel()
    await asyncio.gather(h.task, return_exceptions=True)

    assert h.task.cancelled()
    assert connected() == 0.0
    await eventually(lambda: not fake.subscribers)


def test_a_hashtag_stream_without_a_user_token_is_refused_at_start() -> None:
    """Since Mastodon 4.2 the hashtag stream needs a user token: a clear error at
    start rather than a loop of 401s."""
    with pytest.raises(ValueError, match="INGEST_MASTODON_HASHTAGS needs INGEST_MASTODON_ACCESS"):
        IngestSettings(mastodon_base_url="https://mastodon.example", mastodon_hashtags=["a"])
    IngestSettings(
        mastodon_base_url="https://mastodon.example",
        mastodon_hashtags=["a"],
        mastodon_access_token=SecretStr("user-token"),
    )


async def test_filtered_mentions_are_caught_up_and_a_filtering_policy_is_reported(
    fake: FakeMastodon,
    harness_factory: Callable[..., Harness],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Mastodon 4.3 filters mentions from new and limited accounts by default: the
    catch-up asks for them too (include_filtered) and the policy is reported."""
    fake.policy = {
        "for_not_following": "accept",
        "for_not_followers": "accept",
        "for_new_accounts": "filter",
        "for_limited_accounts": "drop",
    }
    with caplog.at_level(logging.WARNING):
        h = harness_factory(mastodon_hashtags=[])
        await fake.wait_for_streams(1)
        await eventually(lambda: bool(fake.requests_to("/api/v1/notifications")))
    catch_ups = fake.requests_to("/api/v1/notifications")
    assert all(q.get("include_filtered") == ["true"] for q in catch_ups)
    assert "drops mentions (for_limited_accounts)" in caplog.text
    assert "filters mentions (for_new_accounts)" in caplog.text
    assert h.sink.dead_letters == []
