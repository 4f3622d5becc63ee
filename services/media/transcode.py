"""A rendition, with PyAV alone: decode → turn by the rotation the file carries →
scale into the profile's box → constant frame rate → yuv420p → captions drawn in →
x264 (High, CRF with a peak-rate cap, 2 s GOP) and AAC-LC at 48 kHz → MP4 with the
``moov`` box first. The cut (in and out points) is applied on the way.

Blocking and CPU-bound: the worker runs it in a thread and asks ``progress`` how far
it is; ``cancelled`` is looked at every few frames.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import av.filter

from services.common.media.profiles import Recipe
from services.media.captions import CaptionBurner

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
#: Look at ``cancelled`` and report progress every so many frames.
CHECK_EVERY = 15
#: A hole in the sound longer than this (s; a track that starts after the picture, or
#: a gap in it) is filled with silence so the sound stays in sync with the picture.
AUDIO_GAP_S = 0.03


class Cancelled(Exception):
    """The job was cancelled (or taken by another worker) while it ran."""


@dataclass(frozen=True)
class Rendered:
    path: Path
    frames: int
    duration_s: float


#: Transfer functions of HDR video (SMPTE 2084 "PQ", ARIB STD-B67 "HLG": iPhones and
#: many Android phones record HLG by default) and the BT.2020 primaries (H.273 codes).
HDR_TRANSFERS = frozenset({16, 18})
BT2020 = 9
#: What a rendition and a poster are: SDR, BT.709 (what every platform and player
#: shows as it is).
BT709 = 1
#: swscale's colour management (FFmpeg 8): from the frame's own tags to SDR BT.709,
#: HDR tone-mapped. Without it an HLG picture kept its code values and its tags in
#: 8 bits: dim and washed out once a platform reads it as SDR.
TO_SDR = "out_transfer=bt709:out_primaries=bt709:out_color_matrix=bt709"


def is_hdr(frame: av.VideoFrame) -> bool:
    """Whether ``frame`` is HDR or wide-gamut (tone-mapped to SDR BT.709 when shown)."""
    return frame.color_trc in HDR_TRANSFERS or frame.color_primaries == BT2020


def _tag_tone_mapped(context: av.VideoCodecContext, first: av.VideoFrame) -> None:
    """Tag the rendition BT.709 when the graph tone-mapped it (``first`` is HDR)."""
    if is_hdr(first):
        context.color_primaries = context.color_trc = context.colorspace = BT709


def rotation_filters(rotation: float) -> list[tuple[str, str | None]]:
    """The filters that show the picture upright (``rotation``: counter-clockwise
    degrees, as PyAV's ``VideoFrame.rotation`` and ffprobe say)."""
    clockwise = (-round(rotation)) % 360
    if clockwise == 90:
        return [("transpose", "clock")]
    if clockwise == 270:
        return [("transpose", "cclock")]
    if clockwise == 180:
        return [("hflip", None), ("vflip", None)]
    return []


def _graph(stream: av.VideoStream, first: av.VideoFrame, recipe: Recipe) -> av.filter.Graph:
    graph = av.filter.Graph()
    chain = [
        graph.add_buffer(
            template=stream,
            width=first.width,
            height=first.height,
            format=first.format,
            time_base=stream.time_base,
        )
    ]
    for name, args in rotation_filters(first.rotation):
        chain.append(graph.add(name, args))
    scale = f"{recipe.width}:{recipe.height}:flags=bicubic"
    if is_hdr(first):
        scale += f":{TO_SDR}:out_range=tv"
    chain.append(graph.add("scale", scale))
    chain.append(graph.add("fps", str(recipe.fps)))
    chain.append(graph.add("format", "yuv420p"))
    chain.append(graph.add("buffersink"))
    graph.link_nodes(*chain).configure()
    return graph


def render(  # noqa: PLR0915 - one pipeline, read top to bottom
    source: Path,
    target: Path,
    recipe: Recipe,
    *,
    threads: int = 2,
    font: Path | None = None,
    progress: Callable[[float], None] = lambda _: None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Rendered:
    """Make ``target`` from ``source`` by ``recipe``. Written beside ``target`` under a
    temporary name and renamed into place once whole and synced: a crash never leaves
    a half file under the final name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    start, end = recipe.start_s, recipe.end_s
    length = max(end - start, 0.001)
    burner = CaptionBurner(recipe.burn, font=font) if recipe.burn else None
    frames = 0
    try:
        with av.open(str(source)) as inp:
            video = inp.streams.video[0]
            audio = inp.streams.audio[0] if inp.streams.audio and recipe.audio else None
            video.thread_type = "AUTO"
            video.codec_context.thread_count = threads
            first = next(inp.decode(video))
            graph = _graph(video, first, recipe)
            # Time 0 of the rendition in the original: the cut's start, or the first
            # picture; sound and captions are placed from it.
            origin = max(start, first.time or 0.0)
            if start > 0:
                assert video.time_base is not None
                inp.seek(int(start / video.time_base), stream=video, backward=True)
            else:
                inp.seek(0)
            with av.open(
                str(partial), "w", format="mp4", options={"movflags": "+faststart"}
            ) as out:
                vs = out.add_stream(
                    "libx264",
                    rate=recipe.fps,
                    options={
                        "preset": recipe.preset,
                        "crf": str(recipe.crf),
                        "profile": "high",
                        "maxrate": f"{recipe.maxrate_kbps}k",
                        "bufsize": f"{recipe.maxrate_kbps * 2}k",
                        "g": str(2 * recipe.fps),
                        "threads": str(threads),
                    },
                )
                vs.width, vs.height, vs.pix_fmt = recipe.width, recipe.height, "yuv420p"
                _tag_tone_mapped(vs.codec_context, first)
                vs.codec_context.thread_count = threads
                aout = resampler = None
                if audio is not None:
                    layout = "mono" if audio.codec_context.layout.nb_channels == 1 else "stereo"
                    aout = out.add_stream("aac", rate=AUDIO_RATE, layout=layout)
                    aout.bit_rate = 128_000 if layout == "stereo" else 96_000
                    resampler = av.AudioResampler(
                        format="fltp", layout=layout, rate=AUDIO_RATE, frame_size=1024
                    )
                samples = 0
                #: Samples (at AUDIO_RATE) handed to the resampler, silence included.
                fed = 0

                def pull() -> None:
                    nonlocal frames
                    while True:
                        try:
                            frame = graph.vpull()
                        except (BlockingIOError, EOFError, av.error.EOFError):
                            return
                        if frames / recipe.fps >= length:
                            continue
                        frame.pts = frames
                        frame.time_base = Fraction(1, recipe.fps)
                        if burner is not None:
                            burner(frame, frames / recipe.fps + origin)
                        frames += 1
                        out.mux(vs.encode(frame))
                        if frames % CHECK_EVERY == 0:
                            if cancelled():
                                raise Cancelled
                            progress(min(0.99, frames / recipe.fps / length))

                def emit(audio_frames: list[av.AudioFrame]) -> None:
                    nonlocal samples
                    assert aout is not None
                    for piece in audio_frames:
                        if samples / AUDIO_RATE >= length:
                            return
                        piece.pts = samples
                        piece.time_base = Fraction(1, AUDIO_RATE)
                        samples += piece.samples
                        out.mux(aout.encode(piece))

                def feed(piece: av.AudioFrame) -> None:
                    nonlocal fed
                    assert resampler is not None
                    at_s = origin if piece.time is None else piece.time
                    hole = round((at_s - origin) * AUDIO_RATE) - fed
                    if hole > AUDIO_GAP_S * AUDIO_RATE:
                        for at in range(0, hole, AUDIO_RATE):  # a second at a time
                            size = min(AUDIO_RATE, hole - at)
                            emit(resampler.resample(_silence(size, resampler.layout.name)))
                        fed += hole
                    fed += round(piece.samples * AUDIO_RATE / piece.sample_rate)
                    piece.pts = None
                    emit(resampler.resample(piece))

                streams = [video] if audio is None else [video, audio]
                for packet in inp.demux(*streams):
                    if packet.stream is video:
                        for frame in video.decode(packet):
                            if frame.time is not None and (frame.time < start or frame.time >= end):
                                continue
                            graph.vpush(frame)
                            pull()
                    elif audio is not None and resampler is not None:
                        for piece in audio.decode(packet):
                            if piece.time is None or origin <= piece.time < end:
                                feed(piece)
                graph.vpush(None)
                pull()
                out.mux(vs.encode(None))
                if aout is not None and resampler is not None:
                    emit(resampler.resample(None))
                    out.mux(aout.encode(None))
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    progress(1.0)
    return Rendered(path=target, frames=frames, duration_s=round(frames / recipe.fps, 3))


def _silence(samples: int, layout: str) -> av.AudioFrame:
    """``samples`` of silence at ``AUDIO_RATE`` (planar float)."""
    frame = av.AudioFrame(format="fltp", layout=layout, samples=samples)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = AUDIO_RATE
    return frame


def _sdr(frame: av.VideoFrame) -> av.VideoFrame:
    """``frame`` as SDR BT.709 RGB when it is HDR (tone-mapped), else as it is."""
    if not is_hdr(frame):
        return frame
    graph = av.filter.Graph()
    chain = [
        graph.add_buffer(
            width=frame.width, height=frame.height, format=frame.format, time_base=Fraction(1, 1)
        ),
        graph.add("scale", f"{TO_SDR}:out_range=pc"),
        graph.add("format", "rgb24"),
        graph.add("buffersink"),
    ]
    graph.link_nodes(*chain).configure()
    graph.vpush(frame)
    return graph.vpull()


def poster(source: Path, target: Path, *, at_s: float = 1.0, max_side: int = 640) -> Path:
    """A JPEG of the picture about ``at_s`` in (upright, at most ``max_side`` pixels on its
    long side), written atomically."""
    from PIL import Image  # noqa: PLC0415 - only the poster needs it here

    target.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(source)) as inp:
        video = inp.streams.video[0]
        chosen = None
        if inp.duration and inp.duration / 1_000_000 > at_s * 2 and video.time_base:
            inp.seek(int(at_s / video.time_base), stream=video, backward=True)
        for frame in inp.decode(video):
            chosen = frame
            if frame.time is None or frame.time >= at_s or chosen.key_frame is False:
                break
        if chosen is None:
            raise ValueError("no picture to make a poster of")
        image = _sdr(chosen).to_image()  # type: ignore[no-untyped-call]
        clockwise = (-round(chosen.rotation)) % 360
        if clockwise:
            image = image.rotate(-clockwise, expand=True)
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        image.save(partial, format="JPEG", quality=82)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
