"""Replies under our published answers as the tests make them: ``replies.received``
and ``replies.classified`` messages with every field settable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.common.messages import (
    Author,
    Escalation,
    Platform,
    ReplyClassified,
    ReplyReceived,
    ReplyVerdict,
    Scores,
    mention_id,
)

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def reply_received(native: str = "9001", **overrides: Any) -> ReplyReceived:
    """A reply by @someone under our X answer 8001 to question q-1, filmed: Amina."""
    platform = Platform(overrides.pop("platform", Platform.X))
    fields: dict[str, Any] = {
        "id": mention_id(platform, native),
        "platform": platform,
        "native_id": native,
        "answer_post_id": "8001",
        "answer_reply_id": "reply-1",
        "question_id": "q-1",
        "speaker_ref": "Amina, filmed in Kakuma",
        "author": Author(id="66", handle="someone"),
        "text": "go back home",
        "created_at": NOW,
        "received_at": NOW,
    }
    fields.update(overrides)
    return ReplyReceived(**fields)


def reply_classified(
    reply: ReplyReceived,
    verdict: ReplyVerdict = ReplyVerdict.HIDE,
    *escalations: Escalation,
    at: datetime = NOW,
) -> ReplyClassified:
    """``reply`` judged by rules ``r-1``: offensive 0.90 when hidden, 0.10 when kept."""
    hide = verdict is ReplyVerdict.HIDE
    return ReplyClassified(
        reply=reply,
        scores=Scores(offensive=0.9 if hide else 0.1, hate=0.1, question=0.1, relevance=0.2),
        verdict=verdict,
        rule="offensive" if hide else "clean",
        reasons=("offensive 0.90 ≥ 0.70",) if hide else (),
        escalations=escalations,
        model_version="m-1",
        rules_version="r-1",
        classified_at=at,
    )
