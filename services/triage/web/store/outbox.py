"""The outbox: messages for Kafka written in the same transaction as the change
they announce (:meth:`Database.enqueue`), sent by the relay in id order and
marked sent once the broker acknowledged them, pruned after a while (except the
commands still in effect, below).

Commands for the publisher (``replies.requested``, ``consent.withdrawn``,
``replies.action``, ``speakers.paused``) are signed as they are relayed, with the
current signing key (:mod:`services.common.signing`): the publisher obeys nothing
unsigned.

A broker that lost its records (the embedded one restarted: a new epoch) also lost
the commands the publisher had not finished with yet: the producer's resend window
covers minutes, and a reply put off for a rate limit or a budget can wait for
hours. :meth:`Outbox.requeue_awaited` marks those sent again by their state here
(a reply still ``requested``, an action still ``waiting``, every withdrawal, each
person's latest pause or resume): the relay sends them once more and the publisher,
idempotent by id, does each once. :meth:`Outbox.prune` keeps those, however old."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

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
        """Mark unsent again the commands sent whose outcome has not come back
        (:meth:`_in_effect`). Returns how many."""
        async with self.db.sessions() as session, session.begin():
            again = await self._in_effect(session)
            for chunk in _chunks(again):
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(chunk))
                    .values(sent_at=None)
                    .execution_options(synchronize_session=False)
                )
            return len(again)

    @staticmethod
    async def _in_effect(session: AsyncSession) -> list[int]:
        """The sent commands the publisher may still need: the request of every reply
        still ``requested``, the last action asked for every reply under an answer still
        ``waiting``, every withdrawal of consent (the publisher's take-downs are
        idempotent), and the latest pause or resume of each person (the publisher
        ignores one older than what it has). Their ids, ascending."""
        awaited = set(
            await session.scalars(
                select(Reply.reply_id).where(Reply.state == ReplyState.REQUESTED.value)
            )
        )
        waiting = set(
            await session.scalars(
                select(AnswerReply.reply_id).where(AnswerReply.state == WatchState.WAITING.value)
            )
        )
        rows = await session.execute(
            select(OutboxMessage.id, OutboxMessage.topic, OutboxMessage.key, OutboxMessage.value)
            .where(OutboxMessage.sent_at.is_not(None), OutboxMessage.topic.in_(_COMMANDS))
            .order_by(OutboxMessage.id)
        )
        kept: list[int] = []
        last_action: dict[bytes, int] = {}
        last_pause: dict[bytes, int] = {}
        for row_id, topic, key, value in rows:
            if topic == topics.CONSENT_WITHDRAWN:
                kept.append(row_id)
            elif topic == topics.SPEAKERS_PAUSED:
                last_pause[key] = row_id  # ascending ids: the newest wins
            elif topic == topics.REPLIES_ACTION:
                if key.decode("utf-8", "replace") in waiting:
                    last_action[key] = row_id  # ascending ids: the newest wins
            elif awaited and reply_id_of(value) in awaited:
                kept.append(row_id)
        return sorted([*kept, *last_action.values(), *last_pause.values()])

    async def backlog(self) -> int:
        async with self.db.sessions() as session:
            count = await session.scalar(
                select(func.count(OutboxMessage.id)).where(OutboxMessage.sent_at.is_(None))
            )
            return int(count or 0)

    async def prune(self, older_than: timedelta) -> int:
        """Delete the messages sent more than ``older_than`` ago, except the commands
        still in effect (:meth:`_in_effect`): a reply held for weeks while its speaker
        is paused keeps its request, so a broker that lost it can be given it again
        (and the subtitle files it names stay known to the media sweep). How many."""
        async with self.db.sessions() as session, session.begin():
            old = await session.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.sent_at.is_not(None),
                    OutboxMessage.sent_at < self.db.clock() - older_than,
                )
            )
            keep = set(await self._in_effect(session))
            gone = [row_id for row_id in old if row_id not in keep]
            for chunk in _chunks(gone):
                await session.execute(
                    delete(OutboxMessage)
                    .where(OutboxMessage.id.in_(chunk))
                    .execution_options(synchronize_session=False)
                )
            return len(gone)


#: The commands for the publisher that :meth:`Outbox.requeue_awaited` may send again.
_COMMANDS = (
    topics.REPLIES_REQUESTED,
    topics.REPLIES_ACTION,
    topics.CONSENT_WITHDRAWN,
    topics.SPEAKERS_PAUSED,
)


def _chunks(ids: Sequence[int], size: int = 500) -> list[Sequence[int]]:
    """``ids`` in pieces small enough for one statement's parameters."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def reply_id_of(value: bytes) -> str | None:
    """The ``reply_id`` of a ``replies.requested`` command as it was sent."""
    try:
        found = json.loads(value).get("reply_id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None
