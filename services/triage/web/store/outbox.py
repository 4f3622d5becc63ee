"""The outbox: messages for Kafka written in the same transaction as the change
they announce (:meth:`Database.enqueue`), sent by the relay in id order and
marked sent once the broker acknowledged them, pruned after a while.

Commands for the publisher (``replies.requested``, ``consent.withdrawn``) are
signed as they are relayed, with the current signing key
(:mod:`services.common.signing`): the publisher obeys nothing unsigned."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from sqlalchemy import delete, func, select, update

from services.common.signing import SIGNED_TOPICS, CommandKeys
from services.triage.web.models import OutboxMessage
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
