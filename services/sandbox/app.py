"""The sandbox platform: the subset of the X API v2 and the Mastodon API that the
publisher uses, with their validation, response shapes, errors and rate-limit
headers, faults injected on demand, and a page of what was "posted".

Control API (not part of either platform):

- ``GET /``: the page; ``GET /sandbox/posts``: the posts as JSON (a list of
  ``{platform, id, author: {id, handle}, in_reply_to, text, media: [{id, mime,
  size, sha256, url}], hidden, ...}``);
- ``POST /sandbox/posts``: a post by anyone, ``{"platform", "author": {"id",
  "handle"}, "text", "in_reply_to"?, "quote_of"?}`` → ``{"id", ...}``; the
  platform's own intake then delivers it as the real network would (the X
  filtered stream when a rule matches, a Mastodon mention notification);
- ``GET``/``POST``/``DELETE /sandbox/faults``: read, merge, clear the faults
  (``{"x": {"429_burst": 3, "5xx": 2, "drop": 1, "media_processing_s": 2}}``,
  see :class:`~services.sandbox.config.PlatformFaults`);
- ``POST /sandbox/reset``: forget posts, media, keys, windows, issued tokens; faults
  back to the settings';
- ``GET /sandbox/media/{platform}/{id}``: an uploaded file (range requests work).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.sandbox import page
from services.sandbox.bluesky_api import BlueskyApi, did_for, notify
from services.sandbox.bluesky_video import BlueskyVideoApi
from services.sandbox.common import Api, Context, PlatformError, route
from services.sandbox.config import SandboxFaults, SandboxSettings
from services.sandbox.faults import BUCKETS, QUIET_DROPS, FaultMiddleware
from services.sandbox.mastodon_api import MastodonApi
from services.sandbox.mastodon_stream import MastodonStreamApi
from services.sandbox.moderation import BlueskyThreadApi, MastodonModerationApi, XModerationApi
from services.sandbox.state import PlatformKey, SandboxState, StoredPost
from services.sandbox.x_api import XApi
from services.sandbox.x_oauth import XOAuthApi
from services.sandbox.x_stream import XStreamApi

log = logging.getLogger(__name__)

_PAGE_HEADERS = {
    "Content-Security-Policy": page.CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class NewAuthor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Numeric on X and Mastodon; on Bluesky a DID (or a number, made into one).
    id: str = Field(pattern=r"^([0-9]{1,19}|did:[a-z]+:[A-Za-z0-9._:%\-]{1,96})$")
    handle: str = Field(min_length=1, max_length=64, pattern=r"^@?[A-Za-z0-9_.\-@]+$")


class NewPost(BaseModel):
    """A post by anyone (``POST /sandbox/posts``)."""

    model_config = ConfigDict(extra="forbid")

    platform: Literal["x", "mastodon", "bluesky"]
    author: NewAuthor
    text: str = Field(min_length=1, max_length=10_000)
    in_reply_to: str | None = None
    quote_of: str | None = None
    lang: str | None = Field(default=None, max_length=16)


def _invalid(message: str, details: list[dict[str, Any]] | None = None) -> JSONResponse:
    error: dict[str, object] = {"code": "invalid_request", "message": message}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=422)


class ControlApi(Api):
    """The sandbox's own endpoints: posts, faults, reset, media files, the page."""

    tag = "sandbox control"

    @route("GET", "/sandbox/posts")
    async def posts(self) -> Response:
        return JSONResponse([p.public() for p in self.state.live_posts()])

    @route("GET", "/sandbox/moderation")
    async def moderation(self) -> Response:
        """Every hide, unhide, mute, unmute and report the accounts made, in order."""
        return JSONResponse(self.state.moderation_calls)

    @route("POST", "/sandbox/posts")
    async def add_post(self, request: Request) -> Response:
        try:
            given = NewPost.model_validate_json(await request.body())
        except ValidationError as exc:
            details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:20]]
            return _invalid("invalid post", details)
        platform: PlatformKey = given.platform
        for name, target in (("in_reply_to", given.in_reply_to), ("quote_of", given.quote_of)):
            if target is not None and (platform, target) not in self.state.posts:
                return _invalid(f"{name}: no {platform} post {target} in the sandbox")
        post_id = self.state.next_id()
        handle = given.author.handle.lstrip("@")
        author_id = given.author.id
        cid = None
        if platform == "bluesky":
            author_id = author_id if author_id.startswith("did:") else did_for(handle)
            rkey = format(int(post_id), "x")
            post_id = f"at://{author_id}/app.bsky.feed.post/{rkey}"
            cid = "bafyrei" + rkey.rjust(52, "a")
            url = f"{self.ctx.public}/profile/{handle}/post/{rkey}"
        elif platform == "x":
            url = f"{self.ctx.public}/i/web/status/{post_id}"
        else:
            url = f"{self.ctx.public}/@{handle}/{post_id}"
        post = StoredPost(
            platform=platform,
            id=post_id,
            account_id=author_id,
            username=handle,
            in_reply_to=given.in_reply_to,
            text=given.text,
            media=[],
            created_at=self.ctx.clock(),
            url=url,
            language=given.lang,
            visibility="public" if platform == "mastodon" else None,
            quote_of=given.quote_of,
            external=True,
            cid=cid,
        )
        self.state.add_post(post)
        return JSONResponse(post.public(), status_code=201)

    @route("GET", "/sandbox/faults")
    async def faults(self) -> Response:
        return JSONResponse(self.state.faults.model_dump(by_alias=True))

    @route("POST", "/sandbox/faults")
    async def set_faults(self, request: Request) -> Response:
        try:
            given = SandboxFaults.model_validate_json(await request.body())
        except ValidationError as exc:
            details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:20]]
            return _invalid("invalid faults", details)
        for faults in (given.x, given.mastodon, given.bluesky):
            unknown = sorted(set(faults.endpoints or ()) - BUCKETS)
            if unknown:
                return _invalid(f"unknown endpoints {unknown}; known: {sorted(BUCKETS)}")
        self.state.set_faults(given)
        log.info("sandbox faults now %s", self.state.faults.model_dump_json(by_alias=True))
        return JSONResponse(self.state.faults.model_dump(by_alias=True))

    @route("DELETE", "/sandbox/faults")
    async def clear_faults(self) -> Response:
        self.state.faults = SandboxFaults()
        return JSONResponse(self.state.faults.model_dump(by_alias=True))

    @route("POST", "/sandbox/reset")
    async def reset(self) -> Response:
        self.state.reset()
        return Response(status_code=204)

    @route("GET", "/sandbox/media/{platform}/{media_id}")
    async def media(self, platform: str, media_id: str) -> Response:
        key: PlatformKey = (
            "x" if platform == "x" else "bluesky" if platform == "bluesky" else "mastodon"
        )
        media = (
            self.state.media.get((key, media_id))
            if platform in ("x", "mastodon", "bluesky")
            else None
        )
        if media is None or media.state == "uploading" or not media.path.is_file():
            error = {"error": {"code": "not_found", "message": "no such media"}}
            return JSONResponse(error, status_code=404)
        return FileResponse(media.path, media_type=media.mime)

    @route("GET", "/healthz", hidden=True)
    async def health(self) -> Response:
        return JSONResponse({"status": "ok", "sandbox": True})

    @route("GET", "/", hidden=True)
    async def home(self) -> Response:
        return HTMLResponse(page.render(self.state.live_posts()), headers=_PAGE_HEADERS)


