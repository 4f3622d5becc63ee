"""The sandbox checks videos as the platforms do: X fails the processing of a video
outside its limits (saying why), Mastodon refuses one outside the limits its
``/api/v2/instance`` publishes; X takes alt text and subtitles for a video."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.sandbox import SandboxSettings
from tests.conftest import ServeFactory
from tests.helpers.media import long_answer_bytes, rendition_bytes
from tests.helpers.sandbox import MASTODON_TOKEN, X_TOKEN, SandboxServer

pytestmark = pytest.mark.timeout(60)

X_AUTH = {"Authorization": f"Bearer {X_TOKEN}"}
M_AUTH = {"Authorization": f"Bearer {MASTODON_TOKEN}"}


@pytest.fixture
async def checking(
    serve: ServeFactory, sandbox_settings: Callable[..., SandboxSettings]
) -> AsyncIterator[SandboxServer]:
    settings = sandbox_settings(check_media=True, mastodon_video_matrix_limit=10_000)
    async with serve(settings) as server:
        yield server


async def _x_upload(
    http: httpx.AsyncClient,
    base: str,
    data: bytes,
    *,
    mime: str = "video/mp4",
    category: str = "tweet_video",
) -> dict[str, Any]:
    init = await http.post(
        f"{base}/2/media/upload/initialize",
        headers=X_AUTH,
        json={"media_type": mime, "total_bytes": len(data), "media_category": category},
    )
    media_id = init.json()["data"]["id"]
    await http.post(
        f"{base}/2/media/upload/{media_id}/append",
        headers=X_AUTH,
        data={"segment_index": "0"},
        files={"media": ("blob", data, "application/octet-stream")},
    )
    finalized = await http.post(f"{base}/2/media/upload/{media_id}/finalize", headers=X_AUTH)
    data_: dict[str, Any] = finalized.json()["data"]
    return data_


async def test_x_takes_a_rendition_and_fails_an_original_saying_why(
    http: httpx.AsyncClient, checking: SandboxServer, phone_videos: dict[str, Path]
) -> None:
    base = checking.base_url
    good = await _x_upload(http, base, rendition_bytes())
    assert good["processing_info"]["state"] == "succeeded"

    webm = await _x_upload(http, base, phone_videos["vp8_webm"].read_bytes(), mime="video/webm")
    long = await _x_upload(http, base, long_answer_bytes())

    for refused, why in ((webm, "video codec vp8 is not h264"), (long, "longer than 140 s")):
        info = refused["processing_info"]
        assert info["state"] == "failed"
        assert why in info["error"]["message"]


async def test_x_alt_text_and_subtitles_are_kept_on_the_video(
    http: httpx.AsyncClient, checking: SandboxServer
) -> None:
    base = checking.base_url
    video = (await _x_upload(http, base, rendition_bytes()))["id"]
    srt = b"1\n00:00:00,000 --> 00:00:00,500\nWe need water.\n"
    track = (await _x_upload(http, base, srt, mime="text/srt", category="subtitles"))["id"]

    too_long = await http.post(
        f"{base}/2/media/metadata",
        headers=X_AUTH,
        json={"id": video, "metadata": {"alt_text": {"text": "x" * 1001}}},
    )
    alt = await http.post(
        f"{base}/2/media/metadata",
        headers=X_AUTH,
        json={"id": video, "metadata": {"alt_text": {"text": "A refugee answers."}}},
    )
    tied = await http.post(
        f"{base}/2/media/subtitles",
        headers=X_AUTH,
        json={
            "id": video,
            "media_category": "TweetVideo",
            "subtitles": {"id": track, "language_code": "EN", "display_name": "English"},
        },
    )

    assert too_long.status_code == 400
    assert alt.status_code == 200
    assert tied.status_code == 200, tied.text
    stored = checking.state.media[("x", video)]
    assert stored.alt_text == "A refugee answers."
    assert stored.subtitles == [
        {"id": track, "language_code": "EN", "display_name": "English", "cues": 1}
    ]


async def test_mastodon_publishes_its_limits_and_enforces_them(
    http: httpx.AsyncClient, checking: SandboxServer
) -> None:
    base = checking.base_url
    instance = (await http.get(f"{base}/api/v2/instance")).json()
    media = instance["configuration"]["media_attachments"]
    assert media["video_matrix_limit"] == 10_000
    assert (media["video_frame_rate_limit"], media["description_limit"]) == (120, 1500)

    small = await http.post(
        f"{base}/api/v2/media",
        headers=M_AUTH,
        files={"file": ("a.mp4", rendition_bytes(), "video/mp4")},
        data={"description": "A refugee answers."},
    )
    too_big = await http.post(
        f"{base}/api/v2/media",
        headers=M_AUTH,
        files={"file": ("a.mp4", long_answer_bytes(), "video/mp4")},  # fits: 32x24
        data={"description": "x" * 1501},
    )

    assert small.status_code in (200, 202), small.text
    assert small.json()["description"] == "A refugee answers."
    assert too_big.status_code == 422
    assert "Description is too long" in too_big.json()["error"]


async def test_mastodon_refuses_a_video_over_the_instance_s_pixel_limit(
    http: httpx.AsyncClient, checking: SandboxServer, phone_videos: dict[str, Path]
) -> None:
    refused = await http.post(
        f"{checking.base_url}/api/v2/media",
        headers=M_AUTH,
        files={"file": ("a.mp4", phone_videos["h264_mp4"].read_bytes(), "video/mp4")},
    )
    assert refused.status_code == 422
    assert "more than 10,000 pixels" in refused.json()["error"]
