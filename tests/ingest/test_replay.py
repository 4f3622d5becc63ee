"""The replay CLI against a fake ingest behind ``httpx.MockTransport``.

The fake implements the webhook contract (bearer token, 1 to 1000 items, per-item
rejections, dedupe on ids, 413, 503 with Retry-After); a fake clock stands in
for time, so retries and rate limits are checked without really sleeping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.lines import TooLong
from services.common.messages import Source
from services.ingest.domain import InvalidMention, parse_item, to_mention
from services.ingest.exceptions import InvalidLine
from services.ingest.replay import (
    MAX_LINE_BYTES,
    ReplaySummary,
    RetryPolicy,
    TokenBucket,
    effective_batch,
    parse_line,
    parse_rate,
    parse_retry_after,
    replay,
)
from services.ingest.replay_cli import main, make_client

API_KEY = "replay-test-key-0123456789"
URL = "http://ingest.test"
NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)

Item = Callable[..., dict[str, Any]]


# --- fakes ----------------------------------------------------------------------


@dataclass
class FakeClock:
    """Time that only moves when someone sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeIngest:
    """``POST /v1/mentions`` as the contract says, with ids deduped in memory."""

    clock: FakeClock = field(default_factory=FakeClock)
    api_key: str = API_KEY
    #: Batches with more items than this get 413.
    max_items: int = 1000
    #: Answers (or exceptions) to give before behaving normally, one per request.
    outages: list[httpx.Response | Exception] = field(default_factory=list)
    #: A request that raises this after storing the batch (the answer was lost).
    lose_answer_once: Exception | None = None
    #: Items whose text contains this are rejected by the "server".
    reject_text: str = "REJECT-ME"
    stored: list[str] = field(default_factory=list)
    requests: list[list[dict[str, Any]]] = field(default_factory=list)
    #: (fake time, number of items) of every batch that reached the handler.
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    headers: list[httpx.Headers] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.headers.append(request.headers)
        refused = self._refuse(request)
        if refused is not None:
            return refused
        items = json.loads(request.content.decode("utf-8"))["mentions"]
        if len(items) > self.max_items:
            return error(413, "request body too large")
        self.arrivals.append((self.clock(), len(items)))
        self.requests.append(items)
        answer = self._store(items)
        if self.lose_answer_once is not None:
            exc, self.lose_answer_once = self.lose_answer_once, None
            raise exc
        return httpx.Response(202, json=answer)

    def _refuse(self, request: httpx.Request) -> httpx.Response | None:
        if request.method != "POST" or request.url.path != "/v1/mentions":
            return error(404, "not found")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return error(401, "missing or invalid bearer token")
        if self.outages:
            outage = self.outages.pop(0)
            if isinstance(outage, Exception):
                raise outage
            return outage
        try:
            items = json.loads(request.content.decode("utf-8"))["mentions"]
        except (UnicodeDecodeError, ValueError, KeyError):
            return error(400, "malformed body")
        if not isinstance(items, list) or not 1 <= len(items) <= 1000:
            return error(422, "'mentions' must hold 1 to 1000 items")
        return None

    def _store(self, items: list[Any]) -> dict[str, Any]:
        accepted = duplicates = 0
        rejected = []
        for index, item in enumerate(items):
            try:
                mention = to_mention(parse_item(item), source=Source.REPLAY, received_at=NOW)
            except InvalidMention as exc:
                rejected.append({"index": index, "error": str(exc)})
                continue
            if self.reject_text in mention.text:
                rejected.append({"index": index, "error": "text: refused by the fake"})
            elif mention.id in self.stored:
                duplicates += 1
            else:
                self.stored.append(mention.id)
                accepted += 1
        return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": "x", "message": message}}, headers=headers
    )


def unavailable(retry_after: str | None = "2") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return error(503, "Kafka did not accept the mentions", headers)


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8") + b"\n"


