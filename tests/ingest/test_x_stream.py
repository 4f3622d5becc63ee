"""The X filtered-stream source against a local fake X over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from services.common.messages import LangSource, Source
from services.ingest.config import IngestSettings, XStreamRule
from services.ingest.exceptions import XApiError
from services.ingest.sources.x import (
    DEFAULT_STALL_TIMEOUT_S,
    STREAM_PARAMS,
    USER_AGENT,
    BackoffKind,
    LineSplitter,
    XBackoff,
    XFilteredStream,
    broker_retry_delay,
)
from tests.ingest.helpers.fake_x import (
    OPERATIONAL_DISCONNECT,
    TOKEN,
    Close,
    Drop,
    Emit,
    EmitRaw,
    FakeX,
    KeepAlive,
    Pause,
    Refuse,
    post,
    rate_limited,
    too_many_connections,
    unavailable,
)
from tests.ingest.helpers.sink import FakeSink

RULES_PATH = "/2/tweets/search/stream/rules"
STREAM_PATH = "/2/tweets/search/stream"
CAMPAIGN = XStreamRule(value="@IWelcomeRefugees -is:retweet", tag="campaign")
HASHTAG = XStreamRule(value="#AskARefugee", tag="hashtag")


# --- fakes -------------------------------------------------------------------------


@dataclass
class RecordingSleep:
    """Stands in for asyncio.sleep: records the delay, waits (almost) nothing."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@dataclass
class Harness:
    stream: XFilteredStream
    sink: FakeSink
    sleep: RecordingSleep


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout} s")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(stream: XFilteredStream) -> AsyncIterator[asyncio.Task[None]]:
    """Run the stream as a task; cancel it on the way out, and re-raise if it died."""
    task = asyncio.create_task(stream.run())
    try:
        yield task
    finally:
        if task.done() and not task.cancelled():
            task.result()  # raises what killed it
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()


def reconnects(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "ingest_source_reconnects_total", {"source": "x_stream", "reason": reason}
    )
    return value or 0.0


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeX]:
    async with FakeX() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def make(fake: FakeX, http: httpx.AsyncClient) -> Callable[..., Harness]:
    def build(
        *,
        rules: Sequence[XStreamRule] = (CAMPAIGN,),
        token: str = TOKEN,
        base_url: str | None = None,
        sink: FakeSink | None = None,
        **kwargs: Any,
    ) -> Harness:
        settings = IngestSettings(
            x_bearer_token=SecretStr(token),
            x_api_base_url=base_url or fake.base_url,
            x_rules=list(rules),
        )
        sleep = RecordingSleep()
        sink = sink or FakeSink()
        stream = XFilteredStream(settings, http, sink, sleep=sleep, **kwargs)
        return Harness(stream, sink, sleep)

    return build


# --- the reconnect policy (pure) -------------------------------------------------------


def test_network_errors_back_off_linearly_by_250ms_up_to_16s() -> None:
    backoff = XBackoff()
    delays = [backoff.next_delay(BackoffKind.NETWORK) for _ in range(70)]
    assert delays[:5] == [0.0, 0.25, 0.5, 0.75, 1.0]  # the first reconnect is immediate
    assert delays[64] == 16.0
    assert max(delays) == 16.0
    assert delays[-1] == 16.0


def test_http_errors_back_off_exponentially_from_5s_up_to_320s() -> None:
    backoff = XBackoff()
    delays = [backoff.next_delay(BackoffKind.HTTP) for _ in range(9)]
    assert delays == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 320.0, 320.0]


def test_rate_limits_back_off_exponentially_from_a_minute() -> None:
    backoff = XBackoff()
    delays = [backoff.next_delay(BackoffKind.RATE_LIMIT) for _ in range(6)]
    assert delays == [60.0, 120.0, 240.0, 480.0, 900.0, 900.0]


