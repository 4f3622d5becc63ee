"""X API v2 filtered stream: keep the stream rules in sync with config, read the
stream, hand every post to the sink, and reconnect the way X asks clients to.

Wire format (``GET /2/tweets/search/stream``): newline-delimited JSON objects
(``data`` / ``includes`` / ``matching_rules``), a bare ``\\r\\n`` keep-alive
about every 20 s, and error-only objects (``{"errors": [...]}``) when X
disconnects the stream for operational reasons.

Reconnect policy (X's "Handling disconnections" guide), in :class:`XBackoff`:
reconnect at once after an established connection drops; then back off
linearly by 250 ms up to 16 s for network errors, exponentially from 5 s up to
320 s for HTTP errors, and exponentially from 1 minute for HTTP 429, waiting
for ``x-rate-limit-reset`` when that is later.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from services.common.codec import MAX_MESSAGE_BYTES
from services.common.messages import Source, utcnow
from services.ingest import metrics
from services.ingest.config import IngestSettings, XStreamRule
from services.ingest.domain import (
    CampaignAccounts,
    InvalidMention,
    to_mention,
    x_payload_to_item,
)
from services.ingest.exceptions import BrokerUnavailable, XApiError
from services.ingest.sink import MentionSink

log = logging.getLogger(__name__)

SOURCE = Source.X_STREAM
RULES_PATH = "/2/tweets/search/stream/rules"
STREAM_PATH = "/2/tweets/search/stream"
#: What every post on the stream carries: the fields ``x_payload_to_item`` maps.
#: ``entities`` says whom a post @mentions and ``referenced_tweets.id.author_id``
#: whose post it quotes (X lets an app reply only to a post that does either);
#: ``note_tweet`` holds the whole text of a post longer than 280 characters.
STREAM_PARAMS: dict[str, str] = {
    "expansions": "author_id,referenced_tweets.id,referenced_tweets.id.author_id",
    "tweet.fields": (
        "created_at,lang,conversation_id,referenced_tweets,author_id,entities,note_tweet"
    ),
    "user.fields": "username,name,public_metrics",
}

#: X sends a keep-alive every ~20 s; this long without a byte (not even a keep-alive)
#: means the connection is dead, and X asks clients to reconnect.
DEFAULT_STALL_TIMEOUT_S = 20.0
#: X asks every client to name itself.
USER_AGENT = "takeaction-ingest/0.1 (filtered stream)"
#: A connection that stayed up this long was healthy even if no post matched.
STABLE_CONNECTION_S = 60.0
#: Longest line kept; a post with its expansions is a few kilobytes.
MAX_LINE_BYTES = MAX_MESSAGE_BYTES
#: Error bodies are read up to this many bytes (for the log).
MAX_ERROR_BODY_BYTES = 16_384
#: ``DeadLetter.error`` holds at most 4000 characters.
MAX_ERROR_CHARS = 4000

_REQUEST_TIMEOUT = httpx.Timeout(15.0, connect=10.0)


# --- reconnect policy (pure) ---------------------------------------------------


class BackoffKind(StrEnum):
    """The three kinds of failure X's reconnect guide tells apart."""

    NETWORK = "network"
    HTTP = "http"
    RATE_LIMIT = "rate_limit"


def _jitter() -> float:
    return random.SystemRandom().uniform(0.0, 1.0)