def x_stream_line(tweet_id: str = "1860000000000000001", **tweet: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": tweet_id,
        "text": "@TakeActionCamps what is school like in Kakuma? &amp; football?",
        "author_id": "42",
        "created_at": "2026-11-19T08:30:00.000Z",
        "lang": "en",
        "conversation_id": "1859999999999999999",
        "referenced_tweets": [{"type": "replied_to", "id": "1859999999999999999"}],
    }
    data.update(tweet)
    return {
        "data": data,
        "includes": {
            "users": [
                {
                    "id": "42",
                    "username": "maria_walsh",
                    "name": "Maria W.",
                    "public_metrics": {"followers_count": 310},
                }
            ]
        },
        "matching_rules": [{"id": "1", "tag": "campaign-handle"}],
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ingest(clock: FakeClock) -> FakeIngest:
    return FakeIngest(clock=clock)


@pytest.fixture
def run_replay(ingest: FakeIngest, clock: FakeClock) -> Callable[..., ReplaySummary]:
    """Replay ``lines`` into the fake ingest, with fake time."""

    def run(lines: list[bytes] | Iterator[bytes], **kwargs: Any) -> ReplaySummary:
        async def go() -> ReplaySummary:
            async with make_client(
                URL, kwargs.pop("api_key", API_KEY), transport=ingest.transport()
            ) as client:
                return await replay(lines, client, sleep=clock.sleep, clock=clock, **kwargs)

        return asyncio.run(go())

    return run


def assert_adds_up(summary: ReplaySummary) -> None:
    assert summary.lines_read == (
        summary.blank + summary.rejected_local + summary.sent + summary.unsent
    )
    assert summary.sent == summary.accepted + summary.duplicates + summary.rejected_server


# --- pure parts -------------------------------------------------------------------


def test_parse_line_returns_a_webhook_item_unchanged_in_meaning(item_factory: Item) -> None:
    item = item_factory(text="  What do you miss most?  ", url="https://x.com/a/status/1")
    parsed = parse_line(line(item), received_at=NOW)
    assert parsed is not None
    assert parsed["id"] == item["id"]
    assert parsed["platform"] == "x"
    assert parsed["text"] == "What do you miss most?"
    assert parsed["created_at"] == "2026-11-23T12:00:00Z"
    assert "conversation_id" not in parsed  # None fields are left out


def test_parse_line_converts_an_x_stream_line() -> None:
    parsed = parse_line(line(x_stream_line()), received_at=NOW)
    assert parsed == {
        "platform": "x",
        "id": "1860000000000000001",
        "author": {
            "id": "42",
            "handle": "maria_walsh",
            "display_name": "Maria W.",
            "followers": 310,
        },
        "text": "@TakeActionCamps what is school like in Kakuma? & football?",
        "created_at": "2026-11-19T08:30:00Z",
        "lang": "en",
        "conversation_id": "1859999999999999999",
        "in_reply_to": "1859999999999999999",
        "url": "https://x.com/maria_walsh/status/1860000000000000001",
        "matched_rules": ["campaign-handle"],
    }


@pytest.mark.parametrize("raw", [b"", b"\n", b"   \r\n", b"\t\n"])
def test_parse_line_skips_blank_lines(raw: bytes) -> None:
    assert parse_line(raw) is None


def _bad_lines() -> list[tuple[str, bytes, str]]:
    good = {
        "platform": "mastodon",
        "id": "113600000000000001",
        "author": {"id": "7", "handle": "ella@toot.example.net"},
        "text": "Habari! Ndoto yako kubwa ni nini?",
        "created_at": "2026-11-18T10:00:00+03:00",
    }
    return [
        ("bad json", b'{"platform": "x", "id": \n', "malformed JSON"),
        ("invalid utf-8", b'{"text": "caf\xe9"}\n', "not valid UTF-8 (byte 13)"),
        ("not an object", b"[1, 2, 3]\n", "item must be a JSON object"),
        ("missing author", line({k: v for k, v in good.items() if k != "author"}), "author"),
        (
            "missing created_at",
            line({k: v for k, v in good.items() if k != "created_at"}),
            "created_at",
        ),
        ("empty text", line({**good, "text": ""}), "text: empty"),
        ("blank text", line({**good, "text": " \u0007 \t "}), "text: empty"),
        ("naive created_at", line({**good, "created_at": "2026-11-18T10:00:00"}), "created_at"),
        ("future created_at", line({**good, "created_at": "2027-01-01T00:00:00Z"}), "future"),
        ("bad platform", line({**good, "platform": "facebook"}), "platform"),
        ("unknown field", line({**good, "likes": 3}), "likes"),
        (
            "x line without its author",
            line({**x_stream_line(), "includes": {"users": []}}),
            "author not in includes.users",
        ),
        (
            "x disconnect message",
            line({"errors": [{"title": "operational-disconnect"}]}),
            "no 'data'",
        ),
    ]


@pytest.mark.parametrize(
    ("raw", "reason"), [(r, why) for _, r, why in _bad_lines()], ids=[n for n, _, _ in _bad_lines()]
)
def test_parse_line_rejects_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidLine) as caught:
        parse_line(raw, received_at=NOW)
    assert reason in str(caught.value)


