"""The moderation queue's rules, without a database: which status a
classifier decision starts in, which action moves a question from where to
where, which team to suggest, and how reply ids and texts are made."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
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


#: The response-time target: a question waiting longer than this is marked late.
RESPONSE_TARGET = timedelta(hours=24)


def waiting(received_at: datetime, now: datetime) -> tuple[str, bool]:
    """How long a question has waited, in words ("40 min", "5 h", "3 days"), and
    whether it is past :data:`RESPONSE_TARGET`."""
    age = max(now - received_at, timedelta(0))
    minutes = int(age.total_seconds() // 60)
    if minutes < 60:
        words = f"{minutes} min"
    elif minutes < 48 * 60:
        words = f"{minutes // 60} h"
    else:
        words = f"{minutes // (24 * 60)} days"
    return words, age > RESPONSE_TARGET


#: How long a moderator can take an action back (the toast's Undo, the ``z`` key).
UNDO_WINDOW = timedelta(minutes=10)
#: Timeline events an undo can take back (their ``from_status`` is where it goes back to).
UNDOABLE = ("approve", "reject", "quarantine", "restore", "assigned", "author_blocked")


def why_not_undo(
    event: str | None,
    *,
    actor: str | None,
    by: str,
    from_status: str | None,
    age: timedelta | None,
) -> str | None:
    """Why the last status change of a question cannot be undone by ``by``; ``None``
    when it can. Only one's own last action, soon after, and only when it did not
    take the question from a team (that assignment ended; assign it again)."""
    if event is None or from_status is None:
        return "nothing to undo"
    if event not in UNDOABLE:
        return f"the last change ({event.replace('_', ' ')}) cannot be undone"
    if actor != by:
        return f"{actor} changed it since"
    if age is not None and age > UNDO_WINDOW:
        return "too late to undo (after 10 minutes); act on it again"
    if from_status == Status.ASSIGNED.value:
        return "it was taken from a team: assign it again instead"
    return None


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


#: A tag: letters (any script), digits and dashes, at most 32 of them.
_TAG = re.compile(r"^[^\W_](?:[\w-]{0,30}[^\W_])?$")
#: Most tags one question carries.
MAX_TAGS = 12


def normalise_tag(raw: str) -> str | None:
    """A moderator's tag as stored: trimmed, lower case, spaces and underscores as
    dashes (``" Ask the camp "`` → ``ask-the-camp``); ``None`` when it is not one."""
    tag = re.sub(r"[\s_]+", "-", raw.strip().casefold()).strip("-")
    return tag if _TAG.match(tag) else None


#: Names of the languages a moderator is likely to meet, for the question page.
LANGUAGE_NAMES = {
    "en": "English",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "ar": "Arabic",
    "sw": "Swahili",
    "so": "Somali",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "tr": "Turkish",
    "am": "Amharic",
    "ti": "Tigrinya",
    "fa": "Persian",
    "ps": "Pashto",
    "uk": "Ukrainian",
    "ru": "Russian",
}


def language_name(lang: str | None) -> str:
    """``de-AT`` → ``German (de-AT)``; a code without a name stays as it is."""
    base = base_language(lang)
    if not lang or base is None:
        return "language unknown"
    name = LANGUAGE_NAMES.get(base)
    return f"{name} ({lang})" if name else lang


def base_language(lang: str | None) -> str | None:
    """``en-GB`` → ``en``; ``None`` and ``und`` → ``None``."""
    if not lang:
        return None
    base = lang.split("-")[0].split("_")[0].lower()
    return None if base in ("und", "") else base


@dataclass(frozen=True)
class Suggestion:
    """The team to suggest for a question (``None``: none fits) and why, in words."""

    slug: str | None
    why: str


def suggest(lang: str | None, routed: str | None, loads: Iterable[Load]) -> Suggestion:
    """Among the teams speaking the question's language and with capacity left today,
    the one with the most left (the classifier's routing breaks ties); else the routed
    team when it has capacity left; a full team is never suggested."""
    loads = list(loads)
    language = base_language(lang)
    speaking = [
        load for load in loads if language is not None and language in load.team.languages.split()
    ]
    open_ = [load for load in speaking if load.remaining > 0]
    if open_:
        best = max(open_, key=lambda x: (x.remaining, x.team.slug == routed))
        return Suggestion(
            best.team.slug, f"speaks {language}; the most room today: {best.remaining} more"
        )
    routed_load = next((load for load in loads if load.team.slug == routed), None)
    if speaking:
        return Suggestion(None, f"every team speaking {language} is full today")
    unknown = f"no team speaks {language}" if language else "language unknown"
    if routed_load is not None and routed_load.remaining > 0:
        return Suggestion(routed, f"the routing rules send it there ({unknown})")
    if routed_load is not None:
        return Suggestion(None, f"{routed}, where the routing sends it, is full today ({unknown})")
    return Suggestion(None, unknown)


def suggest_team(lang: str | None, routed: str | None, loads: Iterable[Load]) -> str | None:
    """The slug :func:`suggest` picks (``None`` when nobody can)."""
    return suggest(lang, routed, loads).slug


def assignment_warnings(lang: str | None, languages: str, remaining: int) -> list[str]:
    """What a moderator should know before giving a question to a team: it is full
    today, or it does not list the question's language."""
    warnings: list[str] = []
    if remaining <= 0:
        warnings.append("full today")
    language = base_language(lang)
    if language is not None and language not in languages.split():
        warnings.append(f"does not speak {language}")
    return warnings


class _Reviewable(Protocol):
    transcript: str
    translation: str
    cues_json: str
    cues_en_json: str
    subtitles_source: str
    trim_start_s: float | None
    trim_end_s: float | None


def answer_revision(answer: _Reviewable) -> str:
    """A fingerprint of what a moderator reviews of an answer besides its video: the
    words (transcript, translation), the subtitles burned into each version, and the
    cut. An approval naming another revision is refused: the team changed them after
    the moderator looked."""
    seen = (
        answer.transcript, answer.translation, answer.cues_json, answer.cues_en_json,
        answer.subtitles_source, answer.trim_start_s, answer.trim_end_s,
    )  # fmt: skip
    return hashlib.sha256(repr(seen).encode()).hexdigest()[:16]


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
    "de": "Eine geflüchtete Person hat deine Frage per Video beantwortet.",
    "so": "Qof qaxooti ah ayaa su'aashaada ku jawaabay muuqaal.",
}


