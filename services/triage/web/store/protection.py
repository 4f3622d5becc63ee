"""The replies under our published answers, as moderators see them: each reply once
(from ``replies.classified``), what the rules asked (a hide, signed and sent to the
publisher through the outbox), what the platform did (``replies.moderated``), every
moderator's hide and unhide, the alerts (threats, doxxing, pile-ons) and the people
whose publishing is paused (each pause and resume is also a signed command to the
publisher, which holds the replies already requested). One transaction per call.

A reply a moderator shows again is ``sticky``: the rules never hide it again."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import topics
from services.common.codec import DecodeError, decode, encode_key
from services.common.messages import (
    Author,
    Escalation,
    ModerateReply,
    ModerationAction,
    ModerationOutcome,
    Platform,
    ReplyClassified,
    ReplyModerated,
    ReplyVerdict,
    SpeakerPaused,
)
from services.triage.rules import Protection as Rules
from services.triage.web.exceptions import Conflict, NotFound
from services.triage.web.models import (
    AnswerReply,
    OutboxMessage,
    PausedSpeaker,
    ProtectionAlert,
    ReplyEvent,
    WatchState,
)
from services.triage.web.store.transaction import Actor, Database, new_id

log = logging.getLogger(__name__)

#: The states a reply list can be filtered by, in the page's order.
STATES = tuple(WatchState)


@dataclass(frozen=True)
class Ingested:
    reply: AnswerReply
    alerts: list[ProtectionAlert]


class Protection:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- from the stream -------------------------------------------------------------

    async def ingest(self, message: ReplyClassified, rules: Rules) -> Ingested | None:
        """Store a judged reply once (None when it was already stored); a hide the
        rules ask goes to the outbox, escalations raise alerts and may pause the
        person's publishing."""
        reply = message.reply
        now = self.db.clock()
        rules_actor = f"rules {message.rules_version or '?'}"
        async with self.db.sessions() as session, session.begin():
            if await session.get(AnswerReply, reply.id) is not None:
                return None
            hide = message.verdict is ReplyVerdict.HIDE
            row = AnswerReply(
                reply_id=reply.id,
                platform=reply.platform.value,
                native_id=reply.native_id,
                kind=reply.kind.value,
                answer_post_id=reply.answer_post_id,
                question_id=reply.question_id,
                speaker_ref=reply.speaker_ref,
                author_id=reply.author.id,
                author_handle=reply.author.handle,
                text=reply.text,
                url=reply.url,
                offensive=message.scores.offensive,
                hate=message.scores.hate,
                verdict=message.verdict.value,
                rule=message.rule,
                reasons_json=json.dumps(list(message.reasons)),
                escalations=",".join(e.value for e in message.escalations),
                model_version=message.model_version,
                state=(WatchState.WAITING if hide else WatchState.KEPT).value,
                sticky=False,
                decided_by=rules_actor,
                how="",
                created_at=reply.created_at,
                received_at=now,
                updated_at=now,
            )
            session.add(row)
            detail = f"{message.verdict.value} by rule {message.rule}: " + "; ".join(
                message.reasons
            )
            self._event(session, row.reply_id, rules_actor, "classified", detail)
            if hide:
                report = any(e in rules.report_on for e in message.escalations)
                self._ask(
                    session, row, ModerationAction.HIDE, rules_actor, report=report, reason=detail
                )
            kinds = list(message.escalations)
            await session.flush()
            if hide and await self._pile_on(session, row, rules):
                kinds.append(Escalation.PILE_ON)
                row.escalations = ",".join(k.value for k in kinds)
            alerts = [await self._alert(session, row, kind, rules) for kind in kinds]
        for alert in alerts:
            log.warning(
                "protection alert %s under answer %s (question %s): %s",
                alert.kind,
                alert.answer_post_id,
                alert.question_id,
                alert.detail,
            )
        return Ingested(row, alerts)

    async def moderated(self, event: ReplyModerated) -> bool:
        """What the publisher did with an action; False when the reply is unknown."""
        async with self.db.sessions() as session, session.begin():
            row = await session.get(AnswerReply, event.reply_id)
            if row is None:
                return False
            hidden = event.action is ModerationAction.HIDE
            done = event.outcome is ModerationOutcome.DONE
            name = ("hidden" if hidden else "shown") if done else event.outcome.value
            # Only the outcome of what is wanted now changes the state: a late outcome
            # of an action a moderator has since reversed goes on the timeline only.
            wanted_hidden = not row.sticky and row.state != WatchState.KEPT.value
            if hidden == wanted_hidden:
                if not done:
                    row.state, row.error = WatchState.FAILED.value, event.error
                else:
                    row.how, row.error = event.how, None
                    row.state = (
                        WatchState.HIDDEN
                        if hidden
                        else WatchState.RESTORED
                        if row.sticky
                        else WatchState.KEPT
                    ).value
            row.updated_at = self.db.clock()
            detail = f"{event.action.value}: {event.how or event.outcome.value}"
            if event.error:
                detail += f" ({event.error[:300]})"
            self._event(session, row.reply_id, f"publisher ({event.platform.value})", name, detail)
            return True

    # -- moderators ------------------------------------------------------------------

    async def unhide(self, reply_id: str, actor: Actor) -> AnswerReply:
        """Show a reply again: it is ``restored`` and never hidden again automatically."""
        return await self._decide(reply_id, actor, ModerationAction.UNHIDE)

    async def hide(self, reply_id: str, actor: Actor) -> AnswerReply:
        """Hide a reply the rules kept (or one a moderator restored)."""
        return await self._decide(reply_id, actor, ModerationAction.HIDE)

    async def _decide(self, reply_id: str, actor: Actor, action: ModerationAction) -> AnswerReply:
        """A moderator's hide or unhide: the reply's new state, the command, the audit
        (nothing when the reply is already where it is asked to be)."""
        hide = action is ModerationAction.HIDE
        async with self.db.sessions() as session, session.begin():
            row = await self._row(session, reply_id)
            done = (
                row.state in (WatchState.HIDDEN.value, WatchState.WAITING.value)
                if hide
                else row.sticky and row.state in (WatchState.KEPT.value, WatchState.RESTORED.value)
            )
            if done:
                return row
            row.sticky = not hide
            row.state = (WatchState.WAITING if hide else WatchState.RESTORED).value
            row.decided_by, row.updated_at = actor.name, self.db.clock()
            self._ask(session, row, action, actor.name, report=False, reason="moderator")
            self.db.audit(session, actor, f"{action.value}_reply", f"reply:{reply_id}", {})
            return row

    async def replies(self, states: Sequence[str] = (), *, limit: int = 500) -> list[AnswerReply]:
        async with self.db.sessions() as session:
            query = select(AnswerReply).order_by(AnswerReply.received_at.desc()).limit(limit)
            if states:
                query = query.where(AnswerReply.state.in_(list(states)))
            return list(await session.scalars(query))

    async def counts(self) -> dict[str, int]:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(AnswerReply.state, func.count()).group_by(AnswerReply.state)
            )
            return {str(state): int(count) for state, count in rows.all()}

    async def timeline(self, reply_id: str) -> list[ReplyEvent]:
        async with self.db.sessions() as session:
            await self._row(session, reply_id)
            rows = await session.scalars(
                select(ReplyEvent).where(ReplyEvent.reply_id == reply_id).order_by(ReplyEvent.id)
            )
            return list(rows)

    async def alerts(self, *, open_only: bool = True) -> list[ProtectionAlert]:
        async with self.db.sessions() as session:
            query = select(ProtectionAlert).order_by(ProtectionAlert.id.desc()).limit(200)
            if open_only:
                query = query.where(ProtectionAlert.acknowledged_at.is_(None))
            return list(await session.scalars(query))

    async def acknowledge(self, alert_id: int, actor: Actor) -> ProtectionAlert:
        async with self.db.sessions() as session, session.begin():
            alert = await session.get(ProtectionAlert, alert_id)
            if alert is None:
                raise NotFound(f"no alert {alert_id}")
            if alert.acknowledged_at is None:
                alert.acknowledged_by, alert.acknowledged_at = actor.name, self.db.clock()
                self.db.audit(session, actor, "acknowledge_alert", f"alert:{alert_id}", {})
            return alert

    async def paused(self) -> list[PausedSpeaker]:
        async with self.db.sessions() as session:
            return list(await session.scalars(select(PausedSpeaker).order_by(PausedSpeaker.at)))

    async def pause(self, speaker_ref: str, actor: Actor, reason: str) -> PausedSpeaker:
        async with self.db.sessions() as session, session.begin():
            return await self._pause(session, speaker_ref, actor.name, reason)

    async def resume(self, speaker_ref: str, actor: Actor) -> None:
        """Resume publishing a person: the publisher sends the replies it held."""
        async with self.db.sessions() as session, session.begin():
            row = await session.get(PausedSpeaker, speaker_ref)
            if row is None:
                raise Conflict(f"publishing {speaker_ref!r} is not paused")
            await session.delete(row)
            await self._tell_publisher(session, speaker_ref, False, actor.name, "resumed")
            self.db.audit(session, actor, "resume_speaker", f"speaker:{speaker_ref}", {})

    # -- inside a transaction ----------------------------------------------------------

    async def _row(self, session: AsyncSession, reply_id: str) -> AnswerReply:
        row = await session.get(AnswerReply, reply_id)
        if row is None:
            raise NotFound(f"no reply {reply_id}")
        return row

    def _event(
        self, session: AsyncSession, reply_id: str, actor: str, event: str, detail: str
    ) -> None:
        session.add(
            ReplyEvent(
                reply_id=reply_id,
                at=self.db.clock(),
                actor=actor[:256],
                event=event,
                detail=detail[:4000],
            )
        )

    def _ask(
        self,
        session: AsyncSession,
        row: AnswerReply,
        action: ModerationAction,
        actor: str,
        *,
        report: bool,
        reason: str,
    ) -> None:
        """A signed command for the publisher (signed by the outbox as it is sent)."""
        command = ModerateReply(
            action_id=new_id(),
            reply_id=row.reply_id,
            platform=Platform(row.platform),
            native_id=row.native_id,
            answer_post_id=row.answer_post_id,
            author=Author(id=row.author_id, handle=row.author_handle),
            action=action,
            report=report,
            reason=reason[:1000],
            decided_by=actor[:256],
            requested_at=self.db.clock(),
        )
        self.db.enqueue(session, topics.REPLIES_ACTION, row.reply_id, command)
        what = "hide_asked" if action is ModerationAction.HIDE else "unhide_asked"
        self._event(session, row.reply_id, actor, what, "report too" if report else "")

    async def _pile_on(self, session: AsyncSession, row: AnswerReply, rules: Rules) -> bool:
        """The ``replies``-th abusive reply under the answer within ``minutes`` (once per
        window: no second alert while the last one is that recent)."""
        window = timedelta(minutes=rules.pile_on.minutes)
        since = row.received_at - window
        abusive = await session.scalar(
            select(func.count()).where(
                AnswerReply.answer_post_id == row.answer_post_id,
                AnswerReply.verdict == ReplyVerdict.HIDE.value,
                AnswerReply.received_at >= since,
            )
        )
        if int(abusive or 0) < rules.pile_on.replies:
            return False
        recent = await session.scalar(
            select(func.count()).where(
                ProtectionAlert.answer_post_id == row.answer_post_id,
                ProtectionAlert.kind == Escalation.PILE_ON.value,
                ProtectionAlert.created_at >= since,
            )
        )
        return not recent

    async def _alert(
        self, session: AsyncSession, row: AnswerReply, kind: Escalation, rules: Rules
    ) -> ProtectionAlert:
        detail = {
            Escalation.THREAT: f"a threat from @{row.author_handle}",
            Escalation.DOXXING: f"@{row.author_handle} names where the person is, with hostility",
            Escalation.PILE_ON: (
                f"{rules.pile_on.replies} or more abusive replies within "
                f"{rules.pile_on.minutes:g} minutes"
            ),
        }[kind]
        alert = ProtectionAlert(
            kind=kind.value,
            question_id=row.question_id,
            speaker_ref=row.speaker_ref,
            answer_post_id=row.answer_post_id,
            reply_id=row.reply_id,
            detail=detail,
            created_at=self.db.clock(),
        )
        session.add(alert)
        self._event(session, row.reply_id, "rules", "escalated", f"{kind.value}: {detail}")
        if kind in rules.pause_on:
            await self._pause(session, row.speaker_ref, "rules", f"{kind.value}: {detail}")
        return alert

    async def _pause(
        self, session: AsyncSession, speaker_ref: str, by: str, reason: str
    ) -> PausedSpeaker:
        row = await session.get(PausedSpeaker, speaker_ref)
        if row is None:
            row = PausedSpeaker(
                speaker_ref=speaker_ref, paused_by=by[:256], reason=reason, at=self.db.clock()
            )
            session.add(row)
            await self._tell_publisher(session, speaker_ref, True, by, reason)
            self.db.audit(
                session, Actor.system(by) if by == "rules" else Actor(name=by),
                "pause_speaker", f"speaker:{speaker_ref}", {"reason": reason},
            )  # fmt: skip
        return row

    async def _tell_publisher(
        self, session: AsyncSession, speaker_ref: str, paused: bool, by: str, reason: str
    ) -> None:
        """The signed ``speakers.paused`` command (signed by the outbox as it is sent): the
        publisher holds the person's replies not yet posted, or sends them on resume."""
        command = SpeakerPaused(
            speaker_ref=speaker_ref,
            paused=paused,
            reason=reason[:2000],
            decided_by=by[:256],
            at=await self._decided_at(session, speaker_ref),
        )
        self.db.enqueue(session, topics.SPEAKERS_PAUSED, speaker_ref, command)

    async def _decided_at(self, session: AsyncSession, speaker_ref: str) -> datetime:
        """Now, or just after the person's previous pause or resume (its command, while
        the outbox keeps it): the publisher obeys the latest ``at`` of a person, and the
        clocks of two web replicas may differ."""
        now = self.db.clock()
        previous = await session.scalar(
            select(OutboxMessage.value)
            .where(
                OutboxMessage.topic == topics.SPEAKERS_PAUSED,
                OutboxMessage.key == encode_key(speaker_ref),
            )
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )
        if previous is None:
            return now
        try:
            last = decode(SpeakerPaused, previous).at
        except DecodeError:
            return now
        return max(now, last + timedelta(microseconds=1))
