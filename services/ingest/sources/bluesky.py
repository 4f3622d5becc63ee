"""Bluesky source: the campaign account's notifications, polled.

``app.bsky.notification.listNotifications`` (newest first, ``cursor`` for older
pages) every ``bluesky_poll_s``: the entries newer than the last one taken in
(its ``indexedAt`` and uri, kept in ``bluesky_cursor_file`` so a restart neither
misses nor repeats) whose reason is ``mention``, ``reply`` or ``quote`` become
mentions, oldest first. The cursor moves only once the sink took them. One
session is kept (``createSession`` with an app password), refreshed on
``ExpiredToken``; ``ratelimit-reset`` is honoured on a 429.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from services.common.messages import MentionReceived, Source, utcnow
from services.ingest import metrics
from services.ingest.config import IngestSettings
from services.ingest.domain import BLUESKY_REASONS, InvalidMention, bluesky_to_item, to_mention
from services.ingest.exceptions import BrokerUnavailable
from services.ingest.sink import MentionSink

log = logging.getLogger(__name__)

SOURCE = Source.BLUESKY
PAGE = 50


class BlueskyError(Exception):
    """The PDS refused or failed a call; ``wait_s`` says how long to back off."""

    def __init__(self, message: str, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


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
        self.cursor = self._load_cursor()

    # -- cursor --

    def _load_cursor(self) -> tuple[str, str] | None:
        path = self.settings.bluesky_cursor_file
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return (str(raw["indexedAt"]), str(raw["uri"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save_cursor(self, cursor: tuple[str, str]) -> None:
        path = self.settings.bluesky_cursor_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"indexedAt": cursor[0], "uri": cursor[1]}), encoding="utf-8")
        tmp.replace(path)
        self.cursor = cursor

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
            return response.json()
        try:
            error = response.json().get("error")
        except ValueError:
            error = None
        if response.status_code == 429:
            reset = response.headers.get("ratelimit-reset", "")
            wait = float(reset) - time.time() if reset.isdigit() else 60.0
            raise BlueskyError(f"{nsid}: rate limited", max(wait, 1.0))
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
            self._session = await self._call(
                "POST", "com.atproto.server.createSession", None, json=body
            )
            log.info("Bluesky session created for %s", self.settings.bluesky_identifier)
        return str(self._session["accessJwt"])

    async def _notifications(self, cursor: str | None) -> dict[str, Any]:
        params = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
        nsid = "app.bsky.notification.listNotifications"
        try:
            page: dict[str, Any] = await self._call("GET", nsid, await self._token(), params=params)
        except BlueskyError as exc:
            if str(exc) != "ExpiredToken" or self._session is None:
                raise
            try:
                self._session = await self._call(
                    "POST", "com.atproto.server.refreshSession", str(self._session["refreshJwt"])
                )
            except BlueskyError:
                self._session = None
            page = await self._call("GET", nsid, await self._token(), params=params)
        return page

    # -- polling --

    async def poll_once(self) -> int:
        """Take in what is new since the cursor; the number of mentions submitted."""
        fresh: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(self.settings.bluesky_max_pages):
            page = await self._notifications(cursor)
            entries = page.get("notifications") or []
            done = False
            for entry in entries:
                key = (str(entry.get("indexedAt")), str(entry.get("uri")))
                if self.cursor is not None and key <= self.cursor:
                    done = True
                    break
                fresh.append(entry)
            cursor = page.get("cursor")
            if done or not cursor or not entries:
                break
        if not fresh:
            return 0
        fresh.reverse()  # oldest first
        mentions: list[MentionReceived] = []
        for entry in fresh:
            if entry.get("reason") not in BLUESKY_REASONS:
                continue
            try:
                mentions.append(
                    to_mention(bluesky_to_item(entry), source=SOURCE, received_at=utcnow())
                )
            except InvalidMention as exc:
                log.warning(
                    "Bluesky notification %s is not a usable mention: %s", entry.get("uri"), exc
                )
                await self.sink.dead_letter(
                    source=SOURCE, error=str(exc)[:4000], raw=json.dumps(entry).encode()
                )
        if mentions:
            await self.sink.submit(mentions, SOURCE)
        newest = fresh[-1]
        self._save_cursor((str(newest.get("indexedAt")), str(newest.get("uri"))))
        return len(mentions)

    async def run(self) -> None:
        """Poll until cancelled; errors back off and never end the loop."""
        metrics.SOURCE_CONNECTED.labels(SOURCE.value).set(1)
        try:
            while True:
                wait = self.settings.bluesky_poll_s
                try:
                    taken = await self.poll_once()
                    if taken:
                        log.info("Bluesky: %d new mentions", taken)
                except BlueskyError as exc:
                    log.warning("Bluesky notifications: %s; retrying in %.0f s", exc, exc.wait_s)
                    metrics.SOURCE_RECONNECTS.labels(SOURCE.value, "error").inc()
                    wait = max(wait, exc.wait_s)
                except BrokerUnavailable as exc:
                    log.warning("Bluesky: broker unavailable (%s); the cursor stays", exc)
                await self._sleep(wait)
        finally:
            metrics.SOURCE_CONNECTED.labels(SOURCE.value).set(0)
