"""What each kind of job does (blocking: the worker runs them in threads): a poster
frame, the transcript and its translation, a rendition for a platform. Files are
read from and written into the media folder only, each under a name made from what
it is (``posters/<sha256>.jpg``, ``renditions/<sha256>/<recipe>.mp4``), renamed into
place once whole; a rendition is probed against its platform's profile before it
counts as done."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from services.common.jobs import Job
from services.common.media import subtitles
from services.common.media.probe import Undecodable, probe
from services.common.media.profiles import Cut, Profile, profile_for, recipe, refusals
from services.media.config import MediaSettings
from services.media.exceptions import PermanentJobError
from services.media.speech import Transcriber
from services.media.transcode import poster, render

log = logging.getLogger(__name__)

Progress = Callable[[float], None]
Cancelled = Callable[[], bool]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Handlers:
    settings: MediaSettings
    #: Whisper, when this worker transcribes.
    transcriber: Transcriber | None
    #: Profiles with the limits platforms published (Mastodon's instance), by platform.
    profiles: Mapping[str, Profile]

    @property
    def root(self) -> Path:
        return self.settings.media_dir.resolve()

    def _source(self, job: Job) -> Path:
        uri = str(job.payload.get("source", ""))
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise PermanentJobError(f"{uri!r} is not a file:// URI of the media folder")
        path = Path(url2pathname(parsed.path)).resolve()
        if not path.is_relative_to(self.root):
            raise PermanentJobError(f"{uri!r} is outside the media folder")
        if not path.is_file():
            raise PermanentJobError(f"the original {path.name} is no longer stored")
        return path

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def run(self, job: Job, progress: Progress, cancelled: Cancelled) -> dict[str, Any]:
        if job.kind == "poster":
            return self.poster(job)
        if job.kind == "transcript":
            return self.transcript(job, progress, cancelled)
        if job.kind == "rendition":
            return self.rendition(job, progress, cancelled)
        raise PermanentJobError(f"this worker does not know jobs of kind {job.kind!r}")

    def poster(self, job: Job) -> dict[str, Any]:
        source = self._source(job)
        target = self.root / "posters" / f"{job.payload['sha256']}.jpg"
        if not target.is_file():
            try:
                probe(source, thorough=False)  # a picture to decode, of a size to decode
                poster(source, target)
            except (Undecodable, ValueError) as exc:
                raise PermanentJobError(f"no poster: {exc}") from exc
        return {"path": self._relative(target), "bytes": target.stat().st_size}

    def transcript(self, job: Job, progress: Progress, cancelled: Cancelled) -> dict[str, Any]:
        if self.transcriber is None:
            raise PermanentJobError("this worker has no speech model")
        source = self._source(job)
        try:
            info = probe(source, thorough=False)
        except Undecodable as exc:
            raise PermanentJobError(f"the original does not decode: {exc}") from exc
        if info.audio_codec is None:
            raise PermanentJobError("the video has no sound track: no sound to transcribe")
        speech = self.transcriber.transcribe(
            source,
            language=job.payload.get("language"),
            translate=bool(job.payload.get("translate", True)),
            progress=progress,
            cancelled=cancelled,
        )
        log.info(
            "transcribed %s: %s, %.1f s of audio in %.1f s",
            job.subject,
            speech.language,
            speech.audio_s,
            speech.elapsed_s,
        )
        return speech.result()

    def rendition(self, job: Job, progress: Progress, cancelled: Cancelled) -> dict[str, Any]:
        source = self._source(job)
        platform = str(job.payload["platform"])
        try:
            profile = profile_for(platform, self.profiles)
        except KeyError as exc:
            raise PermanentJobError(str(exc)) from exc
        try:
            info = probe(source, thorough=False)
        except Undecodable as exc:
            raise PermanentJobError(f"the original does not decode: {exc}") from exc
        start = float(job.payload.get("start_s") or 0.0)
        end = job.payload.get("end_s")
        cut = Cut(start=start, end=float(end) if end is not None else None)
        cues = [
            subtitles.Cue(float(s), float(e), str(t)) for s, e, t in job.payload.get("burn", [])
        ]
        made = recipe(
            info,
            profile,
            cut=cut,
            burn=[c.as_tuple() for c in subtitles.min_length(cues)],
            crf=self.settings.x264_crf,
            preset=self.settings.x264_preset,
            fps_cap=self.settings.fps_cap,
            cap_long=self.settings.max_long,
            maxrate_kbps=self.settings.maxrate_kbps,
        )
        target = self.root / "renditions" / info_sha(job) / f"{made.fingerprint()}.mp4"
        if not (target.is_file() and not self._refused(target, profile)):
            rendered = render(
                source,
                target,
                made,
                threads=self.settings.threads,
                font=self.settings.caption_font,
                progress=progress,
                cancelled=cancelled,
            )
            log.info("rendered %s for %s: %d frames", job.subject, platform, rendered.frames)
        if why := self._refused(target, profile):
            target.unlink(missing_ok=True)
            raise PermanentJobError(f"the rendition does not satisfy {profile.label}: {why}")
        out = probe(target, thorough=False)
        return {
            "uri": target.as_uri(),
            "path": self._relative(target),
            "mime": profile.mime,
            "bytes": out.bytes,
            "sha256": sha256_of(target),
            "width": out.width,
            "height": out.height,
            "fps": out.fps,
            "duration_s": out.duration_s,
            "platform": platform,
            "burned_captions": len(made.burn),
            "recipe": made.fingerprint(),
        }

    @staticmethod
    def _refused(path: Path, profile: Profile) -> str:
        try:
            return "; ".join(refusals(probe(path, thorough=False), profile))
        except Undecodable as exc:
            return str(exc)


def info_sha(job: Job) -> str:
    sha = str(job.payload.get("sha256", ""))
    if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
        raise PermanentJobError("the job names no sha256 of its original")
    return sha
