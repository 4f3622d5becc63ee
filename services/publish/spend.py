"""What the X account spends (X bills per use since 2026-02): a ledger per account,
UTC day and call class, its prices from the settings, and the daily and monthly
budgets that pause publishing on X when spent.

Call classes and today's prices: ``post_read`` ($0.005, billed up to 3M reads a
month), ``reply`` ($0.010), ``post_with_url`` ($0.20), ``own_read`` ($0.001, a
post of the account's own read back, e.g. when a reply is looked for), ``moderate``
($0.010, a reply under an answer hidden or shown again).

A post read of a mention is counted once per mention id (``x_spend_items``), however
often ``mentions.raw`` delivers it.
"""

from __future__ import annotations

import calendar
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.common.messages import utcnow
from services.publish import metrics
from services.publish.config import PublishSettings
from services.publish.models import XSpend, XSpendItem

log = logging.getLogger(__name__)

MICRO = 1_000_000


class CallClass(StrEnum):
    POST_READ = "post_read"
    REPLY = "reply"
    POST_WITH_URL = "post_with_url"
    OWN_READ = "own_read"
    MODERATE = "moderate"


@dataclass(frozen=True)
class Prices:
    """Micro-dollars a call, per class."""

    micro_usd: dict[CallClass, int]
    post_reads_monthly_cap: int

    @classmethod
    def from_settings(cls, settings: PublishSettings) -> Prices:
        return cls(
            {
                CallClass.POST_READ: round(settings.x_price_post_read * MICRO),
                CallClass.REPLY: round(settings.x_price_reply * MICRO),
                CallClass.POST_WITH_URL: round(settings.x_price_post_with_url * MICRO),
                CallClass.OWN_READ: round(settings.x_price_own_read * MICRO),
                CallClass.MODERATE: round(settings.x_price_moderate * MICRO),
            },
            settings.x_post_reads_billed_monthly_cap,
        )


@dataclass(frozen=True)
class Totals:
    """Calls of one class this month, and what they cost."""

    calls: int
    usd: float


@dataclass(frozen=True)
class SpendReport:
    """One account's spend: today, this month (per class) and the budgets; also the
    body of ``GET /v1/spend``."""

    account: str
    day: str
    month: str
    today_usd: float
    month_usd: float
    month_by_class: dict[str, Totals]
    daily_budget_usd: float | None
    monthly_budget_usd: float | None
    #: Publishing on X is paused until then (a budget is spent); None: it is not.
    paused_until: datetime | None
    pause_reason: str | None


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(now: datetime) -> datetime:
    days = calendar.monthrange(now.year, now.month)[1]
    return _month_start(now) + timedelta(days=days)


def budget_pause(
    now: datetime, today_usd: float, month_usd: float, daily: float | None, monthly: float | None
) -> tuple[datetime, str] | None:
    """Until when publishing pauses, and why; None while within both budgets. Pure."""
    if monthly is not None and month_usd >= monthly:
        return _next_month(
            now
        ), f"this month's X spend ${month_usd:.2f} reached its ${monthly:.2f} budget"
    if daily is not None and today_usd >= daily:
        tomorrow = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        return tomorrow, f"today's X spend ${today_usd:.2f} reached its ${daily:.2f} budget"
    return None


