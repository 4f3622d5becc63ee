"""What was said, in words, offline: Whisper base from the two wheels, joined into one
folder (``make whisper-model``), hears an English answer (espeak-ng's voice) well enough
to read it. About 10 s: the model loads in 2 s and hears faster than real time."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from services.common.jobs import Job, JobState
from services.common.messages import utcnow
from services.media.config import MediaSettings
from services.media.exceptions import PermanentJobError
from services.media.handlers import Handlers
from services.media.speech import MODEL_FILES, Transcriber, join_model
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