@dataclass
class XBackoff:
    """How long to wait before the next (re)connect, as X documents it.

    Each kind of failure has its own count of consecutive failures; :meth:`reset`
    (after a connection that delivered data) clears them all, so the first
    reconnect after an established connection drops is immediate.

    - network (TCP/IP) errors: 0, 0.25, 0.5, ... seconds, capped at 16 s;
    - HTTP errors: 5, 10, 20, ... seconds, capped at 320 s;
    - HTTP 429: 60, 120, 240, ... seconds, capped at ``rate_limit_max_s``; if X
      said when the limit resets, wait until then (plus jitter) when that is later.
    """

    network_step_s: float = 0.25
    network_max_s: float = 16.0
    http_initial_s: float = 5.0
    http_max_s: float = 320.0
    rate_limit_initial_s: float = 60.0
    #: X gives no cap; rate-limit windows are 15 minutes, so longer never helps.
    rate_limit_max_s: float = 900.0
    #: Never trust a reset time further away than this (a mis-scaled header).
    max_reset_wait_s: float = 24 * 3600.0
    #: Seconds (0..1 by default) added to a reset time, so clients do not all retry at once.
    jitter: Callable[[], float] = _jitter
    _failures: dict[BackoffKind, int] = field(default_factory=dict, init=False, repr=False)

    def reset(self) -> None:
        self._failures.clear()

    def failures(self, kind: BackoffKind) -> int:
        return self._failures.get(kind, 0)

    def next_delay(
        self, kind: BackoffKind, *, reset_at: float | None = None, now: float | None = None
    ) -> float:
        """Record one more failure of ``kind``; return the seconds to wait before retrying."""
        n = self._failures.get(kind, 0)
        self._failures[kind] = n + 1
        if kind is BackoffKind.NETWORK:
            return min(self.network_step_s * n, self.network_max_s)
        if kind is BackoffKind.HTTP:
            return min(self.http_initial_s * 2.0**n, self.http_max_s)
        delay = min(self.rate_limit_initial_s * 2.0**n, self.rate_limit_max_s)
        if reset_at is not None:
            until_reset = reset_at - (time.time() if now is None else now) + self.jitter()
            delay = max(delay, min(until_reset, self.max_reset_wait_s))
        return delay


def broker_retry_delay(attempt: int, *, initial_s: float = 0.5, max_s: float = 30.0) -> float:
    """Seconds to wait after ``attempt`` (0-based) sink failures: 0.5 s doubling to 30 s."""
    return min(initial_s * 2.0**attempt, max_s)


# --- reading lines (pure) --------------------------------------------------------


class Line(NamedTuple):
    raw: bytes
    #: True when the line was longer than the limit and ``raw`` is only its start.
    truncated: bool = False