class SpendLedger:
    """The ``x_spend`` table: record calls, report totals, say when to pause."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: PublishSettings,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.settings = settings
        self.prices = Prices.from_settings(settings)
        self.account = settings.x_account
        self._now = now

    async def record(
        self, call_class: CallClass, calls: int = 1, *, item: str | None = None
    ) -> None:
        """Count ``calls`` of ``call_class`` today (post reads past X's monthly cap
        are counted, not billed); with ``item`` (what was billed, e.g. a mention id),
        only the first time that item is recorded, in the same transaction: a
        redelivery is not billed twice. Never raises: spend is bookkeeping, not the
        reply."""
        if calls <= 0:
            return
        try:
            await self._record(call_class, calls, item)
        except Exception:  # the reply went out: a bookkeeping failure must not undo that
            log.exception("could not record %d X %s calls in the spend ledger", calls, call_class)

    async def _record(self, call_class: CallClass, calls: int, item: str | None) -> None:
        now = self._now()
        day = now.date().isoformat()
        billed = calls
        if call_class is CallClass.POST_READ:
            read = await self._month_calls(now, CallClass.POST_READ)
            billed = max(0, min(calls, self.prices.post_reads_monthly_cap - read))
        cost = billed * self.prices.micro_usd[call_class]
        async with self._sessions() as session:
            if item is not None:
                session.add(
                    XSpendItem(
                        account=self.account, call_class=call_class.value, item=item, day=day
                    )
                )
                try:
                    await session.flush()
                except IntegrityError:  # counted already (by us or by another writer)
                    await session.rollback()
                    return
            key = {"account": self.account, "day": day, "call_class": call_class.value}
            changed = await session.execute(
                update(XSpend)
                .filter_by(**key)
                .values(calls=XSpend.calls + calls, micro_usd=XSpend.micro_usd + cost)
            )
            if not changed.rowcount:  # type: ignore[attr-defined]
                session.add(XSpend(**key, calls=calls, micro_usd=cost))
                try:
                    await session.commit()
                except IntegrityError:  # another writer created the row first
                    await session.rollback()
                    await self._record(call_class, calls, item)  # counts them itself
                    return
            else:
                await session.commit()
        metrics.X_SPEND.labels(self.account, call_class.value).inc(cost / MICRO)
        metrics.X_CALLS.labels(self.account, call_class.value).inc(calls)

    async def _month_calls(self, now: datetime, call_class: CallClass) -> int:
        async with self._sessions() as session:
            total = await session.scalar(
                select(func.coalesce(func.sum(XSpend.calls), 0)).where(
                    XSpend.account == self.account,
                    XSpend.call_class == call_class.value,
                    XSpend.day >= _month_start(now).date().isoformat(),
                )
            )
        return int(total or 0)

    async def report(self) -> SpendReport:
        now = self._now()
        day = now.date().isoformat()
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(XSpend.day, XSpend.call_class, XSpend.calls, XSpend.micro_usd).where(
                        XSpend.account == self.account,
                        XSpend.day >= _month_start(now).date().isoformat(),
                    )
                )
            ).all()
        # Summed in micro-dollars (integers), turned into dollars once: no float drift.
        calls: Counter[str] = Counter()
        micro_usd: Counter[str] = Counter()
        today = 0
        for row_day, call_class, row_calls, micro in rows:
            calls[call_class] += row_calls
            micro_usd[call_class] += micro
            today += micro if row_day == day else 0
        by_class = {k: Totals(calls[k], micro_usd[k] / MICRO) for k in calls}
        month_usd = micro_usd.total() / MICRO
        daily, monthly = self.settings.x_daily_budget_usd, self.settings.x_monthly_budget_usd
        pause = budget_pause(now, today / MICRO, month_usd, daily, monthly)
        metrics.X_SPEND_MONTH.labels(self.account).set(month_usd)
        metrics.X_BUDGET_PAUSED.labels(self.account).set(1 if pause else 0)
        return SpendReport(
            account=self.account,
            day=day,
            month=now.strftime("%Y-%m"),
            today_usd=today / MICRO,
            month_usd=month_usd,
            month_by_class=by_class,
            daily_budget_usd=daily,
            monthly_budget_usd=monthly,
            paused_until=pause[0] if pause else None,
            pause_reason=pause[1] if pause else None,
        )

    async def pause(self) -> tuple[float, str] | None:
        """(epoch seconds to wait until, why) when a budget is spent; else None."""
        report = await self.report()
        if report.paused_until is None or report.pause_reason is None:
            return None
        return report.paused_until.astimezone(UTC).timestamp(), report.pause_reason
