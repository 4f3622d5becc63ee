"""Replay a JSON Lines file of mentions into ingest's webhook.

``python -m services.ingest replay FILE.jsonl [--rate 50/s] [--batch 100]``

Each line is either a webhook item (``POST /v1/mentions`` shape) or a raw X
API v2 filtered-stream line (``data`` / ``includes`` / ``matching_rules``).
Every line is validated here exactly as ingest would validate it, so a bad
line is reported with its line number and never sent. The file is streamed
(memory stays bounded whatever its size), batches are posted with one pooled
client, and a busy or restarting ingest (503, connection errors, timeouts) is
retried with backoff, honouring ``Retry-After``. Re-sending a batch is safe:
ingest drops ids it has already seen, so a retry never doubles a mention.

Exit status: 0 when the whole file was replayed (rejected lines included),
1 when the replay was aborted (bad API key, ingest unreachable), 2 for a
usage error, 130 when interrupted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Final

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from services.common.codec import MAX_MESSAGE_BYTES
from services.common.lines import TooLong
from services.common.messages import Source, utcnow
from services.ingest.domain import InvalidMention, parse_item, to_mention, x_payload_to_item
from services.ingest.exceptions import InvalidLine, ReplayAborted, RetryableResponse

log = logging.getLogger(__name__)

MENTIONS_PATH: Final = "/v1/mentions"
#: Ingest marks mentions posted with this header as coming from a replay.
SOURCE_HEADER: Final = "X-TakeAction-Source"
DEFAULT_URL: Final = "http://127.0.0.1:8001"
DEFAULT_BATCH: Final = 100
MAX_BATCH: Final = 1000
#: A line longer than this is rejected without being parsed (ingest refuses bigger messages).
MAX_LINE_BYTES: Final = MAX_MESSAGE_BYTES
#: Batches are cut before their body reaches this size (ingest's default limit is 4 MiB).
MAX_BATCH_BYTES: Final = 3 * 1024 * 1024
#: With a rate set, a batch holds at most this fraction of a second's worth of mentions.
RATE_BATCH_SECONDS: Final = 0.1
#: How many rejection reasons the summary keeps (the counts are always complete).
MAX_EXAMPLES: Final = 10

EXIT_OK: Final = 0
EXIT_ABORTED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

#: Statuses worth another try: ingest or something in front of it is busy or restarting.
RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
#: Statuses that reject the batch as a whole (its items are counted as rejected by ingest).
BATCH_REJECTED_STATUSES: Final = frozenset({400, 415, 422})
#: X stream objects carry these top-level keys; webhook items never do.
_X_STREAM_KEYS: Final = ("data", "includes", "matching_rules", "errors")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


# --- pure parts ---------------------------------------------------------------


def parse_rate(value: str) -> float:
    """``"50"`` or ``"50/s"`` → 50.0 mentions per second; ``"0"`` means unlimited."""
    text = value.strip().lower().replace(" ", "")
    text = text.removesuffix("/s")
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(
            f"rate must be a number of mentions per second, e.g. 50 or 50/s: {value!r}"
        ) from None
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"rate must be 0 (unlimited) or a positive number: {value!r}")
    return rate


def effective_batch(batch: int, rate: float) -> int:
    """The batch size actually used: with a rate, a batch never holds more than
    :data:`RATE_BATCH_SECONDS` worth of mentions, so the flow stays smooth."""
    if rate <= 0:
        return batch
    return max(1, min(batch, math.ceil(rate * RATE_BATCH_SECONDS)))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or utcnow())).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def is_x_stream_object(payload: object) -> bool:
    """True for a raw X API v2 filtered-stream line rather than a webhook item."""
    return isinstance(payload, dict) and any(key in payload for key in _X_STREAM_KEYS)


def parse_line(
    raw: bytes | TooLong, *, received_at: datetime | None = None
) -> dict[str, Any] | None:
    """One line of a replay file → a webhook item ready to send, or None for a blank line.

    Runs the same checks ingest runs (including normalisation, so that e.g.
    whitespace-only text is caught here); raises :class:`InvalidLine` with the reason.
    """
    if isinstance(raw, TooLong) or len(raw.rstrip(b"\r\n")) > MAX_LINE_BYTES:
        raise InvalidLine(f"line is longer than {MAX_LINE_BYTES} bytes")
    stripped = raw.strip()
    if not stripped:
        return None
    try:
        text = stripped.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise InvalidLine(f"not valid UTF-8 (byte {exc.start})") from exc
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidLine(f"malformed JSON: {exc.msg} (column {exc.colno})") from exc
    try:
        item = x_payload_to_item(payload) if is_x_stream_object(payload) else parse_item(payload)
        to_mention(item, source=Source.REPLAY, received_at=received_at or utcnow())
    except InvalidMention as exc:
        raise InvalidLine(str(exc)) from exc
    return item.model_dump(mode="json", exclude_none=True)


def count_lines(path: Path, chunk_size: int = 1 << 20) -> int:
    """Number of lines in a file, read in chunks (for the progress bar's total)."""
    count = 0
    last = b"\n"
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_size):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up.

    :meth:`reserve` may take more tokens than are available (the bucket goes
    into debt) and returns how long to wait first, so a batch bigger than the
    bucket still goes out at the right average rate.
    """

    def __init__(self, rate: float, capacity: float, *, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self._clock = clock
        self._updated = clock()

    def reserve(self, n: float) -> float:
        """Take ``n`` tokens; return the seconds to wait before using them."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.rate)
        self._updated = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    async def acquire(self, n: float, sleep: Sleep = asyncio.sleep) -> None:
        delay = self.reserve(n)
        if delay > 0:
            await sleep(delay)


