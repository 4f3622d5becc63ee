"""Bluesky source: the campaign account's notifications, polled.

``app.bsky.notification.listNotifications`` (newest first, ``cursor`` for older
pages) every ``bluesky_poll_s``, asked only for the reasons that carry a question
(``reasons``: ``mention``, ``reply``, ``quote``; filtered here too, for a server
that ignores the parameter). The entries newer than the last one taken in (its
``indexedAt`` and uri, kept in the cursor file so a restart neither misses nor
repeats) become mentions, oldest first.

A poll reads at most ``bluesky_max_pages`` pages. A bigger backlog (ingest or the
PDS away for a while) is read on at once by the next polls, from the page where
the last one stopped, down to the cursor; the cursor moves only then (to the
newest entry of the backlog), and only once the sink took every mention read, so
no entry is ever passed over unread. A restart in between reads the backlog again
from the top; the sink's dedupe drops the repeats. With no cursor yet (first
start, or a lost cursor file), the notifications of the dedupe window are taken, at
most one poll's pages: older ones may have been produced before, and the dedupe
memory would not recognise them.

One session is kept (``createSession`` with an app password), refreshed on
``ExpiredToken``; ``ratelimit-reset`` (else ``Retry-After``) is honoured on a 429,
for an hour at most. Any error of a poll is logged and the poll retried after a
backoff; a malformed entry is dead-lettered alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from services.common.messages import MentionReceived, Source, utcnow
from services.ingest import metrics
from services.ingest.config import IngestSettings
from services.ingest.cursors import CursorFile
from services.ingest.domain import BLUESKY_REASONS, InvalidMention, bluesky_to_item, to_mention
from services.ingest.exceptions import BrokerUnavailable
from services.ingest.sink import MentionSink

log = logging.getLogger(__name__)

SOURCE = Source.BLUESKY
PAGE = 50
LIST_NOTIFICATIONS = "app.bsky.notification.listNotifications"
#: Pages one backlog may take before it is given up and read again from the newest
#: (100,000 notifications: a server whose pages never reach the cursor must not keep
#: ingest paging for ever). The cursor stays: nothing is skipped.
BACKLOG_MAX_PAGES = 2000
#: Backoff of polls that fail unexpectedly: doubled per failure up to the maximum.
ERROR_BACKOFF_INITIAL_S = 5.0
ERROR_BACKOFF_MAX_S = 300.0
#: Wait after a 429 that says nothing usable, and the longest wait honoured (a bogus
#: or far-off ``ratelimit-reset`` must not stop the source for good; Bluesky's
#: windows are 5 minutes to a day, and the next poll learns the rest).
RATE_LIMIT_FALLBACK_S = 60.0
MAX_RATE_LIMIT_WAIT_S = 3600.0

#: ``(indexedAt, uri)`` of a notification: the cursor, and the order of the list.
Key = tuple[str, str]


def rate_limit_wait_s(headers: httpx.Headers, now: float) -> float:
    """Seconds to wait after a 429: until ``ratelimit-reset`` (epoch seconds), else
    ``Retry-After`` (seconds), else :data:`RATE_LIMIT_FALLBACK_S`; between 1 s and
    :data:`MAX_RATE_LIMIT_WAIT_S`."""
    wait = RATE_LIMIT_FALLBACK_S
    reset = headers.get("ratelimit-reset", "").strip()
    retry_after = headers.get("retry-after", "").strip()
    if reset.isdigit():
        wait = float(reset) - now
    elif retry_after.isdigit():
        wait = float(retry_after)
    return min(max(wait, 1.0), MAX_RATE_LIMIT_WAIT_S)


class BlueskyError(Exception):
    """The PDS refused or failed a call; ``wait_s`` says how long to back off."""

    def __init__(self, message: str, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


@dataclass
class _Backlog:
    """More notifications newer than the cursor than one poll reads."""

    #: The newest entry read: the cursor once the backlog is read down to the old one.
    head: Key | None
    #: ``cursor`` of the next (older) page to read.
    page: str
    pages: int
    taken: int


@dataclass
class _Read:
    """What one poll read."""

    fresh: list[Any]  # newest first
    head: Key | None
    #: Down to the cursor, or to the end of the list.
    reached: bool
    next_page: str | None
    pages: int


def _before(indexed_at: str, horizon: datetime) -> bool:
    try:
        at = datetime.fromisoformat(indexed_at)
    except ValueError:
        return False
    return at.tzinfo is not None and at < horizon


def _key(entry: Any) -> Key | None:
    """The entry's ``(indexedAt, uri)``; None for a malformed entry."""
    if not isinstance(entry, dict):
        return None
    at, uri = entry.get("indexedAt"), entry.get("uri")
    if isinstance(at, str) and at and isinstance(uri, str) and uri:
        return (at, uri)
    return None


