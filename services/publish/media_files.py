"""A reply's media files, before the first byte goes to a platform: the video and
its subtitle files resolved inside the media root (symlinks followed), byte for
byte the ones approved (size and sha256), and a video the platform takes as it is
(its media profile)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from services.common.media.probe import Undecodable, probe
from services.common.media.profiles import profile_for, refusals
from services.common.messages import Media
from services.publish.exceptions import MediaOutsideRoot, UnsupportedMedia
from services.publish.platforms.base import MediaFile, SubtitleTrack


def _local(uri: str, root: Path) -> Path:
    """The file behind ``uri`` (``file://`` or a path), resolved (symlinks followed):
    :class:`MediaOutsideRoot` unless it lies inside ``root``."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        path = Path(url2pathname(parsed.path))
    elif parsed.scheme == "":
        path = Path(uri)
    else:
        raise UnsupportedMedia(f"media {uri[:200]!r} is not a local file (file:// or a path)")
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise MediaOutsideRoot(f"media {uri[:200]!r} is outside the media root")
    return resolved


def media_file(media: Media, root: Path) -> MediaFile:
    """The local file of a reply's video (``file://`` URI or a path, inside ``root``),
    its alt text and its subtitle files (inside ``root`` too)."""
    return MediaFile(
        path=_local(media.uri, root),
        mime=media.mime,
        sha256=media.sha256,
        size=media.bytes,
        alt_text=media.alt_text,
        subtitles=tuple(
            SubtitleTrack(
                path=_local(s.uri, root),
                mime=s.mime,
                sha256=s.sha256,
                size=s.bytes,
                language=s.language,
            )
            for s in media.subtitles
        ),
    )


def _check_contents(path: Path, size: int, sha256: str) -> None:
    digest = hashlib.sha256()
    read = 0
    try:
        with path.open("rb") as handle:
            while block := handle.read(1024 * 1024):
                digest.update(block)
                read += len(block)
    except OSError as exc:
        raise UnsupportedMedia(f"{path.name} cannot be read: {exc.strerror}") from exc
    if read != size or digest.hexdigest() != sha256.lower():
        raise UnsupportedMedia(f"{path.name} is not the file approved: its size or sha256 differs")


def check_contents(media: MediaFile) -> None:
    """The video and its subtitle files are, byte for byte, the ones approved (size and
    sha256): checked before the first byte goes to a platform. Blocking: run it in a
    thread. (The adapters check again while they stream.)"""
    _check_contents(media.path, media.size, media.sha256)
    for track in media.subtitles:
        _check_contents(track.path, track.size, track.sha256)


def check_rendition(media: MediaFile, platform: str) -> None:
    """The file is what ``platform`` takes (its profile: codecs, size, frame rate,
    duration, fast start): a reply never posts an original the platform would refuse.
    Blocking (it probes the file): run it in a thread."""
    try:
        profile = profile_for(platform)
    except KeyError as exc:
        raise UnsupportedMedia(f"no media profile for {platform}: {exc}") from exc
    try:
        why = refusals(probe(media.path, thorough=False), profile)
    except (Undecodable, OSError) as exc:
        raise UnsupportedMedia(f"{media.path.name} cannot be probed: {exc}") from exc
    if why:
        raise UnsupportedMedia(
            f"{media.path.name} is not a video {platform} takes as it is: {'; '.join(why)}"
            " (the triage web sends the rendition made for the platform)"
        )
