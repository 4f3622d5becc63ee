"""Protection's state in the ledger database: the replies seen under our published
answers (``watched_replies``, once per platform and native id) and the hide /
unhide actions (``reply_actions``, once per action id). Every method is one short
transaction; what is recorded is durable before anything is announced."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.common.codec import encode
from services.common.messages import ModerateReply, ReplyReceived, utcnow
from services.publish.models import (
    ActionState,
    Reply,
    ReplyAction,
    ReplyState,
    ReportState,
    WatchedReply,
)


class ProtectLedger:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self.now = now
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    # -- watching ------------------------------------------------------------------

    async def watched_answers(self, since: datetime) -> list[Reply]:
        """Our replies published since ``since`` and still up: the answers watched."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Reply)
                .where(
                    Reply.state == ReplyState.PUBLISHED.value,
                    Reply.post_id.is_not(None),
                    Reply.published_at >= since,
                )
                .order_by(Reply.published_at)
            )
            return list(rows)

    async def seen_under(self, answer_post_id: str) -> list[str]:
        """The native ids of the replies already seen under one answer."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(WatchedReply.native_id).where(WatchedReply.answer_post_id == answer_post_id)
            )
            return list(rows)

    async def record_seen(self, message: ReplyReceived) -> bool:
        """Keep a reply the first time it is seen; False when it was already kept."""
        async with self._sessions() as session:
            if await session.get(WatchedReply, message.id) is not None:
                return False
            session.add(
                WatchedReply(
                    reply_key=message.id,
                    platform=message.platform.value,
                    native_id=message.native_id,
                    answer_post_id=message.answer_post_id,
                    answer_reply_id=message.answer_reply_id,
                    author_id=message.author.id,
                    payload=encode(message).decode("utf-8"),
                    hidden=False,
                    seen_at=self.now(),
                )
            )
            try:
                await session.commit()
            except IntegrityError:  # another watcher kept it first
                await session.rollback()
                return False
            return True

    async def unannounced(self, limit: int = 500) -> list[WatchedReply]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(WatchedReply)
                .where(WatchedReply.announced_at.is_(None))
                .order_by(WatchedReply.seen_at)
                .limit(limit)
            )
            return list(rows)

    async def mark_announced(self, reply_key: str) -> None:
        async with self._sessions() as session:
            await session.execute(
                update(WatchedReply)
                .where(WatchedReply.reply_key == reply_key)
                .values(announced_at=self.now())
            )
            await session.commit()

    async def watched(self, reply_key: str) -> WatchedReply | None:
        async with self._sessions() as session:
            return await session.get(WatchedReply, reply_key)

    # -- actions -------------------------------------------------------------------

    async def action(self, action_id: str) -> ReplyAction | None:
        async with self._sessions() as session:
            return await session.get(ReplyAction, action_id)

    async def start(self, command: ModerateReply) -> ReplyAction:
        """The action ``sending`` (created, or one more attempt), committed before the
        platform is called."""
        async with self._sessions() as session:
            row = await session.get(ReplyAction, command.action_id)
            now = self.now()
            if row is None:
                row = ReplyAction(
                    action_id=command.action_id,
                    reply_key=command.reply_id,
                    platform=command.platform.value,
                    action=command.action.value,
                    state=ActionState.SENDING.value,
                    how="",
                    decided_by=command.decided_by,
                    attempts=0,
                    created_at=now,
                )
                session.add(row)
            row.state = ActionState.SENDING.value
            row.attempts += 1
            row.updated_at = now
            await session.commit()
            return row

    async def start_report(self, action_id: str) -> bool:
        """Record that the action's report is being made (committed before the
        request: a compare-and-set, so one caller only); False when it was made, or
        may have been, already."""
        async with self._sessions() as session:
            changed = await session.execute(
                update(ReplyAction)
                .where(ReplyAction.action_id == action_id, ReplyAction.report_state.is_(None))
                .values(report_state=ReportState.SENDING.value, updated_at=self.now())
            )
            await session.commit()
            return bool(changed.rowcount)  # type: ignore[attr-defined]

    async def end_report(self, action_id: str, *, made: bool) -> None:
        """The report was made (``done``), or surely was not (cleared: a later try of
        the action makes it)."""
        async with self._sessions() as session:
            await session.execute(
                update(ReplyAction)
                .where(ReplyAction.action_id == action_id)
                .values(report_state=ReportState.DONE.value if made else None)
            )
            await session.commit()

    async def finish(
        self,
        command: ModerateReply,
        state: ActionState,
        *,
        how: str = "",
        error: str | None = None,
    ) -> ReplyAction:
        """The action's outcome; a done hide or unhide also sets the reply's state."""
        async with self._sessions() as session:
            row = await session.get(ReplyAction, command.action_id)
            now = self.now()
            if row is None:  # refused before it started
                row = ReplyAction(
                    action_id=command.action_id,
                    reply_key=command.reply_id,
                    platform=command.platform.value,
                    action=command.action.value,
                    decided_by=command.decided_by,
                    attempts=0,
                    created_at=now,
                )
                session.add(row)
            row.state, row.how, row.error, row.updated_at = state.value, how, error, now
            if state is ActionState.DONE:
                await session.execute(
                    update(WatchedReply)
                    .where(WatchedReply.reply_key == command.reply_id)
                    .values(hidden=command.action.value == "hide")
                )
            await session.commit()
            return row

    async def mark_action_announced(self, action_id: str) -> None:
        async with self._sessions() as session:
            await session.execute(
                update(ReplyAction)
                .where(ReplyAction.action_id == action_id)
                .values(announced_at=self.now())
            )
            await session.commit()
