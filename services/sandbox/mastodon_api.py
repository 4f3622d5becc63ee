"""The sandbox's Mastodon API subset: async media upload, statuses with
Idempotency-Key, thread context (reconciliation) and deletion, with Mastodon's
validation messages and ``{"error": ...}`` bodies."""

from __future__ import annotations

import asyncio
import re
from html import escape
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from services.common.media.profiles import MASTODON, Profile
from services.sandbox.common import MAX_MEDIA_PER_POST, Api, m_error, route, save_upload
from services.sandbox.media_check import check_video
from services.sandbox.state import Account, StoredMedia, StoredPost, is_snowflake, iso

VISIBILITIES = frozenset({"public", "unlisted", "private", "direct"})
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


class MastodonApi(Api):
    tag = "Mastodon API subset"

    # -- entities --

    def _account(self, account: Account) -> dict[str, Any]:
        return {
            "id": account.id,
            "username": account.username,
            "acct": account.username,
            "display_name": f"{account.username} (sandbox)",
            "url": f"{self.ctx.public}/@{account.username}",
        }

    def _attachment(self, media: StoredMedia) -> dict[str, Any]:
        ready = media.state_at(self.ctx.clock()) == "succeeded"
        url = f"{self.ctx.public}/sandbox/media/mastodon/{media.id}"
        return {
            "id": media.id,
            "type": "video" if media.mime.startswith("video/") else "image",
            "url": url if ready else None,
            "preview_url": url,
            "remote_url": None,
            "text_url": None,
            "meta": {},
            "description": media.alt_text or None,
            "blurhash": None,
        }

    def _status(self, post: StoredPost, *, with_source: bool = False) -> dict[str, Any]:
        author = Account("mastodon", post.account_id, post.username)
        attachments = [
            self._attachment(media)
            for item in post.media
            if (media := self.state.media.get(("mastodon", item["id"]))) is not None
        ]
        status: dict[str, Any] = {
            "id": post.id,
            "created_at": iso(post.created_at),
            "in_reply_to_id": post.in_reply_to,
            "in_reply_to_account_id": None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": post.visibility,
            "language": post.language,
            "uri": f"{self.ctx.public}/users/{post.username}/statuses/{post.id}",
            "url": post.url,
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "content": "<p>" + escape(post.text).replace("\n", "<br>") + "</p>",
            "account": self._account(author),
            "media_attachments": attachments,
            "mentions": [
                {
                    "id": a.id,
                    "username": a.username,
                    "acct": a.username,
                    "url": f"{self.ctx.public}/@{a.username}",
                }
                for a in (
                    self.state.known_account("mastodon", name)
                    for name in dict.fromkeys(re.findall(r"(?<![\w@])@(\w{1,30})", post.text))
                )
            ],
            "tags": [],
            "emojis": [],
            "poll": None,
            "card": None,
        }
        if with_source:
            status["text"] = post.text
        return status

    # -- routes --

    @route("GET", "/api/v1/accounts/verify_credentials")
    async def verify_credentials(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "mastodon", "verify_credentials")
        return JSONResponse(self._account(account), headers=headers)

    @route("GET", "/api/v2/instance")
    async def instance(self) -> Response:
        """The instance's limits, as Mastodon publishes them (no token needed)."""
        s = self.settings
        return JSONResponse(
            {
                "domain": "sandbox.invalid",
                "title": "takeaction sandbox",
                "version": "4.3.0 (compatible; takeaction sandbox)",
                "configuration": {
                    "statuses": {
                        "max_characters": s.mastodon_max_chars,
                        "max_media_attachments": MAX_MEDIA_PER_POST,
                    },
                    "media_attachments": {
                        "supported_mime_types": sorted(
                            {"video/mp4", "video/quicktime", "video/webm", "image/jpeg"}
                        ),
                        "description_limit": s.mastodon_description_limit,
                        "video_size_limit": s.mastodon_video_size_limit,
                        "video_frame_rate_limit": s.mastodon_video_frame_rate_limit,
                        "video_matrix_limit": s.mastodon_video_matrix_limit,
                    },
                },
            }
        )

    def profile(self) -> Profile:
        s = self.settings
        return MASTODON.with_limits(
            max_bytes=s.mastodon_video_size_limit,
            max_fps=float(s.mastodon_video_frame_rate_limit),
            max_pixels=s.mastodon_video_matrix_limit,
            alt_text_max=s.mastodon_description_limit,
        )

    @route("POST", "/api/v2/media")
    async def upload(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "mastodon", "media")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise m_error(422, "Validation failed: File can't be blank")
        async with request.form(max_files=2, max_fields=8) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise m_error(422, "Validation failed: File can't be blank")
            mime = (upload.content_type or "").split(";")[0].strip().lower()
            if not mime.startswith(("video/", "image/")):
                raise m_error(
                    422, "Validation failed: File content type is invalid, File is invalid"
                )
            if (upload.size or 0) > self.settings.max_media_bytes:
                raise m_error(422, "Validation failed: File file size is too big")
            description = form.get("description")
            description = description if isinstance(description, str) else ""
            if len(description) > self.settings.mastodon_description_limit:
                limit = self.settings.mastodon_description_limit
                raise m_error(
                    422, f"Validation failed: Description is too long (maximum is {limit})"
                )
            media = self.state.new_media("mastodon", account.id, mime, None)
            media.alt_text = description
            media.size, media.sha256 = await asyncio.to_thread(save_upload, upload.file, media.path)
        if media.size == 0:
            self.state.media.pop(("mastodon", media.id), None)
            raise m_error(422, "Validation failed: File can't be blank")
        if mime.startswith("video/") and self.settings.check_media:
            media.facts, why = await asyncio.to_thread(check_video, media.path, self.profile())
            if why is not None:
                self.state.media.pop(("mastodon", media.id), None)
                media.path.unlink(missing_ok=True)
                raise m_error(422, f"Validation failed: File {why}")
        self.state.start_processing(media)
        done = mime.startswith("image/") and media.state_at(self.ctx.clock()) == "succeeded"
        return JSONResponse(
            self._attachment(media), status_code=200 if done else 202, headers=headers
        )

    @route("GET", "/api/v1/media/{media_id}")
    async def media(self, media_id: str, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "mastodon", "media_status")
        media = self.ctx.owned_media("mastodon", media_id, account)
        if media is None:
            raise m_error(404, "Record not found", headers)
        state = media.state_at(self.ctx.clock())
        if state == "processing":
            return Response(status_code=206, headers=headers)
        if state == "failed":
            raise m_error(422, "There was an error processing the media attachment", headers)
        return JSONResponse(self._attachment(media), headers=headers)

    async def _form(self, request: Request) -> dict[str, Any]:
        """The status parameters, from JSON or from form data (``media_ids[]``)."""
        if request.headers.get("content-type", "").startswith("application/json"):
            return await self.ctx.json_body(request, "mastodon")
        async with request.form(max_files=0, max_fields=64) as form:
            body: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
            body["media_ids"] = [v for v in form.getlist("media_ids[]") if isinstance(v, str)]
        return body

    def _validate(self, body: dict[str, Any], account: Account) -> list[StoredMedia]:
        text = body.get("status") or ""
        raw_ids = body.get("media_ids") or []
        if not isinstance(text, str) or not isinstance(raw_ids, list):
            raise m_error(422, "Validation failed: status must be text and media_ids a list")
        if not text.strip() and not raw_ids:
            raise m_error(422, "Validation failed: Text can't be blank")
        if len(text) > self.settings.mastodon_max_chars:
            limit = self.settings.mastodon_max_chars
            raise m_error(422, f"Validation failed: Text character limit of {limit} exceeded")
        if len(raw_ids) > MAX_MEDIA_PER_POST:
            raise m_error(422, "Cannot attach more than 4 files")
        if (body.get("visibility") or "public") not in VISIBILITIES:
            raise m_error(422, "Validation failed: Visibility is not included in the list")
        language = body.get("language")
        if language and not (isinstance(language, str) and _LANGUAGE.match(language)):
            raise m_error(422, "Validation failed: Language is not a valid ISO 639 code")
        in_reply_to = body.get("in_reply_to_id")
        if in_reply_to and (
            not is_snowflake(str(in_reply_to))
            or ("mastodon", str(in_reply_to)) in self.state.deleted
        ):
            raise m_error(422, "The post you are trying to reply to does not appear to exist.")
        media = [self.ctx.owned_media("mastodon", str(i), account) for i in raw_ids]
        missing = [
            str(i) for i, m in zip(raw_ids, media, strict=True) if m is None or m.attached_to
        ]
        if missing:
            ids = ", ".join(missing)
            raise m_error(422, f"Media {ids} not found or already attached to another post")
        found = [m for m in media if m is not None]
        if any(m.state_at(self.ctx.clock()) != "succeeded" for m in found):
            raise m_error(
                422, "Cannot attach files that have not finished processing. Try again in a moment!"
            )
        return found

    @route("POST", "/api/v1/statuses")
    async def create(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "mastodon", "statuses_create")
        key = request.headers.get("idempotency-key")
        earlier = self.state.idempotent(account.id, key) if key else None
        if earlier is not None:  # as Mastodon: the same key answers the first status
            return JSONResponse(self._status(earlier), headers=headers)
        body = await self._form(request)
        media = self._validate(body, account)
        post_id = self.state.next_id()
        for item in media:
            item.attached_to = post_id
        post = StoredPost(
            platform="mastodon",
            id=post_id,
            account_id=account.id,
            username=account.username,
            in_reply_to=str(body["in_reply_to_id"]) if body.get("in_reply_to_id") else None,
            text=body.get("status") or "",
            media=[item.summary(self.ctx.public) for item in media],
            created_at=self.ctx.clock(),
            url=f"{self.ctx.public}/@{account.username}/{post_id}",
            language=body.get("language") or None,
            visibility=body.get("visibility") or "public",
        )
        self.state.add_post(post)
        if key:
            self.state.idempotency[(account.id, key)] = (post_id, self.ctx.clock())
        return JSONResponse(self._status(post), headers=headers)

    @route("GET", "/api/v1/statuses/{status_id}")
    async def get(self, status_id: str, request: Request) -> Response:
        _, headers = self.ctx.gate(request, "mastodon", "statuses_get")
        post = self.state.posts.get(("mastodon", status_id))
        if post is None:
            raise m_error(404, "Record not found", headers)
        return JSONResponse(self._status(post), headers=headers)

    @route("GET", "/api/v1/statuses/{status_id}/context")
    async def context(self, status_id: str, request: Request) -> Response:
        _, headers = self.ctx.gate(request, "mastodon", "statuses_context")
        posts = self.state.live_posts("mastodon")
        # The original mentions are not stored here: an id is known when it is a
        # sandbox status or something a sandbox status replied to.
        known = {p.id for p in posts} | {p.in_reply_to for p in posts if p.in_reply_to}
        if status_id not in known:
            raise m_error(404, "Record not found", headers)
        descendants: list[StoredPost] = []
        frontier = {status_id}
        while frontier:
            children = [p for p in posts if p.in_reply_to in frontier]
            descendants.extend(children)
            frontier = {p.id for p in children}
        ancestors: list[StoredPost] = []
        current = self.state.posts.get(("mastodon", status_id))
        while current is not None and current.in_reply_to:
            current = self.state.posts.get(("mastodon", current.in_reply_to))
            if current is not None:
                ancestors.insert(0, current)
        body = {
            "ancestors": [self._status(p) for p in ancestors],
            "descendants": [self._status(p) for p in descendants],
        }
        return JSONResponse(body, headers=headers)

    @route("DELETE", "/api/v1/statuses/{status_id}")
    async def delete(self, status_id: str, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "mastodon", "statuses_delete")
        post = self.state.posts.get(("mastodon", status_id))
        if post is None or post.account_id != account.id:
            raise m_error(404, "Record not found", headers)
        body = self._status(post, with_source=True)
        self.state.delete_post("mastodon", status_id)
        if request.query_params.get("delete_media") in ("true", "1"):
            # Mastodon >= 4.4: the attachments go at once, not kept for a redraft.
            self.state.delete_media("mastodon", [m["id"] for m in post.media])
        return JSONResponse(body, headers=headers)

    @route("GET", "/@{username}/{post_id}", hidden=True)
    async def web(self, username: str, post_id: str) -> Response:
        return RedirectResponse(f"/#mastodon-{post_id if is_snowflake(post_id) else ''}")
