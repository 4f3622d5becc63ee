"""Probe a video with FFmpeg's own libraries (PyAV): container, codecs, duration,
size, rotation, frame rate, audio, fast start — or :class:`Undecodable` with a
sentence a recording team can act on.

A thorough probe (what an upload gets) also reads every packet, without decoding,
and compares where the data really ends with the duration the header announces
(a faststart MP4 cut short opens fine and stops silently), then decodes about a
second at the head and at the tail. An MP4 cut before its ``moov`` box does not
open at all. Costs 0.01-1.2 CPU-s (HEVC 1080x1920 at 60 fps is the dearest).

Blocking: call it in a worker thread.
"""

from __future__ import annotations

import struct
from pathlib import Path

import av
import av.error

from services.common.media.profiles import ISO_BMFF, MediaInfo

#: Video data may stop this much short of the announced duration (last frame's length).
TRUNCATION_SLACK_S = 0.5
#: How much is decoded at the head and at the tail of a thorough probe (seconds).
DECODE_CHECK_S = 1.0
#: The largest picture a phone records (8K UHD, either way up): a bigger one, however
#: small its file, is refused from its header before a frame is decoded (a few hundred
#: kB of flat H.264 at 16000x16000 took 1.5 GB to probe).
MAX_PIXELS = 7680 * 4320
MAX_SIDE = 8192


class Undecodable(Exception):
    """The file is not a video FFmpeg can decode (or is cut short); the message says why."""


def probe(path: Path, *, thorough: bool = True) -> MediaInfo:
    """What ``path`` is. ``thorough``: also prove the whole file is there and decodes."""
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise Undecodable(
            "the file cannot be decoded as a video: it is damaged or incomplete"
            f" (the upload may have been cut off) [{_reason(exc)}]"
        ) from None
    with container:
        if not container.streams.video:
            raise Undecodable("the file has no video track")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        codec = video.codec_context
        if codec.width * codec.height > MAX_PIXELS or max(codec.width, codec.height) > MAX_SIDE:
            raise Undecodable(
                f"the picture is {codec.width}x{codec.height}: larger than a phone records"
                f" (at most {MAX_PIXELS:,} pixels, {MAX_SIDE} a side)"
            )
        try:
            first = next(container.decode(video), None)
        except av.error.FFmpegError as exc:
            raise Undecodable(f"the video cannot be decoded [{_reason(exc)}]") from None
        if first is None:
            raise Undecodable("the video track has no picture that decodes")
        rotation = round(first.rotation) % 360
        header_s = container.duration / 1_000_000 if container.duration else None
        data_s = _data_end(container, video, audio) if thorough or header_s is None else None
        if thorough:
            assert data_s is not None
            if header_s is not None and data_s < header_s - TRUNCATION_SLACK_S:
                raise Undecodable(
                    f"the file is incomplete: it announces {header_s:.1f} s but its video"
                    f" stops at {data_s:.1f} s (the upload was probably cut off)"
                )
            _decode_check(container, video, data_s)
        duration = header_s if header_s is not None else (data_s or 0.0)
        if thorough and data_s:
            duration = min(duration, max(data_s, duration - TRUNCATION_SLACK_S))
        fps = video.average_rate or video.guessed_rate
        size = path.stat().st_size
        return MediaInfo(
            container=container.format.name,
            duration_s=round(duration, 3),
            width=codec.width or first.width,
            height=codec.height or first.height,
            rotation=(rotation - 360) if rotation > 180 else rotation,
            fps=round(float(fps), 3) if fps else None,
            video_codec=codec.name,
            video_profile=codec.profile,
            pix_fmt=codec.pix_fmt,
            audio_codec=audio.codec_context.name if audio is not None else None,
            audio_rate=audio.codec_context.sample_rate if audio is not None else None,
            audio_channels=audio.codec_context.layout.nb_channels if audio is not None else None,
            bytes=size,
            faststart=is_faststart(path) if container.format.name == ISO_BMFF else None,
        )


def _reason(exc: BaseException) -> str:
    return str(exc).split(": '", 1)[0][:200]


def _data_end(
    container: av.container.InputContainer,
    video: av.VideoStream,
    audio: av.AudioStream | None,
) -> float:
    """Where the video packets really end (seconds): every packet read, none decoded."""
    container.seek(0)
    end = 0.0
    streams = [video] if audio is None else [video, audio]
    try:
        for packet in container.demux(*streams):
            if packet.pts is None or packet.size == 0 or packet.stream is not video:
                continue
            stop = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            end = max(end, stop)
    except av.error.FFmpegError as exc:
        raise Undecodable(
            f"the file is damaged or incomplete [{_reason(exc)}]; upload it again"
        ) from None
    return end


def _decode_check(
    container: av.container.InputContainer, video: av.VideoStream, data_s: float
) -> None:
    """Decode about a second at the head and at the tail of the video."""
    base = video.time_base
    assert base is not None
    for start in (0.0, max(0.0, data_s - DECODE_CHECK_S)):
        container.seek(int(start / base), stream=video, backward=True)
        decoded = 0
        try:
            for frame in container.decode(video):
                if frame.time is not None and frame.time < start:
                    continue
                decoded += 1
                if frame.time is None or frame.time >= start + DECODE_CHECK_S:
                    break
        except av.error.FFmpegError as exc:
            raise Undecodable(f"the video is corrupt near {start:.1f} s [{_reason(exc)}]") from None
        if decoded == 0:
            raise Undecodable(f"no picture decodes near {start:.1f} s")


def top_level_boxes(path: Path) -> list[tuple[str, int, int]]:
    """An ISO-BMFF file's top-level boxes: (type, offset, size)."""
    boxes = []
    with path.open("rb") as file:
        end = file.seek(0, 2)
        offset = 0
        while offset + 8 <= end:
            file.seek(offset)
            size, kind = struct.unpack(">I4s", file.read(8))
            if size == 1:
                size = struct.unpack(">Q", file.read(8))[0]
            elif size == 0:
                size = end - offset
            boxes.append((kind.decode("latin-1"), offset, size))
            if size < 8:
                break
            offset += size
    return boxes


def is_faststart(path: Path) -> bool:
    """``moov`` comes before ``mdat`` (a player starts before the whole file arrived)."""
    kinds = [kind for kind, _, _ in top_level_boxes(path)]
    return "moov" in kinds and "mdat" in kinds and kinds.index("moov") < kinds.index("mdat")
