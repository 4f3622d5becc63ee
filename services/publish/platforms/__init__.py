"""Platform adapters behind the :class:`~services.publish.platforms.base.Platform` port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from services.common.messages import Platform as PlatformName
from services.publish.config import PublishSettings
from services.publish.platforms.base import MediaFile, Platform, PostedReply, ReplyDraft
from services.publish.platforms.bluesky import BlueskyClient
from services.publish.platforms.mastodon import MastodonClient
from services.publish.platforms.oauth import TokenStore
from services.publish.platforms.x import SpendMeter, XClient

__all__ = [
    "BlueskyClient",
    "MastodonClient",
    "MediaFile",
    "Platform",
    "PostedReply",
    "ReplyDraft",
    "XClient",
    "build_platforms",
]


def build_platforms(
    settings: PublishSettings,
    http: httpx.AsyncClient,
    *,
    token_store: TokenStore | None = None,
    spend: SpendMeter | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> dict[PlatformName, Platform]:
    """The adapters the settings enable, sharing one pooled ``httpx.AsyncClient``;
    ``token_store`` keeps X's rotating refresh token (the ledger), ``spend`` counts
    what X bills."""
    platforms: dict[PlatformName, Platform] = {}
    if settings.x_enabled:
        platforms[PlatformName.X] = XClient(
            settings, http, token_store=token_store, spend=spend, sleep=sleep, clock=clock
        )
    if settings.mastodon_base_url and settings.mastodon_access_token is not None:
        platforms[PlatformName.MASTODON] = MastodonClient(settings, http, sleep=sleep, clock=clock)
    if settings.bluesky_app_password is not None:
        platforms[PlatformName.BLUESKY] = BlueskyClient(settings, http, sleep=sleep, clock=clock)
    return platforms