def test_parse_line_rejects_an_overlong_line() -> None:
    with pytest.raises(InvalidLine, match="longer than"):
        parse_line(b'{"text": "' + b"a" * MAX_LINE_BYTES + b'"}\n')


def test_parse_line_rejects_a_line_the_reader_skipped() -> None:
    with pytest.raises(InvalidLine, match="longer than"):
        parse_line(TooLong(MAX_LINE_BYTES + 1))


@pytest.mark.parametrize(
    ("text", "rate"),
    [("50", 50.0), ("50/s", 50.0), (" 12.5 /s ", 12.5), ("0", 0.0), ("200/S", 200.0)],
)
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "-1", "nan", "inf", "50/min", ""])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_effective_batch_keeps_the_flow_smooth_when_rate_limited() -> None:
    assert effective_batch(100, 0) == 100
    assert effective_batch(100, 50) == 5
    assert effective_batch(100, 3) == 1
    assert effective_batch(100, 5000) == 100


def test_parse_retry_after() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("-3") == 0.0
    later = datetime(2026, 11, 23, 13, 0, 30, tzinfo=UTC)
    assert parse_retry_after(format_datetime(later, usegmt=True), now=NOW) == 30.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None


def test_token_bucket_spends_its_burst_then_paces(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=10, capacity=5, clock=clock)
    assert bucket.reserve(5) == 0.0
    assert bucket.reserve(1) == pytest.approx(0.1)
    clock.now += 0.1
    assert bucket.reserve(20) == pytest.approx(2.0)  # in debt: wait for all of it
    clock.now += 10
    assert bucket.reserve(5) == 0.0  # refilled, but never above capacity
    assert bucket.reserve(1) == pytest.approx(0.1)


def test_token_bucket_refuses_a_zero_rate() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate=0, capacity=1)


# --- the async core -------------------------------------------------------------------


