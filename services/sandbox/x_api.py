"""The sandbox's X API v2 subset: chunked media upload (videos checked against X's
limits: a video X would refuse fails processing with the reason), alt text and
subtitles of a video, posts, the account's timeline (reconciliation) and deletion,
with X's validation and error shapes; texts come back as X gives them (HTML-escaped,
links shortened to t.co)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from services.common.media.profiles import X
from services.sandbox.common import (
    MAX_MEDIA_PER_POST,
    Api,
    assemble,
    route,
    save_upload,
    x_invalid,
    x_problem,
    x_wire_text,
)
from services.sandbox.media_check import check_subtitles, check_video
from services.sandbox.state import Account, StoredMedia, StoredPost, is_snowflake, iso

MEDIA_TYPES = frozenset(
    {
        "video/mp4",
        "video/webm",
        "video/mp2t",
        "video/quicktime",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/webp",
        "text/srt",
        "text/vtt",
    }
)
MEDIA_CATEGORIES = frozenset(
    {
        "amplify_video",
        "tweet_gif",
        "tweet_image",
        "tweet_video",
        "dm_gif",
        "dm_image",
        "dm_video",
        "subtitles",
    }
)
VIDEO_CATEGORIES = frozenset({"amplify_video", "tweet_video", "dm_video"})
#: X's refusal of a reply to a post that did not summon the account (403).
NOT_SUMMONED_DETAIL = (
    "Reply to this conversation is not allowed because you have not been mentioned or "
    "otherwise engaged by the author of the post you are replying to."
)
#: Seconds an upload session lives (X says ``expires_after_secs``).
EXPIRES_AFTER_S = 86_400


def _segment_index(raw: Any) -> int:
    try:
        index = int(raw)
    except (TypeError, ValueError):
        raise x_invalid("segment_index", "segment_index must be an integer") from None
    if not 0 <= index <= 999:
        raise x_invalid("segment_index", "segment_index must be between 0 and 999")
    return index


def _tweet(post: StoredPost, fields: set[str]) -> dict[str, Any]:
    text, urls = x_wire_text(post.text)
    tweet: dict[str, Any] = {"id": post.id, "text": text, "edit_history_tweet_ids": [post.id]}
    if "entities" in fields and urls:
        tweet["entities"] = {"urls": urls}
    if "referenced_tweets" in fields and post.in_reply_to:
        tweet["referenced_tweets"] = [{"type": "replied_to", "id": post.in_reply_to}]
    if "conversation_id" in fields:
        tweet["conversation_id"] = post.in_reply_to or post.id
    if "created_at" in fields:
        tweet["created_at"] = iso(post.created_at)
    if "author_id" in fields:
        tweet["author_id"] = post.account_id
    if "attachments" in fields and post.media:
        tweet["attachments"] = {"media_keys": [f"7_{m['id']}" for m in post.media]}
    return tweet


class XApi(Api):
    tag = "X API v2 subset"

    # -- media --

    def _media_data(self, media: StoredMedia) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": media.id,
            "media_key": f"7_{media.id}",
            "size": media.size,
            "expires_after_secs": EXPIRES_AFTER_S,
        }
        now = self.ctx.clock()
        status = media.state_at(now)
        if status == "processing":
            left = max(0.0, media.ready_at - now)
            total = max(media.ready_at - media.created_at, 1e-9)
            data["processing_info"] = {
                "state": "pending" if left >= total else "in_progress",
                "check_after_secs": max(1, math.ceil(left)),
                "progress_percent": min(99, int(100 * (1 - left / total))),
            }
        elif status == "succeeded":
            data["processing_info"] = {"state": "succeeded", "progress_percent": 100}
        elif status == "failed":
            data["processing_info"] = {
                "state": "failed",
                "progress_percent": 100,
                "error": {
                    "code": 1,
                    "name": "InvalidMedia",
                    "message": media.refusal or "Unsupported video",
                },
            }
        return data

    def _upload(self, media_id: str, account: Account) -> StoredMedia:
        media = self.ctx.owned_media("x", media_id, account) if is_snowflake(media_id) else None
        if media is None:
            raise x_invalid("id", f"media id {media_id} is not an upload of this account")
        return media

    @route("POST", "/2/media/upload/initialize")
    async def initialize(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "x", "media_upload")
        body = await self.ctx.json_body(request, "x")
        media_type = body.get("media_type")
        category = body.get("media_category")
        total = body.get("total_bytes")
        if media_type not in MEDIA_TYPES:
            raise x_invalid("media_type", f"media_type must be one of {sorted(MEDIA_TYPES)}")
        if category is not None and category not in MEDIA_CATEGORIES:
            raise x_invalid("media_category", f"must be one of {sorted(MEDIA_CATEGORIES)}")
        if category in VIDEO_CATEGORIES and not str(media_type).startswith("video/"):
            raise x_invalid("media_type", f"{category} needs a video media_type")
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            raise x_invalid("total_bytes", "total_bytes must be a positive integer")
        if total > self.settings.max_media_bytes:
            raise x_invalid("total_bytes", f"total_bytes exceeds {self.settings.max_media_bytes}")
        media = self.state.new_media("x", account.id, str(media_type), total)
        media.category = str(category) if category is not None else None
        self.state.parts_dir(media).mkdir(parents=True, exist_ok=True)
        data = {"id": media.id, "media_key": f"7_{media.id}", "expires_after_secs": EXPIRES_AFTER_S}
        return JSONResponse({"data": data}, headers=headers)

    @route("POST", "/2/media/upload/{media_id}/append")
    async def append(self, media_id: str, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "x", "media_upload")
        media = self._upload(media_id, account)
        if media.state != "uploading":
            raise x_invalid("id", f"media {media_id} is already finalized")
        limit = self.settings.x_max_chunk_bytes
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            async with request.form(max_files=1, max_fields=4) as form:
                chunk_file = form.get("media")
                if not isinstance(chunk_file, UploadFile):
                    raise x_invalid("media", "media (the chunk, as a file part) is required")
                if (chunk_file.size or 0) > limit:
                    raise x_invalid("media", f"a chunk of {chunk_file.size} bytes exceeds {limit}")
                index = _segment_index(form.get("segment_index"))
                target = self.state.parts_dir(media) / str(index)
                size, _ = await asyncio.to_thread(save_upload, chunk_file.file, target)
        elif content_type.startswith("application/json"):
            body = await self.ctx.json_body(request, "x")
            index = _segment_index(body.get("segment_index"))
            try:
                chunk = base64.b64decode(str(body.get("media") or ""), validate=True)
            except (binascii.Error, ValueError):
                raise x_invalid("media", "media must be base64") from None
            if not chunk or len(chunk) > limit:
                raise x_invalid("media", f"media must hold 1 to {limit} bytes")
            size = len(chunk)
            await asyncio.to_thread((self.state.parts_dir(media) / str(index)).write_bytes, chunk)
        else:
            raise x_invalid("body", "send multipart/form-data (media, segment_index) or JSON")
        if size == 0:
            raise x_invalid("media", "the chunk is empty")
        media.segments[index] = size
        if sum(media.segments.values()) > (media.total_bytes or 0):
            raise x_invalid("media", "the segments exceed total_bytes")
        expires = int(self.ctx.clock()) + EXPIRES_AFTER_S
        return JSONResponse({"data": {"expires_at": expires}}, headers=headers)

    @route("POST", "/2/media/upload/{media_id}/finalize")
    async def finalize(self, media_id: str, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "x", "media_upload")
        media = self._upload(media_id, account)
        if media.state == "uploading":  # finalizing again answers the current state
            indexes = sorted(media.segments)
            if not indexes or indexes != list(range(len(indexes))):
                raise x_invalid("id", f"segments missing: received {indexes}")
            if sum(media.segments.values()) != media.total_bytes:
                raise x_invalid("id", "Segments do not add up to provided total file size.")
            media.size, media.sha256 = await asyncio.to_thread(
                assemble, self.state.parts_dir(media), indexes, media.path
            )
            await self._check(media)
            self.state.start_processing(media)
        return JSONResponse({"data": self._media_data(media)}, headers=headers)

    async def _check(self, media: StoredMedia) -> None:
        """What X checks while it processes: a video against its limits, subtitles parse."""
        if not self.settings.check_media:
            return
        if media.category == "subtitles":
            cues, why = await asyncio.to_thread(check_subtitles, media.path)
            media.facts = {"cues": cues}
        elif media.mime.startswith("video/"):
            media.facts, why = await asyncio.to_thread(check_video, media.path, X)
        else:
            return
        if why is not None:
            media.refusal = why
            media.fails = True

    @route("POST", "/2/media/metadata")
    async def metadata(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "x", "media_upload")
        body = await self.ctx.json_body(request, "x")
        media = self._upload(str(body.get("id", "")), account)
        metadata = body.get("metadata")
        alt = metadata.get("alt_text") if isinstance(metadata, dict) else None
        text = alt.get("text") if isinstance(alt, dict) else None
        if not isinstance(text, str):
            raise x_invalid("metadata.alt_text.text", "metadata.alt_text.text is required")
        if len(text) > self.settings.x_max_alt_text:
            limit = self.settings.x_max_alt_text
            raise x_invalid("metadata.alt_text.text", f"alt text is longer than {limit}")
        media.alt_text = text
        data = {"id": media.id, "associated_metadata": {"alt_text": {"text": text}}}
        return JSONResponse({"data": data}, headers=headers)

    @route("POST", "/2/media/subtitles")
    async def subtitles(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "x", "media_upload")
        body = await self.ctx.json_body(request, "x")
        video = self._upload(str(body.get("id", "")), account)
        given = body.get("subtitles")
        if not isinstance(given, dict):
            raise x_invalid("subtitles", "subtitles {id, language_code, display_name} is required")
        track = self._upload(str(given.get("id", "")), account)
        now = self.ctx.clock()
        if track.category != "subtitles" or track.state_at(now) != "succeeded":
            raise x_invalid("subtitles.id", "not a processed upload of category subtitles")
        if not video.mime.startswith("video/") or video.state_at(now) != "succeeded":
            raise x_invalid("id", "not a processed video")
        language = str(given.get("language_code") or "")
        if not 2 <= len(language) <= 8:
            raise x_invalid("subtitles.language_code", "a BCP 47 language code is required")
        video.subtitles.append(
            {
                "id": track.id,
                "language_code": language,
                "display_name": str(given.get("display_name") or language),
                "cues": track.facts.get("cues", 0),
            }
        )
        data = {
            "id": video.id,
            "media_category": body.get("media_category"),
            "associated_subtitles": video.subtitles,
        }
        return JSONResponse({"data": data}, headers=headers)

    @route("GET", "/2/media/upload")
    async def status(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "x", "media_status")
        if request.query_params.get("command") != "STATUS":
            raise x_invalid("command", "command must be STATUS")
        media = self._upload(request.query_params.get("media_id", ""), account)
        if media.state == "uploading":
            raise x_invalid("media_id", "the upload is not finalized")
        return JSONResponse({"data": self._media_data(media)}, headers=headers)

    # -- posts --

    def _media_ids(self, media_part: Any) -> list[str]:
        if media_part is None:
            return []
        ids = media_part.get("media_ids") if isinstance(media_part, dict) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_MEDIA_PER_POST:
            raise x_invalid("media.media_ids", "media.media_ids must hold 1 to 4 ids")
        if not all(is_snowflake(m) for m in ids):
            raise x_invalid("media.media_ids", "media ids must match ^[0-9]{1,19}$")
        return [str(m) for m in ids]

    def _reply_to(self, reply: Any, account: Account) -> str | None:
        if reply is None:
            return None
        target = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
        if not is_snowflake(target):
            raise x_invalid("reply.in_reply_to_tweet_id", "must match ^[0-9]{1,19}$")
        if ("x", target) in self.state.deleted:
            raise x_problem(
                403,
                "Forbidden",
                "You attempted to reply to a Tweet that is deleted or not visible to you.",
            )
        # Since 2026-02-23 a self-serve app may reply only when the post's author
        # summoned the replying account (@mentioned it or quoted one of its posts).
        # A post the sandbox never saw (a replayed demo mention) is let through.
        post = self.state.posts.get(("x", str(target)))
        if (
            post is not None
            and post.account_id != account.id
            and not self.state.summons(post, account.username)
        ):
            raise x_problem(403, "Forbidden", NOT_SUMMONED_DETAIL)
        return str(target)

    @route("POST", "/2/tweets")
    async def create(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "x", "tweets_create")
        body = await self.ctx.json_body(request, "x")
        text = body.get("text")
        media_ids = self._media_ids(body.get("media"))
        if text is not None and not isinstance(text, str):
            raise x_invalid("text", "text must be a string")
        if not text and not media_ids:
            raise x_invalid("text", "text or media is required")
        if text and len(text) > self.settings.x_max_chars:
            raise x_invalid("text", f"Your Tweet text is too long ({len(text)} characters).")
        in_reply_to = self._reply_to(body.get("reply"), account)
        now = self.ctx.clock()
        attached = [self.ctx.owned_media("x", m, account) for m in media_ids]
        if any(m is None or m.state_at(now) != "succeeded" or m.attached_to for m in attached):
            raise x_invalid("media.media_ids", "Your media IDs are invalid.")
        if (
            self.settings.x_reject_duplicates
            and text
            and any(
                p.account_id == account.id and p.text == text for p in self.state.live_posts("x")
            )
        ):
            raise x_problem(
                403,
                "Forbidden",
                "You are not allowed to create a Tweet with duplicate content.",
            )
        post_id = self.state.next_id()
        summaries = []
        for media in attached:
            assert media is not None
            media.attached_to = post_id
            summaries.append(media.summary(self.ctx.public))
        post = StoredPost(
            platform="x",
            id=post_id,
            account_id=account.id,
            username=account.username,
            in_reply_to=in_reply_to,
            text=text or "",
            media=summaries,
            created_at=now,
            url=f"{self.ctx.public}/i/web/status/{post_id}",
        )
        self.state.add_post(post)
        data = {
            "id": post_id,
            "text": x_wire_text(post.text)[0],
            "edit_history_tweet_ids": [post_id],
        }
        return JSONResponse({"data": data}, status_code=201, headers=headers)

    @route("DELETE", "/2/tweets/{post_id}")
    async def delete(self, post_id: str, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "x", "tweets_delete")
        if not is_snowflake(post_id):
            raise x_invalid("id", "id must match ^[0-9]{1,19}$")
        post = self.state.posts.get(("x", post_id))
        if post is None:
            raise x_problem(
                404,
                "Not Found Error",
                f"Could not find tweet with id: [{post_id}].",
                "https://api.twitter.com/2/problems/resource-not-found",
                headers,
            )
        if post.account_id != account.id:
            raise x_problem(403, "Forbidden", "You are not allowed to delete this Tweet.")
        self.state.delete_post("x", post_id)
        return JSONResponse({"data": {"deleted": True}}, headers=headers)

    @route("GET", "/2/users/me")
    async def me(self, request: Request) -> Response:
        account, headers = self.ctx.gate(request, "x", "users_me")
        data = {
            "id": account.id,
            "name": f"{account.username} (sandbox)",
            "username": account.username,
        }
        return JSONResponse({"data": data}, headers=headers)

    @route("GET", "/2/users/{user_id}/tweets")
    async def timeline(self, user_id: str, request: Request) -> Response:
        _, headers = self.ctx.gate(request, "x", "user_tweets")
        query = request.query_params
        if not is_snowflake(user_id):
            raise x_invalid("id", "id must match ^[0-9]{1,19}$")
        try:
            max_results = int(query.get("max_results", "10"))
            start = int(query.get("pagination_token", "page-0").removeprefix("page-"))
        except ValueError:
            raise x_invalid("max_results", "max_results or pagination_token is invalid") from None
        if not 5 <= max_results <= 100:
            raise x_invalid("max_results", "max_results must be between 5 and 100")
        posts = [p for p in reversed(self.state.live_posts("x")) if p.account_id == user_id]
        for name, keep in (("since_id", 1), ("until_id", -1)):
            if name in query:
                if not is_snowflake(query[name]):
                    raise x_invalid(name, f"{name} must match ^[0-9]{{1,19}}$")
                bound = int(query[name])
                posts = [p for p in posts if (int(p.id) - bound) * keep > 0]
        fields = set(filter(None, query.get("tweet.fields", "").split(",")))
        data = [_tweet(p, fields) for p in posts[start : start + max_results]]
        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta["newest_id"] = data[0]["id"]
            meta["oldest_id"] = data[-1]["id"]
        if start + max_results < len(posts):
            meta["next_token"] = f"page-{start + max_results}"
        body: dict[str, Any] = {"data": data, "meta": meta} if data else {"meta": meta}
        return JSONResponse(body, headers=headers)

    @route("GET", "/i/web/status/{post_id}", hidden=True)
    async def web(self, post_id: str) -> Response:
        return RedirectResponse(f"/#x-{post_id if is_snowflake(post_id) else ''}")
