"""Test videos made with PyAV alone (FFmpeg's lavfi ``testsrc2`` and ``sine``, or speech
spoken by espeak-ng): what phones send — HEVC in QuickTime stored turned (an iPhone's
portrait), VP8/Opus WebM (Android's MediaRecorder), H.264 with AMR-NB in 3GP (older
phones), 4K H.264 — and what breaks (an MP4 cut short). Small and short by default;
the clip fixtures in ``tests/conftest.py`` make each once per session."""

from __future__ import annotations

import functools
import heapq
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av

#: What an English-speaking refugee says in the tests (Whisper must hear these words).
ENGLISH_SPEECH = "My name is Amina. We need clean water and schools for our children."


def _frames(spec: str, kind: str) -> Iterator[Any]:
    with av.open(spec, format="lavfi") as source:
        yield from source.decode(**{kind: 0})


def make_clip(
    path: Path,
    *,
    size: tuple[int, int] = (160, 120),
    fps: int = 15,
    seconds: float = 1.0,
    vcodec: str = "libx264",
    vopts: dict[str, str] | None = None,
    fmt: str | None = None,
    codec_tag: str | None = None,
    rotation: int | None = None,
    vfilter: str = "",
    acodec: str | None = "aac",
    arate: int = 48_000,
    alayout: str = "mono",
    speech: Path | None = None,
    faststart: bool = False,
) -> Path:
    """``testsrc2`` video (+ a sine, or ``speech``: a WAV) encoded to ``path``."""
    width, height = size
    vspec = f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"
    if vfilter:
        vspec += "," + vfilter
    vspec += ",format=yuv420p"
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, options=options) as out:
        first = next(_frames(vspec, "video"))
        vs = cast(av.VideoStream, out.add_stream(vcodec, rate=Fraction(fps), options=vopts or {}))
        vs.width, vs.height, vs.pix_fmt = first.width, first.height, "yuv420p"
        if codec_tag:
            vs.codec_tag = codec_tag
        if rotation is not None:
            vs.set_display_rotation(rotation)
        sources: list[tuple[str, Any, Iterator[Any]]] = [("v", vs, _frames(vspec, "video"))]
        if acodec:
            aspec = (
                f"amovie={speech}"
                if speech is not None
                else f"sine=frequency=440:sample_rate={arate}:duration={seconds}"
            )
            astream = out.add_stream(acodec, rate=arate, layout=alayout)
            frame_size = {"libopencore_amrnb": 160, "libopus": 960}.get(acodec, 1024)
            sample_format = {"libopencore_amrnb": "s16", "libopus": "s16"}.get(acodec, "fltp")
            resampler = av.AudioResampler(
                format=sample_format, layout=alayout, rate=arate, frame_size=frame_size
            )

            def audio() -> Iterator[Any]:
                for frame in _frames(aspec, "audio"):
                    frame.pts = None
                    yield from resampler.resample(frame)
                yield from resampler.resample(None)

            sources.append(("a", astream, audio()))
        counters = {"v": 0, "a": 0}
        heap: list[tuple[float, int, Any]] = []

        def push(index: int) -> None:
            kind, _, frames = sources[index]
            frame = next(frames, None)
            if frame is None:
                return
            if kind == "v":
                frame.pts, frame.time_base = counters["v"], Fraction(1, fps)
                counters["v"] += 1
            else:
                frame.pts, frame.time_base = counters["a"], Fraction(1, arate)
                counters["a"] += frame.samples
            heapq.heappush(heap, (float(frame.pts * frame.time_base), index, frame))

        for index in range(len(sources)):
            push(index)
        while heap:
            _, index, frame = heapq.heappop(heap)
            out.mux(sources[index][1].encode(frame))
            push(index)
        for _, stream, _ in sources:
            out.mux(stream.encode(None))
    return path


def speak(text: str, path: Path, voice: str = "en-us") -> Path:
    """``text`` spoken by espeak-ng into a WAV file."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is missing (make system-deps installs it)")
    subprocess.run([espeak, "-v", voice, "-s", "150", "-w", str(path), text], check=True)
    return path


def wav_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return float(container.duration or 0) / 1_000_000


def truncate(source: Path, target: Path, fraction: float = 0.6) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


X265 = {"preset": "ultrafast", "x265-params": "log-level=error"}


def phone_clips(folder: Path) -> dict[str, Path]:
    """One small clip of each kind a phone sends (and a broken one); about 3 CPU-s."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = {
        # iPhone portrait: HEVC stored landscape with a display matrix turning it (-90).
        "hevc_mov": make_clip(
            folder / "iphone.mov",
            size=(108, 192),
            fps=60,
            seconds=1.0,
            vcodec="libx265",
            vopts=X265,
            codec_tag="hvc1",
            vfilter="transpose=cclock",
            rotation=-90,
            acodec="aac",
            alayout="stereo",
        ),
        "vp8_webm": make_clip(
            folder / "android.webm",
            size=(120, 160),
            fps=30,
            seconds=1.0,
            vcodec="libvpx",
            vopts={"deadline": "realtime", "cpu-used": "8"},
            acodec="libopus",
        ),
        "h264_3gp": make_clip(
            folder / "old.3gp",
            size=(176, 144),
            fps=15,
            seconds=1.0,
            fmt="3gp",
            vopts={"profile": "baseline"},
            acodec="libopencore_amrnb",
            arate=8000,
        ),
        "h264_mp4": make_clip(folder / "plain.mp4", seconds=1.0),
    }
    clips["truncated_mp4"] = truncate(clips["h264_mp4"], folder / "cut.mp4")
    return clips


@functools.lru_cache(maxsize=4)
def _base(kind: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        if kind == "rendition":  # what a platform takes: H.264 High, AAC, moov first
            path = make_clip(
                Path(folder) / "r.mp4", size=(32, 24), fps=5, seconds=0.6, faststart=True
            )
        else:
            path = make_clip(Path(folder) / "v.mp4", size=(64, 48), fps=10, seconds=1.0)
        return path.read_bytes()


def padded(video: bytes, size: int) -> bytes:
    """``video`` grown to ``size`` bytes by a trailing ``free`` box (players skip it)."""
    if size <= len(video):
        return video
    filler = size - len(video)
    if filler < 8:
        raise ValueError(f"cannot pad by {filler} bytes: a box is at least 8")
    return video + filler.to_bytes(4, "big") + b"free" + bytes(filler - 8)


def video_bytes(size: int = 0) -> bytes:
    """A real, tiny MP4 answer (1 s, 64x48, H.264 and AAC), padded to ``size`` bytes."""
    return padded(_base("answer"), size)


def rendition_bytes(size: int = 0) -> bytes:
    """A real, tiny video every platform takes as it is, padded to ``size`` bytes."""
    return padded(_base("rendition"), size)


@functools.lru_cache(maxsize=1)
def long_answer_bytes(seconds: float = 150.0) -> bytes:
    """A real answer longer than X takes (tiny picture, two frames a second)."""
    with tempfile.TemporaryDirectory() as folder:
        path = make_clip(
            Path(folder) / "long.mp4", size=(32, 24), fps=2, seconds=seconds, arate=8000
        )
        return path.read_bytes()
