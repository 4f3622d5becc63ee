"""Mastodon source: hashtag and mention streams over SSE, with REST backfill.

One *feed* per followed hashtag (``GET /api/v1/streaming/hashtag?tag=...``,
backfilled from ``GET /api/v1/timelines/tag/:hashtag``) and, when
``mastodon_mentions`` is on and a token is set, one for the campaign
account's notifications (``GET /api/v1/streaming/user/notification``,
backfilled from ``GET /api/v1/notifications?types[]=mention``).

On every (re)connect a feed first opens the stream, then catches up over REST
from the newest id it has seen (``min_id``, following the ``rel="prev"`` Link
header, oldest first), then reads the stream. Whatever is posted while the
REST catch-up runs waits in the open stream, so nothing falls between the
two; the overlap is skipped here by id and deduped again by the sink. With no
id yet (first start) the catch-up walks back (``rel="next"``) at most
``mastodon_backfill_max_pages`` pages and ``mastodon_backfill_max_age_hours``.
The cursor of a feed only moves once its mentions were accepted by the sink
(or dead-lettered), so a broker outage loses nothing: the batch is retried.
The cursors are kept in a file (``mastodon-cursors`` in ``state_dir``, for this
instance, per feed), written as they move: a restarted ingest catches up from
where it was instead of taking the last ``mastodon_backfill_max_age_hours`` again.

What is taken from the stream:

* ``update`` (hashtag feeds): the payload is a JSON-encoded Status;
* ``notification`` (mention feed): a JSON Notification; only type
  ``mention`` carries a question, other types only move the cursor;
* everything else is ignored: ``status.update`` (an edit keeps the mention id,
  the first version was already taken in), ``delete`` (the mention contract
  has no retraction yet), ``filters_changed``, ``announcement`` and the like.
  Heartbeats are SSE comments that the parser drops; silence longer than
  ``mastodon_stream_read_timeout_s`` counts as a dead connection.

Statuses whose visibility is not in ``mastodon_visibilities`` (by default
direct and followers-only posts) and the campaign account's own posts are
skipped: a public answer must never expose a private post, nor answer
ourselves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse

from services.common.messages import MentionReceived, Source, utcnow
from services.ingest import metrics
from services.ingest.config import IngestSettings
from services.ingest.cursors import CursorFile
from services.ingest.domain import (
    CampaignAccounts,
    InvalidMention,
    status_to_item,
    to_mention,
)
from services.ingest.exceptions import (
    BrokerUnavailable,
    MastodonError,
    MastodonHTTPError,
    MastodonProtocolError,
    MastodonRateLimited,
    MastodonUnauthorized,
    StreamEnded,
)
from services.ingest.sink import MentionSink

log = logging.getLogger(__name__)

#: Label of this source in the ingest metrics.
SOURCE_LABEL = "mastodon"
#: Rule recorded on mentions heard through the campaign account's notifications.
MENTION_RULE = "mastodon:mention"

#: A connection that stayed up this long resets the reconnect backoff.
STABLE_CONNECTION_S = 60.0
#: Longest wait honoured for a rate limit reset (Mastodon's windows are 5 minutes).
MAX_RATE_LIMIT_WAIT_S = 3600.0
#: Retry of a sink that reports the broker unavailable: capped, never gives up.
SINK_RETRY_INITIAL_S = 0.5
SINK_RETRY_MAX_S = 30.0
#: Mention ids remembered to skip needless resubmits (backfill/stream overlap).
RECENT_IDS = 10_000


def hashtag_rule(tag: str) -> str:
    """The rule recorded on mentions heard through a followed hashtag."""
    return f"mastodon:hashtag:{tag}"


def normalise_tag(tag: str) -> str:
    """Hashtags are case-insensitive on Mastodon; followed without the ``#``."""
    return tag.strip().lstrip("#").strip().lower()


def id_key(native_id: str) -> tuple[int, int, str]:
    """Sort key of Mastodon ids: numeric strings by value, anything else as text."""
    if native_id.isascii() and native_id.isdigit():
        return (0, int(native_id), "")
    return (1, 0, native_id)


def newest_id(*ids: str | None) -> str | None:
    present = [i for i in ids if i]
    return max(present, key=id_key) if present else None


# --- backoff --------------------------------------------------------


