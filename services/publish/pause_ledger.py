"""People paused and their held replies, in the ledger database (``speaker_pauses``,
``held_replies``): the decision in force for each person (a pause or a resume, the
latest by :func:`~services.publish.domain.supersedes`), the replies held while their
person is paused, and their release once requested again. Every method is one
short transaction.

:class:`PauseLedger` is a part of :class:`~services.publish.ledger.Ledger`, which
gives it its sessions and clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.messages import PublishReply, SpeakerPaused
from services.publish.domain import SPEAKER_PAUSED, PauseFact, held, supersedes
from services.publish.models import DecisionRecord, HeldReply, SpeakerPause


class PauseLedger:
    """Paused people and held replies: a part of :class:`~services.publish.ledger.Ledger`
    (its ``now`` and ``_sessions``)."""

    now: Callable[[], datetime]
    _sessions: async_sessionmaker[AsyncSession]

    async def record_pause(self, event: SpeakerPaused) -> bool:
        """Record a pause or resume unless the decision in force is as recent or newer
        (:func:`~services.publish.domain.supersedes`); True when it now is in force."""
        try:
            return await self._record_pause(event)
        except IntegrityError:  # another publisher recorded the person first: compare again
            return await self._record_pause(event)

    async def _record_pause(self, event: SpeakerPaused) -> bool:
        new = PauseFact(event.paused, event.at, event.decided_by, event.reason)
        async with self._sessions() as session, session.begin():
            row = await session.get(SpeakerPause, event.speaker_ref, with_for_update=True)
            if not supersedes(new, _pause_fact(row)):
                return False
            if row is None:
                row = SpeakerPause(speaker_ref=event.speaker_ref)
                session.add(row)
            row.paused, row.at = event.paused, event.at
            row.decided_by, row.reason = event.decided_by, event.reason
            row.recorded_at = self.now()
            return True

    async def pause_of(self, speaker_ref: str) -> PauseFact | None:
        async with self._sessions() as session:
            return _pause_fact(await session.get(SpeakerPause, speaker_ref))

    async def hold_if_paused(self, request: PublishReply, command: bytes | None) -> str | None:
        """Hold the reply when its person is paused: why (kept in ``held_replies`` with
        ``command``, and a ``speaker_paused`` / ``hold`` decision the first time), else
        None. The person's row stays locked until the hold is committed, so a resume
        recorded meanwhile finds the held reply once it is recorded."""
        async with self._sessions() as session, session.begin():
            pause = await session.get(
                SpeakerPause, request.consent.speaker_ref, with_for_update=True
            )
            why = held(request, _pause_fact(pause))
            if why is None:
                return None
            row = await session.get(HeldReply, request.reply_id)
            if row is None:
                now = self.now()
                session.add(
                    HeldReply(
                        reply_id=request.reply_id,
                        speaker_ref=request.consent.speaker_ref,
                        question_id=request.question_id,
                        command=command,
                        held_at=now,
                    )
                )
                session.add(
                    DecisionRecord(
                        reply_id=request.reply_id,
                        rule=SPEAKER_PAUSED,
                        verdict="hold",
                        reason=why,
                        at=now,
                    )
                )
            elif row.command is None:
                row.command = command
            return why

    async def held_for_resumed(self, speaker_ref: str | None = None) -> list[HeldReply]:
        """Held replies whose person is no longer paused (``speaker_ref``'s, or anyone's),
        oldest first: to be requested again."""
        async with self._sessions() as session:
            paused = select(SpeakerPause.speaker_ref).where(SpeakerPause.paused.is_(True))
            query = select(HeldReply).where(HeldReply.speaker_ref.not_in(paused))
            if speaker_ref is not None:
                query = query.where(HeldReply.speaker_ref == speaker_ref)
            return list(await session.scalars(query.order_by(HeldReply.held_at)))

    async def release(self, reply_id: str) -> bool:
        """The held reply was requested again: no longer held, unless its person was
        paused again meanwhile (then it stays, for the next resume). True when released."""
        async with self._sessions() as session, session.begin():
            row = await session.get(HeldReply, reply_id, with_for_update=True)
            if row is None:
                return False
            pause = await session.get(SpeakerPause, row.speaker_ref, with_for_update=True)
            if pause is not None and pause.paused:
                return False
            await session.delete(row)
            session.add(
                DecisionRecord(
                    reply_id=reply_id,
                    rule=SPEAKER_PAUSED,
                    verdict="release",
                    reason=f"publishing {row.speaker_ref} resumed: the reply is requested again",
                    at=self.now(),
                )
            )
            return True


def _pause_fact(row: SpeakerPause | None) -> PauseFact | None:
    if row is None:
        return None
    return PauseFact(row.paused, row.at, row.decided_by, row.reason)