def test_rate_limit_waits_for_the_reset_time_when_it_is_later() -> None:
    backoff = XBackoff(jitter=lambda: 0.5)
    now = 1_700_000_000.0
    assert backoff.next_delay(BackoffKind.RATE_LIMIT, reset_at=now + 300, now=now) == 300.5
    # The reset is sooner than the exponential delay (120 s): the longer one wins.
    assert backoff.next_delay(BackoffKind.RATE_LIMIT, reset_at=now + 5, now=now) == 120.0
    # A reset time absurdly far away (say, in milliseconds) is bounded.
    far = backoff.next_delay(BackoffKind.RATE_LIMIT, reset_at=now * 1000, now=now)
    assert far == backoff.max_reset_wait_s


def test_kinds_count_separately_and_reset_clears_them() -> None:
    backoff = XBackoff()
    assert backoff.next_delay(BackoffKind.HTTP) == 5.0
    assert backoff.next_delay(BackoffKind.NETWORK) == 0.0
    assert backoff.next_delay(BackoffKind.HTTP) == 10.0
    assert backoff.next_delay(BackoffKind.NETWORK) == 0.25
    backoff.reset()
    assert backoff.failures(BackoffKind.HTTP) == 0
    assert backoff.next_delay(BackoffKind.NETWORK) == 0.0
    assert backoff.next_delay(BackoffKind.HTTP) == 5.0