class Backoff:
    """Exponential backoff with "equal jitter": attempt *n* waits a random time
    between half and all of ``min(maximum, initial * 2**n)``."""

    def __init__(self, initial: float, maximum: float, *, rng: random.Random | None = None) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.attempts = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * 2.0 ** min(self.attempts, 62))
        self.attempts += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0


def rate_limit_wait(response: httpx.Response, now: datetime) -> float | None:
    """Seconds until the rate limit resets: ``X-RateLimit-Reset`` (ISO 8601, what
    Mastodon sends), else ``Retry-After`` seconds; None when neither is usable."""
    reset = response.headers.get("x-ratelimit-reset")
    wait: float | None = None
    if reset:
        try:
            at = datetime.fromisoformat(reset.strip())
        except ValueError:
            at = None
        if at is not None and at.tzinfo is not None:
            wait = (at - now).total_seconds()
    if wait is None:
        try:
            wait = float(response.headers.get("retry-after", ""))
        except ValueError:
            return None
    return min(max(wait, 0.0), MAX_RATE_LIMIT_WAIT_S)


# --- the stream --------------------------------------------------------------


@dataclass
class _Feed:
    name: str
    rule: str
    event: str
    stream_path: str
    stream_params: dict[str, str]
    rest_path: str
    rest_params: list[tuple[str, str]] = field(default_factory=list)
    notifications: bool = False
    #: Newest id handled (status id, or notification id for the mention feed).
    cursor: str | None = None
    connected_at: float | None = None


