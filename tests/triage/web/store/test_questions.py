"""The questions aggregate: ingest, the queue, moderator actions, claims, bulk."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from services.common import topics
from services.common.messages import (
    Decision,
    Platform,
    QuestionAssigned,
)
from services.triage.web.exceptions import (
    ClaimedByOther,
    Conflict,
    Invalid,
    NotFound,
)
from services.triage.web.models import (
    BlockedAuthor,
    Status,
    Team,
)
from services.triage.web.store import Actor, QuestionFilter, TriageStore
from tests.triage.web.helpers.store import (
    CLAIM_TTL_S,
    Desk,
    add_team,
    all_events,
    audit,
    events,
    outbox,
    outbox_topics,
)

pytestmark = pytest.mark.timeout(60)


# --- ingest ------------------------------------------------------------------------


async def test_a_redelivered_mention_makes_one_question_and_one_event(desk: Desk) -> None:
    message = desk.classified(priority=73)
    first = await desk.store.questions.ingest(message)
    assert first is not None
    assert await desk.store.questions.ingest(message) is None

    questions, total = await desk.store.questions.page(QuestionFilter())
    assert total == 1
    assert [q.id for q in questions] == [first.id]
    assert await all_events(desk.store) == 1
    stored = questions[0]
    assert (stored.mention_id, stored.priority, stored.decision) == (
        message.mention.id,
        73,
        "review",
    )
    assert (stored.question_score, stored.model_version, stored.rule) == (
        0.9,
        "test-model-1",
        "default-review",
    )
    assert stored.received_at == message.mention.received_at
    assert stored.classified_json == message.model_dump_json()


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (Decision.REVIEW, Status.NEW),
        (Decision.AUTO_ASSIGN, Status.NEW),  # no team routed: a moderator decides
        (Decision.DROP, Status.DROPPED),
        (Decision.QUARANTINE, Status.QUARANTINED),
    ],
)
async def test_each_decision_starts_in_its_status(
    desk: Desk, decision: Decision, expected: Status
) -> None:
    question_id = await desk.ingest(decision=decision, rule=f"rule-{decision}")
    assert await desk.status(question_id) == expected
    [event] = await desk.store.questions.timeline(question_id)
    assert (event.event, event.actor, event.from_status, event.to_status, event.decision) == (
        "classified",
        "system:classifier",
        None,
        expected.value,
        decision.value,
    )
    assert (event.model_version, event.rule) == ("test-model-1", f"rule-{decision}")


async def test_auto_assign_gives_the_question_to_a_routed_team_with_capacity(
    desk: Desk, camp_a: Team, mod_a: Actor
) -> None:
    question_id = await desk.ingest(decision=Decision.AUTO_ASSIGN, team="camp-a", priority=80)
    question = await desk.store.questions.get(question_id)
    assert (question.status, question.team_id) == ("assigned", camp_a.id)
    assert [e[:4] for e in await events(desk.store, question_id)] == [
        ("classified", "system:classifier", None, "new"),
        ("assigned", "system:auto-assign", "new", "assigned"),
    ]
    [(key, message)] = await outbox(desk.store, topics.QUESTIONS_ASSIGNED, QuestionAssigned)
    assert key == "camp-a"
    assert (message.question_id, message.mention_id, message.team) == (
        question_id,
        question.mention_id,
        "camp-a",
    )
    assert (message.assigned_by, message.priority) == ("system:auto-assign", 80)
    [item] = await desk.store.teams.feed("camp-a", mod_a)
    assert (item.question.id, item.assignment.state) == (question_id, "active")


async def test_auto_assign_over_capacity_leaves_the_question_new(desk: Desk) -> None:
    await add_team(desk.store, "camp-small", capacity=1)
    auto = {"decision": Decision.AUTO_ASSIGN, "team": "camp-small"}
    first = await desk.ingest(**auto)
    second = await desk.ingest(**auto)
    unknown = await desk.ingest(decision=Decision.AUTO_ASSIGN, team="camp-gone")
    assert [await desk.status(q) for q in (first, second, unknown)] == [
        "assigned",
        "new",
        "new",
    ]
    assert await outbox_topics(desk.store) == [topics.QUESTIONS_ASSIGNED]

    desk.clock.advance(days=1)  # a new day: the capacity is back
    third = await desk.ingest(**auto)
    assert await desk.status(third) == "assigned"


async def test_a_blocked_authors_new_mentions_are_rejected(
    desk: Desk, mod_a: Actor, camp_a: Team
) -> None:
    author = {"author": {"id": "troll", "handle": "troll"}}
    first = await desk.ingest(mention=author)
    await desk.store.questions.act(first, "block", mod_a, reason="spam")

    later = await desk.ingest(mention=author)
    auto = await desk.ingest(mention=author, decision=Decision.AUTO_ASSIGN, team="camp-a")
    abuse = await desk.ingest(mention=author, decision=Decision.QUARANTINE)
    someone_else = await desk.ingest()
    assert [await desk.status(q) for q in (later, auto, abuse, someone_else)] == [
        "rejected",
        "rejected",
        "quarantined",
        "new",
    ]
    [event] = await desk.store.questions.timeline(later)
    assert (event.to_status, event.reason) == ("rejected", "author blocked")
    assert await outbox_topics(desk.store) == []  # the blocked auto-assign went nowhere


# --- reading the queue ---------------------------------------------------------------


async def test_the_queue_is_ordered_by_priority_and_filtered(desk: Desk, mod_a: Actor) -> None:
    low = await desk.ingest(priority=10)
    high = await desk.ingest(priority=90, mention={"text": "Where is 100%_safe?"})
    mid = await desk.ingest(priority=50, mention={"lang": "fr"})
    await desk.store.questions.act(mid, "approve", mod_a)

    everything, total = await desk.store.questions.page(QuestionFilter())
    assert ([q.id for q in everything], total) == ([high, mid, low], 3)
    page, total = await desk.store.questions.page(QuestionFilter(), limit=1, offset=1)
    assert ([q.id for q in page], total) == ([mid], 3)
    new, _ = await desk.store.questions.page(QuestionFilter(statuses=(Status.NEW,)))
    assert [q.id for q in new] == [high, low]
    french, _ = await desk.store.questions.page(QuestionFilter(language="fr"))
    assert [q.id for q in french] == [mid]
    literal, _ = await desk.store.questions.page(QuestionFilter(text="100%_s"))
    assert [q.id for q in literal] == [high]
    assert (await desk.store.questions.page(QuestionFilter(text="0%_x")))[1] == 0  # no wildcards
    ranged, _ = await desk.store.questions.page(QuestionFilter(min_priority=20, max_priority=60))
    assert [q.id for q in ranged] == [mid]
    assert (await desk.store.questions.counts()).by_status == {"new": 2, "approved": 1}


async def test_events_after_a_cursor_are_the_newer_ones(desk: Desk, mod_a: Actor) -> None:
    first = await desk.ingest()
    cursor = await desk.store.questions.last_event_id()
    second = await desk.ingest()
    await desk.store.questions.act(first, "reject", mod_a)
    newer = await desk.store.questions.events_after(cursor)
    assert [(e.question_id, e.event) for e in newer] == [(second, "classified"), (first, "reject")]
    assert await desk.store.questions.events_after(newer[-1].id) == []
    assert await desk.store.questions.last_event_id() == newer[-1].id


async def test_the_suggested_team_speaks_the_language_and_has_room(
    desk: Desk, mod_a: Actor
) -> None:
    busy = await add_team(desk.store, "camp-busy", languages=("en",), capacity=2)
    await add_team(desk.store, "camp-free", languages=("en", "sw"), capacity=2)
    await add_team(desk.store, "camp-ar", languages=("ar",), capacity=2)
    await desk.assigned(busy, mod_a)
    english = await desk.store.questions.get(await desk.ingest(team="camp-busy"))
    arabic = await desk.store.questions.get(await desk.ingest(mention={"lang": "ar-EG"}))
    german = await desk.store.questions.get(
        await desk.ingest(mention={"lang": "de"}, team="camp-busy")
    )
    assert await desk.store.teams.suggest_for(english) == "camp-free"
    assert await desk.store.teams.suggest_for(arabic) == "camp-ar"
    assert (
        await desk.store.teams.suggest_for(german) == "camp-busy"
    )  # nobody speaks it: the routing
    assert {t.team.slug: t.remaining for t in await desk.store.teams.loads()} == {
        "camp-ar": 2,
        "camp-busy": 1,
        "camp-free": 2,
    }


# --- moderator actions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "action", "move"),
    [
        ((), "approve", ("new", "approved")),
        ((), "reject", ("new", "rejected")),
        (("approve",), "reject", ("approved", "rejected")),
        ((), "quarantine", ("new", "quarantined")),
        (("reject",), "quarantine", ("rejected", "quarantined")),
        (("reject",), "restore", ("rejected", "new")),
        (("quarantine",), "restore", ("quarantined", "new")),
    ],
)
async def test_a_moderator_action_moves_the_question_and_is_recorded(
    desk: Desk, mod_a: Actor, setup: tuple[str, ...], action: str, move: tuple[str, str]
) -> None:
    before, after = move
    question_id = await desk.ingest()
    for step in setup:
        await desk.store.questions.act(question_id, step, mod_a)
    assert await desk.store.questions.act(
        question_id, action, mod_a, reason="looked at it"
    ) == Status(after)

    assert await desk.status(question_id) == after
    last = (await desk.store.questions.timeline(question_id))[-1]
    assert (last.event, last.actor, last.from_status, last.to_status, last.decision) == (
        action,
        "mod-a",
        before,
        after,
        action,
    )
    assert last.reason == "looked at it"
    assert (await audit(desk.store))[-1] == ("mod-a", action, question_id)


async def test_a_dropped_question_can_be_restored(desk: Desk, mod_a: Actor) -> None:
    question_id = await desk.ingest(decision=Decision.DROP)
    assert await desk.store.questions.act(question_id, "restore", mod_a) is Status.NEW
    assert (await events(desk.store, question_id))[-1] == (
        "restore",
        "mod-a",
        "dropped",
        "new",
        "restore",
    )


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        (("reject",), "approve"),
        (("approve",), "approve"),
        ((), "restore"),
        (("approve",), "restore"),
        (("quarantine",), "quarantine"),
        (("quarantine",), "reject"),
        (("reject",), "assign"),
    ],
)
async def test_an_action_from_the_wrong_status_is_a_conflict(
    desk: Desk,
    mod_a: Actor,
    camp_a: Team,
    setup: tuple[str, ...],
    action: str,
) -> None:
    question_id = await desk.ingest()
    for step in setup:
        await desk.store.questions.act(question_id, step, mod_a)
    before = await desk.status(question_id)
    count = await all_events(desk.store)

    with pytest.raises(Conflict, match=f"is {before}") as caught:
        await desk.store.questions.act(question_id, action, mod_a, team="camp-a")
    assert not isinstance(caught.value, ClaimedByOther)
    assert await desk.status(question_id) == before
    assert await all_events(desk.store) == count


async def test_a_recorded_question_refuses_moderation(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question_id = await desk.recorded(camp_a, mod_a, member_a)
    for action in ("approve", "reject", "quarantine", "restore", "assign"):
        with pytest.raises(Conflict):
            await desk.store.questions.act(question_id, action, mod_a, team="camp-a")
    assert await desk.status(question_id) == "recorded"


async def test_an_unknown_question_is_not_found(store: TriageStore, mod_a: Actor) -> None:
    for action in ("approve", "reject", "quarantine", "restore", "block"):
        with pytest.raises(NotFound):
            await store.questions.act("nope", action, mod_a)
    with pytest.raises(NotFound):
        await store.questions.get("nope")
    with pytest.raises(NotFound):
        await store.questions.timeline("nope")
    with pytest.raises(NotFound):
        await store.questions.claim("nope", mod_a)
    with pytest.raises(NotFound):
        await store.questions.release("nope", mod_a)


async def test_an_unknown_action_or_team_is_refused(desk: Desk, mod_a: Actor) -> None:
    question_id = await desk.ingest()
    with pytest.raises(Invalid, match="unknown action 'publish'"):
        await desk.store.questions.act(question_id, "publish", mod_a)
    with pytest.raises(Invalid, match="needs a team"):
        await desk.store.questions.act(question_id, "assign", mod_a)
    with pytest.raises(NotFound, match="camp-gone"):
        await desk.store.questions.act(question_id, "assign", mod_a, team="camp-gone")
    assert await desk.status(question_id) == "new"
    assert await outbox_topics(desk.store) == []


async def test_assign_gives_the_question_to_the_team(
    desk: Desk, camp_a: Team, mod_a: Actor
) -> None:
    question_id = await desk.ingest(priority=44)
    await desk.store.questions.act(question_id, "approve", mod_a)
    assert await desk.store.questions.act(
        question_id, "assign", mod_a, team="camp-a", reason="speaks fr"
    ) == (Status.ASSIGNED)

    question = await desk.store.questions.get(question_id)
    assert (question.status, question.team_id) == ("assigned", camp_a.id)
    last = (await desk.store.questions.timeline(question_id))[-1]
    assert (last.event, last.actor, last.from_status, last.to_status, last.decision) == (
        "assigned",
        "mod-a",
        "approved",
        "assigned",
        "assign",
    )
    assert last.reason == "speaks fr"
    [(key, message)] = await outbox(desk.store, topics.QUESTIONS_ASSIGNED, QuestionAssigned)
    assert (key, message.question_id, message.assigned_by, message.priority) == (
        "camp-a",
        question_id,
        "mod-a",
        44,
    )
    assert (await audit(desk.store))[-1] == ("mod-a", "assign", question_id)
    assert [t.assigned_today for t in await desk.store.teams.loads()] == [1]


async def test_reassigning_moves_the_question_to_the_other_team(
    desk: Desk,
    camp_a: Team,
    camp_b: Team,
    mod_a: Actor,
) -> None:
    question_id = await desk.assigned(camp_a, mod_a)
    await desk.store.questions.act(question_id, "assign", mod_a, team="camp-b")

    assert (await desk.store.questions.get(question_id)).team_id == camp_b.id
    assert await desk.store.teams.feed("camp-a", mod_a) == []
    assert [i.question.id for i in await desk.store.teams.feed("camp-b", mod_a)] == [question_id]
    sent = await outbox(desk.store, topics.QUESTIONS_ASSIGNED, QuestionAssigned)
    assert [key for key, _ in sent] == ["camp-a", "camp-b"]


async def test_blocking_an_author_rejects_their_open_questions(
    desk: Desk, camp_a: Team, mod_a: Actor
) -> None:
    author = {"author": {"id": "troll", "handle": "troll"}}
    new = await desk.ingest(mention=author)
    approved = await desk.ingest(mention=author)
    await desk.store.questions.act(approved, "approve", mod_a)
    given = await desk.assigned(camp_a, mod_a, mention=author)
    same_id_elsewhere = await desk.ingest(mention={**author, "platform": Platform.MASTODON})
    other = await desk.ingest()

    assert await desk.store.questions.act(new, "block", mod_a, reason="abuse") is Status.REJECTED
    assert [await desk.status(q) for q in (new, approved, given, same_id_elsewhere, other)] == [
        "rejected",
        "rejected",
        "assigned",  # already with a team: a moderator rejects it by hand
        "new",
        "new",
    ]
    assert (await events(desk.store, approved))[-1] == (
        "author_blocked",
        "mod-a",
        "approved",
        "rejected",
        "block",
    )
    assert (await desk.store.questions.timeline(new))[-1].reason == "abuse"
    assert ("mod-a", "block_author", "x:troll") in await audit(desk.store)

    # Blocking again (from the assigned question) is harmless: one block, status kept.
    assert await desk.store.questions.act(given, "block", mod_a) is Status.ASSIGNED
    async with desk.store.sessions() as session:
        blocks = await session.scalar(select(func.count(BlockedAuthor.id)))
    assert blocks == 1


async def test_blocking_skips_a_question_another_moderator_holds(
    desk: Desk, mod_a: Actor, mod_b: Actor
) -> None:
    author = {"author": {"id": "troll", "handle": "troll"}}
    first = await desk.ingest(mention=author)
    held = await desk.ingest(mention=author)
    await desk.store.questions.claim(held, mod_b)
    await desk.store.questions.act(first, "block", mod_a)
    assert [await desk.status(q) for q in (first, held)] == ["rejected", "new"]


# --- claims --------------------------------------------------------------------------


async def test_another_moderators_claim_refuses_an_action(
    desk: Desk, mod_a: Actor, mod_b: Actor
) -> None:
    question_id = await desk.ingest()
    until = await desk.store.questions.claim(question_id, mod_a)
    assert until == desk.clock.now + timedelta(seconds=CLAIM_TTL_S)

    with pytest.raises(ClaimedByOther) as caught:
        await desk.store.questions.act(question_id, "reject", mod_b)
    assert (caught.value.holder, caught.value.until, caught.value.code) == (
        "mod-a",
        until,
        "claimed",
    )
    with pytest.raises(ClaimedByOther):
        await desk.store.questions.claim(question_id, mod_b)
    question = await desk.store.questions.get(question_id)
    assert (question.status, question.claimed_by) == ("new", mod_a.user_id)

    assert (
        await desk.store.questions.act(question_id, "approve", mod_a) is Status.APPROVED
    )  # own claim
    question = await desk.store.questions.get(question_id)
    assert (question.claimed_by, question.claim_expires_at) == (None, None)  # released


async def test_a_claim_lapses_after_its_ttl(desk: Desk, mod_a: Actor, mod_b: Actor) -> None:
    question_id = await desk.ingest()
    await desk.store.questions.claim(question_id, mod_a)
    desk.clock.advance(seconds=CLAIM_TTL_S)
    with pytest.raises(ClaimedByOther):  # still held at the very second it ends
        await desk.store.questions.act(question_id, "reject", mod_b)
    desk.clock.advance(seconds=1)
    assert await desk.store.questions.act(question_id, "reject", mod_b) is Status.REJECTED
    assert (await events(desk.store, question_id))[-1][:2] == ("reject", "mod-b")


async def test_claiming_again_renews_ones_own_claim(desk: Desk, mod_a: Actor, mod_b: Actor) -> None:
    question_id = await desk.ingest()
    first = await desk.store.questions.claim(question_id, mod_a)
    desk.clock.advance(seconds=100)
    renewed = await desk.store.questions.claim(question_id, mod_a)
    assert renewed == first + timedelta(seconds=100)
    desk.clock.advance(seconds=60)  # past the first claim's end, within the renewed one
    with pytest.raises(ClaimedByOther):
        await desk.store.questions.act(question_id, "approve", mod_b)
    assert [e[0] for e in await events(desk.store, question_id)] == [
        "classified",
        "claimed",
        "claimed",
    ]


async def test_releasing_a_claim_frees_the_question(desk: Desk, mod_a: Actor, mod_b: Actor) -> None:
    question_id = await desk.ingest()
    await desk.store.questions.claim(question_id, mod_a)
    await desk.store.questions.release(question_id, mod_b)  # not theirs: nothing happens
    with pytest.raises(ClaimedByOther):
        await desk.store.questions.act(question_id, "approve", mod_b)

    await desk.store.questions.release(question_id, mod_a)
    assert (await desk.store.questions.get(question_id)).claimed_by is None
    assert await desk.store.questions.act(question_id, "approve", mod_b) is Status.APPROVED
    assert [e[:2] for e in await events(desk.store, question_id)] == [
        ("classified", "system:classifier"),
        ("claimed", "mod-a"),
        ("released", "mod-a"),
        ("approve", "mod-b"),
    ]


async def test_two_moderators_racing_for_a_question_never_both_win(
    desk: Desk, mod_a: Actor, mod_b: Actor
) -> None:
    ids = [await desk.ingest() for _ in range(4)]
    claims = await asyncio.gather(
        *(desk.store.questions.claim(q, m) for q in ids for m in (mod_a, mod_b)),
        return_exceptions=True,
    )
    for q in ids:
        await desk.store.questions.release(q, mod_a)
        await desk.store.questions.release(q, mod_b)
        await desk.store.questions.act(q, "reject", mod_a)
    restores = await asyncio.gather(
        *(desk.store.questions.act(q, "restore", m) for q in ids for m in (mod_a, mod_b)),
        return_exceptions=True,
    )
    for results in (claims, restores):
        pairs = [results[i : i + 2] for i in range(0, len(results), 2)]
        won = [[not isinstance(r, BaseException) for r in pair] for pair in pairs]
        assert all(sorted(w) == [False, True] for w in won), results
        assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    for q in ids:
        assert [e[0] for e in await events(desk.store, q)].count("restore") == 1
        assert await desk.status(q) == "new"


# --- bulk ----------------------------------------------------------------------------


async def test_bulk_reports_each_item_on_its_own(desk: Desk, mod_a: Actor, mod_b: Actor) -> None:
    fine = await desk.ingest()
    rejected = await desk.ingest()
    await desk.store.questions.act(rejected, "reject", mod_a)
    held = await desk.ingest()
    await desk.store.questions.claim(held, mod_b)
    also_fine = await desk.ingest()

    outcomes = await desk.store.questions.bulk(
        [fine, rejected, "nope", held, fine, also_fine], "approve", mod_a
    )
    assert [(o.question_id, o.ok, o.status, o.code) for o in outcomes] == [
        (fine, True, "approved", None),
        (rejected, False, None, "conflict"),
        ("nope", False, None, "not_found"),
        (held, False, None, "claimed"),
        (also_fine, True, "approved", None),
    ]
    assert all(o.error for o in outcomes if not o.ok)
    assert [await desk.status(q) for q in (fine, rejected, held, also_fine)] == [
        "approved",
        "rejected",
        "new",
        "approved",
    ]


async def test_bulk_assign_with_a_missing_team_fails_every_item(desk: Desk, mod_a: Actor) -> None:
    ids = [await desk.ingest() for _ in range(2)]
    outcomes = await desk.store.questions.bulk(ids, "assign", mod_a)
    assert [(o.ok, o.code) for o in outcomes] == [(False, "invalid_request")] * 2
