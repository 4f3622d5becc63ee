"""The outbox: messages for Kafka written in the same transaction as the change
they announce (:meth:`Database.enqueue`), sent by the relay in id order and
marked sent once the broker acknowledged them, pruned after a while.

Commands for the publisher (``replies.requested``, ``consent.withdrawn``,
``replies.action``, ``speakers.paused``) are signed as they are relayed, with the
current signing key (:mod:`services.common.signing`): the publisher obeys nothing
unsigned.

A broker that lost its records (the embedded one restarted: a new epoch) also lost
the commands the publisher had not finished with yet: the producer's resend window
covers minutes, and a reply put off for a rate limit or a budget can wait for
hours. :meth:`Outbox.requeue_awaited` marks those sent again by their state here
(a reply still ``requested``, an action still ``waiting``, every withdrawal kept, each
person's latest pause or resume):
the relay sends them once more and the publisher, idempotent by id, does each once."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from sqlalchemy import delete, func, select, update

from services.common import topics
from services.common.signing import SIGNED_TOPICS, CommandKeys
from services.triage.web.models import (
    AnswerReply,
    OutboxMessage,
    Reply,
    ReplyState,
    WatchState,
)
from services.triage.web.store.transaction import Database


class Outbox:
    def __init__(self, db: Database, keys: CommandKeys | None = None) -> None:
        self.db = db
        #: Signs the commands; None only in tests of the web alone.
        self.keys = keys

    async def pending(self, limit: int = 200) -> list[OutboxMessage]:
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None))
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
            return list(rows)

    async def relay(
        self, send: Callable[[Sequence[OutboxMessage]], Awaitable[None]], limit: int = 200
    ) -> int:
        """Send the oldest unsent messages with ``send`` and mark them sent, in one
        transaction. On Postgres the rows are locked ``SKIP LOCKED``: web replicas
        relaying at once each take other rows instead of all sending the same ones.
        ``send`` returns once the broker acknowledged; if it raises, nothing is marked.
        """
        async with self.db.sessions() as session, session.begin():
            rows = list(
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.sent_at.is_(None))
                    .order_by(OutboxMessage.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if rows:
                if self.keys is not None:
                    for row in rows:  # the row keeps what was sent
                        if row.topic in SIGNED_TOPICS:
                            row.value = self.keys.sign(row.topic, row.value)
                await send(rows)
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_([r.id for r in rows]))
                    .values(sent_at=self.db.clock())
                )
            return len(rows)

    async def requeue_awaited(self) -> int:
        """Mark unsent again the commands sent whose outcome has not come back: the
        request of every reply still ``requested``, the last action asked for every
        reply under an answer still ``waiting``, every withdrawal of consent kept
        (the publisher's take-downs are idempotent), and the latest pause or resume of
        each person (the publisher ignores one older than what it has). Returns how many."""
        async with self.db.sessions() as session, session.begin():
            awaited = set(
                await session.scalars(
                    select(Reply.reply_id).where(Reply.state == ReplyState.REQUESTED.value)
                )
            )
            waiting = set(
                await session.scalars(
                    select(AnswerReply.reply_id).where(
                        AnswerReply.state == WatchState.WAITING.value
                    )
                )
            )
            rows = await session.execute(
                select(
                    OutboxMessage.id, OutboxMessage.topic, OutboxMessage.key, OutboxMessage.value
                )
                .where(
                    OutboxMessage.sent_at.is_not(None),
                    OutboxMessage.topic.in_(
                        [
                            topics.REPLIES_REQUESTED,
                            topics.REPLIES_ACTION,
                            topics.CONSENT_WITHDRAWN,
                            topics.SPEAKERS_PAUSED,
                        ]
                    ),
                )
                .order_by(OutboxMessage.id)
            )
            again: list[int] = []
            last_action: dict[bytes, int] = {}
            last_pause: dict[bytes, int] = {}
            for row_id, topic, key, value in rows:
                if topic == topics.CONSENT_WITHDRAWN:
                    again.append(row_id)
                elif topic == topics.SPEAKERS_PAUSED:
                    last_pause[key] = row_id  # ascending ids: the newest wins
                elif topic == topics.REPLIES_ACTION:
                    if key.decode("utf-8", "replace") in waiting:
                        last_action[key] = row_id  # ascending ids: the newest wins
                elif awaited and reply_id_of(value) in awaited:
                    again.append(row_id)
            again += last_action.values()
            again += last_pause.values()
            if again:
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(again))
                    .values(sent_at=None)
                    .execution_options(synchronize_session=False)
                )
            return len(again)

    async def backlog(self) -> int:
        async with self.db.sessions() as session:
            count = await session.scalar(
                select(func.count(OutboxMessage.id)).where(OutboxMessage.sent_at.is_(None))
            )
            return int(count or 0)

    async def prune(self, older_than: timedelta) -> int:
        async with self.db.sessions() as session:
            result = await session.execute(
                delete(OutboxMessage).where(
                    OutboxMessage.sent_at.is_not(None),
                    OutboxMessage.sent_at < self.db.clock() - older_than,
                )
            )
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


def reply_id_of(value: bytes) -> str | None:
    """The ``reply_id`` of a ``replies.requested`` command as it was sent."""
    try:
        found = json.loads(value).get("reply_id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None
