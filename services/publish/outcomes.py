"""What the publisher's use cases return to the agents, and the messages they announce.

Each call returns :class:`Done` (produce the message, if any, and move on) or
:class:`Retry` (do the same input again at ``at``); a request refused before
anything is done is a :class:`Rejection`. The ``replies.published`` and
``replies.failed`` messages are built from the reply's ledger row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from services.common.messages import Platform as PlatformName
from services.common.messages import PublishReply, ReplyFailed, ReplyPublished, utcnow
from services.publish.exceptions import FinalError
from services.publish.models import Reply, ReplyState


@dataclass(frozen=True)
class Done:
    """Handled for good: produce ``message`` (when there is one), then commit."""

    message: ReplyPublished | ReplyFailed | None = None


@dataclass(frozen=True)
class Retry:
    """Not handled yet: keep the input (do not commit past it) and try again at ``at``
    (epoch seconds)."""

    at: float
    reason: str


Outcome = Done | Retry


@dataclass(frozen=True)
class Rejection:
    """Why a (validly signed) request is refused before anything is done: ``reason``
    labels the metric, ``message`` goes to the dead letter and to ``replies.failed``."""

    reason: str
    message: str

    def failed(self, request: PublishReply) -> ReplyFailed:
        return ReplyFailed(
            reply_id=request.reply_id,
            question_id=request.question_id,
            platform=request.platform,
            error=self.message[:4000],
            attempts=0,
            retryable=False,
            at=utcnow(),
        )


def published_message(row: Reply) -> ReplyPublished:
    assert row.post_id is not None
    return ReplyPublished(
        reply_id=row.reply_id,
        question_id=row.question_id,
        platform=PlatformName(row.platform),
        post_id=row.post_id,
        url=row.url,
        at=row.published_at or row.updated_at,
    )


def failed_message(row: Reply) -> ReplyFailed:
    return ReplyFailed(
        reply_id=row.reply_id,
        question_id=row.question_id,
        platform=PlatformName(row.platform),
        error=(row.error or "failed")[:4000],
        attempts=row.attempts,
        retryable=bool(row.retryable),
        at=row.updated_at,
    )


def outcome_message(row: Reply) -> ReplyPublished | ReplyFailed | None:
    """What a reply in a final state announces (again, on a redelivered request)."""
    if row.state in (ReplyState.PUBLISHED, ReplyState.WITHDRAWN):
        return published_message(row) if row.post_id else None
    return failed_message(row)


def describe_final(exc: FinalError) -> str:
    """The platform's refusal with its error body, for ``replies.failed``."""
    if exc.error is None:
        return exc.message
    body = exc.error if isinstance(exc.error, str) else json.dumps(exc.error, ensure_ascii=False)
    return f"{exc.message} | {body}"[:4000]