@dataclass(frozen=True)
class Rejection:
    """One line that did not become a mention: where, who said no, and why."""

    line: int
    by: str  # "replay" (checked here) or "ingest" (refused by the server)
    reason: str


@dataclass
class ReplaySummary:
    """What a replay did. ``lines_read = blank + rejected_local + sent + unsent`` and,
    when ingest answers consistently, ``sent = accepted + duplicates + rejected_server``."""

    source: str = ""
    url: str = ""
    lines_read: int = 0
    blank: int = 0
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected_local: int = 0
    rejected_server: int = 0
    #: Valid mentions never acknowledged by ingest because the replay was aborted.
    unsent: int = 0
    requests: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    examples: list[Rejection] = field(default_factory=list)
    error: str | None = None
    interrupted: bool = False

    @property
    def rejected(self) -> int:
        return self.rejected_local + self.rejected_server

    @property
    def completed(self) -> bool:
        return self.error is None and not self.interrupted

    @property
    def rate(self) -> float:
        """Mentions sent per second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def reject(self, line: int, reason: str, *, by: str) -> None:
        if by == "replay":
            self.rejected_local += 1
        else:
            self.rejected_server += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(Rejection(line, by, reason))

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "url": self.url,
            "completed": self.completed,
            "error": self.error,
            "interrupted": self.interrupted,
            "lines_read": self.lines_read,
            "blank": self.blank,
            "sent": self.sent,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": {
                "total": self.rejected,
                "local": self.rejected_local,
                "server": self.rejected_server,
                "examples": [
                    {"line": r.line, "by": r.by, "reason": r.reason} for r in self.examples
                ],
            },
            "unsent": self.unsent,
            "requests": self.requests,
            "retries": self.retries,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_per_s": round(self.rate, 1),
        }

    def render(self) -> str:
        """A human-readable report, several lines."""
        if self.completed:
            outcome = "completed"
        elif self.interrupted:
            outcome = "INTERRUPTED"
        else:
            outcome = f"ABORTED: {self.error}"
        out = [
            f"replay of {self.source or '(lines)'} to {self.url or 'ingest'}: {outcome}",
            f"  lines read  {self.lines_read:>8}  ({self.blank} blank)",
            f"  sent        {self.sent:>8}  in {_plural(self.requests, 'request')}, "
            f"{_plural(self.retries, 'retry', 'retries')}",
            f"  accepted    {self.accepted:>8}",
            f"  duplicates  {self.duplicates:>8}",
            f"  rejected    {self.rejected:>8}  ({self.rejected_local} here, "
            f"{self.rejected_server} by ingest)",
        ]
        out.extend(f"    line {r.line} ({r.by}): {r.reason}" for r in self.examples)
        if self.rejected > len(self.examples):
            out.append(f"    ... and {self.rejected - len(self.examples)} more")
        if self.unsent:
            out.append(f"  not sent    {self.unsent:>8}  (valid, but the replay stopped first)")
        out.append(f"  elapsed     {self.elapsed_s:>8.1f}s ({self.rate:.1f} mentions/s)")
        return "\n".join(out)


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


# --- the async core -------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one batch before giving up on the whole replay."""

    attempts: int = 10
    #: Stop retrying a batch after this long (seconds).
    give_up_after_s: float = 120.0
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    #: A ``Retry-After`` longer than this is cut to it.
    max_retry_after_s: float = 60.0

    def wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: ``Retry-After`` when ingest gave one,
        else exponential backoff."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RetryableResponse) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_after_s)
        backoff: float = self.initial_backoff_s * 2 ** (state.attempt_number - 1)
        return min(self.max_backoff_s, backoff)


