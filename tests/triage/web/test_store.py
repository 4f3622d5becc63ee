"""The triage store on SQLite and on Postgres: ingest, moderation, claims,
team feeds, answers, replies and the outbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.common import topics
from services.common.messages import (
    AnswerRecorded,
    Decision,
    MentionClassified,
    MentionReceived,
    Platform,
    PublishReply,
    QuestionAssigned,
    ReplyFailed,
    ReplyPublished,
)
from services.triage.web import domain as queue
from services.triage.web.exceptions import (
    ClaimedByOther,
    Conflict,
    ConsentMissing,
    Forbidden,
    Invalid,
    NotFound,
)
from services.triage.web.models import (
    AnswerState,
    AssignmentState,
    BlockedAuthor,
    Consent,
    OutboxMessage,
    Reply,
    ReplyState,
    Role,
    Status,
    Team,
)
from services.triage.web.store import Actor, QuestionFilter, TriageStore
from tests.helpers.db import KINDS
from tests.triage.web.store_factories import (
    Desk,
    FakeClock,
    add_person,
    add_team,
    all_events,
    all_outbox,
    audit,
    classified_factory,
    events,
    migrated_store,
    outbox,
    outbox_topics,
    stored_answer,
)

pytestmark = pytest.mark.timeout(60)

CLAIM_TTL_S = 120


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(kind: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[TriageStore]:
    async with migrated_store(kind, tmp_path, clock, claim_ttl_s=CLAIM_TTL_S) as store:
        yield store


@pytest.fixture
def desk(
    store: TriageStore, clock: FakeClock, mention_factory: Callable[..., MentionReceived]
) -> Desk:
    return Desk(store, clock, classified_factory(mention_factory))


@pytest.fixture
async def camp_a(store: TriageStore) -> Team:
    return await add_team(store, "camp-a", languages=("en", "fr"))


@pytest.fixture
async def camp_b(store: TriageStore) -> Team:
    return await add_team(store, "camp-b", languages=("sw",))


@pytest.fixture
async def mod_a(store: TriageStore) -> Actor:
    return await add_person(store, "mod-a", Role.MODERATOR)


@pytest.fixture
async def mod_b(store: TriageStore) -> Actor:
    return await add_person(store, "mod-b", Role.MODERATOR)


@pytest.fixture
async def member_a(store: TriageStore, camp_a: Team) -> Actor:
    return await add_person(store, "member-a", Role.TEAM, camp_a)


# --- ingest ------------------------------------------------------------------------


async def test_a_redelivered_mention_makes_one_question_and_one_event(desk: Desk) -> None:
    message = desk.classified(priority=73)
    first = await desk.store.ingest(message)
    assert first is not None
    assert await desk.store.ingest(message) is None

    questions, total = await desk.store.questions(QuestionFilter())
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
    [event] = await desk.store.timeline(question_id)
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
    question = await desk.store.question(question_id)
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
    [item] = await desk.store.feed("camp-a", mod_a)
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
    await desk.store.act(first, "block", mod_a, reason="spam")

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
    [event] = await desk.store.timeline(later)
    assert (event.to_status, event.reason) == ("rejected", "author blocked")
    assert await outbox_topics(desk.store) == []  # the blocked auto-assign went nowhere


# --- reading the queue ---------------------------------------------------------------


async def test_the_queue_is_ordered_by_priority_and_filtered(desk: Desk, mod_a: Actor) -> None:
    low = await desk.ingest(priority=10)
    high = await desk.ingest(priority=90, mention={"text": "Where is 100%_safe?"})
    mid = await desk.ingest(priority=50, mention={"lang": "fr"})
    await desk.store.act(mid, "approve", mod_a)

    everything, total = await desk.store.questions(QuestionFilter())
    assert ([q.id for q in everything], total) == ([high, mid, low], 3)
    page, total = await desk.store.questions(QuestionFilter(), limit=1, offset=1)
    assert ([q.id for q in page], total) == ([mid], 3)
    new, _ = await desk.store.questions(QuestionFilter(statuses=(Status.NEW,)))
    assert [q.id for q in new] == [high, low]
    french, _ = await desk.store.questions(QuestionFilter(language="fr"))
    assert [q.id for q in french] == [mid]
    literal, _ = await desk.store.questions(QuestionFilter(text="100%_s"))
    assert [q.id for q in literal] == [high]
    assert (await desk.store.questions(QuestionFilter(text="0%_x")))[1] == 0  # no wildcards
    ranged, _ = await desk.store.questions(QuestionFilter(min_priority=20, max_priority=60))
    assert [q.id for q in ranged] == [mid]
    assert (await desk.store.counts()).by_status == {"new": 2, "approved": 1}


async def test_events_after_a_cursor_are_the_newer_ones(desk: Desk, mod_a: Actor) -> None:
    first = await desk.ingest()
    cursor = await desk.store.last_event_id()
    second = await desk.ingest()
    await desk.store.act(first, "reject", mod_a)
    newer = await desk.store.events_after(cursor)
    assert [(e.question_id, e.event) for e in newer] == [(second, "classified"), (first, "reject")]
    assert await desk.store.events_after(newer[-1].id) == []
    assert await desk.store.last_event_id() == newer[-1].id


async def test_the_suggested_team_speaks_the_language_and_has_room(
    desk: Desk, mod_a: Actor
) -> None:
    busy = await add_team(desk.store, "camp-busy", languages=("en",), capacity=2)
    await add_team(desk.store, "camp-free", languages=("en", "sw"), capacity=2)
    await add_team(desk.store, "camp-ar", languages=("ar",), capacity=2)
    await desk.assigned(busy, mod_a)
    english = await desk.store.question(await desk.ingest(team="camp-busy"))
    arabic = await desk.store.question(await desk.ingest(mention={"lang": "ar-EG"}))
    german = await desk.store.question(await desk.ingest(mention={"lang": "de"}, team="camp-busy"))
    assert await desk.store.suggest_team(english) == "camp-free"
    assert await desk.store.suggest_team(arabic) == "camp-ar"
    assert await desk.store.suggest_team(german) == "camp-busy"  # nobody speaks it: the routing
    assert {t.team.slug: t.remaining for t in await desk.store.teams()} == {
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
        await desk.store.act(question_id, step, mod_a)
    assert await desk.store.act(question_id, action, mod_a, reason="looked at it") == Status(after)

    assert await desk.status(question_id) == after
    last = (await desk.store.timeline(question_id))[-1]
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
    assert await desk.store.act(question_id, "restore", mod_a) is Status.NEW
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
        await desk.store.act(question_id, step, mod_a)
    before = await desk.status(question_id)
    count = await all_events(desk.store)

    with pytest.raises(Conflict, match=f"is {before}") as caught:
        await desk.store.act(question_id, action, mod_a, team="camp-a")
    assert not isinstance(caught.value, ClaimedByOther)
    assert await desk.status(question_id) == before
    assert await all_events(desk.store) == count


async def test_a_recorded_question_refuses_moderation(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question_id = await desk.recorded(camp_a, mod_a, member_a)
    for action in ("approve", "reject", "quarantine", "restore", "assign"):
        with pytest.raises(Conflict):
            await desk.store.act(question_id, action, mod_a, team="camp-a")
    assert await desk.status(question_id) == "recorded"


async def test_an_unknown_question_is_not_found(store: TriageStore, mod_a: Actor) -> None:
    for action in ("approve", "reject", "quarantine", "restore", "block"):
        with pytest.raises(NotFound):
            await store.act("nope", action, mod_a)
    with pytest.raises(NotFound):
        await store.question("nope")
    with pytest.raises(NotFound):
        await store.timeline("nope")
    with pytest.raises(NotFound):
        await store.claim("nope", mod_a)
    with pytest.raises(NotFound):
        await store.release("nope", mod_a)


async def test_an_unknown_action_or_team_is_refused(desk: Desk, mod_a: Actor) -> None:
    question_id = await desk.ingest()
    with pytest.raises(Invalid, match="unknown action 'publish'"):
        await desk.store.act(question_id, "publish", mod_a)
    with pytest.raises(Invalid, match="needs a team"):
        await desk.store.act(question_id, "assign", mod_a)
    with pytest.raises(NotFound, match="camp-gone"):
        await desk.store.act(question_id, "assign", mod_a, team="camp-gone")
    assert await desk.status(question_id) == "new"
    assert await outbox_topics(desk.store) == []


async def test_assign_gives_the_question_to_the_team(
    desk: Desk, camp_a: Team, mod_a: Actor
) -> None:
    question_id = await desk.ingest(priority=44)
    await desk.store.act(question_id, "approve", mod_a)
    assert await desk.store.act(
        question_id, "assign", mod_a, team="camp-a", reason="speaks fr"
    ) == (Status.ASSIGNED)

    question = await desk.store.question(question_id)
    assert (question.status, question.team_id) == ("assigned", camp_a.id)
    last = (await desk.store.timeline(question_id))[-1]
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
    assert [t.assigned_today for t in await desk.store.teams()] == [1]


async def test_reassigning_moves_the_question_to_the_other_team(
    desk: Desk,
    camp_a: Team,
    camp_b: Team,
    mod_a: Actor,
) -> None:
    question_id = await desk.assigned(camp_a, mod_a)
    await desk.store.act(question_id, "assign", mod_a, team="camp-b")

    assert (await desk.store.question(question_id)).team_id == camp_b.id
    assert await desk.store.feed("camp-a", mod_a) == []
    assert [i.question.id for i in await desk.store.feed("camp-b", mod_a)] == [question_id]
    sent = await outbox(desk.store, topics.QUESTIONS_ASSIGNED, QuestionAssigned)
    assert [key for key, _ in sent] == ["camp-a", "camp-b"]


async def test_blocking_an_author_rejects_their_open_questions(
    desk: Desk, camp_a: Team, mod_a: Actor
) -> None:
    author = {"author": {"id": "troll", "handle": "troll"}}
    new = await desk.ingest(mention=author)
    approved = await desk.ingest(mention=author)
    await desk.store.act(approved, "approve", mod_a)
    given = await desk.assigned(camp_a, mod_a, mention=author)
    same_id_elsewhere = await desk.ingest(mention={**author, "platform": Platform.MASTODON})
    other = await desk.ingest()

    assert await desk.store.act(new, "block", mod_a, reason="abuse") is Status.REJECTED
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
    assert (await desk.store.timeline(new))[-1].reason == "abuse"
    assert ("mod-a", "block_author", "x:troll") in await audit(desk.store)

    # Blocking again (from the assigned question) is harmless: one block, status kept.
    assert await desk.store.act(given, "block", mod_a) is Status.ASSIGNED
    async with desk.store.sessions() as session:
        blocks = await session.scalar(select(func.count(BlockedAuthor.id)))
    assert blocks == 1


async def test_blocking_skips_a_question_another_moderator_holds(
    desk: Desk, mod_a: Actor, mod_b: Actor
) -> None:
    author = {"author": {"id": "troll", "handle": "troll"}}
    first = await desk.ingest(mention=author)
    held = await desk.ingest(mention=author)
    await desk.store.claim(held, mod_b)
    await desk.store.act(first, "block", mod_a)
    assert [await desk.status(q) for q in (first, held)] == ["rejected", "new"]


# --- claims --------------------------------------------------------------------------


async def test_another_moderators_claim_refuses_an_action(
    desk: Desk, mod_a: Actor, mod_b: Actor
) -> None:
    question_id = await desk.ingest()
    until = await desk.store.claim(question_id, mod_a)
    assert until == desk.clock.now + timedelta(seconds=CLAIM_TTL_S)

    with pytest.raises(ClaimedByOther) as caught:
        await desk.store.act(question_id, "reject", mod_b)
    assert (caught.value.holder, caught.value.until, caught.value.code) == (
        "mod-a",
        until,
        "claimed",
    )
    with pytest.raises(ClaimedByOther):
        await desk.store.claim(question_id, mod_b)
    question = await desk.store.question(question_id)
    assert (question.status, question.claimed_by) == ("new", mod_a.user_id)

    assert await desk.store.act(question_id, "approve", mod_a) is Status.APPROVED  # own claim
    question = await desk.store.question(question_id)
    assert (question.claimed_by, question.claim_expires_at) == (None, None)  # released


async def test_a_claim_lapses_after_its_ttl(desk: Desk, mod_a: Actor, mod_b: Actor) -> None:
    question_id = await desk.ingest()
    await desk.store.claim(question_id, mod_a)
    desk.clock.advance(seconds=CLAIM_TTL_S)
    with pytest.raises(ClaimedByOther):  # still held at the very second it ends
        await desk.store.act(question_id, "reject", mod_b)
    desk.clock.advance(seconds=1)
    assert await desk.store.act(question_id, "reject", mod_b) is Status.REJECTED
    assert (await events(desk.store, question_id))[-1][:2] == ("reject", "mod-b")


async def test_claiming_again_renews_ones_own_claim(desk: Desk, mod_a: Actor, mod_b: Actor) -> None:
    question_id = await desk.ingest()
    first = await desk.store.claim(question_id, mod_a)
    desk.clock.advance(seconds=100)
    renewed = await desk.store.claim(question_id, mod_a)
    assert renewed == first + timedelta(seconds=100)
    desk.clock.advance(seconds=60)  # past the first claim's end, within the renewed one
    with pytest.raises(ClaimedByOther):
        await desk.store.act(question_id, "approve", mod_b)
    assert [e[0] for e in await events(desk.store, question_id)] == [
        "classified",
        "claimed",
        "claimed",
    ]


async def test_releasing_a_claim_frees_the_question(desk: Desk, mod_a: Actor, mod_b: Actor) -> None:
    question_id = await desk.ingest()
    await desk.store.claim(question_id, mod_a)
    await desk.store.release(question_id, mod_b)  # not theirs: nothing happens
    with pytest.raises(ClaimedByOther):
        await desk.store.act(question_id, "approve", mod_b)

    await desk.store.release(question_id, mod_a)
    assert (await desk.store.question(question_id)).claimed_by is None
    assert await desk.store.act(question_id, "approve", mod_b) is Status.APPROVED
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
        *(desk.store.claim(q, m) for q in ids for m in (mod_a, mod_b)), return_exceptions=True
    )
    for q in ids:
        await desk.store.release(q, mod_a)
        await desk.store.release(q, mod_b)
        await desk.store.act(q, "reject", mod_a)
    restores = await asyncio.gather(
        *(desk.store.act(q, "restore", m) for q in ids for m in (mod_a, mod_b)),
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
    await desk.store.act(rejected, "reject", mod_a)
    held = await desk.ingest()
    await desk.store.claim(held, mod_b)
    also_fine = await desk.ingest()

    outcomes = await desk.store.bulk(
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
    outcomes = await desk.store.bulk(ids, "assign", mod_a)
    assert [(o.ok, o.code) for o in outcomes] == [(False, "invalid_request")] * 2


# --- team feeds ----------------------------------------------------------------------


async def test_the_team_feed_pages_with_a_cursor(
    desk: Desk,
    camp_a: Team,
    camp_b: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    mine = [await desk.assigned(camp_a, mod_a) for _ in range(3)]
    await desk.assigned(camp_b, mod_a)

    page = await desk.store.feed("camp-a", member_a, limit=2)
    assert [i.question.id for i in page] == mine[:2]
    rest = await desk.store.feed("camp-a", member_a, after=page[-1].assignment.id, limit=2)
    assert [i.question.id for i in rest] == mine[2:]
    assert await desk.store.feed("camp-a", member_a, after=rest[-1].assignment.id) == []
    assert all(i.assignment.team_id == camp_a.id for i in page + rest)

    await desk.store.act(mine[0], "reject", mod_a)  # taken back: no longer the team's work
    await desk.store.act(mine[1], "quarantine", mod_a)
    assert [i.question.id for i in await desk.store.feed("camp-a", member_a)] == mine[2:]
    await desk.store.act(mine[0], "restore", mod_a)
    await desk.store.act(mine[0], "assign", mod_a, team="camp-a")  # and given again
    assert [i.question.id for i in await desk.store.feed("camp-a", member_a)] == [mine[2], mine[0]]


async def test_a_team_sees_and_touches_only_its_own_questions(
    desk: Desk,
    camp_a: Team,
    camp_b: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    theirs = await desk.assigned(camp_b, mod_a)
    with pytest.raises(Forbidden):
        await desk.store.feed("camp-b", member_a)
    with pytest.raises(Forbidden):
        await desk.store.team_claim(theirs, member_a)
    with pytest.raises(Forbidden):
        await desk.store.team_release(theirs, member_a)
    with pytest.raises(Forbidden):
        await desk.store.record_answer(theirs, member_a, stored_answer())
    with pytest.raises(Forbidden):
        await desk.store.mark_recorded(theirs, member_a)
    with pytest.raises(NotFound):
        await desk.store.feed("camp-gone", member_a)
    assert await desk.status(theirs) == "assigned"
    assert [i.question.id for i in await desk.store.feed("camp-b", mod_a)] == [theirs]  # moderators


async def test_a_team_member_takes_a_question_from_the_others(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    colleague = await add_person(desk.store, "member-a2", Role.TEAM, camp_a)
    question_id = await desk.assigned(camp_a, mod_a)
    until = await desk.store.team_claim(question_id, member_a)

    with pytest.raises(ClaimedByOther) as caught:
        await desk.store.team_claim(question_id, colleague)
    assert (caught.value.holder, caught.value.until) == ("member-a", until)
    with pytest.raises(ClaimedByOther):
        await desk.store.record_answer(question_id, colleague, stored_answer())
    with pytest.raises(Forbidden):
        await desk.store.team_release(question_id, colleague)

    desk.clock.advance(seconds=CLAIM_TTL_S + 1)
    assert await desk.store.team_claim(question_id, colleague) > until
    [item] = await desk.store.feed("camp-a", member_a)
    assert item.assignment.claimed_by == colleague.user_id
    await desk.store.team_release(question_id, colleague)
    [item] = await desk.store.feed("camp-a", member_a)
    assert item.assignment.claimed_by is None
    await desk.store.mark_recorded(question_id, colleague)
    assert [e[:2] for e in await events(desk.store, question_id)][-4:] == [
        ("team_claimed", "member-a"),
        ("team_claimed", "member-a2"),
        ("team_released", "member-a2"),
        ("filmed", "member-a2"),
    ]


async def test_a_question_no_team_holds_cannot_be_taken(desk: Desk, member_a: Actor) -> None:
    question_id = await desk.ingest()
    with pytest.raises(Conflict, match="not assigned"):
        await desk.store.team_claim(question_id, member_a)
    with pytest.raises(Conflict, match="not assigned"):
        await desk.store.record_answer(question_id, member_a, stored_answer())
    with pytest.raises(NotFound):
        await desk.store.team_claim("nope", member_a)


# --- answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "consent",
    [("", "campaign-social"), ("   ", "public"), ("speaker-1", "anything-goes")],
)
async def test_no_consent_no_answer(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor, consent: tuple[str, str]
) -> None:
    given_by, scope = consent
    question_id = await desk.assigned(camp_a, mod_a)
    answer = stored_answer(consent_given_by=given_by, consent_scope=scope)
    with pytest.raises(ConsentMissing) as caught:
        await desk.store.record_answer(question_id, member_a, answer)
    assert caught.value.code == "consent_required"
    assert await desk.status(question_id) == "assigned"
    assert await desk.store.answers(question_id) == []
    assert await outbox_topics(desk.store) == [topics.QUESTIONS_ASSIGNED]


async def test_recording_an_answer_stores_it_with_consent_and_announces_it(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    question_id = await desk.assigned(camp_a, mod_a)
    await desk.store.team_claim(question_id, member_a)
    given = stored_answer(consent_given_by="  Amina (guardian)  ", consent_scope="public")
    answer = await desk.store.record_answer(question_id, member_a, given)

    assert await desk.status(question_id) == "recorded"
    [(row, consent)] = await desk.store.answers(question_id)
    assert (row.id, row.state, row.sha256, row.team_id) == (
        answer.id,
        "submitted",
        given.sha256,
        camp_a.id,
    )
    assert consent is not None
    assert (consent.given_by, consent.scope, consent.recorded_by) == (
        "Amina (guardian)",
        "public",
        "member-a",
    )
    [item] = await desk.store.feed("camp-a", member_a)
    assert (item.assignment.state, item.assignment.claimed_by) == ("recorded", None)
    assert (await events(desk.store, question_id))[-1] == (
        "answer_recorded",
        "member-a",
        "assigned",
        "recorded",
        None,
    )

    [(key, message)] = await outbox(desk.store, topics.ANSWERS_RECORDED, AnswerRecorded)
    assert key == question_id
    assert (message.question_id, message.team, message.language) == (question_id, "camp-a", "en")
    assert (message.media.uri, message.media.sha256, message.media.bytes) == (
        given.uri,
        given.sha256,
        given.bytes,
    )
    assert (message.consent.speaker_ref, message.consent.scope) == ("Amina (guardian)", "public")
    assert (message.consent.recorded_by, message.consent.at) == ("member-a", desk.clock.now)
    assert message.caption == given.caption
    [(pending, _, consent)] = await desk.store.pending_answers()
    assert pending.id == answer.id
    assert consent is not None
    assert consent.given_by == "Amina (guardian)"


async def test_a_new_recording_replaces_the_one_waiting_for_review(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question_id = await desk.recorded(camp_a, mod_a, member_a)
    [(first, _)] = await desk.store.answers(question_id)
    second = await desk.store.record_answer(question_id, member_a, stored_answer())
    states = {a.id: a.state for a, _ in await desk.store.answers(question_id)}
    assert states == {first.id: "returned", second.id: "submitted"}
    assert [a.id for a, _, _ in await desk.store.pending_answers()] == [second.id]
    latest = await desk.store.latest_answers([question_id, "no-such-question"])
    assert list(latest) == [question_id]
    assert latest[question_id][0].id == second.id


async def test_approving_an_answer_requests_one_reply_per_asker_in_the_cluster(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    cluster = {"cluster_id": "miss-home"}
    main = await desk.assigned(camp_a, mod_a, **cluster)
    same_new = await desk.ingest(**cluster)
    same_approved = await desk.ingest(**cluster)
    await desk.store.act(same_approved, "approve", mod_a)
    same_rejected = await desk.ingest(**cluster)
    await desk.store.act(same_rejected, "reject", mod_a)
    elsewhere = await desk.ingest(cluster_id="other")
    answer = await desk.store.record_answer(
        main, member_a, stored_answer(caption="We miss the sea.", language="fr")
    )
    desk.clock.advance(minutes=5)

    replies = await desk.store.approve_answer(main, mod_a)
    _, consent = await desk.store.answer(answer.id)
    assert consent is not None

    askers = [main, same_new, same_approved]
    assert sorted(r.question_id for r in replies) == sorted(askers)
    assert len({r.reply_id for r in replies}) == 3
    assert all(r.state == "requested" and r.answer_id == answer.id for r in replies)
    assert [await desk.status(q) for q in (*askers, same_rejected, elsewhere)] == [
        "answered",
        "answered",
        "answered",
        "rejected",
        "new",
    ]
    requested = await outbox(desk.store, topics.REPLIES_REQUESTED, PublishReply)
    assert sorted(key for key, _ in requested) == sorted(askers)
    for key, message in requested:
        question = await desk.store.question(key)
        mention = MentionClassified.model_validate_json(question.classified_json).mention
        assert message.question_id == key
        assert message.reply_id == queue.reply_id(answer.id, question.mention_id)
        assert (message.mention_id, message.in_reply_to) == (
            question.mention_id,
            question.native_id,
        )
        assert (message.author.id, message.author.handle) == (
            question.author_id,
            question.author_handle,
        )
        assert (message.text, message.language, message.approved_by) == (
            "We miss the sea.",
            "fr",
            "mod-a",
        )
        assert message.media is not None
        assert message.media.sha256 == answer.sha256
        assert (message.consent.speaker_ref, message.consent.recorded_by) == (
            consent.given_by,
            "member-a",
        )
        assert message.requested_at == desk.clock.now
        assert (mention.native_id, mention.author) == (message.in_reply_to, message.author)
    assert (await events(desk.store, same_new))[-1] == (
        "answer_approved",
        "mod-a",
        "new",
        "answered",
        "approve_answer",
    )
    assert (await desk.store.answer(answer.id))[0].state == AnswerState.APPROVED
    assert await desk.store.feed("camp-a", member_a) == []  # the team's work is done
    assert await desk.store.pending_answers() == []


async def test_approving_again_requests_nothing_new(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    main = await desk.recorded(camp_a, mod_a, member_a, cluster_id="c")
    await desk.ingest(cluster_id="c")
    first = await desk.store.approve_answer(main, mod_a)
    messages = len(await all_outbox(desk.store))

    again = await desk.store.approve_answer(main, mod_a)
    assert sorted(r.reply_id for r in again) == sorted(r.reply_id for r in first)
    assert len(await all_outbox(desk.store)) == messages
    assert len(first) == 2


async def test_approving_closes_the_other_askers_team_work(
    desk: Desk,
    camp_a: Team,
    camp_b: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    main = await desk.recorded(camp_a, mod_a, member_a, cluster_id="c")
    also_given = await desk.assigned(camp_b, mod_a, cluster_id="c")
    await desk.store.approve_answer(main, mod_a)
    assert await desk.status(also_given) == "answered"
    assert await desk.store.feed("camp-b", mod_a) == []  # answered already: nothing left to film


async def test_approving_leaves_another_asker_s_own_recorded_answer_for_review(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    main = await desk.recorded(camp_a, mod_a, member_a, cluster_id="c")
    own = await desk.recorded(camp_a, mod_a, member_a, cluster_id="c")

    replies = await desk.store.approve_answer(main, mod_a)

    assert [r.question_id for r in replies] == [main]
    assert await desk.status(own) == "recorded"
    [(pending, _, _)] = await desk.store.pending_answers()
    assert pending.question_id == own
    own_replies = await desk.store.approve_answer(own, mod_a)
    assert [r.question_id for r in own_replies] == [own]
    assert await desk.status(own) == "answered"


async def test_an_answer_cannot_be_approved_before_it_is_recorded(
    desk: Desk, camp_a: Team, mod_a: Actor
) -> None:
    question_id = await desk.assigned(camp_a, mod_a)
    with pytest.raises(Conflict, match="no answer"):
        await desk.store.approve_answer(question_id, mod_a)
    with pytest.raises(Conflict, match="no answer"):
        await desk.store.return_answer(question_id, mod_a, "")
    with pytest.raises(NotFound):
        await desk.store.approve_answer("nope", mod_a)
    with pytest.raises(NotFound):
        await desk.store.answer("nope")


async def test_withdrawn_consent_stops_the_approval(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question_id = await desk.recorded(camp_a, mod_a, member_a)
    async with desk.store.sessions() as session:
        consent = await session.scalar(select(Consent))
        assert consent is not None
        consent.withdrawn_at = desk.store.clock()
        await session.commit()
    with pytest.raises(ConsentMissing):
        await desk.store.approve_answer(question_id, mod_a)
    assert await desk.status(question_id) == "recorded"
    assert topics.REPLIES_REQUESTED not in await outbox_topics(desk.store)


async def test_returning_an_answer_sends_the_question_back_to_the_team(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question_id = await desk.recorded(camp_a, mod_a, member_a)
    [(answer, _)] = await desk.store.answers(question_id)
    await desk.store.return_answer(question_id, mod_a, "too dark, please film again")

    assert await desk.status(question_id) == "assigned"
    returned, _ = await desk.store.answer(answer.id)
    assert (returned.state, returned.review_note, returned.reviewed_by) == (
        "returned",
        "too dark, please film again",
        "mod-a",
    )
    [item] = await desk.store.feed("camp-a", member_a)
    assert item.assignment.state == AssignmentState.ACTIVE
    last = (await desk.store.timeline(question_id))[-1]
    assert (last.event, last.from_status, last.to_status, last.reason) == (
        "answer_returned",
        "recorded",
        "assigned",
        "too dark, please film again",
    )
    with pytest.raises(Conflict):
        await desk.store.approve_answer(question_id, mod_a)

    await desk.store.record_answer(question_id, member_a, stored_answer())  # filmed again
    assert len(await desk.store.approve_answer(question_id, mod_a)) == 1
    with pytest.raises(Conflict, match="cannot be sent back"):
        await desk.store.return_answer(question_id, mod_a, "too late")


# --- reply outcomes ------------------------------------------------------------------


async def reply_row(store: TriageStore, reply_id: str) -> Reply:
    async with store.sessions() as session:
        reply = await session.get(Reply, reply_id)
    assert reply is not None
    return reply


async def test_a_published_reply_publishes_the_question_once(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    question_id, reply_id = await desk.answered(camp_a, mod_a, member_a)
    published = ReplyPublished(
        reply_id=reply_id,
        question_id=question_id,
        platform=Platform.X,
        post_id="1900000000000000001",
        url="https://x.test/status/1900000000000000001",
        at=desk.clock.now,
    )
    assert await desk.store.reply_outcome(published) is True
    assert await desk.status(question_id) == "published"
    reply = await reply_row(desk.store, reply_id)
    assert (reply.state, reply.post_id, reply.url) == (
        ReplyState.PUBLISHED,
        published.post_id,
        published.url,
    )
    assert (await events(desk.store, question_id))[-1] == (
        "reply_published",
        "system:publish",
        "answered",
        "published",
        None,
    )
    count = await all_events(desk.store)

    assert await desk.store.reply_outcome(published) is False  # redelivered
    assert await all_events(desk.store) == count
    unknown = published.model_copy(update={"reply_id": "reply-unknown"})
    assert await desk.store.reply_outcome(unknown) is False


async def test_a_failed_reply_is_recorded_and_a_later_success_still_counts(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    question_id, reply_id = await desk.answered(camp_a, mod_a, member_a)
    failed = ReplyFailed(
        reply_id=reply_id,
        question_id=question_id,
        platform=Platform.X,
        error="HTTP 503",
        attempts=4,
        retryable=True,
        at=desk.clock.now,
    )
    assert await desk.store.reply_outcome(failed) is True
    assert await desk.store.reply_outcome(failed) is False
    assert await desk.status(question_id) == "answered"
    last = (await desk.store.timeline(question_id))[-1]
    assert (last.event, last.reason) == ("reply_failed", "HTTP 503")

    published = ReplyPublished(
        reply_id=reply_id,
        question_id=question_id,
        platform=Platform.X,
        post_id="7",
        at=desk.clock.now,
    )
    assert await desk.store.reply_outcome(published) is True
    assert await desk.status(question_id) == "published"
    assert await desk.store.reply_outcome(failed) is False  # a late failure changes nothing
    reply = await reply_row(desk.store, reply_id)
    assert (reply.state, reply.post_id, reply.error) == (ReplyState.PUBLISHED, "7", "HTTP 503")
    assert await desk.status(question_id) == "published"


# --- outbox --------------------------------------------------------------------------


async def test_the_outbox_is_sent_then_pruned(desk: Desk, camp_a: Team, mod_a: Actor) -> None:
    for _ in range(3):
        await desk.assigned(camp_a, mod_a)
    pending = await desk.store.outbox_pending()
    assert [r.topic for r in pending] == [topics.QUESTIONS_ASSIGNED] * 3
    assert [r.id for r in pending] == sorted(r.id for r in pending)
    assert [r.id for r in await desk.store.outbox_pending(limit=2)] == [r.id for r in pending[:2]]
    assert await desk.store.outbox_backlog() == 3

    sent: list[int] = []

    async def send(rows: Sequence[OutboxMessage]) -> None:
        sent.extend(r.id for r in rows)

    async def broker_down(rows: Sequence[OutboxMessage]) -> None:
        raise OSError("broker unreachable")

    with pytest.raises(OSError, match="unreachable"):
        await desk.store.outbox_relay(broker_down, limit=2)
    assert await desk.store.outbox_backlog() == 3  # nothing marked when the send failed
    assert await desk.store.outbox_relay(send, limit=2) == 2
    assert sent == [r.id for r in pending[:2]]
    [left] = await desk.store.outbox_pending()
    assert left.id == pending[2].id
    assert await desk.store.outbox_prune(timedelta(hours=1)) == 0  # sent just now

    desk.clock.advance(hours=2)
    assert await desk.store.outbox_prune(timedelta(hours=1)) == 2
    assert [r.id for r in await all_outbox(desk.store)] == [left.id]  # unsent is never pruned


@pytest.mark.integration
async def test_relays_running_at_once_on_postgres_send_each_message_once(
    tmp_path: Path, mention_factory: Callable[..., MentionReceived]
) -> None:
    """Two web replicas relaying at the same time take different rows (SKIP LOCKED)."""
    async with migrated_store("postgres", tmp_path, FakeClock()) as store:
        team = await store.upsert_team(
            "camp-a", name="A", languages=["en"], capacity=50, actor=Actor.system("t")
        )
        make = classified_factory(mention_factory)
        for _ in range(6):
            question = await store.ingest(make())
            assert question is not None
            await store.act(question.id, "assign", Actor(name="mod"), team=team.slug)
        sent: list[int] = []
        inside: list[int] = []
        both_in = asyncio.Event()

        async def send(rows: Sequence[OutboxMessage]) -> None:
            sent.extend(r.id for r in rows)
            inside.append(1)
            if len(inside) == 2:
                both_in.set()
            with contextlib.suppress(TimeoutError):  # hold the rows until both are in
                await asyncio.wait_for(both_in.wait(), timeout=1.0)

        counts = await asyncio.gather(store.outbox_relay(send, 3), store.outbox_relay(send, 3))
        assert sorted(counts) == [3, 3]
        assert sorted(sent) == sorted(set(sent))
        assert len(sent) == 6
        assert await store.outbox_backlog() == 0
