"""An answer's media: its poster frame, where the media worker stands (transcript,
renditions), the moderator's cut, people's edits of the transcript and the
translation, a subtitle file that replaces the generated one, and trying again what
failed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, model_validator

from services.triage.web import policy
from services.triage.web.deps import Anyone, Moderator, Runtime, TriageRuntime
from services.triage.web.exceptions import Invalid, NotFound
from services.triage.web.models import Answer
from services.triage.web.schemas import AnswerMediaView, AnswerView, answer_view, media_view
from services.triage.web.store import Actor

router = APIRouter(prefix="/api", tags=["api"])

#: Largest subtitle file taken (bytes).
SUBTITLES_MAX_BYTES = 200_000


async def _answer(runtime: TriageRuntime, answer_id: str, actor: Actor) -> Answer:
    row, _ = await runtime.store.answers.get(answer_id)
    policy.check_answer(actor, row.team_id)
    return row


async def _view(runtime: TriageRuntime, answer_id: str) -> AnswerView:
    answer, consent = await runtime.store.answers.get(answer_id)
    status = (await runtime.store.media.statuses([answer]))[answer.id]
    return answer_view(answer, consent, status)


@router.get("/answers/{answer_id}/poster", summary="The answer's poster frame (JPEG)")
async def poster(answer_id: str, runtime: Runtime, principal: Anyone) -> FileResponse:
    answer = await _answer(runtime, answer_id, principal.actor)
    if answer.poster_key is None:
        raise NotFound("the poster frame is not made yet")
    path = runtime.store.media.path_of(answer.poster_key)
    if not path.is_file():
        raise NotFound("the poster frame is no longer stored")
    return FileResponse(
        path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"}
    )


@router.get("/answers/{answer_id}/media", summary="Probe, flags, transcript and renditions")
async def media_status(answer_id: str, runtime: Runtime, principal: Anyone) -> AnswerMediaView:
    answer = await _answer(runtime, answer_id, principal.actor)
    status = (await runtime.store.media.statuses([answer]))[answer.id]
    return media_view(answer, status)


class TrimBody(BaseModel):
    #: Seconds from the start of the video: where the kept part starts and ends
    #: (``end_s`` unset: to the end).
    start_s: float = Field(default=0.0, ge=0)
    end_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> TrimBody:
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError("end_s must come after start_s")
        return self


@router.post("/answers/{answer_id}/trim", summary="Cut the answer (in and out points)")
async def trim(
    answer_id: str, body: TrimBody, runtime: Runtime, principal: Moderator
) -> AnswerView:
    await runtime.store.media.trim(answer_id, principal.actor, body.start_s, body.end_s)
    return await _view(runtime, answer_id)


class TranscriptBody(BaseModel):
    transcript: str | None = Field(default=None, max_length=50_000)
    translation: str | None = Field(default=None, max_length=50_000)


@router.put("/answers/{answer_id}/transcript", summary="Correct the transcript or translation")
async def edit_transcript(
    answer_id: str, body: TranscriptBody, runtime: Runtime, principal: Anyone
) -> AnswerView:
    await _answer(runtime, answer_id, principal.actor)
    await runtime.store.media.edit_transcript(
        answer_id, principal.actor, transcript=body.transcript, translation=body.translation
    )
    return await _view(runtime, answer_id)


@router.post(
    "/answers/{answer_id}/subtitles",
    summary="A WebVTT or SRT file (raw body) replaces the generated subtitles",
)
async def provide_subtitles(
    answer_id: str,
    request: Request,
    runtime: Runtime,
    principal: Anyone,
    english: bool = False,
) -> AnswerView:
    await _answer(runtime, answer_id, principal.actor)
    raw = await request.body()
    if len(raw) > SUBTITLES_MAX_BYTES:
        raise Invalid(f"a subtitle file is at most {SUBTITLES_MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("the subtitle file must be UTF-8 text") from None
    await runtime.store.media.provide_subtitles(answer_id, principal.actor, text, english=english)
    return await _view(runtime, answer_id)


@router.post("/answers/{answer_id}/media/retry", summary="Try again what failed", status_code=204)
async def retry(answer_id: str, runtime: Runtime, principal: Anyone) -> None:
    await _answer(runtime, answer_id, principal.actor)
    await runtime.store.media.retry(answer_id, principal.actor)
