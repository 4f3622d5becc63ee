"""What the sandbox's Mastodon tells the campaign account: mention notifications
(``GET /api/v1/notifications``, paged by ``max_id``/``since_id``/``min_id`` with
``Link`` headers) and the streaming API (``GET
/api/v1/streaming/user/notification``: server-sent ``notification`` events and a
``:thump`` heartbeat). A post made with ``POST /sandbox/posts`` that mentions
the account (or answers one of its posts) becomes a ``mention`` notification.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.sandbox.common import route
from services.sandbox.mastodon_api import MastodonApi
from services.sandbox.state import Account, StoredPost, iso

#: Mastodon's default and largest page of notifications.
DEFAULT_LIMIT = 40
MAX_LIMIT = 80


def _int(raw: str | None) -> int | None:
    return int(raw) if raw is not None and raw.isdigit() else None


class MastodonStreamApi(MastodonApi):
    tag = "Mastodon API subset"

    def _notification(self, entry: tuple[str, str, str, float]) -> dict[str, Any] | None:
        notification_id, _, post_id, at = entry
        post = self.state.posts.get(("mastodon", post_id))
        if post is None:
            return None
        author = Account("mastodon", post.account_id, post.username)
        return {
            "id": notification_id,
            "type": "mention",
            "created_at": iso(at),
            "account": self._account(author),
            "status": self._status(post),
        }

    @route("GET", "/api/v1/notifications")
    async def notifications(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "mastodon", "notifications")
        query = request.query_params
        types = query.getlist("types[]")
        if types and "mention" not in types:
            return JSONResponse([], headers=headers)
        limit = min(_int(query.get("limit")) or DEFAULT_LIMIT, MAX_LIMIT)
        mine = [n for n in self.state.notifications if n[1] == account.username]
        max_id, since_id, min_id = (_int(query.get(k)) for k in ("max_id", "since_id", "min_id"))
        if max_id is not None:
            mine = [n for n in mine if int(n[0]) < max_id]
        lower = min_id if min_id is not None else since_id
        if lower is not None:
            mine = [n for n in mine if int(n[0]) > lower]
        # min_id: the page right after it; otherwise the newest page. Newest first.
        page = mine[:limit] if min_id is not None else mine[-limit:]
        page.reverse()
        body = [n for n in map(self._notification, page) if n is not None]
        links = []
        if page:
            url = f"{self.ctx.public}/api/v1/notifications"
            links.append(f'<{url}?max_id={page[-1][0]}&types[]=mention>; rel="next"')
            links.append(f'<{url}?min_id={page[0][0]}&types[]=mention>; rel="prev"')
        return JSONResponse(
            body, headers={**headers, **({"Link": ", ".join(links)} if links else {})}
        )

    @route("GET", "/api/v1/streaming/user/notification")
    async def stream(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "mastodon", "streaming")
        queue: asyncio.Queue[StoredPost] = asyncio.Queue()
        self.state.listeners.add(queue)
        heartbeat = self.settings.x_stream_keepalive_s
        seen = {n[0] for n in self.state.notifications}

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b":)\n\n"
                while True:
                    try:
                        await asyncio.wait_for(queue.get(), heartbeat)
                    except TimeoutError:
                        yield b":thump\n\n"
                        continue
                    for entry in self.state.notifications:
                        if entry[0] in seen or entry[1] != account.username:
                            continue
                        seen.add(entry[0])
                        notification = self._notification(entry)
                        if notification is not None:
                            data = json.dumps(notification)
                            yield f"event: notification\ndata: {data}\n\n".encode()
            finally:
                self.state.listeners.discard(queue)

        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
