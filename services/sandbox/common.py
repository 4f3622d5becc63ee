"""What the sandbox's X and Mastodon halves share: errors in each platform's own
shape, post texts as X gives them back, rate-limit headers, authentication and
body parsing."""

from __future__ import annotations

import hashlib
import html
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TypeVar

from fastapi import APIRouter, Request

from services.common.replies import x_links
from services.sandbox.config import SandboxSettings
from services.sandbox.state import Account, PlatformKey, SandboxState, StoredMedia, iso

#: Most media on one post, on both platforms.
MAX_MEDIA_PER_POST = 4
_COPY_BYTES = 1024 * 1024


class PlatformError(Exception):
    """An error answer in the platform's own shape (rendered by one handler)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def x_problem(
    status: int,
    title: str,
    detail: str,
    kind: str = "about:blank",
    headers: dict[str, str] | None = None,
) -> PlatformError:
    """An X RFC 7807 problem."""
    body = {"title": title, "detail": detail, "type": kind, "status": status}
    return PlatformError(status, body, headers)


def x_invalid(parameter: str, message: str) -> PlatformError:
    """X's 400 for a request whose parameters are invalid."""
    return PlatformError(
        400,
        {
            "errors": [{"parameters": {parameter: []}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        },
    )


def x_wire_text(text: str) -> tuple[str, list[dict[str, Any]]]:
    """A post's ``text`` as X API v2 gives it back, with its ``entities.urls``: ``&``,
    ``<`` and ``>`` HTML-escaped, every link shortened to a t.co link (the same one
    for the same link) whose ``expanded_url`` is the link as written (``http://``
    before a bare domain, such as ``unhcr.org``): links as X makes them
    (:func:`~services.common.replies.x_links`, X's own rules)."""
    out: list[str] = []
    urls: list[dict[str, Any]] = []
    at = 0
    for begin, end in x_links(text):
        out.append(html.escape(text[at:begin], quote=False))
        written = text[begin:end]
        link = written if "://" in written else f"http://{written}"
        short = "https://t.co/" + hashlib.sha256(link.encode()).hexdigest()[:10]
        start = sum(map(len, out))
        urls.append(
            {
                "start": start,
                "end": start + len(short),
                "url": short,
                "expanded_url": link,
                "display_url": link.split("://", 1)[1][:27],
            }
        )
        out.append(short)
        at = end
    out.append(html.escape(text[at:], quote=False))
    return "".join(out), urls


def m_error(status: int, message: str, headers: dict[str, str] | None = None) -> PlatformError:
    """Mastodon's ``{"error": ...}``."""
    return PlatformError(status, {"error": message}, headers)


def rate_headers(
    platform: PlatformKey, limit: int, remaining: int, reset_at: float
) -> dict[str, str]:
    """X: epoch seconds; Mastodon: an ISO 8601 timestamp; Bluesky: ``ratelimit-*``."""
    if platform == "bluesky":
        return {
            "ratelimit-limit": str(limit),
            "ratelimit-remaining": str(remaining),
            "ratelimit-reset": str(math.ceil(reset_at)),
            "ratelimit-policy": f"{limit};w=300",
        }
    if platform == "x":
        return {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(math.ceil(reset_at)),
        }
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": iso(reset_at),
    }


def too_many(platform: PlatformKey, limit: int, reset_at: float) -> PlatformError:
    headers = rate_headers(platform, limit, 0, reset_at)
    if platform == "bluesky":
        body = {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}
        return PlatformError(429, body, headers)
    if platform == "x":
        return x_problem(429, "Too Many Requests", "Too Many Requests", headers=headers)
    return m_error(429, "Too many requests", headers)


def server_error(platform: PlatformKey, status: int) -> PlatformError:
    if platform == "x":
        return x_problem(status, "Service Unavailable", "Service Unavailable")
    return m_error(status, "Service Unavailable")


def save_upload(source: BinaryIO, target: Path) -> tuple[int, str]:
    """Copy an uploaded file to ``target``: (bytes, sha256). Runs in a thread."""
    sha = hashlib.sha256()
    size = 0
    with target.open("wb") as out:
        while chunk := source.read(_COPY_BYTES):
            sha.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return size, sha.hexdigest()


def assemble(parts: Path, segments: list[int], target: Path) -> tuple[int, str]:
    """Join X segments in index order into ``target``: (bytes, sha256). Runs in a thread."""
    sha = hashlib.sha256()
    size = 0
    with target.open("wb") as out:
        for index in segments:
            with (parts / str(index)).open("rb") as part:
                while chunk := part.read(_COPY_BYTES):
                    sha.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
    shutil.rmtree(parts, ignore_errors=True)
    return size, sha.hexdigest()


def bearer(request: Request) -> str | None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


@dataclass
class Context:
    """The sandbox's state and settings, as the route classes see them."""

    state: SandboxState
    settings: SandboxSettings
    clock: Callable[[], float]

    @property
    def public(self) -> str:
        return self.settings.base_url

    def gate(
        self, request: Request, platform: PlatformKey, bucket: str
    ) -> tuple[Account, dict[str, str]]:
        """Authenticate the request and count it in its window: (account, headers)."""
        token = bearer(request)
        account = self.state.account_for(platform, token) if token else None
        if account is None:
            if platform == "x":
                raise x_problem(401, "Unauthorized", "Unauthorized")
            raise m_error(401, "The access token is invalid")
        allowed, limit, remaining, reset_at = self.state.take_rate(platform, account.id, bucket)
        if not allowed:
            raise too_many(platform, limit, reset_at)
        return account, rate_headers(platform, limit, remaining, reset_at)

    async def json_body(self, request: Request, platform: PlatformKey) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if platform == "x":
                raise x_invalid("body", "the request body must be a JSON object")
            raise m_error(422, "Validation failed: the request body must be a JSON object")
        return body

    def owned_media(
        self, platform: PlatformKey, media_id: str, account: Account
    ) -> StoredMedia | None:
        media = self.state.media.get((platform, media_id))
        return media if media is not None and media.account_id == account.id else None


@dataclass(frozen=True)
class Route:
    """Where an endpoint of a sandbox API is served; ``hidden`` ones stay out of the
    OpenAPI page."""

    method: str
    path: str
    hidden: bool = False


E = TypeVar("E", bound=Callable[..., Any])


def route(method: str, path: str, *, hidden: bool = False) -> Callable[[E], E]:
    """Declare where a method of an :class:`Api` is served (beside its definition)."""

    def declare(endpoint: E) -> E:
        endpoint.__dict__["sandbox_route"] = Route(method, path, hidden)
        return endpoint

    return declare


class Api:
    """One API the sandbox serves (a platform's subset, or its own control API):
    the state and settings it works on, and its endpoints (:func:`route`)."""

    #: The OpenAPI tag of its routes.
    tag: ClassVar[str]

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.settings = ctx.settings

    def router(self) -> APIRouter:
        router = APIRouter(tags=[self.tag])
        for name, member in vars(type(self)).items():
            declared: Route | None = getattr(member, "sandbox_route", None)
            if declared is not None:
                router.add_api_route(
                    declared.path,
                    getattr(self, name),
                    methods=[declared.method],
                    include_in_schema=not declared.hidden,
                )
        return router
