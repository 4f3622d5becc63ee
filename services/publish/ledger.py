"""The reply ledger: what the publisher did and decided, durable before anything
is acknowledged. Every method is one short transaction.

A reply's life: :meth:`Ledger.open` (``pending``) → the governor →
:meth:`Ledger.refuse` or :meth:`Ledger.start_sending` (``sending``, committed
*before* the platform is called, by one publisher only) →
:meth:`Ledger.mark_published` (with the post id and URL) or
:meth:`Ledger.mark_failed`. A ``sending`` reply found later (a restart, a
redelivery) is reconciled on the platform before any retry.

Besides the replies: decisions, opt-outs, engagements, consent withdrawals and the
X account's OAuth tokens (their row: :mod:`services.publish.token_row`); paused
people and held replies are :class:`~services.publish.pause_ledger.PauseLedger`'s
part of the ledger.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.db import UtcDateTime
from services.common.messages import ConsentWithdrawn, PublishReply, utcnow
from services.publish.domain import EngagementFact, OptOutFact, Refusal, Snapshot, WithdrawalFact
from services.publish.exceptions import AlreadyReplied, UnknownReply
from services.publish.models import (
    LIVE_STATES,
    ConsentWithdrawal,
    DecisionRecord,
    Engagement,
    OAuthToken,
    OptOut,
    Reply,
    ReplyState,
)
from services.publish.pause_ledger import PauseLedger
from services.publish.platforms.base import PostedReply
from services.publish.platforms.oauth import TokenSlot
from services.publish.token_row import TokenRow

log = logging.getLogger(__name__)

_LIVE = [s.value for s in LIVE_STATES]
#: How many of the account's latest replies a new text must differ from.
RECENT_TEXTS = 100


class Ledger(PauseLedger):
    """The reply ledger; people paused and held replies: :class:`PauseLedger`."""

    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.now = now
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    # -- replies ----------------------------------------------------------------

    async def get(self, reply_id: str) -> Reply | None:
        async with self._sessions() as session:
            return await session.get(Reply, reply_id)

    async def open(self, request: PublishReply) -> Reply:
        """The reply's row: created ``pending`` the first time, as it is afterwards."""
        async with self._sessions() as session:
            existing = await session.get(Reply, request.reply_id)
            if existing is not None:
                return existing
            now = self.now()
            row = Reply(
                reply_id=request.reply_id,
                question_id=request.question_id,
                platform=request.platform.value,
                mention_id=request.mention_id,
                in_reply_to=request.in_reply_to,
                author_id=request.author.id,
                author_handle=request.author.handle,
                speaker_ref=request.consent.speaker_ref,
                consent_at=request.consent.at,
                answer_id=request.answer_id,
                language=request.language,
                state=ReplyState.PENDING.value,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:  # a concurrent open of the same id won
                await session.rollback()
                again = await session.get(Reply, request.reply_id)
                if again is None:
                    raise
                return again
            return row

    async def live_reply_to(self, platform: str, in_reply_to: str, *, excluding: str) -> str | None:
        """The id of a live reply (other than ``excluding``) to that post, if any."""
        async with self._sessions() as session:
            found: str | None = await session.scalar(
                select(Reply.reply_id)
                .where(
                    Reply.platform == platform,
                    Reply.in_reply_to == in_reply_to,
                    Reply.state.in_(_LIVE),
                    Reply.reply_id != excluding,
                )
                .limit(1)
            )
            return found

    async def snapshot(self, request: PublishReply) -> Snapshot:
        """What the governor needs about ``request`` (excluding the reply itself)."""
        now = self.now()
        platform = request.platform.value
        async with self._sessions() as session:
            engagement = await session.get(Engagement, request.mention_id)
            opt_out = await session.get(OptOut, (platform, request.author.id))
            withdrawals = await self._withdrawals(
                session, request.consent.speaker_ref, request.question_id, request.answer_id
            )
            other = await session.scalar(
                select(Reply.reply_id)
                .where(
                    Reply.question_id == request.question_id,
                    Reply.state.in_(_LIVE),
                    Reply.reply_id != request.reply_id,
                )
                .limit(1)
            )
            count = await session.scalar(
                select(func.count())
                .select_from(Reply)
                .where(
                    Reply.platform == platform,
                    Reply.author_id == request.author.id,
                    Reply.state.in_(_LIVE),
                    Reply.reply_id != request.reply_id,
                    Reply.sent_at >= now - timedelta(hours=24),
                )
            )
            previous = (
                await session.execute(
                    select(Reply.text, Reply.template_id)
                    .where(
                        Reply.platform == platform,
                        Reply.state.in_(_LIVE),
                        Reply.reply_id != request.reply_id,
                        Reply.sent_at.is_not(None),
                    )
                    .order_by(Reply.sent_at.desc())
                    .limit(1)
                )
            ).first()
            recent = await session.scalars(
                select(Reply.text)
                .where(
                    Reply.platform == platform,
                    Reply.state.in_([ReplyState.SENDING.value, ReplyState.PUBLISHED.value]),
                    Reply.reply_id != request.reply_id,
                    Reply.text.is_not(None),
                )
                .order_by(Reply.sent_at.desc())
                .limit(RECENT_TEXTS)
            )
            recent_texts = frozenset(t for t in recent if t is not None)
        return Snapshot(
            engagement=(
                EngagementFact(engagement.author_id, frozenset(engagement.how.split(",")))
                if engagement is not None and engagement.platform == platform
                else None
            ),
            opt_out=(
                OptOutFact(opt_out.source, opt_out.at, opt_out.reason)
                if opt_out is not None
                else None
            ),
            withdrawals=withdrawals,
            other_live_reply=other,
            author_replies_24h=int(count or 0),
            previous_text=previous[0] if previous is not None else None,
            previous_template=previous[1] if previous is not None else None,
            recent_texts=recent_texts,
        )

    async def refuse(self, reply_id: str, refusals: Sequence[Refusal]) -> Reply:
        """``refused``, with one decision per refusing rule."""
        error = "refused by the governor: " + "; ".join(str(r) for r in refusals)
        async with self._sessions() as session, session.begin():
            row = await self._row(session, reply_id)
            now = self.now()
            row.state = ReplyState.REFUSED.value
            row.error = error[:4000]
            row.retryable = False
            row.updated_at = now
            session.add_all(
                DecisionRecord(
                    reply_id=reply_id, rule=r.rule, verdict="refuse", reason=r.reason, at=now
                )
                for r in refusals
            )
        return row

    async def start_sending(
        self,
        reply_id: str,
        *,
        text: str,
        template_id: str | None,
        owner: str | None = None,
        lease_until: datetime | None = None,
        standalone: bool = False,
    ) -> Reply | None:
        """``sending``, committed before the platform is called, owned by ``owner``
        until ``lease_until``; ``standalone`` says how it is posted (and so how it is
        looked for later).

        A compare-and-set in one UPDATE: only a reply still ``pending`` is taken.
        None when it no longer is (another publisher read the same record and took
        it first, after a rebalance): that one may be posting it right now, and a
        reply found ``sending`` is looked for on the platform before any post, never
        taken here. Raises :class:`AlreadyReplied` when another reply to the
        question, or to the same post, is live."""
        try:
            async with self._sessions() as session, session.begin():
                now = self.now()
                result = await session.execute(
                    update(Reply)
                    .where(Reply.reply_id == reply_id, Reply.state == ReplyState.PENDING.value)
                    .values(
                        state=ReplyState.SENDING.value,
                        owner=owner,
                        lease_until=lease_until,
                        text=text,
                        template_id=template_id,
                        standalone=standalone,
                        sent_at=func.coalesce(Reply.sent_at, literal(now, UtcDateTime())),
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if getattr(result, "rowcount", 0) != 1:
                    if await session.get(Reply, reply_id) is None:
                        raise UnknownReply(reply_id)
                    return None
                session.add(
                    DecisionRecord(
                        reply_id=reply_id,
                        rule="governor",
                        verdict="allow",
                        reason=f"every rule allowed; template {template_id}",
                        at=now,
                    )
                )
                row = await session.get(Reply, reply_id, populate_existing=True)
        except IntegrityError as exc:
            raise AlreadyReplied(reply_id) from exc
        assert row is not None
        return row

    async def claim(self, reply_id: str, owner: str, until: datetime) -> bool:
        """Take a ``sending`` reply for another try: only when nobody else holds it
        (no owner, this owner, or a lease run out). Compare-and-set in one UPDATE."""
        now = self.now()
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(Reply)
                .where(
                    Reply.reply_id == reply_id,
                    Reply.state == ReplyState.SENDING.value,
                    or_(
                        Reply.owner.is_(None),
                        Reply.owner == owner,
                        Reply.lease_until.is_(None),
                        Reply.lease_until < now,
                    ),
                )
                .values(owner=owner, lease_until=until, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    async def mark_published(self, reply_id: str, posted: PostedReply) -> Reply:
        async with self._sessions() as session, session.begin():
            row = await self._row(session, reply_id)
            now = self.now()
            if row.state != ReplyState.WITHDRAWN.value:
                row.state = ReplyState.PUBLISHED.value
            row.post_id = posted.post_id
            row.url = posted.url
            row.attempts += 1
            row.error = None
            row.retryable = None
            row.published_at = row.published_at or now
            row.lease_until = None
            row.updated_at = now
        return row

    async def mark_announced(self, reply_id: str) -> None:
        """The outcome was produced: a redelivered request need not announce it again."""
        async with self._sessions() as session, session.begin():
            row = await self._row(session, reply_id)
            row.announced_at = self.now()

    async def record_error(self, reply_id: str, error: str) -> Reply:
        """A try that ended in a retryable error: counted, the error kept."""
        async with self._sessions() as session, session.begin():
            row = await self._row(session, reply_id)
            row.attempts += 1
            row.error = error[:4000]
            row.updated_at = self.now()
        return row

    async def mark_failed(
        self, reply_id: str, error: str, *, retryable: bool, count: bool
    ) -> Reply:
        async with self._sessions() as session, session.begin():
            row = await self._row(session, reply_id)
            row.state = ReplyState.FAILED.value
            row.announced_at = None
            row.error = error[:4000]
            row.retryable = retryable
            if count:
                row.attempts += 1
            row.updated_at = self.now()
        return row

    async def sending(self) -> list[Reply]:
        """Replies that were being sent when the publisher stopped."""
        async with self._sessions() as session:
            result = await session.scalars(
                select(Reply).where(Reply.state == ReplyState.SENDING.value)
            )
            return list(result)

    async def decisions(self, reply_id: str) -> list[DecisionRecord]:
        async with self._sessions() as session:
            result = await session.scalars(
                select(DecisionRecord)
                .where(DecisionRecord.reply_id == reply_id)
                .order_by(DecisionRecord.id)
            )
            return list(result)

    async def is_our_post(self, platform: str, post_id: str) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(
                select(Reply.reply_id).where(Reply.platform == platform, Reply.post_id == post_id)
            )
            return found is not None

    # -- opt-outs and engagements -----------------------------------------------------

    async def add_opt_out(
        self,
        platform: str,
        author_id: str,
        *,
        source: str,
        handle: str | None = None,
        reason: str = "",
        mention_id: str | None = None,
        recorded_by: str | None = None,
    ) -> bool:
        """Record an opt-out; False when the author had already opted out."""
        async with self._sessions() as session:
            if await session.get(OptOut, (platform, author_id)) is not None:
                return False
            session.add(
                OptOut(
                    platform=platform,
                    author_id=author_id,
                    handle=handle,
                    source=source,
                    reason=reason[:2000],
                    mention_id=mention_id,
                    recorded_by=recorded_by,
                    at=self.now(),
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                return False
            return True

    async def remove_opt_out(self, platform: str, author_id: str) -> bool:
        async with self._sessions() as session, session.begin():
            row = await session.get(OptOut, (platform, author_id))
            if row is None:
                return False
            await session.delete(row)
            return True

    async def opt_outs(self, platform: str | None = None) -> list[OptOut]:
        async with self._sessions() as session:
            query = select(OptOut).order_by(OptOut.at)
            if platform is not None:
                query = query.where(OptOut.platform == platform)
            return list(await session.scalars(query))

    async def record_engagement(
        self, mention_id: str, *, platform: str, author_id: str, how: Iterable[str], at: datetime
    ) -> None:
        async with self._sessions() as session:
            if await session.get(Engagement, mention_id) is not None:
                return
            session.add(
                Engagement(
                    mention_id=mention_id,
                    platform=platform,
                    author_id=author_id,
                    how=",".join(sorted(how)),
                    at=at,
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()

    # -- consent withdrawals -----------------------------------------------------

    async def record_withdrawal(self, event: ConsentWithdrawn) -> bool:
        """Record the withdrawal (once per event); False when it was already there."""
        # An event without an answer id keys as it did before the field existed.
        unset = {"answer_id"} if event.answer_id is None else None
        key = hashlib.sha256(event.model_dump_json(exclude=unset).encode()).hexdigest()
        async with self._sessions() as session:
            exists = await session.scalar(
                select(ConsentWithdrawal.id).where(ConsentWithdrawal.event_key == key)
            )
            if exists is not None:
                return False
            session.add(
                ConsentWithdrawal(
                    event_key=key,
                    speaker_ref=event.speaker_ref,
                    question_ids=json.dumps(list(event.question_ids)),
                    answer_id=event.answer_id,
                    withdrawn_by=event.withdrawn_by,
                    reason=event.reason,
                    at=event.at,
                    recorded_at=self.now(),
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                return False
            return True

    async def withdrawals_for(
        self, speaker_ref: str, question_id: str, answer_id: str | None = None
    ) -> tuple[WithdrawalFact, ...]:
        async with self._sessions() as session:
            return await self._withdrawals(session, speaker_ref, question_id, answer_id)

    async def published_featuring(
        self, speaker_ref: str, question_ids: Sequence[str] = (), answer_id: str | None = None
    ) -> list[Reply]:
        """Published replies that feature the speaker (in those questions, if given), and
        those that post ``answer_id``, whatever their question."""
        async with self._sessions() as session:
            match = Reply.speaker_ref == speaker_ref
            if question_ids:
                match = and_(match, Reply.question_id.in_(list(question_ids)))
            if answer_id is not None:
                match = or_(match, Reply.answer_id == answer_id)
            query = select(Reply).where(match, Reply.state == ReplyState.PUBLISHED.value)
            return list(await session.scalars(query.order_by(Reply.published_at)))

    async def still_up_after_withdrawal(self) -> list[tuple[Reply, WithdrawalFact]]:
        """Published replies whose consent was withdrawn after it was given, each with
        the first such withdrawal: what must still come down. A reply whose take-down
        was refused for good (a ``withdrawal``/``error`` decision) is left to people,
        not tried again."""
        async with self._sessions() as session:
            refused = select(DecisionRecord.reply_id).where(
                DecisionRecord.rule == "withdrawal", DecisionRecord.verdict == "error"
            )
            pairs = await session.execute(
                select(Reply, ConsentWithdrawal)
                .join(
                    ConsentWithdrawal,
                    or_(
                        ConsentWithdrawal.speaker_ref == Reply.speaker_ref,
                        ConsentWithdrawal.answer_id == Reply.answer_id,
                    ),
                )
                .where(
                    Reply.state == ReplyState.PUBLISHED.value,
                    ConsentWithdrawal.at >= Reply.consent_at,
                    Reply.reply_id.not_in(refused),
                )
                .order_by(Reply.published_at, Reply.reply_id, ConsentWithdrawal.at)
            )
            found: dict[str, tuple[Reply, WithdrawalFact]] = {}
            for reply, withdrawal in pairs:
                covered = _covers(withdrawal, reply.question_id, reply.answer_id)
                if reply.reply_id not in found and covered:
                    found[reply.reply_id] = (reply, _fact(withdrawal))
            return list(found.values())

    async def mark_withdrawn(self, reply_id: str, *, reason: str) -> Reply:
        """Record the take-down once: the sweep and the ``consent.withdrawn`` consumer
        may both take the same reply down, and the second finds it withdrawn."""
        async with self._sessions() as session, session.begin():
            row = await self._row(session, reply_id)
            if row.state == ReplyState.WITHDRAWN.value:
                return row
            now = self.now()
            row.state = ReplyState.WITHDRAWN.value
            row.withdrawn_at = now
            row.updated_at = now
            session.add(
                DecisionRecord(
                    reply_id=reply_id, rule="withdrawal", verdict="withdraw", reason=reason, at=now
                )
            )
        return row

    async def record_decision(self, reply_id: str, *, rule: str, verdict: str, reason: str) -> None:
        async with self._sessions() as session, session.begin():
            session.add(
                DecisionRecord(
                    reply_id=reply_id, rule=rule, verdict=verdict, reason=reason, at=self.now()
                )
            )

    # -- OAuth tokens (a TokenStore) --------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold_tokens(self, platform: str, account: str) -> AsyncIterator[TokenSlot]:
        """The account's stored tokens, row-locked until the block ends (on Postgres:
        two publishers refreshing at once take turns, and the second finds the
        first one's tokens). :meth:`TokenRow.save` commits."""
        async with self._sessions() as session:
            row = await session.get(OAuthToken, (platform, account), with_for_update=True)
            yield TokenRow(session, platform, account, row, self.now)

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    async def _row(session: AsyncSession, reply_id: str) -> Reply:
        row = await session.get(Reply, reply_id, with_for_update=True)
        if row is None:
            raise UnknownReply(reply_id)
        return row

    @staticmethod
    async def _withdrawals(
        session: AsyncSession, speaker_ref: str, question_id: str, answer_id: str | None = None
    ) -> tuple[WithdrawalFact, ...]:
        match = ConsentWithdrawal.speaker_ref == speaker_ref
        if answer_id is not None:
            match = or_(match, ConsentWithdrawal.answer_id == answer_id)
        rows = await session.scalars(select(ConsentWithdrawal).where(match))
        return tuple(_fact(row) for row in rows if _covers(row, question_id, answer_id))


def _covers(withdrawal: ConsentWithdrawal, question_id: str, answer_id: str | None = None) -> bool:
    """Whether the withdrawal covers the reply: it names the reply's answer, or the
    speaker's withdrawal names the question (or none: all of them)."""
    if answer_id is not None and withdrawal.answer_id == answer_id:
        return True
    questions = json.loads(withdrawal.question_ids or "[]")
    return not questions or question_id in questions


def _fact(withdrawal: ConsentWithdrawal) -> WithdrawalFact:
    return WithdrawalFact(withdrawal.at, withdrawal.withdrawn_by, withdrawal.reason)
