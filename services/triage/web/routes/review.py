"""What a moderator confirms before approving an answer: who will receive a reply
(every asker of the question's cluster still waiting) and the reply's text in the
answer's language, which they may correct first (``PUT …/caption``). The approval
itself is :mod:`.answers`."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.triage.web import domain
from services.triage.web.deps import Moderator, Runtime, TriageRuntime

router = APIRouter(prefix="/api", tags=["api"])


class Recipient(BaseModel):
    question_id: str
    author_handle: str
    platform: str
    lang: str | None
    #: The asker's own question (what the reply answers).
    question: str
    #: What this asker gets when they asked in another language than the answer's:
    #: a line in their language (the video carries the answer); ``None``: the caption.
    own_language_reply: str | None = None


class ApprovalPreview(BaseModel):
    answer_id: str
    caption: str
    language: str
    #: The reply's text exactly as sent to the publisher (the caption, or the
    #: language's stock line); each platform posts it threaded under the asker's post.
    text: str
    recipients: list[Recipient]
    #: Prepared texts in the answer's language to start from.
    canned: list[str]


class CaptionBody(BaseModel):
    caption: str = Field(max_length=5000)


def _own_language_reply(answer_language: str | None, asker_language: str | None) -> str | None:
    text, language = domain.reply_for("", answer_language, asker_language)
    return text if language != answer_language else None


async def _preview(runtime: TriageRuntime, question_id: str) -> ApprovalPreview:
    answer, askers = await runtime.store.answers.recipients(question_id)
    return ApprovalPreview(
        answer_id=answer.id,
        caption=answer.caption,
        language=answer.language,
        text=domain.reply_text(answer.caption, answer.language),
        recipients=[
            Recipient(
                question_id=q.id,
                author_handle=q.author_handle,
                platform=q.platform,
                lang=q.lang,
                question=q.text,
                own_language_reply=_own_language_reply(answer.language, q.lang),
            )
            for q in askers
        ],
        canned=list(domain.canned_replies(answer.language)),
    )


@router.get(
    "/questions/{question_id}/answer/preview",
    summary="Who an approval replies to, and the reply's text",
)
async def approval_preview(question_id: str, runtime: Runtime, _: Moderator) -> ApprovalPreview:
    return await _preview(runtime, question_id)


@router.put(
    "/questions/{question_id}/answer/caption",
    summary="Correct the reply's text before approving",
)
async def set_caption(
    question_id: str, body: CaptionBody, runtime: Runtime, principal: Moderator
) -> ApprovalPreview:
    await runtime.store.answers.set_caption(question_id, body.caption.strip(), principal.actor)
    return await _preview(runtime, question_id)
