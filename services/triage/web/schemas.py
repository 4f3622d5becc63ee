"""What the JSON API returns (and the pages render): response models built
from the database rows, with nothing the role may not see. (Request bodies are
declared beside their routes.)"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from services.common.media.profiles import Flag, MediaInfo
from services.common.replyability import Replyability, replyability
from services.triage.web.domain import answer_revision
from services.triage.web.models import Answer, Consent, Question, QuestionEvent
from services.triage.web.store import FeedItem, MediaStatus, Outcome, TeamLoad

M = TypeVar("M", bound=BaseModel)


def from_row(model: type[M], row: object, **computed: Any) -> M:
    """``model`` from the attributes of ``row`` with the same names, ``computed`` on top."""
    fields = {name: getattr(row, name) for name in model.model_fields if name not in computed}
    return model(**fields, **computed)


class Reason(BaseModel):
    factor: str
    points: float
    detail: str = ""


class QuestionView(BaseModel):
    id: str
    mention_id: str
    status: str
    priority: int
    decision: str
    team: str | None
    suggested_team: str | None
    platform: str
    author_handle: str
    text: str
    lang: str | None
    url: str | None
    scores: dict[str, float]
    reasons: list[Reason]
    model_version: str
    rule: str
    cluster_id: str | None
    cluster_size: int = 1
    claimed_by: str | None = None
    claim_expires_at: datetime | None = None
    received_at: datetime
    updated_at: datetime
    #: Abusive enough to blur until clicked (moderator wellbeing): quarantined, or hate.
    sensitive: bool
    #: Can the answer go as a reply under the post (X: only when it summoned the account)?
    can_reply: bool = True
    #: Why not, when ``can_reply`` is false (the answer can still go as a standalone post).
    can_reply_reason: str | None = None
    #: The moderators' tags on it, alphabetical.
    tags: list[str] = []
    #: The person who looks after it (user name).
    assignee: str | None = None
    #: Which model scored it: ``en`` (the English model) or ``multi`` (multilingual).
    model_path: str | None = None
    #: Where ``lang`` came from: ``platform`` (its own tag) or ``detected``.
    lang_source: str | None = None


#: Hate score from which the text is blurred on the page (quarantined text is
#: always blurred). An offensive score alone does not blur: the rules quarantine
#: offensive text that is abuse of someone, and leave supporters who swear, or
#: who name refugees, readable (the model's offensive head fires on both).
SENSITIVE_AT = 0.5


def question_view(
    question: Question,
    *,
    team_slugs: dict[int, str],
    cluster_sizes: dict[str, int] | None = None,
    people: dict[int, str] | None = None,
    tags: dict[str, list[str]] | None = None,
) -> QuestionView:
    return QuestionView(
        id=question.id,
        mention_id=question.mention_id,
        status=question.status,
        priority=question.priority,
        decision=question.decision,
        team=team_slugs.get(question.team_id) if question.team_id is not None else None,
        suggested_team=question.suggested_team,
        platform=question.platform,
        author_handle=question.author_handle,
        text=question.text,
        lang=question.lang,
        url=question.url,
        scores={
            "offensive": question.offensive,
            "hate": question.hate,
            "question": question.question_score,
            "relevance": question.relevance,
        },
        reasons=[Reason.model_validate(r) for r in json.loads(question.reasons_json or "[]")],
        model_version=question.model_version,
        rule=question.rule,
        cluster_id=question.cluster_id,
        cluster_size=(cluster_sizes or {}).get(question.cluster_id or "", 1),
        claimed_by=(people or {}).get(question.claimed_by) if question.claimed_by else None,
        claim_expires_at=question.claim_expires_at,
        received_at=question.received_at,
        updated_at=question.updated_at,
        sensitive=question.hate >= SENSITIVE_AT or question.status == "quarantined",
        tags=(tags or {}).get(question.id, []),
        assignee=(people or {}).get(question.assignee_id) if question.assignee_id else None,
        model_path=question.model_path,
        lang_source=_lang_source(question),
        **_replyable(question),
    )


def _lang_source(question: Question) -> str | None:
    """Whether the question's language is the platform's tag or ingest's detection."""
    try:
        mention = json.loads(question.classified_json or "{}").get("mention") or {}
    except ValueError:
        return None
    source = mention.get("lang_source") if isinstance(mention, dict) else None
    return source if source in {"platform", "detected"} else None


def _replyable(question: Question) -> dict[str, Any]:
    """``can_reply`` and its reason, from the mention as received (``summoned``)."""
    verdict = question_replyability(question)
    return {"can_reply": verdict.can_reply, "can_reply_reason": verdict.reason}


def question_replyability(question: Question) -> Replyability:
    try:
        mention = json.loads(question.classified_json or "{}").get("mention") or {}
    except ValueError:
        mention = {}
    summoned = mention.get("summoned") if isinstance(mention, dict) else None
    return replyability(question.platform, summoned if isinstance(summoned, bool) else None)


class QuestionPage(BaseModel):
    items: list[QuestionView]
    total: int
    limit: int
    offset: int


class EventView(BaseModel):
    id: int
    question_id: str
    at: datetime
    actor: str
    event: str
    from_status: str | None
    to_status: str | None
    decision: str | None
    reason: str
    model_version: str | None
    rule: str | None
    detail: dict[str, Any]


def event_view(event: QuestionEvent) -> EventView:
    return from_row(EventView, event, detail=json.loads(event.detail_json or "{}"))


class TeamView(BaseModel):
    slug: str
    name: str
    languages: list[str]
    capacity: int
    assigned_today: int
    remaining: int


