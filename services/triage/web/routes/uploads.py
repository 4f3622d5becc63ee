"""Resumable uploads: declare (size, type, sha256), ``PATCH`` chunks at
``Upload-Offset``, ask where to resume, then turn the complete upload into the
question's answer with the consent (:func:`.answers.record_answer`), once: a
retried finish answers the answer the upload became."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from services.triage.web import policy
from services.triage.web.deps import Anyone, Runtime, TriageRuntime, header_number
from services.triage.web.exceptions import BadRequest, UnknownUpload
from services.triage.web.media import UploadState
from services.triage.web.routes.answers import (
    AnswerFields,
    answer_of,
    check_answer_allowed,
    record_answer,
)
from services.triage.web.schemas import (
    AnswerView,
    UploadView,
)
from services.triage.web.store import Actor

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["api"])


class UploadCreate(BaseModel):
    filename: str = Field(default="answer", max_length=256)
    size: int = Field(gt=0)
    mime: str = Field(max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


@router.post(
    "/questions/{question_id}/uploads",
    status_code=201,
    summary="Start a resumable upload (then PATCH chunks with Upload-Offset)",
)
async def create_upload(
    question_id: str, body: UploadCreate, runtime: Runtime, principal: Anyone
) -> UploadView:
    await check_answer_allowed(runtime, question_id, principal.actor)
    state = await runtime.uploads.create(
        question_id,
        principal.actor.name,
        filename=body.filename,
        size=body.size,
        mime=body.mime.lower(),
        sha256=body.sha256.lower(),
    )
    return upload_view(state)


def upload_view(state: UploadState) -> UploadView:
    return UploadView(
        upload_id=state.id,
        question_id=state.question_id,
        size=state.size,
        offset=state.offset,
        complete=state.offset == state.size,
    )


async def _own_upload(runtime: TriageRuntime, upload_id: str, actor: Actor) -> UploadState:
    state = await runtime.uploads.status(upload_id)
    if state.owner != actor.name:
        raise UnknownUpload(f"no upload {upload_id!r}")  # another's upload: as if none
    return state


@router.get(
    "/uploads/{upload_id}", summary="How much of an upload arrived (the offset to resume at)"
)
async def upload_status(upload_id: str, runtime: Runtime, principal: Anyone) -> UploadView:
    return upload_view(await _own_upload(runtime, upload_id, principal.actor))


@router.patch("/uploads/{upload_id}", summary="Append a chunk at Upload-Offset (raw body)")
async def upload_chunk(
    upload_id: str, request: Request, runtime: Runtime, principal: Anyone
) -> UploadView:
    state = await _own_upload(runtime, upload_id, principal.actor)
    # A question taken from the team meanwhile takes no more bytes.
    await check_answer_allowed(runtime, state.question_id, principal.actor)
    offset = header_number(request, "Upload-Offset")
    if offset is None:
        raise BadRequest("send the chunk's position as the Upload-Offset header")
    state = await runtime.uploads.append(upload_id, offset, request.stream())
    return upload_view(state)


@router.post(
    "/uploads/{upload_id}/answer",
    status_code=201,
    summary="Turn a complete upload into the question's answer, with consent",
    responses={200: {"description": "Retried: the answer this upload already became"}},
)
async def finish_upload(
    upload_id: str, body: AnswerFields, runtime: Runtime, principal: Anyone, response: Response
) -> AnswerView:
    """Once per upload: the upload is held from the first check to the answer's
    commit, so a retry (the phone lost the response while the server hashed and
    probed) waits, then gets the same answer with 200, whatever became of it since
    (``body`` is not read again). The claim and the status are checked before the
    video is stored; refused after (the question changed hands meanwhile), the video
    and the upload are removed."""
    actor = principal.actor
    await _own_upload(runtime, upload_id, actor)
    async with runtime.uploads.hold(upload_id) as upload:
        question_id, stored = upload.state.question_id, upload.state.stored
        if stored is not None:
            earlier = await runtime.store.answers.with_media(question_id, stored.uri)
            if earlier is not None:
                await check_answer_allowed(runtime, question_id, actor, recording=False)
                policy.check_answer(actor, earlier.team_id)
                response.status_code = 200
                return await answer_of(runtime, earlier.id)
        await check_answer_allowed(runtime, question_id, actor)
        runtime.store.answers.check_consent(body.consent_given_by, body.consent_scope)
        await runtime.store.answers.check_recordable(question_id, actor)
        stored = await upload.complete()
        return await record_answer(
            runtime, question_id, actor, stored, body, discard=upload.discard
        )


# Last: its path would otherwise catch /questions/{id}/take and the like.
