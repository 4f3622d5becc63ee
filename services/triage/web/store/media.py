"""The answer-media aggregate: what the media worker is asked for (a poster, the
transcript and its English translation, one rendition per platform and caption
language) and what comes back; the moderator's cut; people's edits of the
transcript and the translation; subtitle files people provide; and the rendition,
alt text and subtitle file each reply publishes.

Work goes to the media worker through the ``media_jobs`` table
(:mod:`services.common.jobs`), written in the same transaction as the change that
asks for it. A job is keyed by what it is made from, so a finished one is the cache
of its result: the same video with the same cut and captions is rendered once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.jobs import Job, JobState, JobTable
from services.common.media import subtitles
from services.common.media.profiles import (
    PROFILES,
    Flag,
    alt_text,
    duration_flags,
    profile_for,
)
from services.common.messages import Media, SubtitleFile
from services.triage.web import domain
from services.triage.web.exceptions import Conflict, Forbidden, Invalid, NotFound
from services.triage.web.models import Answer, AnswerState, MediaJob, Question
from services.triage.web.store.media_values import (
    KINDS,
    POSTER,
    PRIORITY,
    RENDITION,
    SPEECH_MODEL,
    SYSTEM,
    TRANSCRIPT,
    JobView,
    MediaPolicy,
    MediaStatus,
    RenditionOrder,
    RenditionView,
    caption_language,
    cues_in,
    cut_of,
    dump_cues,
    flags_of,
    media_info,
    parse_cues,
    speaker_language,
)
from services.triage.web.store.transaction import Actor, Database

__all__ = [
    "KINDS",
    "POSTER",
    "RENDITION",
    "TRANSCRIPT",
    "AnswerMedia",
    "MediaPolicy",
    "MediaStatus",
]

log = logging.getLogger(__name__)


class AnswerMedia:
    def __init__(self, db: Database, jobs: JobTable, policy: MediaPolicy) -> None:
        self.db = db
        self.jobs = jobs
        self.policy = policy

    # --- who the answer goes to ---------------------------------------------------------

    @staticmethod
    async def askers(session: AsyncSession, question: Question) -> list[Question]:
        """The question and the questions of its cluster still waiting for an answer."""
        askers = [question]
        if question.cluster_id:
            others = await session.scalars(
                select(Question).where(
                    Question.cluster_id == question.cluster_id,
                    Question.id != question.id,
                    Question.status.in_([s.value for s in domain.AWAITING_ANSWER]),
                )
            )
            askers += list(others)
        return askers

    @staticmethod
    def platforms(askers: Iterable[Question]) -> list[str]:
        return sorted({q.platform for q in askers if q.platform in PROFILES})

    def flags(self, answer: Answer, platforms: Iterable[str]) -> list[Flag]:
        info = media_info(answer)
        if info is None:
            return []
        kept = cut_of(answer).length(info.duration_s)
        return duration_flags(kept, [profile_for(p) for p in platforms])

    # --- recording ----------------------------------------------------------------------

    async def on_recorded(self, session: AsyncSession, answer: Answer, question: Question) -> None:
        """A new answer: the platforms it goes to and their flags, and the poster and the
        transcript asked for (the renditions follow the transcript)."""
        platforms = self.platforms(await self.askers(session, question))
        answer.platforms = " ".join(platforms)
        answer.flags_json = json.dumps([f.model_dump() for f in self.flags(answer, platforms)])
        if answer.transcript.strip():
            answer.transcript_source = "team"
        await self.jobs.enqueue(
            session,
            POSTER,
            answer.sha256,
            subject=answer.id,
            payload={"source": answer.media_uri, "sha256": answer.sha256},
            priority=PRIORITY[POSTER],
        )
        job = await self.jobs.enqueue(
            session,
            TRANSCRIPT,
            self._transcript_key(answer),
            subject=answer.id,
            payload={
                "source": answer.media_uri,
                "sha256": answer.sha256,
                "language": answer.language,
                "translate": True,
            },
            priority=PRIORITY[TRANSCRIPT],
        )
        if job.state in (JobState.DONE, JobState.FAILED):  # the same video transcribed before
            await self._apply(session, job, [answer])

    @staticmethod
    def _transcript_key(answer: Answer) -> str:
        return f"{answer.sha256}:{answer.language.lower()}:{SPEECH_MODEL}"

    # --- results coming back ----------------------------------------------------------

    async def apply_finished(self) -> int:
        """Take in what the media worker finished (the web's background loop); how many."""
        applied = 0
        async with self.db.sessions() as session:
            for job in await self.jobs.unapplied(session):
                answers = list(
                    await session.scalars(
                        select(Answer).where(Answer.sha256 == job.key.split(":", 1)[0])
                    )
                )
                subject = [a for a in answers if a.id == job.subject]
                await self._apply(session, job, subject or answers)
                await self.jobs.mark_applied(session, job.id)
                applied += 1
            await session.commit()
        return applied

    async def _apply(self, session: AsyncSession, job: Job, answers: Sequence[Answer]) -> None:
        for answer in answers:
            if job.kind == POSTER and job.state == JobState.DONE and job.result:
                answer.poster_key = str(job.result["path"])
            elif job.kind == TRANSCRIPT and job.key == self._transcript_key(answer):
                await self._take_transcript(session, answer, job)
            elif job.kind == RENDITION and answer.id == job.subject:
                self._rendition_event(session, answer, job)

    async def _take_transcript(self, session: AsyncSession, answer: Answer, job: Job) -> None:
        if job.state == JobState.DONE and job.result:
            result = job.result
            cues = subtitles.from_segments(tuple(s) for s in result.get("segments", []))
            cues_en = subtitles.from_segments(
                tuple(s) for s in result.get("translation_segments", [])
            )
            answer.transcript_language = str(result.get("language") or answer.language)
            if answer.transcript_source in ("", "machine"):
                answer.transcript = str(result.get("text", ""))
                answer.transcript_source = "machine"
            elif answer.transcript.strip():  # the team's own words, timed over the speech
                cues = subtitles.retime(answer.transcript, cues, answer.duration_s or 0)
            if answer.subtitles_source != "provided":
                answer.cues_json = dump_cues(cues)
                answer.cues_en_json = dump_cues(cues_en)
            if not answer.translation.strip():  # English speech is its own translation
                english = answer.transcript_language.startswith("en")
                answer.translation = (
                    answer.transcript if english else str(result.get("translation", ""))
                )
            self.db.event(
                session,
                answer.question_id,
                SYSTEM,
                "transcribed",
                reason=f"{result.get('model', SPEECH_MODEL)}: {answer.transcript_language}",
                detail={
                    "answer": answer.id,
                    "language": answer.transcript_language,
                    "probability": result.get("language_probability"),
                    "seconds": result.get("audio_s"),
                    "elapsed_s": result.get("elapsed_s"),
                },
            )
        else:
            self.db.event(
                session,
                answer.question_id,
                SYSTEM,
                "transcription_failed",
                reason=(job.error or "failed")[:500],
                detail={"answer": answer.id},
            )
        await self.ensure_renditions(session, answer)

    def _rendition_event(self, session: AsyncSession, answer: Answer, job: Job) -> None:
        platform = str(job.payload.get("platform", "?"))
        label = PROFILES[platform].label if platform in PROFILES else platform
        if job.state == JobState.DONE and job.result:
            r = job.result
            self.db.event(
                session,
                answer.question_id,
                SYSTEM,
                "rendition_ready",
                reason=f"{label}: {r.get('width')}x{r.get('height')} {r.get('fps')} fps,"
                f" {r.get('duration_s')} s, {r.get('bytes')} bytes",
                detail={"answer": answer.id, "platform": platform, "sha256": r.get("sha256")},
            )
        else:
            self.db.event(
                session,
                answer.question_id,
                SYSTEM,
                "rendition_failed",
                reason=f"{label}: {(job.error or 'failed')[:500]}",
                detail={"answer": answer.id, "platform": platform},
            )

    # --- renditions -------------------------------------------------------------------

    async def orders(self, session: AsyncSession, answer: Answer) -> list[RenditionOrder]:
        """The renditions the answer needs now: one per platform and caption language of
        its askers, with the cut and the captions as they stand."""
        question = await self.db.question(session, answer.question_id)
        askers = await self.askers(session, question)
        speaker = speaker_language(answer)
        wanted = {(q.platform, caption_language(q.lang, speaker)) for q in askers}
        wanted |= {(p, caption_language(question.lang, speaker)) for p in answer.platforms.split()}
        cut = cut_of(answer)
        orders = []
        for platform, language in sorted(wanted):
            if platform not in PROFILES:
                continue
            mode = self.policy.mode(platform)
            burn = tuple(c.as_tuple() for c in cues_in(answer, language)) if mode == "burn" else ()
            orders.append(RenditionOrder(platform, language, mode, cut.start, cut.end, burn))
        return orders

    def _too_long(self, answer: Answer, platform: str) -> Flag | None:
        return next((f for f in self.flags(answer, [platform]) if f.kind == "too_long"), None)

    async def ensure_renditions(self, session: AsyncSession, answer: Answer) -> list[Job]:
        """Ask for every rendition the answer needs and does not have (a platform whose
        limit it breaks waits for a trim: nothing is cut silently). Renditions of this
        answer nobody needs any more (an older cut, older words drawn in) are cancelled,
        a running one at its next heartbeat."""
        orders = await self.orders(session, answer)
        jobs = []
        keep = set()
        for order in orders:
            if self._too_long(answer, order.platform) is not None:
                continue
            key = order.key(answer.sha256)
            keep.add(key)
            jobs.append(
                await self.jobs.enqueue(
                    session,
                    RENDITION,
                    key,
                    subject=answer.id,
                    payload=order.payload(answer),
                    priority=PRIORITY[RENDITION],
                )
            )
        stale = await session.execute(
            select(MediaJob.c.key).where(
                MediaJob.c.kind == RENDITION,
                MediaJob.c.subject == answer.id,
                MediaJob.c.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]),
            )
        )
        await self.jobs.cancel(session, RENDITION, [k for (k,) in stale.all() if k not in keep])
        return jobs

    async def _transcript_awaited(self, session: AsyncSession, answer: Answer) -> None:
        """``Conflict`` while the transcript the subtitles come from is still on its way
        (queued, being made, or finished but not yet taken in): a reply approved then
        would go out without them. A transcript that failed for good does not hold it."""
        job = await self._transcript_done(session, answer)
        if job is None or job.state == JobState.FAILED:
            return
        if job.state != JobState.DONE or job.applied_at is None:
            raise Conflict(
                "the transcript the subtitles are made from is not ready yet"
                f" ({job.state.value}); approve it once ready"
            )

    async def _transcript_done(self, session: AsyncSession, answer: Answer) -> Job | None:
        return await self.jobs.get(session, TRANSCRIPT, self._transcript_key(answer))

    async def status(self, session: AsyncSession, answer: Answer) -> MediaStatus:
        transcript = await self._transcript_done(session, answer)
        waiting = transcript is not None and transcript.state in (
            JobState.QUEUED,
            JobState.RUNNING,
        )
        views = []
        orders = await self.orders(session, answer)
        jobs = await self.jobs.by_keys(session, [(RENDITION, o.key(answer.sha256)) for o in orders])
        for order in orders:
            flag = self._too_long(answer, order.platform)
            job = jobs.get((RENDITION, order.key(answer.sha256)))
            if flag is not None:
                view = RenditionView(
                    order.platform, order.language, order.mode, "needs_trim", note=flag.message
                )
            elif job is None:
                state = "waiting" if waiting else "queued"
                note = "waiting for the transcript" if waiting else "waiting"
                view = RenditionView(order.platform, order.language, order.mode, state, note=note)
            else:
                view = RenditionView(
                    order.platform,
                    order.language,
                    order.mode,
                    job.state.value,
                    job.progress,
                    job.note,
                    job.error,
                    job.result,
                )
            views.append(view)
        return MediaStatus(
            info=media_info(answer),
            flags=flags_of(answer),
            poster=answer.poster_key is not None,
            transcript=JobView.of(transcript) if transcript is not None else None,
            renditions=views,
        )

    async def statuses(self, answers: Sequence[Answer]) -> dict[str, MediaStatus]:
        async with self.db.sessions() as session:
            return {a.id: await self.status(session, a) for a in answers}

    # --- publishing --------------------------------------------------------------------

    async def publishable(self, session: AsyncSession, answer: Answer, asker: Question) -> Media:
        """The rendition the reply to ``asker`` posts, with its alt text and subtitle file;
        ``Conflict`` (saying how far it is) while it is not ready."""
        if asker.platform not in PROFILES:
            raise Conflict(
                f"no media profile for {asker.platform} yet (services/common/media/profiles.py):"
                " its replies cannot carry a video it is known to take"
            )
        speaker = speaker_language(answer)
        language = caption_language(asker.lang, speaker)
        order = next(
            (
                o
                for o in await self.orders(session, answer)
                if o.platform == asker.platform and o.language == language
            ),
            None,
        )
        profile = profile_for(asker.platform)
        if order is None:
            raise Conflict(f"no {profile.label} rendition is asked for this answer")
        flag = self._too_long(answer, asker.platform)
        if flag is not None:
            raise Conflict(f"{flag.message}: trim it before approving")
        job = await self.jobs.get(session, RENDITION, order.key(answer.sha256))
        if job is None or job.state != JobState.DONE or not job.result:
            how = "not asked for yet" if job is None else f"{job.state.value}"
            if job is not None and job.state == JobState.RUNNING:
                how = f"being made ({job.progress:.0%})"
            if job is not None and job.state == JobState.FAILED:
                how = f"failed: {job.error}"
            raise Conflict(
                f"the {profile.label} version of this answer is {how}; approve it once ready"
            )
        result = job.result
        path = self._inside(str(result["path"]))
        if not path.is_file() or path.stat().st_size != int(result["bytes"]):
            raise Conflict(f"the {profile.label} rendition is missing on disk; make it again")
        files: tuple[SubtitleFile, ...] = ()
        if order.mode == "attach":
            all_cues = cues_in(answer, language)
            if not all_cues:
                await self._transcript_awaited(session, answer)
            cues = subtitles.cut(all_cues, order.start_s, order.end_s or float("inf"))
            if cues:
                files = (self._subtitle_file(cues, language),)
        text = answer.caption or (answer.translation if language == "en" else answer.transcript)
        return Media(
            uri=str(result["uri"]),
            mime=str(result.get("mime", profile.mime)),
            bytes=int(result["bytes"]),
            sha256=str(result["sha256"]),
            duration_s=float(result["duration_s"]) or None,
            alt_text=alt_text(text or "", profile.alt_text_max),
            subtitles=files,
        )

    def _inside(self, relative: str) -> Path:
        root = self.policy.media_dir.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise NotFound("not a file of the media folder")
        return path

    def path_of(self, relative: str) -> Path:
        return self._inside(relative)

    def _subtitle_file(self, cues: Sequence[subtitles.Cue], language: str) -> SubtitleFile:
        """The cues as an SRT file in the media folder (named by its content: written once)."""
        body = subtitles.to_srt(subtitles.min_length(cues)).encode()
        digest = hashlib.sha256(body).hexdigest()
        folder = self.policy.media_dir.resolve() / "subtitles"
        path = folder / f"{digest}.srt"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{digest}.{secrets.token_hex(4)}.tmp"
            tmp.write_bytes(body)
            os.replace(tmp, path)
        return SubtitleFile(
            uri=path.as_uri(),
            mime="application/x-subrip",
            bytes=len(body),
            sha256=digest,
            language=language,
        )

    # --- people's changes ----------------------------------------------------------------

    async def _editable(self, session: AsyncSession, answer_id: str, actor: Actor) -> Answer:
        answer = await session.get(Answer, answer_id)
        if answer is None:
            raise NotFound(f"answer {answer_id!r} not found")
        if actor.team_id is not None and actor.team_id != answer.team_id:
            raise Forbidden("this answer belongs to another team")
        if answer.state != AnswerState.SUBMITTED.value:
            raise Conflict(f"the answer is {answer.state}: it can no longer be changed")
        return answer

    async def trim(
        self, answer_id: str, actor: Actor, start_s: float, end_s: float | None
    ) -> Answer:
        """The moderator's cut: the part kept, on the timeline and in the audit log; the
        flags follow the new length and the renditions are made again."""
        async with self.db.sessions() as session:
            answer = await self._editable(session, answer_id, actor)
            info = media_info(answer)
            duration = info.duration_s if info else (answer.duration_s or 0.0)
            end = None if end_s is None or end_s >= duration - 0.05 else end_s
            if start_s < 0 or start_s >= (end if end is not None else duration) - 0.5:
                raise Invalid("the cut must keep at least half a second of the video")
            before = (answer.trim_start_s, answer.trim_end_s)
            answer.trim_start_s = round(start_s, 3) if start_s > 0 else None
            answer.trim_end_s = round(end, 3) if end is not None else None
            platforms = answer.platforms.split()
            answer.flags_json = json.dumps([f.model_dump() for f in self.flags(answer, platforms)])
            kept = cut_of(answer).length(duration)
            detail = {
                "answer": answer.id,
                "start_s": answer.trim_start_s or 0.0,
                "end_s": answer.trim_end_s if answer.trim_end_s is not None else duration,
                "kept_s": round(kept, 3),
                "before": list(before),
            }
            self.db.event(
                session,
                answer.question_id,
                actor,
                "answer_trimmed",
                decision="trim",
                reason=f"kept {detail['start_s']:.1f}-{detail['end_s']:.1f} s of {duration:.1f} s",
                detail=detail,
            )
            self.db.audit(session, actor, "trim_answer", answer.question_id, detail)
            await self.ensure_renditions(session, answer)
            await session.commit()
            return answer

    async def edit_transcript(
        self, answer_id: str, actor: Actor, *, transcript: str | None, translation: str | None
    ) -> Answer:
        """People's corrections: the text replaces the machine's, the subtitles are timed
        again over the speech, the renditions that draw them are made again."""
        async with self.db.sessions() as session:
            answer = await self._editable(session, answer_id, actor)
            changed: dict[str, Any] = {"answer": answer.id}
            duration = answer.duration_s or 0.0
            if transcript is not None and transcript != answer.transcript:
                changed["transcript"] = {
                    "before": answer.transcript[:2000],
                    "after": transcript[:2000],
                }
                previous = parse_cues(answer.cues_json)
                answer.transcript = transcript
                answer.transcript_source = "edited"
                if answer.subtitles_source != "provided":
                    answer.cues_json = dump_cues(subtitles.retime(transcript, previous, duration))
                if speaker_language(answer).startswith("en"):
                    answer.translation = transcript
            if translation is not None and translation != answer.translation:
                changed["translation"] = {
                    "before": answer.translation[:2000],
                    "after": translation[:2000],
                }
                previous = parse_cues(answer.cues_en_json) or parse_cues(answer.cues_json)
                answer.translation = translation
                if answer.subtitles_source != "provided":
                    answer.cues_en_json = dump_cues(
                        subtitles.retime(translation, previous, duration)
                    )
            if len(changed) == 1:
                return answer
            self.db.event(
                session,
                answer.question_id,
                actor,
                "transcript_edited",
                reason=", ".join(k for k in changed if k != "answer") + " edited",
                detail=changed,
            )
            self.db.audit(session, actor, "edit_transcript", answer.question_id, changed)
            await self.ensure_renditions(session, answer)
            await session.commit()
            return answer

    async def provide_subtitles(
        self, answer_id: str, actor: Actor, text: str, *, english: bool
    ) -> Answer:
        """A WebVTT or SRT file replaces the generated subtitles (speaker's or English)."""
        try:
            cues = subtitles.parse(text)
        except subtitles.SubtitleError as exc:
            raise Invalid(f"the subtitle file cannot be read: {exc}") from None
        async with self.db.sessions() as session:
            answer = await self._editable(session, answer_id, actor)
            if english:
                answer.cues_en_json = dump_cues(cues)
                if not answer.translation.strip():
                    answer.translation = subtitles.text_of(cues)
            else:
                answer.cues_json = dump_cues(cues)
                if answer.transcript_source in ("", "machine"):
                    answer.transcript = subtitles.text_of(cues)
                    answer.transcript_source = "edited"
            answer.subtitles_source = "provided"
            detail = {"answer": answer.id, "cues": len(cues), "english": english}
            self.db.event(
                session,
                answer.question_id,
                actor,
                "subtitles_provided",
                reason=f"{len(cues)} cues ({'English' if english else 'speaker'})",
                detail=detail,
            )
            self.db.audit(session, actor, "provide_subtitles", answer.question_id, detail)
            await self.ensure_renditions(session, answer)
            await session.commit()
            return answer

    async def retry(self, answer_id: str, actor: Actor) -> None:
        """Ask again for what failed (a transcript, renditions)."""
        async with self.db.sessions() as session:
            answer = await self._editable(session, answer_id, actor)
            await session.execute(
                update(MediaJob)
                .where(
                    MediaJob.c.subject == answer.id,
                    MediaJob.c.state == JobState.FAILED.value,
                )
                .values(
                    state=JobState.QUEUED.value,
                    attempts=0,
                    error=None,
                    note="waiting",
                    applied_at=None,
                    run_after=self.db.clock(),
                    updated_at=self.db.clock(),
                )
            )
            self.db.audit(session, actor, "retry_media", answer.question_id, {"answer": answer.id})
            await session.commit()