def test_broker_retry_delay_doubles_and_is_capped() -> None:
    assert [broker_retry_delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_line_splitter_handles_crlf_keep_alives_and_lines_split_across_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":1}\r\n\r\n{"b"') == [(b'{"a":1}', False), (b"", False)]
    assert splitter.pending == 4
    assert splitter.feed(b":2}\n") == [(b'{"b":2}', False)]
    assert splitter.pending == 0


def test_line_splitter_truncates_an_overlong_line_once_and_skips_its_rest() -> None:
    splitter = LineSplitter(max_line_bytes=8)
    assert splitter.feed(b"0123456789") == [(b"01234567", True)]
    assert splitter.feed(b"more of the same line") == []
    assert splitter.feed(b"end\r\nok\r\n") == [(b"ok", False)]
    # An overlong line that arrives whole, in one chunk, is cut too.
    assert splitter.feed(b"abcdefghijk\nfits\n") == [(b"abcdefgh", True), (b"fits", False)]


# --- rules ---------------------------------------------------------------------------


async def test_sync_rules_deletes_stale_adds_missing_and_is_idempotent(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    kept = fake.add_rule(CAMPAIGN.value, CAMPAIGN.tag)
    stale = fake.add_rule("#OldCampaign", "old")
    retagged = fake.add_rule(HASHTAG.value, "previous-tag")
    untagged = fake.add_rule("refugees question")
    new = XStreamRule(value='"ask a refugee" lang:en', tag="phrase")
    harness = make(rules=[CAMPAIGN, HASHTAG, new])

    await harness.stream.sync_rules()

    assert fake.rule_pairs() == {(r.value, r.tag) for r in (CAMPAIGN, HASHTAG, new)}
    assert kept in fake.rules  # an unchanged rule keeps its id
    posts = fake.calls("POST", RULES_PATH)
    assert [p.body for p in posts] == [
        {"delete": {"ids": [stale, retagged, untagged]}},
        {
            "add": [
                {"value": HASHTAG.value, "tag": HASHTAG.tag},
                {"value": new.value, "tag": "phrase"},
            ]
        },
    ]

    fake.requests.clear()
    await harness.stream.sync_rules()
    assert [(r.method, r.path) for r in fake.requests] == [("GET", RULES_PATH)]


async def test_sync_rules_adds_everything_when_x_has_no_rules(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    await make(rules=[CAMPAIGN, HASHTAG]).stream.sync_rules()
    assert fake.rule_pairs() == {(CAMPAIGN.value, CAMPAIGN.tag), (HASHTAG.value, HASHTAG.tag)}
    assert len(fake.calls("POST", RULES_PATH)) == 1  # nothing to delete: no delete request


async def test_sync_rules_reads_every_page_of_rules(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    fake.rules_page_size = 2
    for n in range(5):
        fake.add_rule(f"#old{n}", f"old{n}")
    await make(rules=[CAMPAIGN]).stream.sync_rules()
    assert fake.rule_pairs() == {(CAMPAIGN.value, CAMPAIGN.tag)}
    assert [r.query for r in fake.calls("GET", RULES_PATH)] == [
        {},
        {"pagination_token": "2"},
        {"pagination_token": "4"},
    ]


async def test_sync_rules_logs_a_duplicate_rule_and_carries_on(
    fake: FakeX, make: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    same_value = XStreamRule(value=CAMPAIGN.value, tag="other-tag")
    with caplog.at_level(logging.WARNING):
        await make(rules=[CAMPAIGN, same_value, HASHTAG]).stream.sync_rules()
    assert fake.rule_pairs() == {(CAMPAIGN.value, CAMPAIGN.tag), (HASHTAG.value, HASHTAG.tag)}
    assert "already has a stream rule" in caplog.text


async def test_sync_rules_skips_an_invalid_rule_and_adds_the_valid_ones(
    fake: FakeX, make: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    invalid = XStreamRule(value="-is:retweet", tag="negation-only")
    with caplog.at_level(logging.ERROR):
        await make(rules=[CAMPAIGN, invalid, HASHTAG]).stream.sync_rules()
    assert fake.rule_pairs() == {(CAMPAIGN.value, CAMPAIGN.tag), (HASHTAG.value, HASHTAG.tag)}
    assert "X refused stream rule '-is:retweet'" in caplog.text
    assert "non-negation term" in caplog.text


async def test_sync_rules_raises_on_a_refused_token(make: Callable[..., Harness]) -> None:
    with pytest.raises(XApiError) as caught:
        await make(token="not-the-token").stream.sync_rules()
    assert caught.value.status == 401


# --- the stream: happy paths ------------------------------------------------------------


async def test_stream_asks_for_the_fields_the_mapping_needs(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    fake.script([Emit(post())])
    harness = make()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 1)
    (connect,) = fake.calls("GET", STREAM_PATH)
    assert connect.query == STREAM_PARAMS
    assert "entities" in connect.query["tweet.fields"]  # who a post @mentions
    assert "note_tweet" in connect.query["tweet.fields"]  # long posts whole
    assert connect.user_agent == USER_AGENT  # X asks every client to name itself
    assert fake.rule_pairs() == {(CAMPAIGN.value, CAMPAIGN.tag)}  # synced before connecting
    assert harness.sink.sources == {Source.X_STREAM}
    assert harness.sleep.delays == []


async def test_real_shaped_posts_are_mapped_to_mentions(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    question = post(
        id="1790000000000000101",
        text="@IWelcomeRefugees Q&amp;A: what&#39;s &lt;home&gt; to you?",
        username="amira_k",
        name="Amira K",
        followers=4321,
        lang="en",
        tags=["campaign", "hashtag"],
    )
    reply = post(
        id="1790000000000000102",
        text="@IWelcomeRefugees and what do you miss most?",
        conversation_id="1790000000000000001",
        referenced=[("replied_to", "1790000000000000050")],
        lang="und",
    )
    retweet = post(
        id="1790000000000000103",
        text="RT @IWelcomeRefugees: ask us anything",
        referenced=[("retweeted", "1790000000000000060")],
    )
    fake.script([Emit(question), Emit(reply), Emit(retweet)])
    harness = make()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 3)

    first, second, third = harness.sink.accepted
    assert first.id == "x:1790000000000000101"
    assert first.text == "@IWelcomeRefugees Q&A: what's <home> to you?"
    assert first.author.handle == "amira_k"
    assert first.author.display_name == "Amira K"
    assert first.author.followers == 4321
    assert first.lang == "en"
    assert first.matched_rules == ("campaign", "hashtag")
    assert first.url == "https://x.com/amira_k/status/1790000000000000101"
    assert first.source is Source.X_STREAM
    assert first.in_reply_to is None
    assert second.in_reply_to == "1790000000000000050"
    assert second.conversation_id == "1790000000000000001"
    # "und" is X's "undetermined": ingest detects the language itself.
    assert (second.lang, second.lang_source) == ("en", LangSource.DETECTED)
    assert first.lang_source is LangSource.PLATFORM
    assert third.in_reply_to is None
    assert third.text.startswith("RT @IWelcomeRefugees")
    assert harness.sink.dead_letters == []


async def test_keep_alives_are_ignored(fake: FakeX, make: Callable[..., Harness]) -> None:
    fake.script(
        [
            KeepAlive(),
            KeepAlive(),
            Emit(post(id="11")),
            KeepAlive(),
            EmitRaw(b"\n"),
            Emit(post(id="12")),
        ]
    )
    harness = make()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 2)
        await asyncio.sleep(0.1)
    assert harness.sink.ids == ["11", "12"]
    assert harness.sink.dead_letters == []
    assert fake.connections == 1


async def test_cancelling_run_stops_it_cleanly(fake: FakeX, make: Callable[..., Harness]) -> None:
    harness = make()
    async with running(harness.stream):
        await eventually(
            lambda: (
                REGISTRY.get_sample_value("ingest_source_connected", {"source": "x_stream"}) == 1
            )
        )
    assert REGISTRY.get_sample_value("ingest_source_connected", {"source": "x_stream"}) == 0


# --- the stream: each way it can fail --------------------------------------------------


async def test_a_connection_dropped_mid_line_reconnects_at_once_losing_and_doubling_nothing(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    one, two, three = post(id="21"), post(id="22"), post(id="23")
    fake.script(
        [Emit(one), Emit(two), Drop(partial=b'{"data":{"id":"23","te')],
        [Emit(two), Emit(three)],  # X may re-send what it sent just before the drop
    )
    before = reconnects("network")
    harness = make()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 3)
    assert harness.sink.ids == ["21", "22", "23"]
    assert harness.sink.duplicates == ["x:22"]
    assert harness.sink.dead_letters == []  # the cut-off line is not a bad message
    assert harness.sleep.delays == [0.0]  # the first reconnect is immediate
    assert fake.connections == 2
    assert reconnects("network") == before + 1


async def test_repeated_network_failures_back_off_linearly(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    fake.script([Drop()], [Drop()], [Drop()], [Emit(post(id="31"))])
    harness = make()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 1)
    assert harness.sleep.delays == [0.0, 0.25, 0.5]


async def test_an_unreachable_x_backs_off_linearly(make: Callable[..., Harness]) -> None:
    with socket_closed_port() as port:
        harness = make(base_url=f"http://127.0.0.1:{port}")
        async with running(harness.stream):
            await eventually(lambda: len(harness.sleep.delays) >= 5)
    assert harness.sleep.delays[:5] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert harness.sink.attempts == 0


async def test_server_errors_back_off_exponentially(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    fake.script([unavailable(503)], [unavailable(500)], [unavailable(503)], [Emit(post(id="41"))])
    before = reconnects("http_5xx")
    harness = make()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 1)
    assert harness.sleep.delays == [5.0, 10.0, 20.0]
    assert reconnects("http_5xx") == before + 3


async def test_the_backoff_starts_over_after_a_connection_that_delivered(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    fake.script(
        [unavailable()], [Emit(post(id="51")), Drop()], [unavailable()], [Emit(post(id="52"))]
    )
    harness = make()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 2)
    assert harness.sleep.delays == [5.0, 0.0, 5.0]


async def test_429_waits_until_the_rate_limit_resets(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    reset_at = int(time.time()) + 300
    fake.script([rate_limited(reset_at)], [Emit(post(id="61"))])
    before = reconnects("rate_limited")
    harness = make()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 1)
    (delay,) = harness.sleep.delays
    assert reset_at - time.time() - 1 <= delay <= reset_at - time.time() + 1.5
    assert reconnects("rate_limited") == before + 1


async def test_429_without_a_reset_time_backs_off_from_a_minute(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    fake.script([too_many_connections()], [too_many_connections()], [Emit(post(id="62"))])
    harness = make()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 1)
    assert harness.sleep.delays == [60.0, 120.0]


async def test_a_refused_token_is_logged_clearly_and_retried_without_crashing(
    fake: FakeX, make: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-token-123456789"
    harness = make(token=secret)
    with caplog.at_level(logging.DEBUG):
        async with running(harness.stream):
            await eventually(lambda: len(harness.sleep.delays) >= 3)
            fake.token = secret  # ops fixed the token
            fake.script([Emit(post(id="71"))])
            await eventually(lambda: len(harness.sink.accepted) == 1)
    assert harness.sleep.delays[:3] == [5.0, 10.0, 20.0]
    assert "X refused the credentials (HTTP 401" in caplog.text
    assert "INGEST_X_BEARER_TOKEN" in caplog.text
    assert secret not in caplog.text


async def test_exhausted_credits_are_said_so_and_retried_an_hour_later(
    fake: FakeX, make: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    depleted = Refuse(
        402,
        {
            "title": "CreditsDepleted",
            "detail": "Your enrolled account does not have any credits to fulfill this request.",
            "type": "https://api.twitter.com/2/problems/credits",
        },
    )
    fake.script([depleted], [Emit(post(id="73"))])
    before = reconnects("credits_exhausted")
    harness = make()
    with caplog.at_level(logging.ERROR):
        async with running(harness.stream):
            await eventually(lambda: len(harness.sink.accepted) == 1)
    assert harness.sleep.delays == [3600.0]
    assert "credits are exhausted" in caplog.text
    assert reconnects("credits_exhausted") == before + 1


def test_a_stream_silent_for_20_s_is_dead() -> None:
    """X sends a keep-alive every 20 s and asks clients to reconnect without one."""
    assert DEFAULT_STALL_TIMEOUT_S == 20.0


async def test_a_forbidden_stream_is_a_configuration_error_retried_with_http_backoff(
    fake: FakeX, make: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    forbidden = Refuse(
        403,
        {
            "client_id": "123",
            "required_enrollment": "Appropriate Level of API Access",
            "reason": "client-not-enrolled",
            "title": "Client Forbidden",
            "detail": "This request must be made using an approved developer account",
            "type": "https://api.twitter.com/2/problems/client-forbidden",
        },
    )
    fake.script([forbidden], [forbidden], [Emit(post(id="72"))])
    before = reconnects("unauthorized")
    harness = make()
    with caplog.at_level(logging.ERROR):
        async with running(harness.stream):
            await eventually(lambda: len(harness.sink.accepted) == 1)
    assert harness.sleep.delays == [5.0, 10.0]
    assert "HTTP 403: Client Forbidden" in caplog.text
    assert reconnects("unauthorized") == before + 2


async def test_bad_lines_are_dead_lettered_and_the_stream_goes_on(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    no_author = post(id="82")
    no_author["includes"] = {"users": []}
    weird_includes = post(id="83")
    weird_includes["includes"] = "not an object"
    future = post(id="84", created_at="2999-01-01T00:00:00.000Z")
    fake.script(
        [
            Emit(post(id="81")),
            EmitRaw(b'{"data": {"id": "8\r\n'),
            EmitRaw(b"[1, 2, 3]\r\n"),
            EmitRaw(b"\xff\xfe garbage\r\n"),
            Emit(no_author),
            Emit(weird_includes),
            Emit(future),
            EmitRaw(b'{"data":{"id":"85","text":"' + b"x" * 5000 + b'"}}\r\n'),
            Emit(post(id="86")),
        ]
    )
    harness = make(max_line_bytes=4096)
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 2)
    assert harness.sink.ids == ["81", "86"]
    errors = [error for error, _ in harness.sink.dead_letters]
    raws = [raw for _, raw in harness.sink.dead_letters]
    assert len(errors) == 7
    assert errors[0].startswith("not JSON")
    assert raws[0] == b'{"data": {"id": "8'  # the line as received, without its \r\n
    assert "no 'data' object" in errors[1]
    assert errors[2].startswith("not JSON")
    assert raws[2] == b"\xff\xfe garbage"
    assert "author not in includes.users" in errors[3]
    assert errors[4].startswith("not a usable X post")
    assert "in the future" in errors[5]
    assert errors[6] == "line longer than 4096 bytes"
    assert len(raws[6]) == 4096
    assert fake.connections == 1  # no reconnect for a bad line
    assert harness.sleep.delays == []


async def test_a_post_is_retried_not_lost_while_the_broker_is_unavailable(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    fake.script([Emit(post(id="91")), Emit(post(id="92"))])
    harness = make(sink=FakeSink(fail_submits=3))
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 2)
    assert harness.sink.ids == ["91", "92"]  # in order: the stream waited for the first
    assert harness.sink.attempts == 5
    assert harness.sleep.delays == [0.5, 1.0, 2.0]
    assert fake.connections == 1


async def test_a_dead_letter_is_retried_not_lost_while_the_broker_is_unavailable(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    fake.script([EmitRaw(b"not json\r\n"), Emit(post(id="93"))])
    harness = make(sink=FakeSink(fail_dead_letters=2))
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 1)
    assert [raw for _, raw in harness.sink.dead_letters] == [b"not json"]
    assert harness.sleep.delays == [0.5, 1.0]


async def test_a_stalled_connection_is_dropped_and_reopened(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    fake.script([Emit(post(id="101")), Pause(10)], [Emit(post(id="102"))])
    before = reconnects("stalled")
    harness = make(stall_timeout_s=0.3)
    started = time.monotonic()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 2)
    assert time.monotonic() - started < 3
    assert harness.sink.ids == ["101", "102"]
    assert harness.sleep.delays == [0.0]
    assert reconnects("stalled") == before + 1


async def test_keep_alives_keep_a_quiet_connection_from_stalling(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    fake.keep_alive_s = 0.1
    fake.script(
        [KeepAlive(), Pause(0.2), KeepAlive(), Pause(0.2), KeepAlive(), Emit(post(id="103"))]
    )
    harness = make(stall_timeout_s=0.35)
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 1)
        await asyncio.sleep(0.5)  # then the quiet keep-alive-only tail of the script
    assert fake.connections == 1
    assert harness.sleep.delays == []


async def test_an_operational_disconnect_is_logged_and_reconnected(
    fake: FakeX, make: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    fake.script(
        [Emit(post(id="111")), Emit(OPERATIONAL_DISCONNECT), Emit(post(id="never-read"))],
        [Emit(post(id="112"))],
    )
    before = reconnects("operational_disconnect")
    harness = make()
    with caplog.at_level(logging.WARNING):
        async with running(harness.stream):
            await eventually(lambda: len(harness.sink.accepted) == 2)
    assert harness.sink.ids == ["111", "112"]
    assert harness.sink.dead_letters == []
    assert harness.sleep.delays == [0.0]
    assert "UpstreamOperationalDisconnect" in caplog.text
    assert reconnects("operational_disconnect") == before + 1


async def test_connections_that_only_send_errors_back_off(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    fake.script(
        [Emit(OPERATIONAL_DISCONNECT)],
        [Emit(OPERATIONAL_DISCONNECT)],
        [Emit(OPERATIONAL_DISCONNECT)],
        [Emit(post(id="113"))],
    )
    harness = make()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 1)
    assert harness.sleep.delays == [0.0, 0.25, 0.5]  # no tight reconnect loop


async def test_a_stream_x_closes_is_reopened(fake: FakeX, make: Callable[..., Harness]) -> None:
    fake.script([Emit(post(id="121")), Close()], [Close()], [Emit(post(id="122"))])
    harness = make()
    async with running(harness.stream):
        await eventually(lambda: len(harness.sink.accepted) == 2)
    # Immediate after a connection that delivered; then linear, as nothing came through.
    assert harness.sleep.delays == [0.0, 0.25]
    assert fake.connections == 3


async def test_rule_sync_failures_are_retried_before_streaming(
    fake: FakeX, make: Callable[..., Harness]
) -> None:
    secret = "rotated-token-0987654321"
    harness = make(token=secret)
    fake.script([Emit(post(id="131"))])
    async with running(harness.stream):
        await eventually(lambda: len(harness.sleep.delays) >= 2)
        assert fake.stream_requests == 0  # no stream before the rules are in sync
        fake.token = secret
        await eventually(lambda: len(harness.sink.accepted) == 1)
    assert fake.rule_pairs() == {(CAMPAIGN.value, CAMPAIGN.tag)}


# --- helpers ----------------------------------------------------------------------------


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    """A local port with nothing listening on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield port
