"""Taking an action back (the queue's Undo) and paging through the whole queue
(keyset on its order): issue 18's "no undo" and "only the top 100"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.common.messages import Decision
from services.triage.web.exceptions import NotUndoable
from services.triage.web.models import Assignment, BlockedAuthor, Status, Team
from services.triage.web.store import Actor, QuestionFilter
from services.triage.web.store.questions import QueueKey
from tests.triage.web.helpers.store import Desk, events

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("action", "then"),
    [("approve", Status.APPROVED), ("reject", Status.REJECTED), ("quarantine", Status.QUARANTINED)],
)
async def test_undo_puts_the_question_back_where_it_was(
    desk: Desk, mod_a: Actor, action: str, then: Status
) -> None:
    question_id = await desk.ingest()
    assert await desk.store.questions.act(question_id, action, mod_a) is then
    assert await desk.store.questions.undo(question_id, mod_a) is Status.NEW
    assert await desk.status(question_id) == "new"
    last = (await desk.store.questions.timeline(question_id))[-1]
    assert (last.event, last.actor, last.from_status, last.to_status, last.reason) == (
        "undone",
        mod_a.name,
        then.value,
        "new",
        f"undid {action}",
    )
    # An undo is not itself undone (act again instead).
    with pytest.raises(NotUndoable, match="cannot be undone"):
        await desk.store.questions.undo(question_id, mod_a)


async def test_undo_of_a_restore_sends_it_back_to_quarantine(desk: Desk, mod_a: Actor) -> None:
    question_id = await desk.ingest()
    await desk.store.questions.act(question_id, "quarantine", mod_a)
    await desk.store.questions.act(question_id, "restore", mod_a)
    assert await desk.store.questions.undo(question_id, mod_a) is Status.QUARANTINED


async def test_undo_of_an_assignment_gives_the_team_its_capacity_back(
    desk: Desk, mod_a: Actor, camp_a: Team
) -> None:
    question_id = await desk.ingest()
    before = {x.team.slug: x.remaining for x in await desk.store.teams.loads()}
    await desk.store.questions.act(question_id, "assign", mod_a, team=camp_a.slug)
    after = {x.team.slug: x.remaining for x in await desk.store.teams.loads()}
    assert after[camp_a.slug] == before[camp_a.slug] - 1

    assert await desk.store.questions.undo(question_id, mod_a) is Status.NEW
    question = await desk.store.questions.get(question_id)
    assert question.team_id is None
    undone = {x.team.slug: x.remaining for x in await desk.store.teams.loads()}
    assert undone == before
    async with desk.store.sessions() as session:
        assert await session.scalar(select(func.count(Assignment.id))) == 0
    assert await desk.store.teams.feed(camp_a.slug, mod_a) == []


async def test_undo_of_an_assignment_a_member_took_is_refused(
    desk: Desk, mod_a: Actor, member_a: Actor, camp_a: Team
) -> None:
    question_id = await desk.assigned(camp_a, mod_a)
    await desk.store.teams.take(question_id, member_a)
    with pytest.raises(NotUndoable, match="already took it"):
        await desk.store.questions.undo(question_id, mod_a)
    assert await desk.status(question_id) == "assigned"


async def test_only_one_s_own_last_action_can_be_undone(
    desk: Desk, mod_a: Actor, mod_b: Actor
) -> None:
    question_id = await desk.ingest()
    await desk.store.questions.act(question_id, "approve", mod_a)
    with pytest.raises(NotUndoable, match=f"{mod_a.name} changed it since"):
        await desk.store.questions.undo(question_id, mod_b)
    assert await desk.status(question_id) == "approved"


async def test_undo_is_refused_after_ten_minutes(desk: Desk, mod_a: Actor) -> None:
    question_id = await desk.ingest()
    await desk.store.questions.act(question_id, "reject", mod_a)
    desk.clock.advance(minutes=11)
    with pytest.raises(NotUndoable, match="too late"):
        await desk.store.questions.undo(question_id, mod_a)


async def test_nothing_to_undo_on_a_fresh_question(desk: Desk, mod_a: Actor) -> None:
    question_id = await desk.ingest()
    with pytest.raises(NotUndoable, match="nothing to undo"):
        await desk.store.questions.undo(question_id, mod_a)  # the classifier's, not undoable
    assert len(await events(desk.store, question_id)) == 1


async def test_undo_of_taking_a_question_from_a_team_is_refused(
    desk: Desk, mod_a: Actor, camp_a: Team
) -> None:
    question_id = await desk.assigned(camp_a, mod_a)
    await desk.store.questions.act(question_id, "reject", mod_a)
    with pytest.raises(NotUndoable, match="assign it again"):
        await desk.store.questions.undo(question_id, mod_a)


async def test_keyset_pages_walk_the_whole_queue_once_in_order(desk: Desk) -> None:
    base = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    for n in range(57):  # priorities repeat, and so do arrival times: the id breaks ties
        await desk.ingest(
            priority=90 - (n % 4) * 10,
            mention={"received_at": base + timedelta(minutes=n % 3)},
        )
    everything, total = await desk.store.questions.page(QuestionFilter(), limit=500)
    assert total == 57
    seen: list[str] = []
    after: QueueKey | None = None
    while True:
        rows, total = await desk.store.questions.page(QuestionFilter(), limit=10, after=after)
        if not rows:
            break
        seen += [q.id for q in rows]
        after = QueueKey.of(rows[-1])
    assert seen == [q.id for q in everything]
    assert total == 57

    # "through": the pages already shown, refreshed in one go.
    through = QueueKey.of(everything[29])
    rows, _ = await desk.store.questions.page(QuestionFilter(), limit=500, through=through)
    assert [q.id for q in rows] == [q.id for q in everything[:30]]


# --- undoing a block -------------------------------------------------------------------


async def test_undo_of_a_block_lifts_it_and_puts_back_what_it_rejected(
    desk: Desk, mod_a: Actor
) -> None:
    author = {"author": {"id": "heated", "handle": "heated"}}
    first = await desk.ingest(mention=author)
    approved = await desk.ingest(mention=author)
    await desk.store.questions.act(approved, "approve", mod_a)
    rejected_before = await desk.ingest(mention=author)
    await desk.store.questions.act(rejected_before, "reject", mod_a)

    assert await desk.store.questions.act(first, "block", mod_a) is Status.REJECTED
    assert await desk.store.questions.undo(first, mod_a) is Status.NEW
    assert [await desk.status(q) for q in (first, approved, rejected_before)] == [
        "new",
        "approved",
        "rejected",  # rejected by hand before the block: not the block's doing
    ]
    assert (await events(desk.store, approved))[-1] == (
        "undone",
        mod_a.name,
        "rejected",
        "approved",
        None,
    )
    async with desk.store.sessions() as session:
        assert await session.scalar(select(func.count(BlockedAuthor.id))) == 0
    # Lifted: what the author sends next waits for triage again.
    assert await desk.status(await desk.ingest(mention=author)) == "new"


async def test_undo_of_a_block_is_one_s_own_and_soon(
    desk: Desk, mod_a: Actor, mod_b: Actor
) -> None:
    author = {"author": {"id": "heated", "handle": "heated"}}
    first = await desk.ingest(mention=author)
    await desk.store.questions.act(first, "block", mod_a)
    with pytest.raises(NotUndoable, match=f"{mod_a.name} changed it since"):
        await desk.store.questions.undo(first, mod_b)
    desk.clock.advance(minutes=11)
    with pytest.raises(NotUndoable, match="too late"):
        await desk.store.questions.undo(first, mod_a)
    assert await desk.status(first) == "rejected"


async def test_undo_of_a_block_made_earlier_by_someone_else_is_refused(
    desk: Desk, mod_a: Actor, mod_b: Actor
) -> None:
    author = {"author": {"id": "heated", "handle": "heated"}}
    first = await desk.ingest(mention=author)
    second = await desk.ingest(mention=author)
    await desk.store.questions.act(first, "block", mod_b)
    await desk.store.questions.undo(first, mod_b)  # mod_b's block, lifted ...
    await desk.store.questions.act(first, "block", mod_b)  # ... and made again
    await desk.store.questions.act(second, "restore", mod_a)
    await desk.store.questions.act(second, "block", mod_a)  # the block was mod_b's
    with pytest.raises(NotUndoable, match="blocked before"):
        await desk.store.questions.undo(second, mod_a)
    assert [await desk.status(q) for q in (first, second)] == ["rejected", "rejected"]


async def test_undo_of_a_block_also_puts_back_what_arrived_while_blocked(
    desk: Desk, mod_a: Actor
) -> None:
    author = {"author": {"id": "heated", "handle": "heated"}}
    first = await desk.ingest(mention=author)
    await desk.store.questions.act(first, "block", mod_a)
    desk.clock.advance(minutes=1)
    meanwhile = await desk.ingest(mention=author)
    dropped = await desk.ingest(mention=author, decision=Decision.DROP)
    abuse = await desk.ingest(mention=author, decision=Decision.QUARANTINE)
    assert [await desk.status(q) for q in (meanwhile, dropped, abuse)] == [
        "rejected",
        "rejected",
        "quarantined",  # abuse is kept in quarantine, blocked or not
    ]

    assert await desk.store.questions.undo(first, mod_a) is Status.NEW
    # Each goes where it would have started had the author not been blocked.
    assert [await desk.status(q) for q in (first, meanwhile, dropped, abuse)] == [
        "new",
        "new",
        "dropped",
        "quarantined",
    ]
    assert (await events(desk.store, meanwhile))[-1] == (
        "undone",
        mod_a.name,
        "rejected",
        "new",
        None,
    )
