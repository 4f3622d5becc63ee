"""The sandbox's Bluesky video service subset: ``GET
/xrpc/app.bsky.video.getUploadLimits`` answers as video.bsky.app does — whether
the account may upload, and the videos and bytes it has left today — for a
bearer token (the real one wants a service-auth token from the account's PDS,
``aud`` the video service, ``lxm`` the method)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from services.sandbox.common import Api, bearer, route

#: video.bsky.app's daily allowance per account (2025).
DAILY_VIDEOS = 25
DAILY_BYTES = 10 * 1024 * 1024 * 1024


class BlueskyVideoApi(Api):
    tag = "Bluesky video service subset"

    @route("GET", "/xrpc/app.bsky.video.getUploadLimits")
    async def upload_limits(self, request: Request) -> Response:
        if bearer(request) is None:
            error = {"error": "AuthMissing", "message": "Authentication Required"}
            return JSONResponse(error, status_code=401)
        used = self.state.bluesky_video_bytes
        videos = max(0, DAILY_VIDEOS - len(used))
        left = max(0, DAILY_BYTES - sum(used))
        body: dict[str, object] = {
            "canUpload": videos > 0 and left > 0,
            "remainingDailyVideos": videos,
            "remainingDailyBytes": left,
        }
        if not body["canUpload"]:
            body["message"] = "You have reached your daily upload limit"
        return JSONResponse(body)
