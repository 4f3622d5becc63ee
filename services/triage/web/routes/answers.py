"""Recorded answers: the upload in one multipart request (with consent), a
question's answers, the moderators' review list, the video, and the review
(approve: the replies are requested; or send back). Resumable uploads are
:mod:`.uploads`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile as StarletteUpload

from services.triage.web import metrics, policy
from services.triage.web.deps import Anyone, Moderator, Runtime, TriageRuntime
from services.triage.web.exceptions import Invalid, MediaError, NotFound
from services.triage.web.forms import spooled_form
from services.triage.web.media import StoredMedia
from services.triage.web.schemas import (
    AnswerView,
    ReplyView,
    answer_view,
)
from services.triage.web.store import Actor, StoredAnswer, WithdrawalRequest

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["api"])


class AnswerFields(BaseModel):
    """What comes with the video: multipart form fields of ``POST
    /questions/{id}/answer``, or the JSON body of ``POST /uploads/{id}/answer``."""

    language: str = Field(min_length=2, max_length=16)
    consent_given_by: str = Field(default="", max_length=128)
    consent_scope: str = Field(default="", max_length=64)
    caption: str = Field(default="", max_length=5000)
    transcript: str = Field(default="", max_length=50_000)


async def record_answer(
    runtime: TriageRuntime,
    question_id: str,
    actor: Actor,
    stored: StoredMedia,
    fields: AnswerFields,
    *,
    discard: Callable[[], Awaitable[None]] | None = None,
) -> AnswerView:
    """Record the answer. Refused (consent, state, team, claim), the stored video must
    not stay behind with no answer and no consent: it is deleted, after ``discard``
    (the resumable upload that names it), unless an answer references it after all."""
    try:
        answer = await runtime.store.answers.record(
            question_id,
            actor,
            StoredAnswer(
                uri=stored.uri,
                mime=stored.mime,
                bytes=stored.bytes,
                sha256=stored.sha256,
                info=stored.info,
                **fields.model_dump(),
            ),
        )
    except Exception:
        await _drop_unrecorded(runtime, question_id, stored, discard)
        raise
    metrics.UPLOAD_BYTES.inc(stored.bytes)
    return await answer_of(runtime, answer.id)


async def _drop_unrecorded(
    runtime: TriageRuntime,
    question_id: str,
    stored: StoredMedia,
    discard: Callable[[], Awaitable[None]] | None,
) -> None:
    """Delete a video whose recording was refused, unless an answer references it (the
    refusal came after the commit). The upload goes first: a retry must never find a
    finished upload whose video is gone. What stops this is logged; the refusal is
    what the caller gets, and a video left behind goes with the hourly sweep of files
    no row names (:mod:`services.triage.web.sweep`) once its grace has passed."""
    try:
        if await runtime.store.answers.with_media(question_id, stored.uri) is not None:
            return
        if discard is not None:
            await discard()
        await runtime.media.delete(stored.key)
        log.info("recording refused: video %s of question %s deleted", stored.key, question_id)
    except Exception:  # the refusal goes on to the caller either way
        log.exception("recording refused: video %s could not be deleted", stored.key)


async def answer_of(runtime: TriageRuntime, answer_id: str) -> AnswerView:
    """The answer as the API shows it: with its consent and where its media stand."""
    answer, consent = await runtime.store.answers.get(answer_id)
    status = (await runtime.store.media.statuses([answer]))[answer.id]
    return answer_view(answer, consent, status)


async def check_answer_allowed(
    runtime: TriageRuntime, question_id: str, actor: Actor, *, recording: bool = True
) -> None:
    """The question exists, and a team member reads (``recording``: answers, uploads)
    only what their team holds (:mod:`..policy`)."""
    row = await runtime.store.questions.get(question_id)
    check = policy.check_recording if recording else policy.check_question
    check(actor, row.team_id, row.status)


_ANSWER_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["video", "language"],
                "properties": {
                    "video": {"type": "string", "format": "binary"},
                    **AnswerFields.model_json_schema()["properties"],
                },
            }
        }
    },
}


@router.post(
    "/questions/{question_id}/answer",
    status_code=201,
    summary="Upload a recorded answer in one request (multipart), with consent",
    openapi_extra={"requestBody": _ANSWER_BODY},
)
async def answer(
    question_id: str, request: Request, runtime: Runtime, principal: Anyone
) -> AnswerView:
    """The body is read only after the caller is known to be allowed: nobody can
    make the server spool a video without a session on this question."""
    await check_answer_allowed(runtime, question_id, principal.actor)
    async with spooled_form(request, runtime.uploads.dir, max_files=1, max_fields=10) as form:
        video = form.get("video")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            sent = AnswerFields.model_validate(fields)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc
        if not isinstance(video, StarletteUpload):
            raise Invalid("send the video as the multipart file field 'video'")
        runtime.store.answers.check_consent(sent.consent_given_by, sent.consent_scope)
        await runtime.store.answers.check_recordable(question_id, principal.actor)
        mime = (video.content_type or "").split(";")[0].strip().lower()

        async def chunks() -> AsyncIterator[bytes]:
            while block := await video.read(1024 * 1024):
                yield block

        stored = await runtime.uploads.put_stream(chunks(), mime=mime)
    return await record_answer(runtime, question_id, principal.actor, stored, sent)


@router.get("/questions/{question_id}/answers")
async def answers(question_id: str, runtime: Runtime, principal: Anyone) -> list[AnswerView]:
    await check_answer_allowed(runtime, question_id, principal.actor, recording=False)
    rows = await runtime.store.answers.of_question(
        question_id, team_id=policy.answers_team(principal.actor)
    )
    statuses = await runtime.store.media.statuses([a for a, _ in rows])
    return [answer_view(a, c, statuses[a.id]) for a, c in rows]


@router.get("/answers", summary="Answers waiting for review")
async def pending_answers(runtime: Runtime, _: Moderator) -> list[AnswerView]:
    rows = await runtime.store.answers.pending()
    statuses = await runtime.store.media.statuses([a for a, _, _ in rows])
    return [answer_view(a, c, statuses[a.id]) for a, _, c in rows]


@router.get("/answers/{answer_id}/video", summary="The answer's video (supports Range)")
async def video(answer_id: str, runtime: Runtime, principal: Anyone) -> FileResponse:
    row, _ = await runtime.store.answers.get(answer_id)
    policy.check_answer(principal.actor, row.team_id)
    try:
        path = await runtime.media.path(runtime.media.key_of(row.media_uri))
    except MediaError as exc:
        raise NotFound("the video is no longer stored") from exc
    return FileResponse(
        path, media_type=row.mime, headers={"Cache-Control": "private, max-age=3600"}
    )


class ApproveIn(BaseModel):
    """Which answer the moderator reviewed, and how to answer askers the platform will
    not let us answer by reply."""

    model_config = ConfigDict(extra="forbid")

    #: A standalone post on the campaign account (no @mention) for an asker X will
    #: not let us answer by reply; askers who can get a reply still get one.
    standalone: bool = False
    #: The answer reviewed (the preview's ``answer_id``): when a newer recording has
    #: replaced it, the approval is refused (409 ``answer_replaced``). Unset: the
    #: answer waiting for review, whichever it is.
    answer_id: str | None = Field(default=None, max_length=64)
    #: The answer's ``revision`` as the moderator saw it (its words, subtitles and cut):
    #: when the team changed them since, the approval is refused (409
    #: ``answer_changed``). Unset: not checked.
    revision: str | None = Field(default=None, max_length=64)
    #: The reply's text as the moderator confirmed it in the approval dialog: when
    #: it is no longer the answer's (another moderator corrected it since), the
    #: approval is refused (409 ``answer_changed``). Unset: not checked.
    caption: str | None = Field(default=None, max_length=5000)


@router.post(
    "/questions/{question_id}/answer/approve", summary="Approve the answer: request the replies"
)
async def approve_answer(
    question_id: str, runtime: Runtime, principal: Moderator, body: ApproveIn | None = None
) -> list[ReplyView]:
    """409 when the consent of the person filmed was withdrawn, even at the same
    moment: nothing is requested."""
    body = body or ApproveIn()
    replies = await runtime.store.review.approve(
        question_id,
        principal.actor,
        standalone=body.standalone,
        reviewed=body.answer_id,
        revision=body.revision,
        caption=body.caption,
    )
    metrics.ACTIONS.labels("approve_answer", "ok").inc()
    return [
        ReplyView(
            reply_id=r.reply_id, question_id=r.question_id, platform=r.platform, state=r.state
        )
        for r in replies
    ]


class ReturnBody(BaseModel):
    note: str = Field(min_length=1, max_length=2000)
    #: The answer reviewed: as for :class:`ApproveIn`.
    answer_id: str | None = Field(default=None, max_length=64)


@router.post(
    "/questions/{question_id}/answer/return", status_code=204, summary="Send the answer back"
)
async def return_answer(
    question_id: str, body: ReturnBody, runtime: Runtime, principal: Moderator
) -> None:
    await runtime.store.review.send_back(
        question_id, principal.actor, body.note, reviewed=body.answer_id
    )
    metrics.ACTIONS.labels("return_answer", "ok").inc()


class WithdrawBody(BaseModel):
    """A filmed person's withdrawal of consent: who asked, when and how."""

    requested_by: str = Field(min_length=1, max_length=128)
    requested_at: AwareDatetime
    channel: str = Field(min_length=1, max_length=128)
    note: str = Field(default="", max_length=1500)


@router.post(
    "/answers/{answer_id}/consent/withdraw",
    summary="Record a consent withdrawal: every post of the answer comes down",
)
async def withdraw_consent(
    answer_id: str, body: WithdrawBody, runtime: Runtime, principal: Moderator
) -> AnswerView:
    """The answer is never approved again (an approval refused with 409); recording
    it again is allowed and sends the take-down again, for every reply there is."""
    await runtime.store.answers.withdraw_consent(
        answer_id,
        principal.actor,
        WithdrawalRequest(
            requested_by=body.requested_by,
            requested_at=body.requested_at,
            channel=body.channel,
            note=body.note,
        ),
    )
    metrics.ACTIONS.labels("withdraw_consent", "ok").inc()
    return await answer_of(runtime, answer_id)
