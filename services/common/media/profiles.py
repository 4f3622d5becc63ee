"""What each platform accepts for a video, and the pure decisions made from it:
the rendition's size and frame rate, the duration limits named at upload, whether
a file already satisfies a profile, and the recipe a rendition is made (and
cached) by.

The table is keyed by platform name: X, Mastodon (its instance's limits from
``/api/v2/instance``) and Bluesky (the video service's format limits; its daily
quota from ``app.bsky.video.getUploadLimits``, :func:`bluesky_upload_refusal`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

#: How captions reach the viewer on a platform: uploaded beside the video as a
#: subtitle file, drawn into the picture, or not at all.
CaptionMode = Literal["attach", "burn", "off"]


class MediaInfo(BaseModel):
    """What a probe found in a file (:func:`services.common.media.probe.probe`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    container: str
    duration_s: float
    #: Coded size of the video (before rotation).
    width: int
    height: int
    #: Counter-clockwise degrees the picture must turn to show (ffprobe's ``rotation``).
    rotation: int = 0
    fps: float | None = None
    video_codec: str
    video_profile: str | None = None
    pix_fmt: str | None = None
    audio_codec: str | None = None
    audio_rate: int | None = None
    audio_channels: int | None = None
    bytes: int
    #: ISO-BMFF only: the ``moov`` box comes before ``mdat`` (None for other containers).
    faststart: bool | None = None

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown, rotation applied."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height

    @property
    def portrait(self) -> bool:
        width, height = self.display_size
        return height > width


@dataclass(frozen=True)
class Profile:
    """What one platform accepts for a reply's video."""

    platform: str
    #: How people call the platform, in messages ("X: at most 140 s").
    label: str
    #: The box the picture must fit, turned with it (a portrait video fits max_shortxmax_long).
    max_long: int
    max_short: int
    max_fps: float
    min_s: float
    #: None: no duration limit.
    max_s: float | None
    max_bytes: int
    #: Most pixels in a frame (Mastodon's ``video_matrix_limit``); None: the box only.
    max_pixels: int | None = None
    #: Longest alt text (characters).
    alt_text_max: int = 1000
    #: The platform takes a subtitle file beside the video.
    subtitles: bool = False
    containers: frozenset[str] = frozenset({"mov,mp4,m4a,3gp,3g2,mj2"})
    video_codecs: frozenset[str] = frozenset({"h264"})
    h264_profiles: frozenset[str] = frozenset({"High", "Main", "Baseline", "Constrained Baseline"})
    audio_codecs: frozenset[str] = frozenset({"aac"})
    pix_fmts: frozenset[str] = frozenset({"yuv420p"})
    #: ``moov`` before ``mdat``.
    faststart: bool = True
    #: MIME type of the rendition.
    mime: str = "video/mp4"

    def with_limits(self, **limits: Any) -> Profile:
        return replace(self, **limits)


_MIB = 1024 * 1024
_MB = 1000 * 1000

#: A row of the table: :class:`Profile`'s fields after ``platform``, in its order (label,
#: the box, frames per second, shortest and longest seconds, bytes, most pixels, longest
#: alt text, a subtitle file beside the video).
_Row = tuple[str, int, int, float, float, float | None, int, int | None, int, bool]

#: What each platform accepts; the rest (MP4, H.264 High/Main/Baseline, yuv420p, AAC,
#: moov first) is :class:`Profile`'s defaults. Where the numbers come from:
#:
#: - X: docs.x.com media best practices; SRT subtitles go through the media upload
#:   (``media_category=subtitles``).
#: - Mastodon: its defaults (4.x); an instance publishes its own in ``GET
#:   /api/v2/instance`` (``configuration.media_attachments``): see
#:   :func:`mastodon_profile`. Alt text is the attachment's ``description``.
#: - Bluesky: the video service (video.bsky.app, 2025-) takes MP4 (also MOV, WebM,
#:   MPEG; MP4 here), shown up to 1080p; alt text is ``app.bsky.embed.video#alt``
#:   (graphemes); WebVTT captions beside the video (``captions``, up to 20 languages).
#:   What an account may still upload today is not a format limit: the service says
#:   it in ``app.bsky.video.getUploadLimits`` (:func:`bluesky_upload_refusal`).
# fmt: off
_LIMITS: dict[str, _Row] = {
    #            label       long  short  fps    min_s  max_s  bytes       pixels     alt   subs
    "x":        ("X",        1920, 1200,  60.0,  0.5,   140.0, 512 * _MIB, None,      1000, True),
    "mastodon": ("Mastodon", 3840, 2160,  120.0, 0.0,   None,  99 * _MIB,  8_294_400, 1500, False),
    "bluesky":  ("Bluesky",  1920, 1080,  60.0,  0.0,   180.0, 100 * _MB,  None,      1000, True),
}
# fmt: on


#: The profile of every platform a reply can go to, by platform name.
PROFILES: dict[str, Profile] = {name: Profile(name, *row) for name, row in _LIMITS.items()}
X, MASTODON, BLUESKY = PROFILES["x"], PROFILES["mastodon"], PROFILES["bluesky"]


def profile_for(platform: str, overrides: Mapping[str, Profile] | None = None) -> Profile:
    """The profile of ``platform`` (``overrides`` first: limits an instance published)."""
    if overrides and platform in overrides:
        return overrides[platform]
    try:
        return PROFILES[platform]
    except KeyError:
        raise KeyError(f"no media profile for platform {platform!r}") from None


def mastodon_profile(instance: Mapping[str, Any], base: Profile = MASTODON) -> Profile:
    """Mastodon's profile with the limits an instance publishes (``GET /api/v2/instance``);
    a limit it leaves out keeps the default."""
    configuration = instance.get("configuration") or {}
    media = configuration.get("media_attachments") or {}
    limits: dict[str, Any] = {}
    if isinstance(media.get("video_size_limit"), int):
        limits["max_bytes"] = media["video_size_limit"]
    if isinstance(media.get("video_frame_rate_limit"), int | float):
        limits["max_fps"] = float(media["video_frame_rate_limit"])
    if isinstance(media.get("video_matrix_limit"), int):
        limits["max_pixels"] = media["video_matrix_limit"]
    if isinstance(media.get("description_limit"), int):
        limits["alt_text_max"] = media["description_limit"]
    return base.with_limits(**limits)


def bluesky_upload_refusal(limits: Mapping[str, Any], size: int) -> str | None:
    """Why Bluesky's video service would refuse an upload of ``size`` bytes now, from
    its ``app.bsky.video.getUploadLimits`` answer (``canUpload``,
    ``remainingDailyVideos``, ``remainingDailyBytes``, ``message``, ``error``);
    None: it takes it."""
    if limits.get("canUpload") is False:
        why = limits.get("message") or limits.get("error") or "the account may not upload videos"
        return f"Bluesky: {why}"
    videos = limits.get("remainingDailyVideos")
    if isinstance(videos, int) and videos <= 0:
        return "Bluesky: no video uploads left today for this account"
    left = limits.get("remainingDailyBytes")
    if isinstance(left, int) and size > left:
        return f"Bluesky: {size} bytes is more than the {left} left to upload today"
    return None


# --- durations -----------------------------------------------------------------


def clock(seconds: float) -> str:
    """``190`` → ``3:10`` (what people read on a video player)."""
    whole = max(0, math.floor(seconds + 0.5))
    return f"{whole // 60}:{whole % 60:02d}"


def seconds_text(seconds: float) -> str:
    return f"{seconds:g} s"


class Flag(BaseModel):
    """A platform will not take the answer as it is: named at upload, shown to the team
    and the moderator, cleared by a trim."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    platform: str
    kind: Literal["too_long", "too_short"]
    limit_s: float
    duration_s: float
    message: str


def duration_flags(duration_s: float, profiles: Iterable[Profile]) -> list[Flag]:
    """One flag per platform whose duration limit the answer breaks, the limit named:
    "X: at most 140 s; this answer is 3:10"."""
    flags = []
    for profile in profiles:
        if profile.max_s is not None and duration_s > profile.max_s:
            kind: Literal["too_long", "too_short"] = "too_long"
            limit, bound, length = profile.max_s, "at most", clock(duration_s)
        elif duration_s < profile.min_s:
            kind, limit, bound = "too_short", profile.min_s, "at least"
            length = f"{duration_s:.1f} s"
        else:
            continue
        flags.append(
            Flag(
                platform=profile.platform,
                kind=kind,
                limit_s=limit,
                duration_s=duration_s,
                message=f"{profile.label}: {bound} {seconds_text(limit)}; this answer is {length}",
            )
        )
    return flags


# --- does a file already satisfy a profile? ------------------------------------------

#: FFmpeg's name of the MP4/QuickTime demuxer.
ISO_BMFF = "mov,mp4,m4a,3gp,3g2,mj2"
#: Seconds a rendition may run past a limit (frame and AAC priming rounding).
DURATION_SLACK_S = 0.1


def refusals(info: MediaInfo, profile: Profile) -> list[str]:  # noqa: PLR0912 - one per rule
    """Why ``profile``'s platform would refuse the file; empty: it takes it as it is."""
    why = []
    width, height = info.display_size
    long, short = max(width, height), min(width, height)
    if info.container not in profile.containers:
        why.append(f"container {info.container} is not MP4")
    if info.video_codec not in profile.video_codecs:
        why.append(
            f"video codec {info.video_codec} is not {'/'.join(sorted(profile.video_codecs))}"
        )
    elif info.video_codec == "h264" and info.video_profile not in profile.h264_profiles:
        why.append(f"H.264 profile {info.video_profile} is not accepted")
    if info.pix_fmt not in profile.pix_fmts:
        why.append(f"pixel format {info.pix_fmt} is not {'/'.join(sorted(profile.pix_fmts))}")
    if info.audio_codec is not None and info.audio_codec not in profile.audio_codecs:
        why.append(f"audio codec {info.audio_codec} is not AAC")
    if info.rotation % 360:
        why.append(f"the picture is stored turned ({info.rotation}°)")
    if long > profile.max_long or short > profile.max_short:
        why.append(f"{width}x{height} does not fit {profile.max_long}x{profile.max_short}")
    if profile.max_pixels is not None and width * height > profile.max_pixels:
        why.append(f"{width}x{height} is more than {profile.max_pixels:,} pixels")
    if info.fps is not None and info.fps > profile.max_fps + 0.01:
        why.append(f"{info.fps:g} fps is more than {profile.max_fps:g}")
    if profile.max_s is not None and info.duration_s > profile.max_s + DURATION_SLACK_S:
        why.append(f"{info.duration_s:.1f} s is longer than {seconds_text(profile.max_s)}")
    if info.duration_s < profile.min_s:
        why.append(f"{info.duration_s:.2f} s is shorter than {seconds_text(profile.min_s)}")
    if info.bytes > profile.max_bytes:
        why.append(f"{info.bytes:,} bytes is more than {profile.max_bytes:,}")
    if profile.faststart and info.faststart is False:
        why.append("the moov box comes after the media data (not fast start)")
    return why


# --- the rendition ---------------------------------------------------------------


def _even(value: float) -> int:
    """Down to an even number (H.264 in 4:2:0 wants even sides), at least 2."""
    return max(2, int(value + 1e-6) // 2 * 2)


def target_size(
    info: MediaInfo, profile: Profile, *, cap_long: int | None = None
) -> tuple[int, int]:
    """The rendition's width and height: the picture as shown (rotation applied), scaled
    down — never up — to fit the profile's box turned with it (and its pixel limit, and
    ``cap_long``), aspect kept, even numbers."""
    width, height = info.display_size
    box_long = min(profile.max_long, cap_long or profile.max_long)
    box_short = profile.max_short
    box_w, box_h = (box_long, box_short) if width >= height else (box_short, box_long)
    scale = min(1.0, box_w / width, box_h / height)
    if profile.max_pixels is not None:
        scale = min(scale, math.sqrt(profile.max_pixels / (width * height)))
    return _even(width * scale), _even(height * scale)


def target_fps(info: MediaInfo, profile: Profile, *, cap: float | None = None) -> int:
    """A constant frame rate: the source's (30 when it does not say), at most the
    profile's and ``cap``."""
    source = info.fps if info.fps and info.fps > 0 else 30.0
    limit = min(profile.max_fps, cap or profile.max_fps)
    return max(1, min(round(source), math.floor(limit)))


@dataclass(frozen=True)
class Cut:
    """The part of the video kept (seconds from the start); ``end`` None: to the end."""

    start: float = 0.0
    end: float | None = None

    def length(self, duration_s: float) -> float:
        end = duration_s if self.end is None else min(self.end, duration_s)
        return max(0.0, end - self.start)

    @property
    def whole(self) -> bool:
        return self.start <= 0 and self.end is None


@dataclass(frozen=True)
class Recipe:
    """Everything a rendition is made from, besides the original's bytes: two answers
    with the same video and the same recipe share one rendition."""

    platform: str
    width: int
    height: int
    fps: int
    start_s: float
    end_s: float
    #: Peak video bitrate (kbit/s): keeps the file under the profile's size limit.
    maxrate_kbps: int
    crf: int
    preset: str
    audio: bool
    #: Captions drawn into the picture: ``[start, end, text]`` (empty: none).
    burn: tuple[tuple[float, float, str], ...] = ()
    #: Bumped when the way renditions are made changes (old ones are not reused).
    version: int = 1

    def fingerprint(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


#: Bits per second of AAC audio in a rendition (stereo; mono gets less).
AUDIO_KBPS = 128


def recipe(
    info: MediaInfo,
    profile: Profile,
    *,
    cut: Cut = Cut(),
    burn: Sequence[tuple[float, float, str]] = (),
    crf: int = 23,
    preset: str = "veryfast",
    fps_cap: float | None = 30.0,
    cap_long: int | None = None,
    maxrate_kbps: int = 8000,
) -> Recipe:
    """The rendition of ``info`` for ``profile``: size, frame rate, the cut, a bitrate cap
    that keeps the file under the size limit, and the captions to draw."""
    width, height = target_size(info, profile, cap_long=cap_long)
    length = max(cut.length(info.duration_s), 0.1)
    end = info.duration_s if cut.end is None else min(cut.end, info.duration_s)
    # 90% of the byte budget over the length, less the audio: the peak rate's ceiling.
    budget_kbps = int(profile.max_bytes * 8 * 0.9 / length / 1000) - AUDIO_KBPS
    smaller = width * height <= 1280 * 720
    ceiling = min(maxrate_kbps if not smaller else min(maxrate_kbps, 5000), budget_kbps)
    return Recipe(
        platform=profile.platform,
        width=width,
        height=height,
        fps=target_fps(info, profile, cap=fps_cap),
        start_s=round(cut.start, 3),
        end_s=round(end, 3),
        maxrate_kbps=max(200, ceiling),
        crf=crf,
        preset=preset,
        audio=info.audio_codec is not None,
        burn=tuple((round(float(s), 3), round(float(e), 3), str(t)) for s, e, t in burn),
    )


def alt_text(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters: cut at a word, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:.") + "…"