def test_replays_both_line_shapes(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    webhook = [item_factory(platform="mastodon"), item_factory()]
    lines = [line(webhook[0]), line(x_stream_line()), line(webhook[1])]
    summary = run_replay(lines)
    assert ingest.stored == [
        f"mastodon:{webhook[0]['id']}",
        "x:1860000000000000001",
        f"x:{webhook[1]['id']}",
    ]
    assert (summary.lines_read, summary.sent, summary.accepted) == (3, 3, 3)
    assert summary.completed
    assert summary.requests == 1
    assert ingest.headers[0]["X-TakeAction-Source"] == "replay"
    assert ingest.headers[0]["Content-Type"] == "application/json"
    assert_adds_up(summary)


def test_malformed_lines_are_counted_with_line_numbers_and_never_sent(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    good = [item_factory() for _ in range(3)]
    lines = [
        line(good[0]),
        b"{not json\n",
        b"\xff\xfe garbage\n",
        line({**item_factory(), "text": "   "}),
        b"\n",
        line(good[1]),
        line({"platform": "x", "id": "1"}),
        line(good[2]),
    ]
    summary = run_replay(lines)
    assert [m.split(":", 1)[1] for m in ingest.stored] == [g["id"] for g in good]
    sent_texts = [i["text"] for batch in ingest.requests for i in batch]
    assert sent_texts == [g["text"] for g in good]
    assert (summary.lines_read, summary.blank, summary.rejected_local) == (8, 1, 4)
    assert [(r.line, r.by) for r in summary.examples] == [
        (2, "replay"),
        (3, "replay"),
        (4, "replay"),
        (7, "replay"),
    ]
    assert "malformed JSON" in summary.examples[0].reason
    assert "UTF-8" in summary.examples[1].reason
    assert "text: empty" in summary.examples[2].reason
    assert "author" in summary.examples[3].reason
    assert summary.completed
    assert_adds_up(summary)


def test_posts_in_batches(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    summary = run_replay([line(item_factory()) for _ in range(250)], batch=100)
    assert [len(batch) for batch in ingest.requests] == [100, 100, 50]
    assert summary.requests == 3
    assert summary.accepted == 250
    assert_adds_up(summary)


def test_reads_lines_lazily(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    consumed = 0
    consumed_at_first_request: list[int] = []
    template = item_factory()

    def lines() -> Iterator[bytes]:
        nonlocal consumed
        for n in range(5000):
            consumed += 1
            if ingest.requests and not consumed_at_first_request:
                consumed_at_first_request.append(consumed)
            yield line({**template, "id": f"lazy-{n}"})

    summary = run_replay(lines(), batch=50)
    assert consumed_at_first_request == [51]  # only one batch was held in memory
    assert summary.accepted == 5000


def test_a_503_is_retried_after_retry_after_and_nothing_is_lost_or_doubled(
    run_replay: Callable[..., ReplaySummary],
    ingest: FakeIngest,
    clock: FakeClock,
    item_factory: Item,
) -> None:
    ingest.outages = [unavailable("2"), httpx.ConnectError("connection refused"), unavailable(None)]
    items = [item_factory() for _ in range(30)]
    summary = run_replay([line(i) for i in items], batch=10)
    assert ingest.stored == [f"x:{i['id']}" for i in items]
    assert clock.sleeps == [2.0, 1.0, 2.0]  # Retry-After, then exponential backoff
    assert (summary.requests, summary.retries) == (6, 3)
    assert (summary.sent, summary.accepted, summary.duplicates) == (30, 30, 0)
    assert summary.completed
    assert_adds_up(summary)


def test_a_lost_answer_is_retried_and_ingest_dedupes_it(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    ingest.lose_answer_once = httpx.ReadTimeout("no answer")
    items = [item_factory() for _ in range(5)]
    summary = run_replay([line(i) for i in items])
    assert ingest.stored == [f"x:{i['id']}" for i in items]  # stored once
    assert (summary.accepted, summary.duplicates, summary.retries) == (0, 5, 1)
    assert summary.completed


def test_retry_after_is_capped(
    run_replay: Callable[..., ReplaySummary],
    ingest: FakeIngest,
    clock: FakeClock,
    item_factory: Item,
) -> None:
    ingest.outages = [unavailable("86400")]
    summary = run_replay([line(item_factory())], retry=RetryPolicy(max_retry_after_s=7))
    assert clock.sleeps == [7]
    assert summary.accepted == 1


def test_gives_up_when_retries_are_exhausted(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    ingest.outages = [unavailable("1") for _ in range(4)]
    lines = [line(item_factory()) for _ in range(7)] + [b"oops\n"]
    summary = run_replay(lines, batch=5, retry=RetryPolicy(attempts=3))
    assert not summary.completed
    assert summary.error is not None
    assert "gave up after 3 attempts" in summary.error
    assert "503" in summary.error
    assert ingest.stored == []
    assert len(ingest.outages) == 1  # three attempts, not four
    # The first batch failed; the rest of the file was never read.
    assert (summary.lines_read, summary.sent, summary.unsent) == (5, 0, 5)
    assert_adds_up(summary)


def test_a_bad_api_key_aborts_without_retrying(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    summary = run_replay([line(item_factory()) for _ in range(3)], api_key="wrong")
    assert summary.error is not None
    assert "API key" in summary.error
    assert "401" in summary.error
    assert "wrong" not in summary.error
    assert (summary.requests, summary.retries, summary.unsent) == (1, 0, 3)
    assert_adds_up(summary)


def test_rejections_by_ingest_are_mapped_to_line_numbers(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    lines = [
        line(item_factory()),
        b"\n",
        line(item_factory(text="REJECT-ME please")),
        line(item_factory()),
    ]
    summary = run_replay(lines, batch=2)
    assert summary.rejected_server == 1
    assert [(r.line, r.by, r.reason) for r in summary.examples] == [
        (3, "ingest", "text: refused by the fake")
    ]
    assert (summary.accepted, summary.sent) == (2, 3)
    assert_adds_up(summary)


def test_a_batch_too_large_is_split(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    ingest.max_items = 30
    summary = run_replay([line(item_factory()) for _ in range(100)], batch=100)
    assert len(ingest.stored) == 100
    assert all(len(batch) <= 30 for batch in ingest.requests)
    assert summary.completed
    assert summary.accepted == 100
    assert_adds_up(summary)


def test_a_batch_refused_as_a_whole_counts_its_items_as_rejected(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    ingest.outages = [error(422, "'mentions' must hold 1 to 1000 items")]
    summary = run_replay([line(item_factory()) for _ in range(4)], batch=2)
    assert summary.rejected_server == 2
    assert summary.examples[0].line == 1
    assert "422" in summary.examples[0].reason
    assert summary.accepted == 2
    assert summary.completed
    assert_adds_up(summary)


def test_an_answer_that_is_not_ingest_aborts(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    ingest.outages = [httpx.Response(200, text="<html>hello</html>")]
    summary = run_replay([line(item_factory())])
    assert summary.error is not None
    assert "unexpected body" in summary.error


def test_rate_limit_paces_the_batches(
    run_replay: Callable[..., ReplaySummary],
    ingest: FakeIngest,
    clock: FakeClock,
    item_factory: Item,
) -> None:
    rate, start = 20.0, clock.now
    summary = run_replay([line(item_factory()) for _ in range(100)], rate=rate, batch=100)
    capacity = effective_batch(100, rate)
    assert {n for _, n in ingest.arrivals} == {capacity}
    sent = 0
    for at, n in ingest.arrivals:
        sent += n
        assert sent <= capacity + rate * (at - start) + 1e-9
    assert clock.now - start == pytest.approx((100 - capacity) / rate)
    assert summary.elapsed_s == pytest.approx((100 - capacity) / rate)
    assert summary.rate == pytest.approx(100 / summary.elapsed_s)


def test_no_rate_means_no_waiting(
    run_replay: Callable[..., ReplaySummary], clock: FakeClock, item_factory: Item
) -> None:
    run_replay([line(item_factory()) for _ in range(300)], rate=0, batch=10)
    assert clock.sleeps == []


def test_progress_is_reported(run_replay: Callable[..., ReplaySummary], item_factory: Item) -> None:
    steps: list[int] = []
    run_replay(
        [line(item_factory()) for _ in range(5)] + [b"bad\n"],
        batch=2,
        progress=lambda n, _summary: steps.append(n),
    )
    assert sum(steps) == 6  # every line read
    assert steps.count(0) == 3  # one refresh per answered request


def test_summary_numbers_add_up_on_a_messy_file(
    run_replay: Callable[..., ReplaySummary], ingest: FakeIngest, item_factory: Item
) -> None:
    items = [item_factory() for _ in range(40)]
    lines: list[bytes] = []
    for n, item in enumerate(items):
        lines.append(line(item))
        if n % 5 == 0:
            lines.append(line(item))  # webhook retry: same id again
        if n % 7 == 0:
            lines.append(b"{broken\n")
        if n % 9 == 0:
            lines.append(b"\n")
        if n % 11 == 0:
            lines.append(line(item_factory(text="REJECT-ME")))
    ingest.outages = [unavailable("1")]
    summary = run_replay(lines, batch=7)
    assert summary.accepted == 40
    assert summary.duplicates == 8
    assert summary.rejected_local == 6
    assert summary.rejected_server == 4
    assert summary.blank == 5
    assert summary.lines_read == len(lines)
    assert len(ingest.stored) == 40
    assert_adds_up(summary)
    report = summary.to_json()
    assert report["rejected"]["total"] == 10
    assert len(report["rejected"]["examples"]) == 10
    assert report["completed"] is True


def test_replay_refuses_a_batch_out_of_range(run_replay: Callable[..., ReplaySummary]) -> None:
    with pytest.raises(ValueError, match="batch"):
        run_replay([], batch=1001)


# --- the command line ----------------------------------------------------------------


@pytest.fixture
def replay_file(tmp_path: Path, item_factory: Item) -> Path:
    path = tmp_path / "mentions.jsonl"
    lines = [line(item_factory()) for _ in range(12)]
    lines.insert(3, b"not json\n")
    lines.insert(6, line(x_stream_line()))
    lines.insert(8, b"\n")
    lines.append(lines[0])  # exact duplicate
    path.write_bytes(b"".join(lines))
    return path


def test_main_end_to_end_with_a_json_summary(
    replay_file: Path,
    ingest: FakeIngest,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INGEST_URL", raising=False)
    monkeypatch.setenv("INGEST_API_KEY", API_KEY)
    ingest.outages = [unavailable("3")]
    code = main(
        [
            str(replay_file),
            "--url",
            URL,
            "--batch",
            "4",
            "--rate",
            "100/s",
            "--no-progress",
            "--json",
        ],
        transport=ingest.transport(),
        sleep=clock.sleep,
        clock=clock,
    )
    out, err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)
    assert report["completed"] is True
    assert report["lines_read"] == 16
    assert report["blank"] == 1
    assert report["sent"] == 14
    assert report["accepted"] == 13
    assert report["duplicates"] == 1
    assert report["rejected"]["local"] == 1
    assert report["rejected"]["examples"][0]["line"] == 4
    assert report["retries"] == 1
    assert report["url"] == URL
    assert len(ingest.stored) == 13
    assert "completed" in err  # the human summary goes to stderr with --json
    assert API_KEY not in out + err


def test_main_prints_a_human_summary(
    replay_file: Path, ingest: FakeIngest, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [str(replay_file), "--url", URL, "--api-key", API_KEY, "--no-progress"],
        transport=ingest.transport(),
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert "completed" in out
    assert "line 4 (replay): malformed JSON" in out
    assert "accepted          13" in out
    assert API_KEY not in out + err


def test_main_uses_the_environment_for_url_and_key(
    replay_file: Path,
    ingest: FakeIngest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INGEST_URL", "http://from-env.test:8001")
    monkeypatch.setenv("INGEST_API_KEY", API_KEY)
    code = main([str(replay_file), "--no-progress", "--json"], transport=ingest.transport())
    assert code == 0
    assert json.loads(capsys.readouterr().out)["url"] == "http://from-env.test:8001"


def test_main_exits_non_zero_on_a_bad_key(
    replay_file: Path, ingest: FakeIngest, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [str(replay_file), "--url", URL, "--api-key", "nope", "--no-progress", "--json"],
        transport=ingest.transport(),
    )
    out, err = capsys.readouterr()
    assert code == 1
    report = json.loads(out)
    assert report["completed"] is False
    assert "API key" in report["error"]
    assert "ABORTED" in err
    assert "nope" not in out + err


def test_main_exits_non_zero_when_ingest_stays_down(
    replay_file: Path, ingest: FakeIngest, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest.outages = [httpx.ConnectError("connection refused") for _ in range(50)]
    code = main(
        [str(replay_file), "--url", URL, "--api-key", API_KEY, "--no-progress"],
        transport=ingest.transport(),
        sleep=clock.sleep,
        clock=clock,
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "ABORTED: gave up after 10 attempts: cannot reach ingest" in out
    assert ingest.stored == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "fast"], "rate must be"),
        (["--batch", "1001"], "batch must be 1 to 1000"),
        (["--batch", "0"], "batch must be 1 to 1000"),
        (["--url", "ftp://x"], "--url must start with"),
    ],
)
def test_main_refuses_bad_options(
    replay_file: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([str(replay_file), "--api-key", API_KEY, *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_main_needs_an_api_key(
    replay_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INGEST_API_KEY", raising=False)
    assert main([str(replay_file)]) == 2
    assert "INGEST_API_KEY" in capsys.readouterr().err


def test_main_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.jsonl"), "--api-key", API_KEY]) == 2
    assert "cannot read" in capsys.readouterr().err