#: Prepared reply texts per language, offered in the approval dialog (a moderator
#: starts from one and edits it).
CANNED_REPLIES: dict[str, tuple[str, ...]] = {
    "en": (
        FALLBACK_TEXT["en"],
        "Thank you for asking. Here is the answer, filmed in the camp.",
    ),
    "fr": (
        FALLBACK_TEXT["fr"],
        "Merci pour votre question. Voici la réponse, filmée dans le camp.",
    ),
    "sw": (FALLBACK_TEXT["sw"], "Asante kwa swali lako. Hili ndilo jibu, kutoka kambini."),
    "ar": (FALLBACK_TEXT["ar"], "شكرًا على سؤالك. إليك الإجابة، مصوّرة في المخيم."),
    "es": (
        FALLBACK_TEXT["es"],
        "Gracias por tu pregunta. Aquí está la respuesta, grabada en el campamento.",
    ),
    "de": (FALLBACK_TEXT["de"], "Danke für deine Frage. Hier ist die Antwort, gefilmt im Camp."),
    "so": (FALLBACK_TEXT["so"], "Mahadsanid su'aashaada. Halkan waa jawaabta, laga duubay xerada."),
}


def canned_replies(language: str | None) -> tuple[str, ...]:
    """The prepared replies in the answer's language (none for a language without)."""
    return CANNED_REPLIES.get(base_language(language) or "", ())


def reply_for(
    caption: str, answer_language: str | None, asker_language: str | None
) -> tuple[str, str | None]:
    """(text, language) of the reply to one asker of a cluster, which may span
    languages: an asker in the answer's language gets its caption; one in another
    language with a prepared line (and so publisher templates) gets that line in
    their own language, the video carrying the answer; any other asker, the
    caption in the answer's language."""
    asker, answer = base_language(asker_language), base_language(answer_language)
    if asker is None or asker == answer or asker not in FALLBACK_TEXT:
        return reply_text(caption, answer_language), answer_language
    return FALLBACK_TEXT[asker], asker


def reply_text(caption: str, language: str | None) -> str:
    """The caption the team wrote, or a short line in the answer's language."""
    caption = " ".join(caption.split())
    if caption:
        return caption[:240]
    return FALLBACK_TEXT.get(base_language(language) or "en", FALLBACK_TEXT["en"])
