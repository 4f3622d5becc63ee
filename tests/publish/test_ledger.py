"""The reply ledger and its migrations, on SQLite and on Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy import Connection, inspect, text

from services.common.db import make_engine
from services.common.messages import Author, ConsentWithdrawn, Platform
from services.publish.db import migrate
from services.publish.domain import Refusal
from services.publish.exceptions import AlreadyReplied, UnknownReply
from services.publish.ledger import Ledger
from services.publish.models import Base, ReplyState
from services.publish.platforms.base import PostedReply
from services.publish.platforms.oauth import TokenSet
from tests.helpers.db import empty_database
from tests.publish.helpers import engage, migrated_ledger, request_factory

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["sqlite", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def ledger(kind: str, tmp_path: Path) -> AsyncIterator[Ledger]:
    async with migrated_ledger(kind, tmp_path) as ledger:
        yield ledger


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_build_exactly_the_models_on_an_empty_database(
    kind: str, tmp_path: Path
) -> None:
    async with empty_database(kind, tmp_path) as (engine, _, _):
        await migrate(engine)
        await migrate(engine)  # at every start: a no-op the second time
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert tables == {
        "alembic_version", "replies", "decisions", "opt_outs", "engagements",
        "consent_withdrawals", "oauth_tokens", "x_spend", "x_spend_items", "watched_replies",
        "reply_actions", "speaker_pauses", "held_replies",
    }  # fmt: skip


async def test_an_empty_database_differs_from_the_models(kind: str, tmp_path: Path) -> None:
    """The comparison above can fail: without the migration it reports every table."""
    async with (
        empty_database(kind, tmp_path) as (engine, _, _),
        engine.connect() as connection,
    ):
        assert len(await connection.run_sync(_diff)) >= 5


async def test_replies_from_before_0006_read_as_threaded(kind: str, tmp_path: Path) -> None:
    async with empty_database(kind, tmp_path) as (engine, _, _):
        await migrate(engine, "0005")
        now = datetime.now(UTC)
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO replies (reply_id, question_id, platform, mention_id,"
                    " in_reply_to, author_id, author_handle, speaker_ref, consent_at, state,"
                    " attempts, created_at, updated_at) VALUES ('r-old', 'q-old', 'x', 'x:1',"
                    " '1', 'a', 'asker', 'speaker', :now, 'sending', 0, :now, :now)"
                ),
                {"now": now},
            )
        await migrate(engine)

        [row] = await Ledger(engine).sending()

    assert (row.reply_id, row.standalone) == ("r-old", False)


async def test_a_reply_goes_pending_sending_published(ledger: Ledger) -> None:
    request = request_factory()
    row = await ledger.open(request)
    assert row.state == ReplyState.PENDING
    assert (await ledger.open(request)).created_at == row.created_at  # the same row

    await ledger.start_sending(request.reply_id, text="Hello", template_id="en-thanks")
    assert [r.reply_id for r in await ledger.sending()] == [request.reply_id]

    published = await ledger.mark_published(
        request.reply_id, PostedReply("123", "https://x.test/123")
    )
    assert published.state == ReplyState.PUBLISHED
    assert (published.post_id, published.url, published.attempts) == (
        "123",
        "https://x.test/123",
        1,
    )
    assert published.published_at is not None
    assert published.published_at.tzinfo is not None
    again = await ledger.get(request.reply_id)
    assert again is not None
    assert again.published_at == published.published_at
    assert again.published_at is not None
    assert again.published_at.utcoffset() == timedelta(0)
    assert await ledger.is_our_post(request.platform.value, "123")


async def test_the_unique_index_refuses_a_second_live_reply_to_a_question(ledger: Ledger) -> None:
    first = request_factory()
    second = request_factory(question_id=first.question_id)
    await ledger.open(first)
    await ledger.open(second)
    await ledger.start_sending(first.reply_id, text="one", template_id=None)

    with pytest.raises(AlreadyReplied):
        await ledger.start_sending(second.reply_id, text="two", template_id=None)
    row = await ledger.get(second.reply_id)
    assert row is not None
    assert row.state == ReplyState.PENDING


async def test_the_unique_index_refuses_a_second_live_reply_to_a_post(ledger: Ledger) -> None:
    """Issue 17: one reply per post asked, whatever the question id."""
    first = request_factory()
    second = request_factory(in_reply_to=first.in_reply_to, mention_id=first.mention_id)
    assert second.question_id != first.question_id
    await ledger.open(first)
    await ledger.open(second)
    assert await ledger.live_reply_to("x", first.in_reply_to, excluding=second.reply_id) is None
    await ledger.start_sending(first.reply_id, text="one", template_id=None)
    found = await ledger.live_reply_to("x", first.in_reply_to, excluding=second.reply_id)
    assert found == first.reply_id
    assert await ledger.live_reply_to("x", first.in_reply_to, excluding=first.reply_id) is None

    with pytest.raises(AlreadyReplied):
        await ledger.start_sending(second.reply_id, text="two", template_id=None)
    other = request_factory(platform=Platform.MASTODON, in_reply_to=first.in_reply_to)
    await ledger.open(other)
    await ledger.start_sending(other.reply_id, text="three", template_id=None)  # another network


async def test_a_failed_reply_does_not_block_a_new_request_for_the_question(
    ledger: Ledger,
) -> None:
    first = request_factory()
    second = request_factory(question_id=first.question_id)
    await ledger.open(first)
    await ledger.start_sending(first.reply_id, text="one", template_id=None)
    await ledger.mark_failed(first.reply_id, "HTTP 403", retryable=False, count=True)
    await ledger.open(second)
    row = await ledger.start_sending(second.reply_id, text="two", template_id=None)
    assert row is not None
    assert row.state == ReplyState.SENDING


async def test_a_refusal_records_each_rule_with_its_reason(ledger: Ledger) -> None:
    request = request_factory()
    await ledger.open(request)
    row = await ledger.refuse(
        request.reply_id, [Refusal("engaged", "no record"), Refusal("opted_out", "said stop")]
    )
    assert row.state == ReplyState.REFUSED
    assert row.error == "refused by the governor: engaged: no record; opted_out: said stop"
    decisions = await ledger.decisions(request.reply_id)
    assert [(d.rule, d.verdict, d.reason) for d in decisions] == [
        ("engaged", "refuse", "no record"),
        ("opted_out", "refuse", "said stop"),
    ]


async def test_the_snapshot_sees_engagement_opt_outs_and_withdrawals(ledger: Ledger) -> None:
    request = request_factory()
    assert (await ledger.snapshot(request)).engagement is None
    await engage(ledger, request, ("account", "hashtag"))
    assert await ledger.add_opt_out(request.platform.value, request.author.id, source="reply")
    assert not await ledger.add_opt_out(request.platform.value, request.author.id, source="reply")
    event = ConsentWithdrawn(
        speaker_ref=request.consent.speaker_ref,
        question_ids=(request.question_id,),
        withdrawn_by="team-b",
        at=datetime.now(UTC),
    )
    assert await ledger.record_withdrawal(event)
    assert not await ledger.record_withdrawal(event)  # a redelivered event: once

    snapshot = await ledger.snapshot(request)
    assert snapshot.engagement is not None
    assert snapshot.engagement.how == {"account", "hashtag"}
    assert snapshot.opt_out is not None
    assert snapshot.opt_out.source == "reply"
    assert [w.withdrawn_by for w in snapshot.withdrawals] == ["team-b"]
    other_question = request_factory(consent=request.consent)
    assert (await ledger.snapshot(other_question)).withdrawals == ()
    # One naming the answer covers every request of it, whatever its question.
    assert await ledger.record_withdrawal(
        event.model_copy(update={"answer_id": "answer-a", "withdrawn_by": "team-c"})
    )
    of_answer = request_factory(consent=request.consent, answer_id="answer-a")
    assert [w.withdrawn_by for w in (await ledger.snapshot(of_answer)).withdrawals] == ["team-c"]
    assert (await ledger.snapshot(other_question)).withdrawals == ()

    assert await ledger.remove_opt_out(request.platform.value, request.author.id)
    assert (await ledger.snapshot(request)).opt_out is None


async def _published(ledger: Ledger, **overrides: object) -> str:
    request = request_factory(**overrides)
    await ledger.open(request)
    await ledger.start_sending(request.reply_id, text="Hello", template_id=None)
    await ledger.mark_published(request.reply_id, PostedReply(request.reply_id, "https://x.test"))
    return request.reply_id


async def test_replies_still_up_after_a_withdrawal_are_found_with_the_first_one(
    ledger: Ledger,
) -> None:
    covered = request_factory()
    covered_id = await _published(ledger, consent=covered.consent, question_id=covered.question_id)
    other_question = await _published(ledger, consent=covered.consent)
    given_again = request_factory()
    given_again_id = await _published(ledger, consent=given_again.consent)
    refused = request_factory()
    refused_id = await _published(ledger, consent=refused.consent)
    await _published(ledger)  # never withdrawn
    now = datetime.now(UTC)
    for speaker, questions, at in [
        (covered.consent.speaker_ref, (), now + timedelta(minutes=2)),
        (covered.consent.speaker_ref, (covered.question_id,), now + timedelta(minutes=1)),
        (given_again.consent.speaker_ref, (), given_again.consent.at - timedelta(hours=1)),
        (refused.consent.speaker_ref, (), now),
    ]:
        event = ConsentWithdrawn(
            speaker_ref=speaker, question_ids=questions, withdrawn_by="team-b", at=at
        )
        assert await ledger.record_withdrawal(event)
    await ledger.record_decision(refused_id, rule="withdrawal", verdict="error", reason="403")

    found = {row.reply_id: fact.at for row, fact in await ledger.still_up_after_withdrawal()}

    assert found == {
        covered_id: now + timedelta(minutes=1),
        other_question: now + timedelta(minutes=2),
    }
    assert given_again_id not in found
    await ledger.mark_withdrawn(covered_id, reason="taken down")
    assert [r.reply_id for r, _ in await ledger.still_up_after_withdrawal()] == [other_question]


async def test_a_reply_taken_down_twice_is_recorded_once(ledger: Ledger) -> None:
    """The sweep and the consent consumer can race to the same take-down."""
    reply_id = await _published(ledger)
    first = await ledger.mark_withdrawn(reply_id, reason="deleted")
    second = await ledger.mark_withdrawn(reply_id, reason="already gone")

    assert first.state == second.state == ReplyState.WITHDRAWN
    assert second.withdrawn_at == first.withdrawn_at
    verdicts = [(d.verdict, d.reason) for d in await ledger.decisions(reply_id)]
    assert verdicts.count(("withdraw", "deleted")) == 1
    assert ("withdraw", "already gone") not in verdicts


async def test_the_snapshot_counts_the_author_s_replies_of_the_last_24_hours(
    ledger: Ledger,
) -> None:
    author = Author(id="busy", handle="busy")
    clock = [datetime.now(UTC) - timedelta(hours=30)]
    ledger.now = lambda: clock[0]
    old = request_factory(author=author)
    await ledger.open(old)
    await ledger.start_sending(old.reply_id, text="old", template_id="en-a")
    clock[0] = datetime.now(UTC)
    recent = request_factory(author=author)
    await ledger.open(recent)
    await ledger.start_sending(recent.reply_id, text="recent", template_id="en-b")
    refused = request_factory(author=author)
    await ledger.open(refused)
    await ledger.refuse(refused.reply_id, [Refusal("consent", "withdrawn")])

    snapshot = await ledger.snapshot(request_factory(author=author))
    assert snapshot.author_replies_24h == 1
    assert (snapshot.previous_text, snapshot.previous_template) == ("recent", "en-b")
    assert (await ledger.snapshot(recent)).author_replies_24h == 0  # never counts itself


async def test_a_sending_reply_is_claimed_by_one_publisher_at_a_time(ledger: Ledger) -> None:
    request = request_factory()
    await ledger.open(request)
    now = datetime.now(UTC)
    await ledger.start_sending(
        request.reply_id,
        text="t",
        template_id=None,
        owner="a",
        lease_until=now + timedelta(minutes=5),
    )
    later = now + timedelta(minutes=10)

    assert await ledger.claim(request.reply_id, "a", later)  # its own: renewed
    assert not await ledger.claim(request.reply_id, "b", later)  # held by a
    ledger.now = lambda: now + timedelta(minutes=11)
    assert await ledger.claim(request.reply_id, "b", now + timedelta(minutes=30))  # ran out
    row = await ledger.get(request.reply_id)
    assert row is not None
    assert row.owner == "b"


async def test_only_one_of_two_publishers_that_read_a_reply_pending_starts_sending_it(
    kind: str, tmp_path: Path
) -> None:
    """A rebalance while publisher A is in the governor: B reads the same record, both
    see ``pending``. The first to mark it sending has it; the other is told no (and
    so never posts), whatever it read, and even once the winner's lease ran out (a
    ``sending`` reply is looked for on the platform first, then ``claim``-ed)."""
    async with empty_database(kind, tmp_path) as (engine, url, schema):
        await migrate(engine)
        other = make_engine(url, schema=schema)  # the second publisher's own connections
        try:
            a, b = Ledger(engine), Ledger(other)
            request = request_factory()
            await a.open(request)
            assert (await b.open(request)).state == ReplyState.PENDING
            now = datetime.now(UTC)

            won = await a.start_sending(
                request.reply_id,
                text="from a",
                template_id="en-a",
                owner="a",
                lease_until=now + timedelta(minutes=5),
            )
            lost = await b.start_sending(
                request.reply_id,
                text="from b",
                template_id="en-b",
                owner="b",
                lease_until=now + timedelta(minutes=5),
            )
            b.now = lambda: now + timedelta(minutes=6)  # a's lease ran out
            late = await b.start_sending(
                request.reply_id, text="from b", template_id="en-b", owner="b"
            )

            assert won is not None
            assert (won.state, won.owner, won.text) == (ReplyState.SENDING, "a", "from a")
            assert lost is None
            assert late is None
            row = await b.get(request.reply_id)
            assert row is not None
            assert (row.state, row.owner, row.text, row.template_id) == (
                ReplyState.SENDING, "a", "from a", "en-a",
            )  # fmt: skip
            assert [d.reason for d in await b.decisions(request.reply_id)] == [
                "every rule allowed; template en-a"
            ]
        finally:
            await other.dispose()


async def test_two_publishers_marking_one_reply_sending_at_once_one_wins(
    kind: str, tmp_path: Path
) -> None:
    async with empty_database(kind, tmp_path) as (engine, url, schema):
        await migrate(engine)
        other = make_engine(url, schema=schema)
        try:
            a, b = Ledger(engine), Ledger(other)
            request = request_factory()
            await a.open(request)

            results = await asyncio.gather(
                *(
                    ledger.start_sending(
                        request.reply_id, text=owner, template_id=None, owner=owner
                    )
                    for ledger, owner in ((a, "a"), (b, "b"), (a, "a2"), (b, "b2"))
                )
            )

            [winner] = [r for r in results if r is not None]
            row = await a.get(request.reply_id)
            assert row is not None
            assert (row.state, row.owner) == (ReplyState.SENDING, winner.owner)
            assert len(await a.decisions(request.reply_id)) == 1
        finally:
            await other.dispose()


async def test_starting_to_send_an_unknown_reply_is_an_error(ledger: Ledger) -> None:
    with pytest.raises(UnknownReply):
        await ledger.start_sending("r-nowhere", text="t", template_id=None)


async def test_a_reply_records_whether_it_was_sent_standalone(ledger: Ledger) -> None:
    threaded, alone = request_factory(), request_factory(standalone=True, summoned=False)
    for request in (threaded, alone):
        await ledger.open(request)
        await ledger.start_sending(
            request.reply_id, text=request.text, template_id=None, standalone=request.standalone
        )

    assert {r.reply_id: r.standalone for r in await ledger.sending()} == {
        threaded.reply_id: False,
        alone.reply_id: True,
    }


async def test_oauth_tokens_are_saved_replaced_and_read_back(ledger: Ledger) -> None:
    async with ledger.hold_tokens("x", "campaign") as slot:
        assert slot.current is None
        await slot.save(TokenSet(SecretStr("a1"), 1_900_000_000.5, SecretStr("r1"), "seed"))
    async with ledger.hold_tokens("x", "campaign") as slot:
        await slot.save(TokenSet(None, None, SecretStr("r2"), "seed"))
    async with ledger.hold_tokens("x", "other") as slot:
        assert slot.current is None  # one row per account

    async with ledger.hold_tokens("x", "campaign") as slot:
        stored = slot.current
    assert stored is not None
    assert stored.access_token is None
    assert stored.expires_at is None
    assert stored.refresh_token.get_secret_value() == "r2"
    async with ledger.hold_tokens("x", "campaign") as slot:
        await slot.save(TokenSet(SecretStr("a3"), 1_900_000_000.5, SecretStr("r3"), "seed"))
    async with ledger.hold_tokens("x", "campaign") as slot:
        stored = slot.current
    assert stored is not None
    assert stored.access_token is not None
    assert stored.access_token.get_secret_value() == "a3"
    assert stored.expires_at == pytest.approx(1_900_000_000.5)


async def test_a_token_slot_that_raises_saves_nothing(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError):
        async with ledger.hold_tokens("x", "campaign") as slot:
            raise RuntimeError("the refresh failed")
    async with ledger.hold_tokens("x", "campaign") as slot:
        assert slot.current is None


async def test_two_publishers_holding_the_tokens_on_postgres_take_turns(tmp_path: Path) -> None:
    """The row lock: the second holder waits for the first one's save, then sees it."""
    async with migrated_ledger("postgres", tmp_path) as first:
        second = Ledger(first.engine)
        async with first.hold_tokens("x", "campaign") as slot:
            await slot.save(TokenSet(SecretStr("a0"), None, SecretStr("r0"), "seed"))
        order: list[str] = []

        async def refresh(ledger: Ledger, name: str, entered: asyncio.Event) -> str:
            async with ledger.hold_tokens("x", "campaign") as slot:
                entered.set()
                order.append(f"{name} in")
                seen = slot.current
                assert seen is not None
                await asyncio.sleep(0.3)
                # Noted before the save: once it commits, the other holder and this
                # one resume in either order.
                order.append(f"{name} saves")
                await slot.save(TokenSet(SecretStr(name), None, SecretStr(f"r-{name}"), "seed"))
                return seen.refresh_token.get_secret_value()

        a_in, b_in = asyncio.Event(), asyncio.Event()
        a = asyncio.create_task(refresh(first, "a", a_in))
        await a_in.wait()
        b = asyncio.create_task(refresh(second, "b", b_in))
        assert await a == "r0"
        assert await b == "r-a"  # waited for a, and read what a saved
    assert order == ["a in", "a saves", "b in", "b saves"]
