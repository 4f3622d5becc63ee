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

The REST calls are in :mod:`services.ingest.sources.mastodon_rest`, the reading
of statuses and notifications (ids, boosts, rules) in
:mod:`services.ingest.sources.mastodon_entries`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
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
    MastodonRateLimited,
    MastodonUnauthorized,
    StreamEnded,
)
from services.ingest.sink import MentionSink
from services.ingest.sources.mastodon_entries import (
    MENTION_RULE,
    dump_entry,
    entry_created_at,
    entry_id,
    entry_key,
    hashtag_rule,
    matched_rules,
    newest_id,
    normalise_tag,
    shown_status,
    status_of,
)
from services.ingest.sources.mastodon_rest import MastodonREST

log = logging.getLogger(__name__)

#: Label of this source in the ingest metrics.
SOURCE_LABEL = "mastodon"

#: A connection that stayed up this long resets the reconnect backoff.
STABLE_CONNECTION_S = 60.0
#: Retry of a sink that reports the broker unavailable: capped, never gives up.
SINK_RETRY_INITIAL_S = 0.5
SINK_RETRY_MAX_S = 30.0
#: Mention ids remembered to skip needless resubmits (backfill/stream overlap).
RECENT_IDS = 10_000


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
        self.rest = MastodonREST(settings, http, self.base_url, clock=clock)
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
                    self.own_account_id = await self.rest.verify_credentials()
                    if any(feed.notifications for feed in self.feeds):
                        await self.rest.check_notification_policy()
                break
            except Exception as exc:  # the outermost loop of the start-up step
                reason, wait = self._classify(exc, backoff, "verify_credentials")
            metrics.SOURCE_RECONNECTS.labels(SOURCE_LABEL, reason).inc()
            await self._sleep(wait)
        if not self.settings.mastodon_streaming_base_url:
            self.streaming_base_url = await self.rest.discover_streaming_base()

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
            headers=self.rest.headers(),
            timeout=self._stream_timeout,
        ) as source:
            self.rest.check(source.response, f"stream {feed.name}")
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
            page, response = await self.rest.get_page(url, params, f"backfill {feed.name}")
            pages += 1
            if not page:
                break
            await self._ingest(feed, ((entry, None) for entry in sorted(page, key=entry_key)))
            taken += len(page)
            url, params = self.rest.link(response, "prev"), None
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
            page, response = await self.rest.get_page(url, params, f"backfill {feed.name}")
            if not page:
                break
            collected.extend(page)
            dates = [d for d in map(entry_created_at, page) if d is not None]
            if dates and min(dates) < cutoff:
                break
            url, params = self.rest.link(response, "next"), None
        recent = [e for e in collected if (d := entry_created_at(e)) is None or d >= cutoff]
        recent.sort(key=entry_key)
        for start in range(0, len(recent), size):
            await self._ingest(feed, ((entry, None) for entry in recent[start : start + size]))
        # Start the next catch-up after the newest post, even if it was too old to take.
        cursor = newest_id(feed.cursor, *map(entry_id, collected))
        if cursor != feed.cursor:
            feed.cursor = cursor
            self._save_cursors()
        log.info(
            "Mastodon %s: first catch-up took %d of %d recent entries",
            feed.name,
            len(recent),
            len(collected),
        )

    # -- from entries to the sink -------------------------------------------------------

    async def _ingest(self, feed: _Feed, entries: Iterable[tuple[Any, bytes | None]]) -> None:
        """Map, skip, dead-letter and submit; then move the feed's cursor."""
        now = self._clock()
        cursor = feed.cursor
        batch: dict[str, MentionReceived] = {}
        for entry, raw in entries:
            cursor = newest_id(cursor, entry_id(entry))
            try:
                status = status_of(entry, notification=feed.notifications)
                if status is None or self._skipped(feed, status):
                    continue
                rules = matched_rules(status, feed.rule, self.tags, self.own_account_id)
                item = status_to_item(status, rules=rules)
                if feed.notifications:  # a mention notification: it named the account
                    item = item.model_copy(update={"summoned": True})
                mention = to_mention(
                    item, source=Source.MASTODON, received_at=now, accounts=self._accounts()
                )
            except (InvalidMention, TypeError, AttributeError, KeyError, ValueError) as exc:
                # InvalidMention is the expected case; the others are shapes the mapping did
                # not foresee: still one bad status, dead-lettered, not a stuck feed.
                await self._dead_letter(f"Mastodon {feed.name}: {exc}", raw or dump_entry(entry))
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

    def _skipped(self, feed: _Feed, status: dict[str, Any]) -> bool:
        shown = shown_status(status)
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

    def _backoff(self) -> Backoff:
        return Backoff(
            self.settings.mastodon_backoff_initial_s,
            max(self.settings.mastodon_backoff_max_s, self.settings.mastodon_backoff_initial_s),
            rng=self._rng,
        )

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
