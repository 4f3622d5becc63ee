"""The media worker's speed, measured here: a 60 s 1080p30 answer (a phone-like
H.264 source, made first) rendered for X exactly as the worker does (PyAV, x264
``veryfast`` CRF 23, High, AAC, moov first), and an English answer transcribed by
Whisper base (int8, 2 threads).

    python -m tests.bench.bench_media [--seconds 60] [--speech-repeat 3]

Prints, for each, seconds of media per second of wall time (``RATIO transcode/realtime``,
``RATIO transcribe/realtime``; above 1 is faster than real time) and the CPU seconds
spent per second of media (the figure to plan a shared machine by)."""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from services.common.media.probe import probe
from services.common.media.profiles import X, recipe, refusals
from services.media.speech import Transcriber, join_model
from services.media.transcode import render
from tests.helpers import ROOT
from tests.helpers.media import ENGLISH_SPEECH, make_clip, speak, wav_seconds


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_transcode(folder: Path, seconds: float) -> float:
    source = folder / "phone-1080p30.mp4"
    started = time.perf_counter()
    make_clip(
        source,
        size=(1920, 1080),
        fps=30,
        seconds=seconds,
        vfilter="noise=alls=4:allf=t",  # a camera's grain: not a cartoon x264 finds free
        vopts={"preset": "ultrafast", "crf": "18", "threads": "2"},
        alayout="stereo",
    )
    info = probe(source)
    print(
        f"source: {info.width}x{info.height} {info.fps:g} fps {info.duration_s:g} s, "
        f"{info.bytes * 8 / info.duration_s / 1e6:.1f} Mbit/s (made in "
        f"{time.perf_counter() - started:.0f} s)"
    )
    made = recipe(info, X)
    wall, cpu = time.perf_counter(), cpu_s()
    out = render(source, folder / "x.mp4", made, threads=2)
    wall, cpu = time.perf_counter() - wall, cpu_s() - cpu
    result = probe(out.path)
    assert refusals(result, X) == [], refusals(result, X)
    print(
        f"transcode: {out.duration_s:g} s of video in {wall:.1f} s wall, {cpu:.1f} CPU-s "
        f"({made.preset}, crf {made.crf}, {made.width}x{made.height} {made.fps} fps, "
        f"{result.bytes * 8 / result.duration_s / 1e6:.1f} Mbit/s out)"
    )
    print(f"transcode CPU-s per video-s: {cpu / out.duration_s:.2f}")
    ratio = out.duration_s / wall
    print(f"RATIO transcode/realtime {ratio:.3f}")
    return ratio


def bench_transcribe(folder: Path, repeat: int) -> float:
    wav = speak(" ".join([ENGLISH_SPEECH] * 2), folder / "speech.wav")
    video = make_clip(folder / "speech.mp4", seconds=wav_seconds(wav) + 0.5, fps=5, speech=wav)
    started = time.perf_counter()
    transcriber = Transcriber(join_model(ROOT / "var" / "models" / "whisper-base"), threads=2)
    print(f"whisper base int8 loaded in {time.perf_counter() - started:.1f} s")
    best = 0.0
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), cpu_s()
        speech = transcriber.transcribe(video, language="en")
        wall, cpu = time.perf_counter() - wall, cpu_s() - cpu
        best = max(best, speech.audio_s / wall)
        print(
            f"transcribe: {speech.audio_s:.1f} s of speech in {wall:.1f} s wall, "
            f"{cpu / speech.audio_s:.2f} CPU-s per second: {speech.text!r}"
        )
    print(f"RATIO transcribe/realtime {best:.3f}")
    return best


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_media")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--speech-repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-media-") as folder:
        bench_transcode(Path(folder), args.seconds)
        bench_transcribe(Path(folder), args.speech_repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