class MastodonStream:
    """Follows the configured hashtags and mentions of one Mastodon instance."""

    def __init__(
        self,
        settings: IngestSettings,
        http: httpx.AsyncClient,
        sink: MentionSink,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        if not settings.mastodon_base_url:
            raise ValueError("mastodon_base_url is not set")
        self.settings = settings
        self.http = http
        self.sink = sink
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.base_url = settings.mastodon_base_url.rstrip("/")
        self.streaming_base_url = (settings.mastodon_streaming_base_url or self.base_url).rstrip(
            "/"
        )
        self.tags = list(
            dict.fromkeys(t for t in map(normalise_tag, settings.mastodon_hashtags) if t)
        )
        self.own_account_id: str | None = None
        self.feeds = self._make_feeds()
        self._cursors = CursorFile(settings.mastodon_cursor_path, "Mastodon cursors")
        self._load_cursors()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._stream_timeout = httpx.Timeout(10.0, read=settings.mastodon_stream_read_timeout_s)

    def _make_feeds(self) -> list[_Feed]:
        feeds = [
            _Feed(
                name=f"#{tag}",
                rule=hashtag_rule(tag),
                event="update",
                stream_path="/api/v1/streaming/hashtag",
                stream_params={"tag": tag},
                rest_path=f"/api/v1/timelines/tag/{quote(tag, safe='')}",
            )
            for tag in self.tags
        ]
        if self.settings.mastodon_mentions:
            if self.settings.mastodon_access_token is None:
                log.warning("Mastodon mentions need an access token; following hashtags only")
            else:
                feeds.append(
                    _Feed(
                        name="mentions",
                        rule=MENTION_RULE,
                        event="notification",
                        stream_path="/api/v1/streaming/user/notification",
                        stream_params={},
                        rest_path="/api/v1/notifications",
                        # Mastodon 4.3 filters notifications from limited and new
                        # accounts by default: the catch-up takes those too.
                        rest_params=[("types[]", "mention"), ("include_filtered", "true")],
                        notifications=True,
                    )
                )
        return feeds

    # -- cursors ------------------------------------------------------------------

    def _load_cursors(self) -> None:
        saved = self._cursors.load()
        if saved is None:
            return
        feeds = saved.get("feeds") if isinstance(saved, dict) else None
        if not isinstance(feeds, dict):
            log.warning(
                "the Mastodon cursors at %s are not usable; starting without", self._cursors.path
            )
            return
        if saved.get("instance") != self.base_url:
            log.info(
                "the Mastodon cursors at %s are for %s, not %s; starting without",
                self._cursors.path,
                saved.get("instance"),
                self.base_url,
            )
            return
        for feed in self.feeds:
            cursor = feeds.get(feed.name)
            if isinstance(cursor, str) and cursor:
                feed.cursor = cursor
                log.info("Mastodon %s: resuming after %s", feed.name, cursor)

    def _save_cursors(self) -> None:
        """Keep every feed's cursor (each one moved only once its mentions were taken)."""
        self._cursors.save(
            {
                "instance": self.base_url,
                "feeds": {feed.name: feed.cursor for feed in self.feeds if feed.cursor},
            }
        )

    async def run(self) -> None:
        """Follow every feed until cancelled; reconnects and catches up on its own."""
        if not self.feeds:
            log.warning("Mastodon source has nothing to follow (no hashtags, no mentions)")
            return
        log.info("following %s on %s", ", ".join(feed.name for feed in self.feeds), self.base_url)
        try:
            await self._prepare()
            async with asyncio.TaskGroup() as group:
                for feed in self.feeds:
                    group.create_task(self._follow(feed), name=f"mastodon {feed.name}")
        finally:
            metrics.SOURCE_CONNECTED.labels(SOURCE_LABEL).set(0)

    # -- start-up ----------------------------------------------------------------

    async def _prepare(self) -> None:
        """Learn who we are (to skip our own posts) and where the streaming API is."""
        backoff = self._backoff()
        while True:
            try:
                if self.settings.mastodon_access_token is not None:
                    self.own_account_id = await self._verify_credentials()
                    if any(feed.notifications for feed in self.feeds):
                        await self._check_notification_policy()
                break
            except Exception as exc:  # the outermost loop of the start-up step
                reason, wait = self._classify(exc, backoff, "verify_credentials")
            metrics.SOURCE_RECONNECTS.labels(SOURCE_LABEL, reason).inc()
            await self._sleep(wait)
        if not self.settings.mastodon_streaming_base_url:
            self.streaming_base_url = await self._discover_streaming_base()

    async def _check_notification_policy(self) -> None:
        """Say when the account's notification policy (Mastodon 4.3+) hides mentions:
        filtered ones are caught up over REST (``include_filtered``), never streamed;
        dropped ones are lost. The campaign account needs ``accept`` for every kind
        (README)."""
        response = await self.http.get(
            f"{self.base_url}/api/v2/notifications/policy", headers=self._headers()
        )
        if response.status_code in (403, 404, 410):
            return  # before 4.3, or a token without read:notifications
        self._check(response, "notification policy")
        policy = self._json(response)
        if not isinstance(policy, dict):
            return
        kinds = (
            "for_not_following",
            "for_not_followers",
            "for_new_accounts",
            "for_limited_accounts",
        )
        dropped = [k for k in kinds if policy.get(k) == "drop"]
        filtered = [k for k in kinds if policy.get(k) == "filter"]
        if dropped:
            log.error(
                "the Mastodon campaign account drops mentions (%s): those questions are lost; "
                "set them to accept (PATCH /api/v2/notifications/policy)",
                ", ".join(dropped),
            )
        if filtered:
            log.warning(
                "the Mastodon campaign account filters mentions (%s): they arrive only with "
                "the REST catch-up, not live; set them to accept",
                ", ".join(filtered),
            )

    async def _verify_credentials(self) -> str | None:
        response = await self.http.get(
            f"{self.base_url}/api/v1/accounts/verify_credentials", headers=self._headers()
        )
        if response.status_code == 403:
            # A token without read:accounts still streams; only self-filtering is lost.
            log.warning(
                "the Mastodon token may not read its own account; own posts are not skipped"
            )
            return None
        self._check(response, "verify_credentials")
        body = self._json(response)
        account_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(account_id, str):
            raise MastodonProtocolError("verify_credentials: no account id in the answer")
        log.info("Mastodon campaign account is %s (id %s)", body.get("acct"), account_id)
        return account_id

    async def _discover_streaming_base(self) -> str:
        """``configuration.urls.streaming`` of ``/api/v2/instance`` (wss -> https);
        the base URL when the instance does not say, or says something unsafe."""
        try:
            response = await self.http.get(
                f"{self.base_url}/api/v2/instance", headers=self._headers()
            )
            response.raise_for_status()
            advertised = response.json()["configuration"]["urls"]["streaming"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.info(
                "no streaming URL advertised by %s (%s); using it for streaming", self.base_url, exc
            )
            return self.base_url
        if not isinstance(advertised, str):
            return self.base_url
        url = re.sub(r"^wss://", "https://", re.sub(r"^ws://", "http://", advertised.strip()))
        https_base = self.base_url.startswith("https://")
        if not url.startswith("https://") and (https_base or not url.startswith("http://")):
            log.warning("ignoring streaming URL %r advertised by %s", advertised, self.base_url)
            return self.base_url
        return url.rstrip("/")

    # -- one feed ------------------------------------------------------------------

    async def _follow(self, feed: _Feed) -> None:
        backoff = self._backoff()
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._stream(feed)
                raise StreamEnded(f"{feed.name}: the server closed the stream")  # noqa: TRY301
            except Exception as exc:  # the outermost loop of one feed
                if (
                    feed.connected_at is not None
                    and loop.time() - feed.connected_at >= STABLE_CONNECTION_S
                ):
                    backoff.reset()
                self._set_connected(feed, connected=False)
                reason, wait = self._classify(exc, backoff, feed.name)
            metrics.SOURCE_RECONNECTS.labels(SOURCE_LABEL, reason).inc()
            await self._sleep(wait)

    async def _stream(self, feed: _Feed) -> None:
        async with aconnect_sse(
            self.http,
            "GET",
            f"{self.streaming_base_url}{feed.stream_path}",
            params=feed.stream_params,
            headers=self._headers(),
            timeout=self._stream_timeout,
        ) as source:
            self._check(source.response, f"stream {feed.name}")
            self._set_connected(feed, connected=True)
            log.info("Mastodon stream %s connected", feed.name)
            await self._backfill(feed)
            async for event in source.aiter_sse():
                await self._on_event(feed, event)

    async def _on_event(self, feed: _Feed, event: ServerSentEvent) -> None:
        if event.event != feed.event:
            log.debug("Mastodon %s: ignoring %r event", feed.name, event.event)
            return
        raw = event.data.encode()
        try:
            payload = json.loads(event.data)
        except ValueError as exc:
            await self._dead_letter(
                f"Mastodon {feed.name}: {event.event} payload is not JSON: {exc}", raw
            )
            return
        await self._ingest(feed, [(payload, raw)])

    # -- REST backfill ---------------------------------------------------------------

    async def _backfill(self, feed: _Feed) -> None:
        if self.settings.mastodon_backfill_max_pages == 0:
            return
        if feed.cursor is None:
            await self._backfill_recent(feed)
        else:
            await self._backfill_since(feed, feed.cursor)

    async def _backfill_since(self, feed: _Feed, since: str) -> None:
        """Everything newer than ``since``, oldest page first (``min_id`` + ``rel=prev``)."""
        size = self.settings.mastodon_backfill_page_size
        url: str | None = f"{self.base_url}{feed.rest_path}"
        params: httpx.QueryParams | None = httpx.QueryParams(
            [*feed.rest_params, ("min_id", since), ("limit", str(size))]
        )
        pages = taken = 0
        while url is not None:
            if pages == self.settings.mastodon_backfill_max_pages:
                log.warning(
                    "Mastodon %s: catch-up stopped after %d pages; older missed posts are skipped",
                    feed.name,
                    pages,
                )
                break
            page, response = await self._get_page(url, params, feed)
            pages += 1
            if not page:
                break
            await self._ingest(feed, ((entry, None) for entry in sorted(page, key=_entry_key)))
            taken += len(page)
            url, params = self._link(response, "prev"), None
        log.info("Mastodon %s: caught up %d missed entries since %s", feed.name, taken, since)

    async def _backfill_recent(self, feed: _Feed) -> None:
        """First catch-up: walk back from the newest (``rel=next``), bounded in pages and age."""
        size = self.settings.mastodon_backfill_page_size
        cutoff = self._clock() - timedelta(hours=self.settings.mastodon_backfill_max_age_hours)
        url: str | None = f"{self.base_url}{feed.rest_path}"
        params: httpx.QueryParams | None = httpx.QueryParams(
            [*feed.rest_params, ("limit", str(size))]
        )
        collected: list[Any] = []
        for _ in range(self.settings.mastodon_backfill_max_pages):
            if url is None:
                break
            page, response = await self._get_page(url, params, feed)
            if not page:
                break
            collected.extend(page)
            dates = [d for d in map(_created_at, page) if d is not None]
            if dates and min(dates) < cutoff:
                break
            url, params = self._link(response, "next"), None
        recent = [e for e in collected if (d := _created_at(e)) is None or d >= cutoff]
        recent.sort(key=_entry_key)
        for start in range(0, len(recent), size):
            await self._ingest(feed, ((entry, None) for entry in recent[start : start + size]))
        # Start the next catch-up after the newest post, even if it was too old to take.
        cursor = newest_id(feed.cursor, *map(_entry_id, collected))
        if cursor != feed.cursor:
            feed.cursor = cursor
            self._save_cursors()
        log.info(
            "Mastodon %s: first catch-up took %d of %d recent entries",
            feed.name,
            len(recent),
            len(collected),
        )

    async def _get_page(
        self, url: str, params: httpx.QueryParams | None, feed: _Feed
    ) -> tuple[list[Any], httpx.Response]:
        response = await self.http.get(url, params=params, headers=self._headers())
        self._check(response, f"backfill {feed.name}")
        body = self._json(response)
        if not isinstance(body, list):
            raise MastodonProtocolError(f"backfill {feed.name}: expected a JSON array")
        return body, response

    def _link(self, response: httpx.Response, rel: str) -> str | None:
        """The ``rel`` Link of a page, if it stays on the instance (the token goes with it)."""
        target = response.links.get(rel, {}).get("url")
        if not target:
            return None
        url = response.url.join(target)
        base = httpx.URL(self.base_url)
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            log.warning("not following a Link to another host: %s", url.host)
            return None
        return str(url)

    # -- from entries to the sink -------------------------------------------------------

    async def _ingest(self, feed: _Feed, entries: Iterable[tuple[Any, bytes | None]]) -> None:
        """Map, skip, dead-letter and submit; then move the feed's cursor."""
        now = self._clock()
        cursor = feed.cursor
        batch: dict[str, MentionReceived] = {}
        for entry, raw in entries:
            cursor = newest_id(cursor, _entry_id(entry))
            try:
                status = self._status_of(feed, entry)
                if status is None or self._skipped(feed, status):
                    continue
                item = status_to_item(status, rules=self._rules(feed, status))
                if feed.notifications:  # a mention notification: it named the account
                    item = item.model_copy(update={"summoned": True})
                mention = to_mention(
                    item, source=Source.MASTODON, received_at=now, accounts=self._accounts()
                )
            except (InvalidMention, TypeError, AttributeError, KeyError, ValueError) as exc:
                # InvalidMention is the expected case; the others are shapes the mapping did
                # not foresee: still one bad status, dead-lettered, not a stuck feed.
                await self._dead_letter(f"Mastodon {feed.name}: {exc}", raw or _dump(entry))
                continue
            if mention.id not in self._recent:
                batch.setdefault(mention.id, mention)
        if batch:
            mentions = list(batch.values())
            await self._until_accepted(
                lambda: self.sink.submit(mentions, Source.MASTODON), f"{len(mentions)} mentions"
            )
            self._remember(batch)
        if cursor != feed.cursor:
            feed.cursor = cursor
            self._save_cursors()

    def _accounts(self) -> CampaignAccounts:
        return CampaignAccounts.of(self.settings.campaign_handles, [self.own_account_id or ""])

    def _status_of(self, feed: _Feed, entry: Any) -> dict[str, Any] | None:
        if not isinstance(entry, dict):
            raise InvalidMention(f"expected a JSON object, got {type(entry).__name__}")
        if not feed.notifications:
            return entry
        if entry.get("type") != "mention":
            return None
        status = entry.get("status")
        if not isinstance(status, dict):
            raise InvalidMention("mention notification without a 'status' object")
        return status

    def _skipped(self, feed: _Feed, status: dict[str, Any]) -> bool:
        shown = _shown(status)
        visibility = shown.get("visibility")
        if visibility is not None and visibility not in self.settings.mastodon_visibilities:
            log.debug("Mastodon %s: skipping %s status %s", feed.name, visibility, shown.get("id"))
            return True
        account = shown.get("account")
        if (
            self.own_account_id
            and isinstance(account, dict)
            and account.get("id") == self.own_account_id
        ):
            log.debug("Mastodon %s: skipping our own status %s", feed.name, shown.get("id"))
            return True
        return False

    def _rules(self, feed: _Feed, status: dict[str, Any]) -> list[str]:
        """The feed's rule, plus every other followed hashtag and the account mention it carries."""
        shown = _shown(status)
        rules = [feed.rule]
        tags = shown.get("tags")
        for tag in tags if isinstance(tags, list) else []:
            raw_name = tag.get("name") if isinstance(tag, dict) else None
            name = normalise_tag(raw_name) if isinstance(raw_name, str) else ""
            if name in self.tags:
                rules.append(hashtag_rule(name))
        mentions = shown.get("mentions")
        if (
            self.own_account_id
            and isinstance(mentions, list)
            and any(isinstance(m, dict) and m.get("id") == self.own_account_id for m in mentions)
        ):
            rules.append(MENTION_RULE)
        return rules

    def _remember(self, ids: Iterable[str]) -> None:
        for mention_id in ids:
            self._recent[mention_id] = None
            self._recent.move_to_end(mention_id)
        while len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    async def _dead_letter(self, error: str, raw: bytes) -> None:
        log.warning("dead-lettering a Mastodon entry: %s", error)
        await self._until_accepted(
            lambda: self.sink.dead_letter(source=Source.MASTODON, error=error[:4000], raw=raw),
            "a dead letter",
        )

    async def _until_accepted(self, send: Callable[[], Awaitable[object]], what: str) -> None:
        """Retry while the broker is away: what the stream heard is never dropped."""
        backoff = Backoff(SINK_RETRY_INITIAL_S, SINK_RETRY_MAX_S, rng=self._rng)
        while True:
            try:
                await send()
            except BrokerUnavailable as exc:
                delay = backoff.next_delay()
                log.warning(
                    "broker unavailable, keeping %s from Mastodon; retry in %.1fs: %s",
                    what,
                    delay,
                    exc,
                )
                await self._sleep(delay)
            else:
                return

    # -- helpers -------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        token = self.settings.mastodon_access_token
        return {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}

    def _backoff(self) -> Backoff:
        return Backoff(
            self.settings.mastodon_backoff_initial_s,
            max(self.settings.mastodon_backoff_max_s, self.settings.mastodon_backoff_initial_s),
            rng=self._rng,
        )

    def _check(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (401, 403):
            raise MastodonUnauthorized(f"{what}: HTTP {status}, the access token was refused")
        if status == 429:
            raise MastodonRateLimited(
                f"{what}: rate limited", rate_limit_wait(response, self._clock())
            )
        raise MastodonHTTPError(f"{what}: HTTP {status}")

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise MastodonProtocolError(f"{response.url.path}: the answer is not JSON") from exc

    def _classify(self, exc: Exception, backoff: Backoff, what: str) -> tuple[str, float]:
        """Reason label and wait before the next attempt."""
        if isinstance(exc, MastodonRateLimited):
            wait = exc.wait_s if exc.wait_s else backoff.next_delay()
            log.warning("Mastodon %s rate limited; waiting %.0fs for the reset", what, wait)
            return exc.reason, wait
        wait = backoff.next_delay()
        if isinstance(exc, MastodonUnauthorized):
            log.error("Mastodon %s: %s; check the access token; retry in %.0fs", what, exc, wait)
            return exc.reason, wait
        if isinstance(exc, MastodonError):
            reason = exc.reason
        elif isinstance(exc, httpx.TimeoutException):
            reason = "timeout"
        elif isinstance(exc, httpx.TransportError):
            reason = "network"
        elif isinstance(exc, SSEError):
            reason = "protocol"
        else:
            log.exception("Mastodon %s failed unexpectedly; retry in %.1fs", what, wait)
            return "error", wait
        log.warning("Mastodon %s disconnected (%s: %s); retry in %.1fs", what, reason, exc, wait)
        return reason, wait

    def _set_connected(self, feed: _Feed, *, connected: bool) -> None:
        feed.connected_at = asyncio.get_running_loop().time() if connected else None
        everything = all(f.connected_at is not None for f in self.feeds)
        metrics.SOURCE_CONNECTED.labels(SOURCE_LABEL).set(1 if everything else 0)


def _shown(status: dict[str, Any]) -> dict[str, Any]:
    """The status a reader sees: the boosted one for a boost."""
    reblog = status.get("reblog")
    return reblog if isinstance(reblog, dict) else status


def _entry_id(entry: Any) -> str | None:
    value = entry.get("id") if isinstance(entry, dict) else None
    return value if isinstance(value, str) and value else None


def _entry_key(entry: Any) -> tuple[int, int, str]:
    native_id = _entry_id(entry)
    return id_key(native_id) if native_id is not None else (-1, 0, "")


def _created_at(entry: Any) -> datetime | None:
    value = entry.get("created_at") if isinstance(entry, dict) else None
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _dump(entry: Any) -> bytes:
    return json.dumps(entry, ensure_ascii=False, default=str).encode()
