"""What the sandbox checks in an uploaded video, as the real platforms do: probed with
FFmpeg (PyAV) against the platform's media profile (X's published limits; Mastodon's
as this sandbox's instance publishes them). Blocking: run it in a thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.common.media import subtitles
from services.common.media.probe import Undecodable, probe
from services.common.media.profiles import Profile, refusals


def check_video(path: Path, profile: Profile) -> tuple[dict[str, Any], str | None]:
    """(What the file is, why the platform refuses it or None)."""
    try:
        info = probe(path, thorough=True)
    except Undecodable as exc:
        return {}, str(exc)
    width, height = info.display_size
    facts = {
        "container": info.container,
        "video_codec": info.video_codec,
        "video_profile": info.video_profile,
        "pix_fmt": info.pix_fmt,
        "audio_codec": info.audio_codec,
        "width": width,
        "height": height,
        "fps": info.fps,
        "duration_s": info.duration_s,
        "faststart": info.faststart,
    }
    why = refusals(info, profile)
    return facts, "; ".join(why) if why else None


def check_subtitles(path: Path) -> tuple[int, str | None]:
    """(How many cues, why the file is refused or None)."""
    try:
        return len(subtitles.parse(path.read_text(encoding="utf-8"))), None
    except (UnicodeDecodeError, subtitles.SubtitleError) as exc:
        return 0, f"invalid subtitles: {exc}"