class _IngestAnswer(BaseModel):
    class _Rejected(BaseModel):
        index: int
        error: str

    accepted: int
    duplicates: int
    rejected: list[_Rejected]


@dataclass
class _Pending:
    line: int
    body: bytes


#: Called after each step with the number of lines just handled and the summary so far.
ProgressCallback = Callable[[int, ReplaySummary], None]


def _error_message(response: httpx.Response) -> str:
    """The ``error.message`` of ingest's error body, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
        if isinstance(message, str):
            return message
    return response.text[:200].strip() or response.reason_phrase


def _body(batch: list[_Pending]) -> bytes:
    return b'{"mentions":[' + b",".join(p.body for p in batch) + b"]}"


class _Replayer:
    def __init__(
        self,
        client: httpx.AsyncClient,
        summary: ReplaySummary,
        *,
        retry: RetryPolicy,
        sleep: Sleep,
        progress: ProgressCallback | None,
        bucket: TokenBucket | None,
    ) -> None:
        self.client = client
        self.summary = summary
        self.retry = retry
        self.sleep = sleep
        self.progress = progress
        self.bucket = bucket
        self.pending: list[_Pending] = []
        self.pending_bytes = 0

    async def run(self, lines: Iterable[bytes | TooLong], size: int) -> None:
        """Parse every line, post the valid ones in batches of ``size``."""
        summary = self.summary
        try:
            for number, raw in enumerate(lines, start=1):
                summary.lines_read += 1
                body = self._parse(number, raw)
                if self.progress is not None:
                    self.progress(1, summary)
                if body is None:
                    continue
                if self.pending and self.pending_bytes + len(body) + 1 > MAX_BATCH_BYTES:
                    await self.flush()
                self.pending.append(_Pending(number, body))
                self.pending_bytes += len(body) + 1
                if len(self.pending) >= size:
                    await self.flush()
            await self.flush()
        finally:
            summary.unsent += len(self.pending)
            self.pending = []

    def _parse(self, number: int, raw: bytes | TooLong) -> bytes | None:
        """The item's JSON, or None for a blank or rejected line (counted here)."""
        try:
            item = parse_line(raw)
        except InvalidLine as exc:
            self.summary.reject(number, str(exc), by="replay")
            return None
        if item is None:
            self.summary.blank += 1
            return None
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def flush(self) -> None:
        """Post the pending batch (waiting for the rate limit first)."""
        if not self.pending:
            return
        batch, self.pending, self.pending_bytes = self.pending, [], 0
        sent_before = self.summary.sent
        try:
            if self.bucket is not None:
                await self.bucket.acquire(len(batch), self.sleep)
            await self.deliver(batch)
        except BaseException:
            self.summary.unsent += len(batch) - (self.summary.sent - sent_before)
            raise

    async def deliver(self, batch: list[_Pending]) -> None:
        """Post one batch until ingest answers it; split it if it is too large."""
        response = await self._post(_body(batch))
        summary = self.summary
        status = response.status_code
        if status == 413:
            if len(batch) > 1:
                log.info("ingest found a batch of %d too large; splitting it", len(batch))
                middle = len(batch) // 2
                await self.deliver(batch[:middle])
                await self.deliver(batch[middle:])
                return
            summary.sent += 1
            summary.reject(batch[0].line, "too large for ingest (413)", by="ingest")
        elif status in BATCH_REJECTED_STATUSES:
            message = f"ingest refused the batch ({status}): {_error_message(response)}"
            log.warning("%s", message)
            summary.sent += len(batch)
            for pending in batch:
                summary.reject(pending.line, message, by="ingest")
        elif response.is_success:
            self._count(batch, response)
        else:
            raise ReplayAborted(
                f"unexpected answer from ingest: {status} {_error_message(response)}"
            )
        if self.progress is not None:
            self.progress(0, summary)

    def _count(self, batch: list[_Pending], response: httpx.Response) -> None:
        try:
            answer = _IngestAnswer.model_validate_json(response.content)
        except ValidationError as exc:
            raise ReplayAborted(
                f"ingest answered {response.status_code} with an unexpected body "
                f"({exc.error_count()} errors); is {self.summary.url} really ingest?"
            ) from exc
        summary = self.summary
        summary.sent += len(batch)
        summary.accepted += answer.accepted
        summary.duplicates += answer.duplicates
        for rejected in answer.rejected:
            line = batch[rejected.index].line if 0 <= rejected.index < len(batch) else 0
            summary.reject(line, rejected.error, by="ingest")
        if answer.accepted + answer.duplicates + len(answer.rejected) != len(batch):
            log.warning(
                "ingest accounted for %d of %d mentions in a batch",
                answer.accepted + answer.duplicates + len(answer.rejected),
                len(batch),
            )

    async def _post(self, body: bytes) -> httpx.Response:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts)
            | stop_after_delay(self.retry.give_up_after_s),
            wait=self.retry.wait,
            retry=retry_if_exception_type((RetryableResponse, httpx.TransportError)),
            sleep=self.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._post_once(body)
        except (RetryableResponse, httpx.TransportError) as exc:
            attempts = retrying.statistics.get("attempt_number", self.retry.attempts)
            raise ReplayAborted(f"gave up after {attempts} attempts: {_describe(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_once(self, body: bytes) -> httpx.Response:
        self.summary.requests += 1
        response = await self.client.post(
            MENTIONS_PATH,
            content=body,
            headers={"Content-Type": "application/json", SOURCE_HEADER: Source.REPLAY.value},
        )
        status = response.status_code
        if status in (401, 403):
            raise ReplayAborted(
                f"ingest refused the API key ({status} {_error_message(response)}); "
                "check --api-key or INGEST_API_KEY"
            )
        if status in RETRYABLE_STATUSES:
            raise RetryableResponse(
                status,
                _error_message(response),
                parse_retry_after(response.headers.get("Retry-After")),
            )
        return response

    def _before_sleep(self, state: RetryCallState) -> None:
        self.summary.retries += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("%s; retry %d in %.1fs", _describe(exc), state.attempt_number, delay)


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"ingest did not answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        return f"cannot reach ingest ({type(exc).__name__}: {exc})"
    return str(exc)


async def replay(
    lines: Iterable[bytes | TooLong],
    client: httpx.AsyncClient,
    *,
    rate: float = 0.0,
    batch: int = DEFAULT_BATCH,
    retry: RetryPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    progress: ProgressCallback | None = None,
    summary: ReplaySummary | None = None,
) -> ReplaySummary:
    """Validate ``lines`` and post them to ingest through ``client`` (whose
    ``base_url`` and ``Authorization`` are set by the caller).

    Never raises for bad lines or an unreachable ingest: the returned summary
    says what happened (``summary.error`` when the replay was aborted). Pass
    ``summary`` to keep the partial counts if the task is cancelled.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be 1 to {MAX_BATCH}, got {batch}")
    if rate < 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be 0 (unlimited) or positive, got {rate}")
    summary = summary if summary is not None else ReplaySummary()
    summary.url = summary.url or str(client.base_url)
    size = effective_batch(batch, rate)
    replayer = _Replayer(
        client,
        summary,
        retry=retry or RetryPolicy(),
        sleep=sleep,
        progress=progress,
        bucket=TokenBucket(rate, size, clock=clock) if rate > 0 else None,
    )
    started = clock()
    try:
        await replayer.run(lines, size)
    except ReplayAborted as exc:
        summary.error = str(exc)
    except (asyncio.CancelledError, KeyboardInterrupt):
        summary.interrupted = True
        raise
    finally:
        summary.elapsed_s = clock() - started
    if summary.error:
        log.error("replay aborted: %s", summary.error)
    return summary
