"""What each platform accepts, decided without a file: rendition sizes (rotation and
portrait respected, never upscaled), frame rates, the duration limits named at upload,
why a file would be refused, Mastodon's published limits, alt text."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.media import profiles
from services.common.media.profiles import (
    MASTODON,
    Cut,
    MediaInfo,
    X,
    bluesky_upload_refusal,
    duration_flags,
    mastodon_profile,
    profile_for,
    recipe,
    refusals,
    target_fps,
    target_size,
)


def info(**overrides: Any) -> MediaInfo:
    fields: dict[str, Any] = {
        "container": profiles.ISO_BMFF,
        "duration_s": 30.0,
        "width": 1920,
        "height": 1080,
        "rotation": 0,
        "fps": 30.0,
        "video_codec": "h264",
        "video_profile": "High",
        "pix_fmt": "yuv420p",
        "audio_codec": "aac",
        "bytes": 10_000_000,
        "faststart": True,
    }
    return MediaInfo(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("given", "size"),
    [
        (info(width=1920, height=1080), (1920, 1080)),  # fits as it is
        (info(width=3840, height=2160), (1920, 1080)),  # 4K: into the box
        (info(width=1080, height=1920), (1080, 1920)),  # portrait: the box turns with it
        (info(width=1920, height=1080, rotation=-90), (1080, 1920)),  # iPhone: stored turned
        (info(width=3840, height=2160, rotation=90), (1080, 1920)),
        (info(width=2160, height=3840), (1080, 1920)),
        (info(width=1920, height=1440), (1600, 1200)),  # 4:3 hits the short side first
        (info(width=352, height=288), (352, 288)),  # never upscaled
        (info(width=641, height=361), (640, 360)),  # even sides for 4:2:0
    ],
)
def test_the_x_rendition_fits_its_box_turned_with_the_picture(
    given: MediaInfo, size: tuple[int, int]
) -> None:
    assert target_size(given, X) == size


def test_mastodon_renditions_keep_to_the_instance_s_pixel_limit() -> None:
    small = MASTODON.with_limits(max_pixels=640 * 360)
    width, height = target_size(info(width=3840, height=2160), small)
    assert width * height <= 640 * 360
    assert (width, height) == (640, 360)
    assert target_size(info(width=3840, height=2160), MASTODON, cap_long=1920) == (1920, 1080)


@pytest.mark.parametrize(
    ("fps", "cap", "expected"),
    [(60.0, 30.0, 30), (60.0, None, 60), (120.0, None, 60), (29.97, 30.0, 30), (15.0, 30.0, 15),
     (None, 30.0, 30)],
)  # fmt: skip
def test_the_frame_rate_is_the_source_s_within_the_cap_and_the_platform(
    fps: float | None, cap: float | None, expected: int
) -> None:
    assert target_fps(info(fps=fps), X, cap=cap) == expected


def test_a_long_answer_is_flagged_with_the_limit_named() -> None:
    [flag] = duration_flags(190.0, [X, MASTODON])
    assert flag.message == "X: at most 140 s; this answer is 3:10"
    assert (flag.platform, flag.kind, flag.limit_s) == ("x", "too_long", 140.0)
    assert duration_flags(140.0, [X]) == []
    [short] = duration_flags(0.3, [X])
    assert short.message == "X: at least 0.5 s; this answer is 0.3 s"


def test_a_rendition_is_taken_as_it_is_and_a_phone_s_original_is_not() -> None:
    assert refusals(info(), X) == []
    iphone = info(
        container=profiles.ISO_BMFF, video_codec="hevc", video_profile="Main", rotation=-90,
        fps=60.0, faststart=False, width=1920, height=1080,
    )  # fmt: skip
    why = refusals(iphone, X)
    assert "video codec hevc is not h264" in why
    assert "the picture is stored turned (-90°)" in why
    assert "the moov box comes after the media data (not fast start)" in why
    webm = refusals(info(container="matroska,webm", video_codec="vp8", audio_codec="opus"), X)
    assert "container matroska,webm is not MP4" in webm
    assert "audio codec opus is not AAC" in webm
    assert refusals(info(width=3840, height=2160), X) == ["3840x2160 does not fit 1920x1200"]
    assert refusals(info(duration_s=150), X) == ["150.0 s is longer than 140 s"]
    assert refusals(info(fps=120.0), X) == ["120 fps is more than 60"]
    assert refusals(info(width=3840, height=2160), MASTODON) == []
    assert refusals(info(duration_s=600, fps=120), MASTODON) == []


def test_mastodon_s_profile_takes_what_the_instance_publishes() -> None:
    instance = {
        "configuration": {
            "media_attachments": {
                "video_size_limit": 41_943_040,
                "video_frame_rate_limit": 60,
                "video_matrix_limit": 2_304_000,
                "description_limit": 1000,
            }
        }
    }
    profile = mastodon_profile(instance)
    assert (profile.max_bytes, profile.max_fps, profile.max_pixels, profile.alt_text_max) == (
        41_943_040, 60.0, 2_304_000, 1000,
    )  # fmt: skip
    assert mastodon_profile({}) == MASTODON


def test_a_recipe_holds_the_cut_the_captions_and_a_bitrate_under_the_size_limit() -> None:
    long = info(duration_s=130.0)
    made = recipe(long, X, cut=Cut(10.0, 70.0), burn=[(11.0, 12.0, "hello")])
    assert (made.width, made.height, made.fps) == (1920, 1080, 30)
    assert (made.start_s, made.end_s) == (10.0, 70.0)
    assert made.burn == ((11.0, 12.0, "hello"),)
    tiny = MASTODON.with_limits(max_bytes=5_000_000)
    assert recipe(long, tiny).maxrate_kbps < 300  # 5 MB over 130 s
    assert made.fingerprint() != recipe(long, X, cut=Cut(10.0, 71.0)).fingerprint()
    assert (
        made.fingerprint()
        == recipe(long, X, cut=Cut(10.0, 70.0), burn=[(11, 12, "hello")]).fingerprint()
    )


def test_alt_text_is_cut_at_a_word_within_the_limit() -> None:
    text = "We need clean water and schools for our children " * 40
    cut = profiles.alt_text(text, 1000)
    assert len(cut) <= 1000
    assert cut.endswith("…")
    assert profiles.alt_text("  short   text ", 10) == "short text"


def test_bluesky_has_a_profile_and_its_daily_quota_is_read_from_the_video_service() -> None:
    profile = profile_for("bluesky")
    assert (profile.label, profile.max_s, profile.max_bytes, profile.subtitles) == (
        "Bluesky", 180.0, 100_000_000, True,
    )  # fmt: skip
    limits = {"canUpload": True, "remainingDailyVideos": 3, "remainingDailyBytes": 1000}
    assert bluesky_upload_refusal(limits, 999) is None
    assert "more than the 1000 left" in (bluesky_upload_refusal(limits, 1001) or "")
    assert bluesky_upload_refusal({**limits, "remainingDailyVideos": 0}, 1) is not None
    refused = {"canUpload": False, "error": "Unverified", "message": "verify your e-mail first"}
    assert bluesky_upload_refusal(refused, 1) == "Bluesky: verify your e-mail first"