class BlueskyNotifications:
    def __init__(
        self,
        settings: IngestSettings,
        http: httpx.AsyncClient,
        sink: MentionSink,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if settings.bluesky_app_password is None:
            raise ValueError("BlueskyNotifications needs INGEST_BLUESKY_APP_PASSWORD")
        self.settings = settings
        self.http = http
        self.sink = sink
        self._sleep = sleep
        self._base = settings.bluesky_service_url.rstrip("/")
        self._session: dict[str, Any] | None = None
        self._file = CursorFile(settings.bluesky_cursor_path, "Bluesky cursor")
        self.cursor = self._load_cursor()
        self._backlog: _Backlog | None = None

    @property
    def catching_up(self) -> bool:
        """A backlog is being read: the next poll goes on with it at once."""
        return self._backlog is not None

    # -- cursor --

    def _load_cursor(self) -> Key | None:
        raw = self._file.load()
        cursor = _key(raw)  # the file holds {"indexedAt", "uri"}, as an entry does
        if raw is not None and cursor is None:
            log.warning("the Bluesky cursor at %s is not usable; starting without", self._file.path)
        return cursor

    def _save_cursor(self, cursor: Key) -> None:
        """Move the cursor (in memory even when the file cannot be written: logged)."""
        self.cursor = cursor
        self._file.save({"indexedAt": cursor[0], "uri": cursor[1]})

    # -- HTTP --

    async def _call(self, method: str, nsid: str, token: str | None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self.http.request(
                method, f"{self._base}/xrpc/{nsid}", headers=headers, **kwargs
            )
        except httpx.TransportError as exc:
            raise BlueskyError(f"{nsid}: {type(exc).__name__}: {exc}", 5.0) from exc
        if response.is_success:
            try:
                return response.json()
            except ValueError as exc:
                raise BlueskyError(
                    f"{nsid}: HTTP {response.status_code} but the answer is not JSON", 30.0
                ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code == 429:
            wait = rate_limit_wait_s(response.headers, time.time())
            raise BlueskyError(f"{nsid}: rate limited", wait)
        if error == "ExpiredToken":
            raise BlueskyError("ExpiredToken", 0.0)
        raise BlueskyError(f"{nsid}: HTTP {response.status_code} {error or ''}", 30.0)

    async def _token(self) -> str:
        if self._session is None:
            password = self.settings.bluesky_app_password
            assert password is not None
            body = {
                "identifier": self.settings.bluesky_identifier,
                "password": password.get_secret_value(),
            }
            session = await self._call("POST", "com.atproto.server.createSession", None, json=body)
            self._session = self._checked_session(session, "createSession")
            log.info("Bluesky session created for %s", self.settings.bluesky_identifier)
        return str(self._session["accessJwt"])

    @staticmethod
    def _checked_session(session: Any, nsid: str) -> dict[str, Any]:
        if not isinstance(session, dict) or not isinstance(session.get("accessJwt"), str):
            raise BlueskyError(f"{nsid}: no accessJwt in the answer", 30.0)
        return session

    async def _notifications(self, cursor: str | None) -> dict[str, Any]:
        params = httpx.QueryParams(
            [
                ("limit", str(PAGE)),
                *(("reasons", reason) for reason in sorted(BLUESKY_REASONS)),
                *((("cursor", cursor),) if cursor else ()),
            ]
        )
        try:
            page = await self._call("GET", LIST_NOTIFICATIONS, await self._token(), params=params)
        except BlueskyError as exc:
            if str(exc) != "ExpiredToken" or self._session is None:
                raise
            await self._refresh()
            page = await self._call("GET", LIST_NOTIFICATIONS, await self._token(), params=params)
        if not isinstance(page, dict):
            raise BlueskyError(f"{LIST_NOTIFICATIONS}: the answer is not a JSON object", 30.0)
        return page

    async def _refresh(self) -> None:
        """A fresh session from the refresh token; without one, a new session next."""
        refresh = self._session.get("refreshJwt") if self._session is not None else None
        self._session = None
        if not isinstance(refresh, str):
            return
        nsid = "com.atproto.server.refreshSession"
        try:
            self._session = self._checked_session(await self._call("POST", nsid, refresh), nsid)
        except BlueskyError:
            self._session = None

    # -- polling --

    async def poll_once(self) -> int:
        """Take in what is new since the cursor (or the next part of a backlog);
        the number of mentions submitted."""
        backlog = self._backlog
        read = await self._read(backlog)
        mentions = await self._mentions(reversed(read.fresh))
        if mentions:
            await self.sink.submit(mentions, SOURCE)
        taken = (backlog.taken if backlog is not None else 0) + len(mentions)
        self._advance(read, backlog, taken)
        return len(mentions)

    async def _read(self, backlog: _Backlog | None) -> _Read:
        """At most ``bluesky_max_pages`` pages, down to the cursor."""
        read = _Read(
            fresh=[],
            head=backlog.head if backlog is not None else None,
            reached=False,
            next_page=backlog.page if backlog is not None else None,
            pages=backlog.pages if backlog is not None else 0,
        )
        # No cursor yet: down to the start of the dedupe window.
        horizon = utcnow() - timedelta(hours=self.settings.dedupe_window_hours)
        for _ in range(self.settings.bluesky_max_pages):
            page = await self._notifications(read.next_page)
            read.pages += 1
            entries = page.get("notifications")
            if not isinstance(entries, list):
                raise BlueskyError(f"{LIST_NOTIFICATIONS}: no 'notifications' list", 30.0)
            for entry in entries:
                key = _key(entry)
                if key is not None and (
                    key <= self.cursor if self.cursor is not None else _before(key[0], horizon)
                ):
                    read.reached = True
                    break
                if key is not None and (read.head is None or key > read.head):
                    read.head = key
                read.fresh.append(entry)
            following = page.get("cursor")
            if read.reached or not isinstance(following, str) or not following:
                read.reached = True  # down to the cursor, or to the end of the list
                return read
            if following == read.next_page:
                raise BlueskyError(f"{LIST_NOTIFICATIONS}: the same page cursor again", 60.0)
            read.next_page = following
        return read

    def _advance(self, read: _Read, backlog: _Backlog | None, taken: int) -> None:
        """After the sink took what was read: move the cursor, or go on with the backlog."""
        if read.reached or self.cursor is None:
            if not read.reached:
                log.info("Bluesky: no cursor yet; took the newest %d pages", read.pages)
            if backlog is not None:
                log.warning(
                    "Bluesky: backlog read down to the cursor: %d mentions from %d pages",
                    taken,
                    read.pages,
                )
            self._backlog = None
            if read.head is not None and (self.cursor is None or read.head > self.cursor):
                self._save_cursor(read.head)
        elif read.pages >= BACKLOG_MAX_PAGES:
            self._backlog = None
            log.error(
                "Bluesky: %d pages read without reaching the cursor %s: reading again from "
                "the newest; the cursor stays (nothing is skipped)",
                read.pages,
                self.cursor,
            )
        else:
            assert read.next_page is not None
            if backlog is None:
                log.warning(
                    "Bluesky: more than %d pages of notifications since the cursor %s (ingest "
                    "or the PDS was away): reading on at once; the cursor moves once all are in",
                    read.pages,
                    self.cursor,
                )
            self._backlog = _Backlog(read.head, read.next_page, read.pages, taken)

    async def _mentions(self, entries: Iterable[Any]) -> list[MentionReceived]:
        """The mentions among ``entries``; a malformed one is dead-lettered alone."""
        mentions: list[MentionReceived] = []
        for entry in entries:
            if _key(entry) is None:
                await self._dead_letter(entry, "not a notification object with indexedAt and uri")
                continue
            if entry.get("reason") not in BLUESKY_REASONS:
                continue  # a like, a follow, a repost: not a question
            try:
                mentions.append(
                    to_mention(bluesky_to_item(entry), source=SOURCE, received_at=utcnow())
                )
            except (InvalidMention, TypeError, AttributeError, KeyError, ValueError) as exc:
                # InvalidMention is the expected case; the others are shapes the mapping
                # did not foresee: still one bad entry, not a stuck source.
                await self._dead_letter(entry, str(exc))
        return mentions

    async def _dead_letter(self, entry: Any, error: str) -> None:
        uri = entry.get("uri") if isinstance(entry, dict) else None
        log.warning("Bluesky notification %s is not a usable mention: %s", uri, error)
        await self.sink.dead_letter(
            source=SOURCE,
            error=f"Bluesky: {error}"[:4000],
            raw=json.dumps(entry, ensure_ascii=False, default=str).encode(),
        )

    async def run(self) -> None:
        """Poll until cancelled; every error backs off and never ends the loop."""
        metrics.SOURCE_CONNECTED.labels(SOURCE.value).set(1)
        failures = 0
        try:
            while True:
                wait = self.settings.bluesky_poll_s
                try:
                    taken = await self.poll_once()
                except BlueskyError as exc:
                    log.warning("Bluesky notifications: %s; retrying in %.0f s", exc, exc.wait_s)
                    metrics.SOURCE_RECONNECTS.labels(SOURCE.value, "error").inc()
                    wait = max(wait, exc.wait_s)
                except BrokerUnavailable as exc:
                    log.warning("Bluesky: broker unavailable (%s); the cursor stays", exc)
                except Exception:  # the outermost loop: one bad poll never ends the source
                    failures += 1
                    backoff = ERROR_BACKOFF_INITIAL_S * 2.0 ** min(failures - 1, 16)
                    wait = max(wait, min(backoff, ERROR_BACKOFF_MAX_S))
                    log.exception("Bluesky poll failed unexpectedly; retrying in %.0f s", wait)
                    metrics.SOURCE_RECONNECTS.labels(SOURCE.value, "unexpected").inc()
                else:
                    failures = 0
                    if taken:
                        log.info("Bluesky: %d new mentions", taken)
                    if self.catching_up:
                        wait = 0.0
                await self._sleep(wait)
        finally:
            metrics.SOURCE_CONNECTED.labels(SOURCE.value).set(0)
