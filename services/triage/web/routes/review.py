"""What a moderator confirms before approving an answer: who will receive a reply
(every asker of the question's cluster still waiting) and, for each, the exact text
the publisher will post (its language's template around the reply's text, rendered
for the asker's platform by :mod:`services.common.replies`, as the publisher does).
The moderator may correct the text first (``PUT …/caption``). The approval itself is
:mod:`.answers`."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.common.messages import Platform
from services.common.replies import Recipient as Reply
from services.common.replies import Templates, first_choice
from services.common.replyability import replyability
from services.triage.web import domain
from services.triage.web.config import WebSettings
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
    #: The reply exactly as the publisher will post it to this asker: the template of
    #: its language around the text, ``@handle`` first on Mastodon, no link on X. (The
    #: publisher addresses it to the asker, or takes another template, only when this
    #: text would repeat the account's previous reply or a recent one still up.)
    posted_text: str
    #: Language of that reply (the asker's where there is a line in it).
    reply_language: str | None
    #: The publisher's template it is wrapped in.
    template_id: str


class ApprovalPreview(BaseModel):
    answer_id: str
    caption: str
    language: str
    #: The reply's text as sent to the publisher (the caption, or the language's
    #: stock line), before its template: each recipient's ``posted_text`` is what goes out.
    text: str
    recipients: list[Recipient]
    #: Prepared texts in the answer's language to start from.
    canned: list[str]


class CaptionBody(BaseModel):
    caption: str = Field(max_length=5000)
    #: The answer reviewed: refused (409 ``answer_replaced``) when a newer recording
    #: has replaced it; unset: the answer waiting for review.
    answer_id: str | None = Field(default=None, max_length=64)


def _own_language_reply(answer_language: str | None, asker_language: str | None) -> str | None:
    text, language = domain.reply_for("", answer_language, asker_language)
    return text if language != answer_language else None


@cache
def _templates(path: Path | None) -> Templates:
    """The publisher's templates: ``PUBLISH_TEMPLATES_FILE``'s, else the shipped ones."""
    return Templates.load(path)


def posted(  # noqa: PLR0917 - the asker's facts, as the approval sends them
    caption: str,
    answer_language: str | None,
    asker_language: str | None,
    platform: str,
    handle: str,
    summoned: bool | None = None,
    standalone: bool = False,
    settings: WebSettings | None = None,
) -> tuple[str, str | None, str]:
    """(posted text, its language, template id) of one asker's reply: what the
    approval sends (:func:`domain.reply_for`) as the publisher renders it, with the
    publisher's template settings (``PUBLISH_TEMPLATES_FILE``, ``PUBLISH_DEFAULT_LANGUAGE``,
    ``PUBLISH_X_ALLOW_URLS``, read by ``settings``; defaults: the publisher's)."""
    text, language = domain.reply_for(caption, answer_language, asker_language)
    on = Platform(platform)
    standalone = standalone and not replyability(on, summoned).can_reply
    shown, template = first_choice(
        Reply(text, language, on, handle, standalone),
        _templates(settings.publish_templates_file if settings else None),
        settings.publish_default_language if settings else "en",
        allow_urls=settings.publish_x_allow_urls if settings else False,
    )
    return shown, language, template


async def _preview(
    runtime: TriageRuntime,
    question_id: str,
    standalone: bool = False,
    caption: str | None = None,
    reviewed: str | None = None,
) -> ApprovalPreview:
    answer, askers = await runtime.store.review.recipients(question_id, reviewed=reviewed)
    # A correction being typed (``caption``) is rendered, not saved.
    wording = answer.caption if caption is None else caption.strip()
    rendered = {
        q.id: posted(
            wording,
            answer.language,
            q.lang,
            q.platform,
            q.author_handle,
            summoned,
            standalone,
            runtime.settings,
        )
        for q, summoned in askers
    }
    return ApprovalPreview(
        answer_id=answer.id,
        caption=answer.caption,
        language=answer.language,
        text=domain.reply_text(wording, answer.language),
        recipients=[
            Recipient(
                question_id=q.id,
                author_handle=q.author_handle,
                platform=q.platform,
                lang=q.lang,
                question=q.text,
                own_language_reply=_own_language_reply(answer.language, q.lang),
                posted_text=rendered[q.id][0],
                reply_language=rendered[q.id][1],
                template_id=rendered[q.id][2],
            )
            for q, _ in askers
        ],
        canned=list(domain.canned_replies(answer.language)),
    )


@router.get(
    "/questions/{question_id}/answer/preview",
    summary="Who an approval replies to, and the reply's text",
)
async def approval_preview(
    question_id: str,
    runtime: Runtime,
    _: Moderator,
    standalone: bool = Query(False, description="as approved for a standalone post"),
    caption: str | None = Query(
        None, max_length=5000, description="a corrected text to render (nothing is saved)"
    ),
    answer_id: str | None = Query(
        None,
        max_length=64,
        description="the answer being reviewed: 409 answer_replaced when a newer one replaced it",
    ),
) -> ApprovalPreview:
    return await _preview(runtime, question_id, standalone, caption, answer_id)


@router.put(
    "/questions/{question_id}/answer/caption",
    summary="Correct the reply's text before approving",
)
async def set_caption(
    question_id: str, body: CaptionBody, runtime: Runtime, principal: Moderator
) -> ApprovalPreview:
    await runtime.store.review.set_caption(
        question_id, body.caption.strip(), principal.actor, reviewed=body.answer_id
    )
    return await _preview(runtime, question_id, reviewed=body.answer_id)