def team_view(load: TeamLoad) -> TeamView:
    return TeamView(
        slug=load.team.slug,
        name=load.team.name,
        languages=load.team.languages.split(),
        capacity=load.team.capacity,
        assigned_today=load.assigned_today,
        remaining=load.remaining,
    )


class FeedEntry(BaseModel):
    assignment_id: int
    question_id: str
    state: str
    text: str
    lang: str | None
    author_handle: str
    priority: int
    assigned_at: datetime
    due_at: datetime | None
    taken: bool
    taken_by_me: bool
    #: A moderator gave the question to this person (they see it under "mine").
    given_to_me: bool = False
    #: Can the answer go as a reply under the post (see :class:`QuestionView`)?
    can_reply: bool = True
    can_reply_reason: str | None = None


class FeedPage(BaseModel):
    items: list[FeedEntry]
    #: Pass as ``after`` for the next page (absent at the end).
    next_cursor: int | None


def feed_entry(item: FeedItem, user_id: int | None, now: datetime) -> FeedEntry:
    a = item.assignment
    live = a.claimed_by is not None and a.claim_expires_at is not None and a.claim_expires_at > now
    return FeedEntry(
        assignment_id=a.id,
        question_id=item.question.id,
        state=a.state,
        text=item.question.text,
        lang=item.question.lang,
        author_handle=item.question.author_handle,
        priority=item.question.priority,
        assigned_at=a.assigned_at,
        due_at=a.due_at,
        taken=live,
        taken_by_me=live and a.claimed_by == user_id,
        given_to_me=user_id is not None and item.question.assignee_id == user_id,
        **_replyable(item.question),
    )


class ConsentView(BaseModel):
    given_by: str
    scope: str
    recorded_by: str
    given_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None = None


class JobStatusView(BaseModel):
    """Where a piece of the media worker's work stands."""

    state: str
    progress: float
    note: str
    error: str | None = None


class RenditionStatusView(JobStatusView):
    """The video one platform's replies post: ``waiting`` (for the transcript),
    ``queued``, ``running``, ``done``, ``failed`` or ``needs_trim``."""

    platform: str
    #: The language of its subtitles, and how they reach viewers (attach, burn, off).
    language: str
    captions: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    bytes: int | None = None


class AnswerMediaView(BaseModel):
    """What the probe found, the platforms' flags, and the media worker's progress."""

    info: MediaInfo | None
    flags: list[Flag]
    poster_url: str | None
    transcript: JobStatusView | None
    renditions: list[RenditionStatusView]
    #: Every reply's rendition is ready: the answer can be approved.
    ready: bool


def media_view(answer: Answer, status: MediaStatus) -> AnswerMediaView:
    renditions = []
    for r in status.renditions:
        result = r.result or {}
        renditions.append(
            RenditionStatusView(
                platform=r.platform,
                language=r.language,
                captions=r.captions,
                state=r.state,
                progress=r.progress,
                note=r.note,
                error=r.error,
                width=result.get("width"),
                height=result.get("height"),
                fps=result.get("fps"),
                duration_s=result.get("duration_s"),
                bytes=result.get("bytes"),
            )
        )
    transcript = status.transcript
    return AnswerMediaView(
        info=status.info,
        flags=status.flags,
        poster_url=f"/api/answers/{answer.id}/poster" if status.poster else None,
        transcript=JobStatusView(
            state=transcript.state,
            progress=transcript.progress,
            note=transcript.note,
            error=transcript.error,
        )
        if transcript is not None
        else None,
        renditions=renditions,
        ready=status.ready,
    )


class AnswerView(BaseModel):
    id: str
    question_id: str
    state: str
    mime: str
    bytes: int
    sha256: str
    duration_s: float | None
    caption: str
    #: What was said, in the speaker's language (the machine's until people edit it).
    transcript: str
    #: ``team``, ``machine`` or ``edited`` (empty: not transcribed yet).
    transcript_source: str
    transcript_language: str | None
    #: What was said, in English.
    translation: str
    language: str
    #: The moderator's cut (seconds kept), when there is one.
    trim_start_s: float | None
    trim_end_s: float | None
    uploaded_by: str
    created_at: datetime
    reviewed_by: str | None
    review_note: str
    video_url: str
    consent: ConsentView | None
    media: AnswerMediaView | None = None
    #: What a moderator reviews besides the video (words, subtitles, cut), as a
    #: fingerprint: an approval naming an older one is refused (409 ``answer_changed``).
    revision: str = ""


def answer_view(
    answer: Answer, consent: Consent | None, status: MediaStatus | None = None
) -> AnswerView:
    return from_row(
        AnswerView,
        answer,
        video_url=f"/api/answers/{answer.id}/video",
        revision=answer_revision(answer),
        consent=from_row(ConsentView, consent) if consent else None,
        media=media_view(answer, status) if status is not None else None,
    )


class OutcomeView(BaseModel):
    question_id: str
    ok: bool
    status: str | None
    error: str | None
    code: str | None


def outcome_view(outcome: Outcome) -> OutcomeView:
    return from_row(OutcomeView, outcome)


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme, not a secret
    expires_in: int
    role: str
    team: str | None


class Me(BaseModel):
    username: str
    role: str
    team: str | None


class Claimed(BaseModel):
    question_id: str
    until: datetime


class ActionResult(BaseModel):
    question_id: str
    status: str


class ReplyView(BaseModel):
    reply_id: str
    question_id: str
    platform: str
    state: str


class UploadView(BaseModel):
    upload_id: str
    question_id: str
    size: int
    offset: int
    complete: bool
