"""A fake Bluesky PDS at the HTTP boundary (``httpx.MockTransport``): the XRPC calls
the Bluesky source makes, with the AppView's paging of
``app.bsky.notification.listNotifications`` (newest first, a cursor that names the
last entry given, so new notifications never shift a page) and its ``reasons``
filter — or, like a server that predates the parameter, no filter at all.

A test queues an answer for the next call of an NSID (``answer_next``) to play a
broken server."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

NOTIFICATIONS = "app.bsky.notification.listNotifications"
CREATE_SESSION = "com.atproto.server.createSession"
CAMPAIGN_DID = "did:plc:campaigncampaigncampaign"
ASKER = {"did": "did:plc:aminaaminaaminaaminaami", "handle": "amina.test"}


@dataclass
class FakePds:
    honours_reasons: bool = True
    #: Oldest first.
    notifications: list[dict[str, Any]] = field(default_factory=list)
    #: Every call: (NSID, query parameters as lists).
    calls: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    _queued: dict[str, list[httpx.Response]] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=1))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport(), base_url="https://pds.test")

    # -- what a test does --------------------------------------------------------

    def notify(
        self, reason: str, text: str | None = None, *, age: timedelta | None = None
    ) -> dict[str, Any]:
        """A new notification of the campaign account (``mention``, ``reply``, ``quote``
        carry a post; ``like``, ``repost``, ``follow`` do not), ``age`` old (else a
        millisecond after the last; give older ones first)."""
        n = next(self._seq)
        when = self._start + timedelta(milliseconds=n)
        if age is not None:
            when = datetime.now(UTC) - age
        at = when.isoformat(timespec="milliseconds")
        collection = {
            "like": "app.bsky.feed.like",
            "repost": "app.bsky.feed.repost",
            "follow": "app.bsky.graph.follow",
        }.get(reason, "app.bsky.feed.post")
        record: dict[str, Any] = {"$type": collection, "createdAt": at.replace("+00:00", "Z")}
        if collection == "app.bsky.feed.post":
            record["text"] = text or f"@takeaction.test what is school like? ({n})"
        else:
            record["subject"] = f"at://{CAMPAIGN_DID}/app.bsky.feed.post/campaign{n}"
        entry = {
            "uri": f"at://{ASKER['did']}/{collection}/{n:013d}",
            "cid": f"bafy{n:020d}",
            "author": {**ASKER, "displayName": "Amina"},
            "reason": reason,
            "record": record,
            "isRead": False,
            "indexedAt": at.replace("+00:00", "Z"),
        }
        self.notifications.append(entry)
        return entry

    def answer_next(self, nsid: str, response: httpx.Response) -> None:
        """The next call of ``nsid`` gets ``response`` instead of the real answer."""
        self._queued.setdefault(nsid, []).append(response)

    def pages_read(self) -> int:
        return sum(1 for nsid, _ in self.calls if nsid == NOTIFICATIONS)

    # -- HTTP --------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        nsid = request.url.path.removeprefix("/xrpc/")
        query: dict[str, list[str]] = {}
        for key, value in request.url.params.multi_items():
            query.setdefault(key, []).append(value)
        self.calls.append((nsid, query))
        queued = self._queued.get(nsid)
        if queued:
            return queued.pop(0)
        if nsid == CREATE_SESSION:
            return httpx.Response(
                200,
                json={
                    "did": CAMPAIGN_DID,
                    "handle": "takeaction.test",
                    "accessJwt": "access",
                    "refreshJwt": "refresh",
                },
            )
        if nsid == NOTIFICATIONS:
            if request.headers.get("authorization") != "Bearer access":
                return httpx.Response(401, json={"error": "AuthenticationRequired"})
            return self._list(query)
        return httpx.Response(501, json={"error": "MethodNotImplemented"})

    def _list(self, query: dict[str, list[str]]) -> httpx.Response:
        reasons = query.get("reasons", [])
        entries = [
            n
            for n in reversed(self.notifications)
            if not (self.honours_reasons and reasons) or n["reason"] in reasons
        ]
        cursor = query.get("cursor", [None])[0]
        if cursor is not None:
            at, _, uri = cursor.partition("::")
            entries = [n for n in entries if (n["indexedAt"], n["uri"]) < (at, uri)]
        limit = int(query.get("limit", ["50"])[0])
        page = entries[:limit]
        body: dict[str, Any] = {"notifications": page}
        if len(entries) > limit:
            body["cursor"] = f"{page[-1]['indexedAt']}::{page[-1]['uri']}"
        return httpx.Response(200, json=body)