def create_app(
    settings: SandboxSettings | None = None, *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The sandbox. ``clock`` drives ids, rate windows, media processing and key
    expiry, so a test can share one fake clock with the clients it runs against."""
    settings = settings or SandboxSettings()
    ctx = Context(SandboxState(settings, clock), settings, clock)
    logging.getLogger("uvicorn.error").addFilter(QUIET_DROPS)

    app = FastAPI(
        title="takeaction SANDBOX platform",
        version="0.1.0",
        summary="A local stand-in for the X and Mastodon APIs the publisher uses",
        docs_url="/sandbox/docs",
        openapi_url="/sandbox/openapi.json",
        redoc_url=None,
    )
    app.state.sandbox = ctx.state

    async def on_platform_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, PlatformError)
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    app.add_exception_handler(PlatformError, on_platform_error)
    app.add_middleware(FaultMiddleware, state=ctx.state)
    app.include_router(XApi(ctx).router())
    app.include_router(XOAuthApi(ctx).router())
    app.include_router(XStreamApi(ctx).router())
    app.include_router(MastodonApi(ctx).router())
    app.include_router(MastodonStreamApi(ctx).router())
    app.include_router(BlueskyVideoApi(ctx).router())
    app.include_router(BlueskyApi(ctx).router())
    app.include_router(XModerationApi(ctx).router())
    app.include_router(MastodonModerationApi(ctx).router())
    app.include_router(BlueskyThreadApi(ctx).router())
    ctx.state.on_bluesky_post = notify
    app.include_router(ControlApi(ctx).router())
    return app
