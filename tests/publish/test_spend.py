"""X pay-per-use: the spend ledger per account and call class, the budgets that
pause publishing, and X's "credits exhausted" answer recognised as such."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.publish import metrics
from services.publish.config import PublishSettings
from services.publish.exceptions import RateLimited
from services.publish.ledger import Ledger
from services.publish.platforms import MediaFile, ReplyDraft, XClient
from services.publish.platforms.http import credits_exhausted
from services.publish.spend import CallClass, SpendLedger, budget_pause
from tests.helpers.db import KINDS
from tests.helpers.sandbox import FakeClock, SandboxServer
from tests.publish.helpers import migrated_ledger

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2026, 12, 3, 22, 0, tzinfo=UTC)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with migrated_ledger("sqlite", tmp_path) as ledger:
        yield ledger


def spend_ledger(
    ledger: Ledger, now: Callable[[], datetime] = lambda: NOW, **fields: Any
) -> SpendLedger:
    return SpendLedger(ledger.engine, PublishSettings(**fields), now=now)


def test_a_spent_budget_pauses_until_the_next_day_or_month() -> None:
    assert budget_pause(NOW, 0.5, 10.0, daily=1.0, monthly=20.0) is None
    until, why = budget_pause(NOW, 1.0, 10.0, daily=1.0, monthly=20.0) or (None, "")
    assert until == datetime(2026, 12, 4, tzinfo=UTC)
    assert "today's X spend $1.00 reached its $1.00 budget" in why
    until, why = budget_pause(NOW, 0.0, 20.0, daily=1.0, monthly=20.0) or (None, "")
    assert until == datetime(2027, 1, 1, tzinfo=UTC)
    assert "this month's X spend" in why
    assert budget_pause(NOW, 99.0, 99.0, daily=None, monthly=None) is None


async def test_the_ledger_counts_calls_and_dollars_per_class_at_todays_prices(
    ledger: Ledger,
) -> None:
    spend = spend_ledger(ledger)
    await spend.record(CallClass.REPLY)
    await spend.record(CallClass.REPLY)
    await spend.record(CallClass.POST_WITH_URL)
    await spend.record(CallClass.OWN_READ, 3)
    await spend.record(CallClass.POST_READ, 10)

    report = await spend.report()

    assert report.account == "x-campaign"
    assert report.month == "2026-12"
    by_class = {k: (v.calls, round(v.usd, 6)) for k, v in report.month_by_class.items()}
    assert by_class == {
        "reply": (2, 0.02),
        "post_with_url": (1, 0.2),
        "own_read": (3, 0.003),
        "post_read": (10, 0.05),
    }
    assert round(report.month_usd, 6) == round(report.today_usd, 6) == 0.273
    assert report.paused_until is None
    sample = metrics.X_SPEND_MONTH.labels("x-campaign")._value.get()
    assert round(sample, 6) == 0.273


async def test_the_counters_count_every_call_the_first_of_the_day_too(
    ledger: Ledger,
) -> None:
    """The first call of a day and class creates its ledger row: it is counted in the
    metrics like every other (it once returned before the counters)."""
    spend = spend_ledger(ledger, x_account="x-counters")
    calls = metrics.X_CALLS.labels("x-counters", "reply")
    dollars = metrics.X_SPEND.labels("x-counters", "reply")
    before_calls, before_usd = calls._value.get(), dollars._value.get()
    await spend.record(CallClass.REPLY)
    await spend.record(CallClass.REPLY)
    assert calls._value.get() - before_calls == 2
    assert round(dollars._value.get() - before_usd, 6) == 0.02


async def test_post_reads_past_xs_monthly_cap_are_counted_not_billed(ledger: Ledger) -> None:
    spend = spend_ledger(ledger, x_post_reads_billed_monthly_cap=4)
    await spend.record(CallClass.POST_READ, 3)
    await spend.record(CallClass.POST_READ, 3)
    read = (await spend.report()).month_by_class["post_read"]
    assert (read.calls, round(read.usd, 6)) == (6, 0.02)  # 4 billed at $0.005


@pytest.mark.parametrize("kind", KINDS)
async def test_a_call_recorded_for_an_item_counts_once_even_from_two_writers(
    kind: str, tmp_path: Path
) -> None:
    """A mention's post read is counted the first time its id is recorded, also when
    two publishers (a rebalance) record it at once; other items and classes count."""
    async with migrated_ledger(kind, tmp_path) as ledger:
        spend, other_writer = spend_ledger(ledger), spend_ledger(ledger)
        await asyncio.gather(
            spend.record(CallClass.POST_READ, item="x:1"),
            other_writer.record(CallClass.POST_READ, item="x:1"),
        )
        await spend.record(CallClass.POST_READ, item="x:1")
        await spend.record(CallClass.POST_READ, item="x:2")
        await spend.record(CallClass.OWN_READ, item="x:1")  # per call class
        await spend.record(CallClass.POST_READ)  # no item: every call counts

        by_class = (await spend.report()).month_by_class
        assert (by_class["post_read"].calls, round(by_class["post_read"].usd, 6)) == (3, 0.015)
        assert by_class["own_read"].calls == 1


async def test_last_months_spend_is_not_this_months(ledger: Ledger) -> None:
    await spend_ledger(ledger, now=lambda: datetime(2026, 11, 30, tzinfo=UTC)).record(
        CallClass.REPLY
    )
    report = await spend_ledger(ledger).report()
    assert report.month_usd == 0.0


async def test_x_publishing_pauses_with_the_reason_once_a_budget_is_spent(
    ledger: Ledger,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    publish_settings: Callable[..., PublishSettings],
    media_factory: Callable[..., MediaFile],
) -> None:
    settings = publish_settings(x_daily_budget_usd=0.015)
    spend = SpendLedger(ledger.engine, settings, now=lambda: datetime.now(UTC))
    client = XClient(settings, http, spend=spend)

    await client.post_reply(
        ReplyDraft(text="first answer", in_reply_to="1790000000000000001", idempotency_key="k1")
    )
    assert await client.find_reply(in_reply_to="1790000000000000001") is not None
    await client.post_reply(
        ReplyDraft(text="second answer", in_reply_to="1790000000000000002", idempotency_key="k2")
    )  # 0.02 spent: past 0.015

    with pytest.raises(RateLimited, match="X budget spent: today's X spend") as refused:
        await client.upload_video(media_factory())
    assert refused.value.reset_at > datetime.now(UTC).timestamp()
    with pytest.raises(RateLimited, match="publishing paused"):
        await client.post_reply(
            ReplyDraft(text="third", in_reply_to="1790000000000000003", idempotency_key="k3")
        )
    assert sandbox.state.media == {}  # nothing uploaded while paused
    report = await spend.report()
    assert report.month_by_class["reply"].calls == 2
    assert report.month_by_class["own_read"].calls >= 2  # users/me and the timeline read back
    assert report.pause_reason is not None
    assert metrics.X_BUDGET_PAUSED.labels(settings.x_account)._value.get() == 1


def test_xs_credits_exhausted_answers_are_recognised() -> None:
    assert credits_exhausted(402, None)
    assert credits_exhausted(403, {"title": "CreditsDepleted", "detail": "no credits"})
    assert credits_exhausted(
        429,
        {"title": "UsageCapExceeded", "type": "https://api.twitter.com/2/problems/usage-capped"},
    )
    assert not credits_exhausted(403, {"title": "Forbidden", "detail": "duplicate content"})


async def test_a_credits_exhausted_answer_pauses_the_account_and_says_so(
    publish_settings: Callable[..., PublishSettings], clock: FakeClock
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "title": "CreditsDepleted",
            "detail": "Your enrolled account does not have any credits to fulfill this request.",
            "type": "https://api.twitter.com/2/problems/credits",
        }
        return httpx.Response(402, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = XClient(publish_settings(), http, sleep=clock.sleep, clock=clock)
        before = metrics.X_CREDITS_EXHAUSTED.labels("x-campaign")._value.get()
        with pytest.raises(RateLimited, match="credits exhausted") as refused:
            await client.post_reply(
                ReplyDraft(text="an answer", in_reply_to="1", idempotency_key="k")
            )
    assert "CreditsDepleted" in refused.value.message
    assert client.budget.paused_until is not None
    assert metrics.X_CREDITS_EXHAUSTED.labels("x-campaign")._value.get() == before + 1
