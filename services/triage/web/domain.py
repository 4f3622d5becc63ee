"""The moderation queue's rules, without a database: which status a
classifier decision starts in, which action moves a question from where to
where, which team to suggest, and how reply ids and texts are made."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from services.common.messages import Decision
from services.triage.web.models import Status

#: Statuses a moderator can still act on.
OPEN_FOR_MODERATION = (Status.NEW, Status.APPROVED)
#: Statuses from which a question can be given to a team (re-assigning included).
ASSIGNABLE = (Status.NEW, Status.APPROVED, Status.ASSIGNED)
#: Questions in a cluster that an approved answer also answers. Not ``recorded``: an
#: answer filmed for that asker is waiting for its own review.
AWAITING_ANSWER = (Status.NEW, Status.APPROVED, Status.ASSIGNED)


@dataclass(frozen=True)
class Move:
    allowed: tuple[Status, ...]
    to: Status


#: Moderator actions that only change the status (assign and block do more).
MODERATOR_ACTIONS: dict[str, Move] = {
    "approve": Move((Status.NEW,), Status.APPROVED),
    "reject": Move((*OPEN_FOR_MODERATION, Status.ASSIGNED), Status.REJECTED),
    "quarantine": Move(
        (Status.NEW, Status.APPROVED, Status.ASSIGNED, Status.REJECTED, Status.DROPPED),
        Status.QUARANTINED,
    ),
    "restore": Move((Status.REJECTED, Status.DROPPED, Status.QUARANTINED), Status.NEW),
}
ACTIONS = (*MODERATOR_ACTIONS, "assign", "block")


def status_for_decision(decision: Decision, *, author_blocked: bool) -> Status:
    """Where a freshly classified mention starts. A blocked author's mention is
    rejected unless it is abuse (kept in quarantine for audit)."""
    if decision is Decision.QUARANTINE:
        return Status.QUARANTINED
    if author_blocked:
        return Status.REJECTED
    if decision is Decision.DROP:
        return Status.DROPPED
    return Status.NEW  # review, and auto_assign until a team takes it


class Load(Protocol):
    @property
    def remaining(self) -> int: ...

    @property
    def team(self) -> _TeamLike: ...


class _TeamLike(Protocol):
    slug: str
    languages: str


def base_language(lang: str | None) -> str | None:
    """``en-GB`` → ``en``; ``None`` and ``und`` → ``None``."""
    if not lang:
        return None
    base = lang.split("-")[0].split("_")[0].lower()
    return None if base in ("und", "") else base


def suggest_team(lang: str | None, routed: str | None, loads: Iterable[Load]) -> str | None:
    """The team for a question: among the teams speaking its language, the one
    with the most capacity left today (the classifier's routing breaks ties);
    the routed team when no team lists the language; ``None`` when nobody can."""
    loads = list(loads)
    language = base_language(lang)
    speaking = [
        load for load in loads if language is not None and language in load.team.languages.split()
    ]
    if speaking:
        best = max(speaking, key=lambda x: (x.remaining, x.team.slug == routed))
        return best.team.slug
    if routed and any(load.team.slug == routed for load in loads):
        return routed
    return None


def reply_id(answer_id: str, mention_id: str) -> str:
    """The publisher's idempotency key for one asker and one answer: the same
    pair always gives the same id, so a repeated approval posts nothing new."""
    digest = hashlib.sha256(f"{answer_id}\x00{mention_id}".encode()).hexdigest()
    return f"reply-{digest[:32]}"


#: The reply's own text (the publisher wraps it in a per-language template).
FALLBACK_TEXT = {
    "en": "A refugee answered your question on video.",
    "fr": "Une personne réfugiée a répondu à votre question en vidéo.",
    "sw": "Mkimbizi amejibu swali lako kwa video.",
    "ar": "أجاب أحد اللاجئين على سؤالك بالفيديو.",
    "es": "Una persona refugiada respondió a tu pregunta en video.",
}


def reply_text(caption: str, language: str | None) -> str:
    """The caption the team wrote, or a short line in the answer's language."""
    caption = " ".join(caption.split())
    if caption:
        return caption[:240]
    return FALLBACK_TEXT.get(base_language(language) or "en", FALLBACK_TEXT["en"])
