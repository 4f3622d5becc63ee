"""The sandbox's Bluesky (AT Protocol) subset: a PDS's sessions, records, service
auth and the AppView reads the publisher and ingest use, and the video service's
upload and job status, with XRPC's ``{"error", "message"}`` bodies and
``ratelimit-*`` headers.

- ``com.atproto.server.createSession`` / ``refreshSession`` / ``describeServer`` /
  ``getServiceAuth``; an access token lives ``bluesky_access_ttl_s``, then
  ``400 ExpiredToken`` (refresh it);
- ``com.atproto.repo.createRecord`` (``app.bsky.feed.post``: ``reply.root`` and
  ``reply.parent`` must name existing posts by uri *and* cid; an
  ``app.bsky.embed.video`` must name a blob the video service made for this
  account), ``deleteRecord``, ``listRecords``;
- ``app.bsky.feed.getPosts``, ``app.bsky.notification.listNotifications``
  (``mention``, ``reply``, ``quote`` of the account; newest first, ``cursor`` for
  older pages);
- ``app.bsky.video.uploadVideo`` (the bytes; a service-auth token) and
  ``getJobStatus`` (``JOB_STATE_COMPLETED`` with the ``blob``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from services.sandbox.common import Api, PlatformError, bearer, rate_headers, route
from services.sandbox.state import Account, StoredPost, iso, mentions

POST = "app.bsky.feed.post"
VIDEO = "app.bsky.embed.video"
MAX_GRAPHEMES = 300


def xrpc_error(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> PlatformError:
    return PlatformError(status, {"error": error, "message": message}, headers)


def did_for(handle: str) -> str:
    digest = hashlib.sha256(f"bluesky:{handle.lower()}".encode()).digest()
    return "did:plc:" + base64.b32encode(digest).decode().lower()[:24]


def cid_for(data: bytes) -> str:
    return "bafyrei" + base64.b32encode(hashlib.sha256(data).digest()).decode().lower()[:52]


@dataclass
class Session:
    did: str
    handle: str
    expires_at: float


class BlueskyApi(Api):
    tag = "Bluesky (AT Protocol) subset"

    # -- sessions --

    def _session(self, request: Request) -> tuple[Session, dict[str, str]]:
        token = bearer(request)
        session = self.state.bluesky_sessions.get(token or "")
        if session is None:
            raise xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        if self.ctx.clock() >= session.expires_at:
            raise xrpc_error(400, "ExpiredToken", "Token has expired")
        return session, self._count(session.did, request.url.path.rsplit("/", 1)[-1])

    def _count(self, did: str, bucket: str) -> dict[str, str]:
        allowed, limit, remaining, reset_at = self.state.take_rate("bluesky", did, bucket)
        headers = rate_headers("bluesky", limit, remaining, reset_at)
        if not allowed:
            raise xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
        return headers

    def _open(self, handle: str) -> dict[str, Any]:
        did = did_for(handle)
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        ttl = self.settings.bluesky_access_ttl_s
        self.state.bluesky_sessions[access] = Session(did, handle, self.ctx.clock() + ttl)
        self.state.bluesky_refresh[refresh] = (did, handle)
        return {
            "accessJwt": access,
            "refreshJwt": refresh,
            "did": did,
            "handle": handle,
            "active": True,
        }

    @route("POST", "/xrpc/com.atproto.server.createSession")
    async def create_session(self, request: Request) -> Response:
        body = await self.ctx.json_body(request, "bluesky")
        password = str(body.get("password") or "")
        tokens = self.settings.tokens
        handle = tokens.get(password) if tokens else self.settings.account_name
        identifier = str(body.get("identifier") or "").lstrip("@")
        if handle is None or identifier not in (handle, did_for(handle)):
            raise xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        self.state.bluesky_session_creations += 1
        headers = self._count(did_for(handle), "createSession")
        return JSONResponse(self._open(handle), headers=headers)

    @route("POST", "/xrpc/com.atproto.server.refreshSession")
    async def refresh_session(self, request: Request) -> Response:
        grant = self.state.bluesky_refresh.pop(bearer(request) or "", None)
        if grant is None:
            raise xrpc_error(400, "ExpiredToken", "Token has been revoked")
        return JSONResponse(self._open(grant[1]))

    @route("GET", "/xrpc/com.atproto.server.describeServer")
    async def describe_server(self) -> Response:
        return JSONResponse(
            {
                "did": self.state.bluesky_server_did,
                "availableUserDomains": [],
                "inviteCodeRequired": False,
            }
        )

    @route("GET", "/xrpc/com.atproto.server.getServiceAuth")
    async def service_auth(self, request: Request) -> Response:
        session, headers = self._session(request)
        if not request.query_params.get("aud"):
            raise xrpc_error(400, "InvalidRequest", "aud is required")
        token = secrets.token_urlsafe(24)
        self.state.bluesky_service_tokens[token] = session.did
        return JSONResponse({"token": token}, headers=headers)

    # -- video service --

    @route("POST", "/xrpc/app.bsky.video.uploadVideo")
    async def upload_video(self, request: Request) -> Response:
        did = self.state.bluesky_service_tokens.get(bearer(request) or "")
        if did is None:
            raise xrpc_error(401, "AuthMissing", "Authentication Required")
        data = await request.body()
        if not data:
            raise xrpc_error(400, "InvalidRequest", "no video")
        cid = cid_for(data)
        media = self.state.new_media(
            "bluesky", did, request.headers.get("content-type") or "video/mp4", len(data)
        )
        await asyncio.to_thread(media.path.write_bytes, data)
        media.size, media.sha256, media.state = (
            len(data),
            hashlib.sha256(data).hexdigest(),
            "succeeded",
        )
        media.category = cid
        self.state.bluesky_video_bytes.append(len(data))
        job = {"jobId": media.id, "did": did, "state": "JOB_STATE_CREATED"}
        return JSONResponse(job)

    @route("GET", "/xrpc/app.bsky.video.getJobStatus")
    async def job_status(self, request: Request) -> Response:
        media = self.state.media.get(("bluesky", request.query_params.get("jobId", "")))
        if media is None:
            raise xrpc_error(404, "NotFound", "no such job")
        blob = {
            "$type": "blob",
            "ref": {"$link": media.category},
            "mimeType": media.mime,
            "size": media.size,
        }
        status = {
            "jobId": media.id,
            "did": media.account_id,
            "state": "JOB_STATE_COMPLETED",
            "progress": 100,
            "blob": blob,
        }
        return JSONResponse({"jobStatus": status})

    # -- records --

    def _post_by_uri(self, uri: Any) -> StoredPost | None:
        return self.state.posts.get(("bluesky", str(uri))) if isinstance(uri, str) else None

    def _check_ref(self, ref: Any, where: str) -> StoredPost:
        post = self._post_by_uri(ref.get("uri")) if isinstance(ref, dict) else None
        if post is None or ref.get("cid") != post.cid:
            raise xrpc_error(400, "InvalidRequest", f"{where}: no post with that uri and cid")
        return post

    @route("POST", "/xrpc/com.atproto.repo.createRecord")
    async def create_record(self, request: Request) -> Response:
        session, headers = self._session(request)
        body = await self.ctx.json_body(request, "bluesky")
        record = body.get("record")
        if body.get("repo") not in (session.did, session.handle) or body.get("collection") != POST:
            raise xrpc_error(400, "InvalidRequest", "repo must be yours and collection a post")
        if not isinstance(record, dict) or record.get("$type", POST) != POST:
            raise xrpc_error(400, "InvalidRecord", "Record/$type must be app.bsky.feed.post")
        text = record.get("text")
        if not isinstance(text, str) or len(text) > MAX_GRAPHEMES:
            raise xrpc_error(400, "InvalidRecord", "Record/text must be at most 300 graphemes")
        if not isinstance(record.get("createdAt"), str):
            raise xrpc_error(400, "InvalidRecord", 'Record must have the property "createdAt"')
        parent = None
        reply = record.get("reply")
        if reply is not None:
            if not isinstance(reply, dict):
                raise xrpc_error(400, "InvalidRecord", "Record/reply must be an object")
            self._check_ref(reply.get("root"), "reply.root")
            parent = self._check_ref(reply.get("parent"), "reply.parent")
        media = self._embedded_video(record.get("embed"), session)
        return JSONResponse(self._store(session, text, parent, media, record), headers=headers)

    def _embedded_video(self, embed: Any, session: Session) -> list[dict[str, Any]]:
        if embed is None:
            return []
        link = (
            ((embed.get("video") or {}).get("ref") or {}).get("$link")
            if isinstance(embed, dict)
            else None
        )
        if not isinstance(embed, dict) or embed.get("$type") != VIDEO or not link:
            raise xrpc_error(400, "InvalidRecord", "Record/embed must be an app.bsky.embed.video")
        found = next(
            (
                m
                for (p, _), m in self.state.media.items()
                if p == "bluesky" and m.category == link and m.account_id == session.did
            ),
            None,
        )
        if found is None:
            raise xrpc_error(400, "InvalidRecord", f"Could not find blob: {link}")
        found.alt_text = str(embed.get("alt") or "")
        found.attached_to = link
        return [found.summary(self.ctx.public)]

    def _store(
        self,
        session: Session,
        text: str,
        parent: StoredPost | None,
        media: list[dict[str, Any]],
        record: dict[str, Any],
    ) -> dict[str, Any]:
        rkey = base64.b32encode(secrets.token_bytes(8)).decode().lower().rstrip("=")[:13]
        uri = f"at://{session.did}/{POST}/{rkey}"
        cid = cid_for(repr(sorted(record.items())).encode() + rkey.encode())
        post = StoredPost(
            platform="bluesky",
            id=uri,
            account_id=session.did,
            username=session.handle,
            in_reply_to=parent.id if parent else None,
            text=text,
            media=media,
            created_at=self.ctx.clock(),
            url=f"{self.ctx.public}/profile/{session.handle}/post/{rkey}",
            cid=cid,
        )
        self.state.bluesky_records[uri] = record
        self.state.add_post(post)
        return {"uri": uri, "cid": cid}

    @route("POST", "/xrpc/com.atproto.repo.deleteRecord")
    async def delete_record(self, request: Request) -> Response:
        session, headers = self._session(request)
        body = await self.ctx.json_body(request, "bluesky")
        uri = f"at://{session.did}/{body.get('collection')}/{body.get('rkey')}"
        self.state.delete_post("bluesky", uri)  # deleting what is gone is no error
        return JSONResponse({}, headers=headers)

    @route("GET", "/xrpc/com.atproto.repo.listRecords")
    async def list_records(self, request: Request) -> Response:
        _, headers = self._session(request)
        repo = request.query_params.get("repo", "")
        posts = [
            p
            for p in reversed(self.state.live_posts("bluesky"))
            if repo in (p.account_id, p.username)
        ]
        records = [{"uri": p.id, "cid": p.cid, "value": self._record(p)} for p in posts[:100]]
        return JSONResponse({"records": records}, headers=headers)

    def _record(self, post: StoredPost) -> dict[str, Any]:
        record = self.state.bluesky_records.get(post.id)
        if record is not None:
            return record
        value: dict[str, Any] = {
            "$type": POST,
            "text": post.text,
            "createdAt": iso(post.created_at),
        }
        parent = self._post_by_uri(post.in_reply_to)
        if parent is not None:
            root = parent
            while (up := self._post_by_uri(root.in_reply_to)) is not None:
                root = up
            value["reply"] = {
                "root": {"uri": root.id, "cid": root.cid},
                "parent": {"uri": parent.id, "cid": parent.cid},
            }
        return value

    def _view(self, post: StoredPost) -> dict[str, Any]:
        author = {"did": post.account_id, "handle": post.username, "displayName": post.username}
        return {
            "uri": post.id,
            "cid": post.cid,
            "author": author,
            "record": self._record(post),
            "indexedAt": iso(post.created_at),
        }

    @route("GET", "/xrpc/app.bsky.feed.getPosts")
    async def get_posts(self, request: Request) -> Response:
        _, headers = self._session(request)
        found = [self._post_by_uri(u) for u in request.query_params.getlist("uris")]
        return JSONResponse(
            {"posts": [self._view(p) for p in found if p is not None]}, headers=headers
        )

    @route("GET", "/xrpc/app.bsky.notification.listNotifications")
    async def notifications(self, request: Request) -> Response:
        session, headers = self._session(request)
        entries = [n for n in reversed(self.state.bluesky_notifications) if n[0] == session.did]
        cursor = request.query_params.get("cursor")
        start = int(cursor) if cursor and cursor.isdigit() else 0
        limit = min(int(request.query_params.get("limit", "50") or 50), 100)
        page = entries[start : start + limit]
        items = []
        for _, reason, uri in page:
            post = self._post_by_uri(uri)
            if post is not None:
                view = self._view(post)
                items.append({**view, "reason": reason, "isRead": False})
        body: dict[str, Any] = {"notifications": items}
        if start + limit < len(entries):
            body["cursor"] = str(start + limit)
        return JSONResponse(body, headers=headers)


def notify(state: Any, post: StoredPost) -> None:
    """The Bluesky notifications a new post makes for the sandbox's accounts."""
    for handle in state.our_usernames():
        if handle == post.username:
            continue
        did = did_for(handle)
        parent = state.posts.get(("bluesky", post.in_reply_to)) if post.in_reply_to else None
        quoted = state.posts.get(("bluesky", post.quote_of)) if post.quote_of else None
        if parent is not None and parent.account_id == did:
            reason = "reply"
        elif quoted is not None and quoted.account_id == did:
            reason = "quote"
        elif mentions(post.text, handle):
            reason = "mention"
        else:
            continue
        state.bluesky_notifications.append((did, reason, post.id))


__all__ = ["Account", "BlueskyApi", "did_for", "notify"]
