"""What the answer-media aggregate is made of: the media worker's job kinds and
their priorities, the caption policy per platform, a rendition order and what is
shown of jobs and renditions, and the small readers of an answer's media fields
(its probe, flags, cut, languages and cues). No database access here: the
aggregate itself is :mod:`.media`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.jobs import Job
from services.common.media import subtitles
from services.common.media.profiles import (
    CaptionMode,
    Cut,
    Flag,
    MediaInfo,
    profile_for,
)
from services.triage.web.models import Answer
from services.triage.web.store.transaction import Actor

log = logging.getLogger(__name__)

POSTER = "poster"
TRANSCRIPT = "transcript"
RENDITION = "rendition"
#: Every kind the media worker does.
KINDS = (POSTER, TRANSCRIPT, RENDITION)
#: Lower goes first: the poster in seconds, the transcript before the renditions need it.
PRIORITY = {POSTER: 0, TRANSCRIPT: 10, RENDITION: 20}
#: Part of the transcript's key: a new model transcribes again.
SPEECH_MODEL = "whisper-base"
#: The actor of what the media worker did, on the timeline.
SYSTEM = Actor.system("media")


def parse_cues(raw: str) -> list[subtitles.Cue]:
    return [subtitles.Cue(float(s), float(e), str(t)) for s, e, t in json.loads(raw or "[]")]


def dump_cues(cues: Iterable[subtitles.Cue]) -> str:
    return json.dumps([c.as_tuple() for c in cues], ensure_ascii=False)


def media_info(answer: Answer) -> MediaInfo | None:
    raw = json.loads(answer.media_json or "{}")
    return MediaInfo.model_validate(raw) if raw else None


def flags_of(answer: Answer) -> list[Flag]:
    return [Flag.model_validate(f) for f in json.loads(answer.flags_json or "[]")]


def cut_of(answer: Answer) -> Cut:
    return Cut(start=answer.trim_start_s or 0.0, end=answer.trim_end_s)


def speaker_language(answer: Answer) -> str:
    return (answer.transcript_language or answer.language or "und").lower()


def caption_language(asker_language: str | None, speaker: str) -> str:
    """Subtitles in the asker's language where it is English or the speaker's own,
    otherwise in the speaker's (the only two there are)."""
    asker = (asker_language or "").lower().split("-")[0]
    return "en" if asker == "en" else speaker.split("-", maxsplit=1)[0]


def cues_in(answer: Answer, language: str) -> list[subtitles.Cue]:
    """The answer's timed subtitles in ``language`` (the speaker's, or English)."""
    speaker = speaker_language(answer).split("-")[0]
    if language == "en" and speaker != "en":
        cues = parse_cues(answer.cues_en_json)
        if not cues and answer.translation:
            cues = subtitles.retime(
                answer.translation, parse_cues(answer.cues_json), answer.duration_s or 0
            )
        return cues
    return parse_cues(answer.cues_json)


@dataclass(frozen=True)
class MediaPolicy:
    """How captions reach each platform (``TRIAGE_MEDIA_CAPTIONS``) and where files are."""

    captions: Mapping[str, CaptionMode] = field(default_factory=dict)
    media_dir: Path = Path("var/triage/media")

    def mode(self, platform: str) -> CaptionMode:
        profile = profile_for(platform)
        configured = self.captions.get(platform)
        if configured == "attach" and not profile.subtitles:
            return "burn"  # the platform takes no subtitle file: drawn in instead
        if configured is not None:
            return configured
        return "attach" if profile.subtitles else "burn"


@dataclass(frozen=True)
class RenditionOrder:
    """One rendition an answer needs: for a platform, with its cut and the captions drawn
    in (none when they are attached or off)."""

    platform: str
    language: str
    mode: CaptionMode
    start_s: float
    end_s: float | None
    burn: tuple[tuple[float, float, str], ...]

    def key(self, sha256: str) -> str:
        canonical = json.dumps(
            [self.platform, self.start_s, self.end_s, self.burn], ensure_ascii=False
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:24]
        return f"{sha256}:{self.platform}:{digest}"

    def payload(self, answer: Answer) -> dict[str, Any]:
        return {
            "source": answer.media_uri,
            "sha256": answer.sha256,
            "platform": self.platform,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "burn": [list(c) for c in self.burn],
        }


@dataclass(frozen=True)
class JobView:
    kind: str
    state: str
    progress: float
    note: str
    error: str | None
    attempts: int

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(job.kind, job.state.value, job.progress, job.note, job.error, job.attempts)


@dataclass(frozen=True)
class RenditionView:
    platform: str
    language: str
    captions: CaptionMode
    #: ``waiting`` (for the transcript), ``queued``, ``running``, ``done``, ``failed``,
    #: ``needs_trim`` (longer than the platform takes), ``cancelled``.
    state: str
    progress: float = 0.0
    note: str = ""
    error: str | None = None
    result: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class MediaStatus:
    info: MediaInfo | None
    flags: list[Flag]
    poster: bool
    transcript: JobView | None
    renditions: list[RenditionView]

    @property
    def ready(self) -> bool:
        return bool(self.renditions) and all(r.state == "done" for r in self.renditions)