class LineSplitter:
    """Split a byte stream into lines ending in ``\\n`` (a ``\\r`` before it is dropped).

    Memory stays bounded: a line longer than ``max_line_bytes`` is returned
    truncated (once) and the rest of it is skipped.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes of an incomplete line held (what a dropped connection cut off)."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Line]:
        lines: list[Line] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if self._skipping:
                self._skipping = False
            else:
                self._buffer += chunk[start:end]
                raw = bytes(self._buffer.removesuffix(b"\r"))
                if len(raw) > self.max_line_bytes:
                    lines.append(Line(raw[: self.max_line_bytes], truncated=True))
                else:
                    lines.append(Line(raw))
            self._buffer.clear()
            start = end + 1
        if not self._skipping:
            self._buffer += chunk[start:]
            if len(self._buffer) > self.max_line_bytes:
                lines.append(Line(bytes(self._buffer[: self.max_line_bytes]), truncated=True))
                self._buffer.clear()
                self._skipping = True
        return lines


# --- X response shapes -------------------------------------------------------------


class _RuleOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    value: str
    tag: str | None = None


class _RulesMeta(BaseModel):
    model_config = ConfigDict(extra="ignore")

    result_count: int | None = None
    next_token: str | None = None
    summary: dict[str, int] | None = None


class _RulesResponse(BaseModel):
    """``GET``/``POST /2/tweets/search/stream/rules``; ``data`` is absent when empty."""

    model_config = ConfigDict(extra="ignore")

    data: list[_RuleOut] | None = None
    meta: _RulesMeta = _RulesMeta()
    errors: list[Any] | None = None


def _describe_problem(problem: Any) -> str:
    if not isinstance(problem, dict):
        return str(problem)[:300]
    parts = [
        str(problem[key])
        for key in ("title", "detail", "message", "disconnect_type", "connection_issue", "value")
        if problem.get(key)
    ]
    details = problem.get("details")
    if isinstance(details, list):
        parts.extend(str(d) for d in details[:3])
    return ": ".join(parts)[:500] or json.dumps(problem)[:300]


def _describe_error_body(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        described = "; ".join(_describe_problem(p) for p in payload["errors"][:5])
        if payload.get("title") or payload.get("detail"):
            return f"{_describe_problem(payload)}; {described}"
        return described
    return _describe_problem(payload)


def _rate_limit_reset(response: httpx.Response) -> float | None:
    raw = response.headers.get("x-rate-limit-reset")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


# --- the source -------------------------------------------------------------------


class _Outcome(NamedTuple):
    """How one connection attempt ended."""

    kind: BackoffKind
    #: Label of ``ingest_source_reconnects_total`` (few values).
    reason: str
    delivered: bool = False
    rate_limit_reset: float | None = None


@dataclass
class _Connection:
    lines: int = 0
    posts: int = 0
    opened_at: float | None = None


class _DisconnectError(Exception):
    """X sent an error-only line: it is closing this connection."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class XFilteredStream:
    """The X API v2 filtered stream as a source of mentions.

    ``run()`` syncs the rules once, then reads the stream forever, reconnecting
    per :class:`XBackoff`; cancel the task to stop it. Nothing is dropped on the
    way: unreadable lines are dead-lettered, and when the sink cannot reach
    Kafka the stream waits and retries the same post.
    """

    def __init__(
        self,
        settings: IngestSettings,
        http: httpx.AsyncClient,
        sink: MentionSink,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
        backoff: XBackoff | None = None,
        clock: Callable[[], float] = time.time,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if settings.x_bearer_token is None:
            raise ValueError("XFilteredStream needs INGEST_X_BEARER_TOKEN")
        self._token = settings.x_bearer_token
        self._base_url = settings.x_api_base_url.rstrip("/")
        self._rules: tuple[XStreamRule, ...] = tuple(dict.fromkeys(settings.x_rules))
        self._http = http
        self._sink = sink
        self._sleep = sleep
        self._clock = clock
        self._backoff = backoff or XBackoff()
        self._max_line_bytes = max_line_bytes
        self._accounts = CampaignAccounts.of(
            settings.campaign_handles, [settings.x_account_id or ""]
        )
        self._stream_timeout = httpx.Timeout(
            connect=10.0, read=stall_timeout_s, write=10.0, pool=10.0
        )

    # -- rules --

    async def sync_rules(self) -> None:
        """Make X's rule set equal to ``settings.x_rules``, compared by (value, tag).

        Raises :class:`XApiError` or :class:`httpx.TransportError` when X cannot be
        asked; rules X refuses (invalid, duplicate) are logged and skipped.
        """
        existing = await self._get_rules()
        wanted = {(r.value, r.tag) for r in self._rules}
        stale = [rule for rule in existing if (rule.value, rule.tag) not in wanted]
        present = {(rule.value, rule.tag) for rule in existing}
        missing = [rule for rule in self._rules if (rule.value, rule.tag) not in present]
        if not self._rules:
            log.warning("no X stream rules configured (INGEST_X_RULES): the stream will be empty")
        # Delete first: a rule whose tag changed keeps its value, and X refuses duplicate values.
        if stale:
            await self._delete_rules(stale)
        if missing:
            await self._add_rules(missing)
        log.info(
            "X stream rules in sync: %d kept, %d deleted, %d added",
            len(existing) - len(stale),
            len(stale),
            len(missing),
        )

    async def _get_rules(self) -> list[_RuleOut]:
        rules: list[_RuleOut] = []
        params: dict[str, str] = {}
        while True:
            page = await self._rules_request("GET", params=params)
            rules.extend(page.data or ())
            if not page.meta.next_token or not page.data:
                return rules
            params = {"pagination_token": page.meta.next_token}

    async def _delete_rules(self, rules: Sequence[_RuleOut]) -> None:
        for rule in rules:
            log.info("deleting X stream rule %s (%r, tag %r)", rule.id, rule.value, rule.tag)
        answer = await self._rules_request("POST", body={"delete": {"ids": [r.id for r in rules]}})
        for problem in answer.errors or ():
            log.warning("X did not delete a stream rule: %s", _describe_problem(problem))

    async def _add_rules(self, rules: Sequence[XStreamRule]) -> None:
        for rule in rules:
            log.info("adding X stream rule %r (tag %r)", rule.value, rule.tag)
        try:
            answer = await self._rules_request("POST", body=_add_body(rules))
        except XApiError as exc:
            invalid = self._invalid_values(exc)
            if not invalid:
                raise
        else:
            self._log_add_problems(answer)
            return
        # X refuses the whole batch when one rule is invalid: add the valid ones alone.
        for value, why in invalid.items():
            log.error("X refused stream rule %r: %s (fix INGEST_X_RULES)", value, why)
        valid = [r for r in rules if r.value not in invalid]
        if valid:
            self._log_add_problems(await self._rules_request("POST", body=_add_body(valid)))

    @staticmethod
    def _log_add_problems(answer: _RulesResponse) -> None:
        for problem in answer.errors or ():
            if isinstance(problem, dict) and problem.get("title") == "DuplicateRule":
                log.warning(
                    "X already has a stream rule with value %r (id %s); the configured tag "
                    "was not applied",
                    problem.get("value"),
                    problem.get("id"),
                )
            else:
                log.error("X refused a stream rule: %s", _describe_problem(problem))

    @staticmethod
    def _invalid_values(exc: XApiError) -> dict[str, str]:
        if exc.status != 400 or not isinstance(exc.body, dict):
            return {}
        return {
            str(p["value"]): _describe_problem(p)
            for p in exc.body.get("errors") or []
            if isinstance(p, dict) and p.get("value") and "invalid-rules" in str(p.get("type"))
        }

    async def _rules_request(
        self, method: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> _RulesResponse:
        response = await self._http.request(
            method,
            self._base_url + RULES_PATH,
            params=params,
            json=body,
            headers=self._headers(),
            timeout=_REQUEST_TIMEOUT,
        )
        if not response.is_success:
            try:
                error_body: Any = response.json()
            except ValueError:
                error_body = None
            raise XApiError(
                response.status_code,
                _describe_error_body(response.content),
                rate_limit_reset=_rate_limit_reset(response),
                body=error_body,
            )
        try:
            return _RulesResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise XApiError(
                response.status_code, f"unexpected rules response: {exc.error_count()} problems"
            ) from exc

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token.get_secret_value()}",
            "User-Agent": USER_AGENT,
        }

    # -- stream --

    async def run(self) -> None:
        """Sync the rules, then read the stream forever (until cancelled)."""
        if not self._token.get_secret_value().strip():
            log.error("INGEST_X_BEARER_TOKEN is empty: X will refuse every request")
        try:
            await self._sync_rules_until_done()
            while True:
                outcome = await self._connect_once()
                if outcome.delivered:
                    self._backoff.reset()
                delay = self._backoff.next_delay(
                    outcome.kind, reset_at=outcome.rate_limit_reset, now=self._clock()
                )
                if outcome.reason == "credits_exhausted":
                    delay = max(delay, CREDITS_RETRY_S)
                metrics.SOURCE_RECONNECTS.labels(SOURCE.value, outcome.reason).inc()
                log.info("reconnecting to the X stream in %.2f s (%s)", delay, outcome.reason)
                await self._sleep(delay)
        finally:
            metrics.SOURCE_CONNECTED.labels(SOURCE.value).set(0)

    async def _sync_rules_until_done(self) -> None:
        while True:
            try:
                await self.sync_rules()
            except XApiError as exc:
                kind = BackoffKind.RATE_LIMIT if exc.status == 429 else BackoffKind.HTTP
                self._log_http_error("syncing the X stream rules", exc.status, exc.detail)
                reset_at = exc.rate_limit_reset
            except httpx.TransportError as exc:
                kind, reset_at = BackoffKind.NETWORK, None
                log.warning("syncing the X stream rules failed: %s", _describe_transport(exc))
            else:
                self._backoff.reset()
                return
            delay = self._backoff.next_delay(kind, reset_at=reset_at, now=self._clock())
            log.info("retrying the X stream rule sync in %.2f s", delay)
            await self._sleep(delay)

    async def _connect_once(self) -> _Outcome:
        """One connection: open, read until it ends, say how it ended. Never raises
        (except cancellation): the outermost loop must keep going."""
        connection = _Connection()
        try:
            return await self._read_stream(connection)
        except httpx.ReadTimeout:
            log.warning(
                "X stream stalled: no bytes (not even a keep-alive) for %.0f s",
                self._stream_timeout.read or 0.0,
            )
            return self._ended(connection, "stalled")
        except httpx.TransportError as exc:
            log.warning("X stream connection failed: %s", _describe_transport(exc))
            return self._ended(connection, "network")
        except _DisconnectError as exc:
            log.warning("X is disconnecting the stream: %s", exc.description)
            return self._ended(connection, "operational_disconnect")
        except Exception:
            log.exception("unexpected error reading the X stream")
            return _Outcome(BackoffKind.HTTP, "unexpected", self._healthy(connection))

    def _ended(self, connection: _Connection, reason: str) -> _Outcome:
        return _Outcome(BackoffKind.NETWORK, reason, self._healthy(connection))

    def _healthy(self, connection: _Connection) -> bool:
        """Did this connection work, so that the backoff starts over? It did if it
        delivered a post, or stayed up long enough on keep-alives alone. Error or
        garbage lines do not count: a server that only sends those must not get a
        tight reconnect loop."""
        if connection.opened_at is None:
            return False
        lasted = time.monotonic() - connection.opened_at
        return connection.posts > 0 or lasted >= STABLE_CONNECTION_S

    async def _read_stream(self, connection: _Connection) -> _Outcome:
        async with self._http.stream(
            "GET",
            self._base_url + STREAM_PATH,
            params=STREAM_PARAMS,
            headers=self._headers(),
            timeout=self._stream_timeout,
        ) as response:
            if response.status_code != 200:
                return await self._refused(response)
            connection.opened_at = time.monotonic()
            metrics.SOURCE_CONNECTED.labels(SOURCE.value).set(1)
            log.info("connected to the X filtered stream")
            splitter = LineSplitter(self._max_line_bytes)
            try:
                async for chunk in response.aiter_bytes():
                    for line in splitter.feed(chunk):
                        await self._handle_line(line, connection)
            except httpx.TransportError:
                if splitter.pending:
                    log.warning(
                        "X stream dropped in the middle of a line (%d bytes cut off); "
                        "X re-sends it on reconnect or it is lost upstream",
                        splitter.pending,
                    )
                raise
            finally:
                metrics.SOURCE_CONNECTED.labels(SOURCE.value).set(0)
        log.warning(
            "X closed the stream after %d lines (%d posts)", connection.lines, connection.posts
        )
        return self._ended(connection, "closed")

    async def _refused(self, response: httpx.Response) -> _Outcome:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= MAX_ERROR_BODY_BYTES:
                break
        status = response.status_code
        self._log_http_error(
            "connecting to the X stream", status, _describe_error_body(bytes(body))
        )
        if status == 429:
            return _Outcome(
                BackoffKind.RATE_LIMIT, "rate_limited", rate_limit_reset=_rate_limit_reset(response)
            )
        if _credits_exhausted(status, bytes(body)):
            log.error(
                "X refused the stream: the app's pay-per-use credits are exhausted "
                "(HTTP %d); top the account up (retrying in %.0f s)",
                status,
                CREDITS_RETRY_S,
            )
            return _Outcome(BackoffKind.HTTP, "credits_exhausted")
        if status in (401, 403):
            return _Outcome(BackoffKind.HTTP, "unauthorized")
        return _Outcome(BackoffKind.HTTP, "http_5xx" if status >= 500 else "http_4xx")

    @staticmethod
    def _log_http_error(doing: str, status: int, detail: str) -> None:
        if status in (401, 403):
            log.error(
                "%s: X refused the credentials (HTTP %d: %s); check INGEST_X_BEARER_TOKEN and "
                "that the app is attached to a project with filtered-stream access",
                doing,
                status,
                detail,
            )
        elif status == 429:
            log.warning("%s: rate limited by X (HTTP 429: %s)", doing, detail)
        else:
            log.warning("%s: HTTP %d: %s", doing, status, detail)

    async def _handle_line(self, line: Line, connection: _Connection) -> None:
        raw = line.raw
        if not raw.strip():
            return  # keep-alive
        connection.lines += 1
        if line.truncated:
            await self._dead_letter(f"line longer than {self._max_line_bytes} bytes", raw)
            return
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            await self._dead_letter(f"not JSON: {exc}", raw)
            return
        if isinstance(payload, dict) and "data" not in payload and "errors" in payload:
            problems = payload["errors"] if isinstance(payload["errors"], list) else [payload]
            raise _DisconnectError("; ".join(_describe_problem(p) for p in problems[:5]))
        try:
            mention = to_mention(
                x_payload_to_item(payload),
                source=SOURCE,
                received_at=utcnow(),
                accounts=self._accounts,
            )
        except (InvalidMention, TypeError, AttributeError, KeyError) as exc:
            # InvalidMention is the expected case; the others are shapes the mapping did
            # not foresee (e.g. ``includes`` not an object): still one bad line, not a crash.
            await self._dead_letter(f"not a usable X post: {exc}", raw)
            return
        connection.posts += 1
        await self._until_accepted(
            f"mention {mention.id}", lambda: self._sink.submit([mention], SOURCE)
        )

    async def _dead_letter(self, error: str, raw: bytes) -> None:
        log.warning("dead-lettering an X stream line (%d bytes): %s", len(raw), error[:300])
        await self._until_accepted(
            "dead letter",
            lambda: self._sink.dead_letter(source=SOURCE, error=error[:MAX_ERROR_CHARS], raw=raw),
        )

    async def _until_accepted(self, what: str, action: Callable[[], Awaitable[object]]) -> None:
        """Retry ``action`` while the broker is unavailable: the stream waits, nothing is lost."""
        attempt = 0
        while True:
            try:
                await action()
            except BrokerUnavailable as exc:
                delay = broker_retry_delay(attempt)
                attempt += 1
                log.warning(
                    "%s not taken (attempt %d): %s; retrying in %.1f s", what, attempt, exc, delay
                )
                await self._sleep(delay)
            else:
                return


#: How long the stream waits after X said the credits are exhausted (seconds).
CREDITS_RETRY_S = 3600.0


def _credits_exhausted(status: int, body: bytes) -> bool:
    """X's pay-per-use "credits exhausted" answer (402, or a CreditsDepleted /
    UsageCapExceeded problem)."""
    if status == 402:
        return True
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    if not isinstance(payload, dict):
        return False
    kind = str(payload.get("type") or "")
    titles = {"CreditsDepleted", "CreditsExhausted", "UsageCapExceeded"}
    return payload.get("title") in titles or "credits" in kind or "usage-capped" in kind


def _add_body(rules: Sequence[XStreamRule]) -> dict[str, Any]:
    return {"add": [{"value": r.value, "tag": r.tag} for r in rules]}


def _describe_transport(exc: httpx.TransportError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
