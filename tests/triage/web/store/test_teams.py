"""The teams aggregate: a team's feed, a member taking a question."""

from __future__ import annotations

import pytest

from services.triage.web.exceptions import (
    ClaimedByOther,
    Conflict,
    Forbidden,
    NotFound,
)
from services.triage.web.models import (
    Role,
    Team,
)
from services.triage.web.store import Actor
from tests.triage.web.helpers.store import (
    CLAIM_TTL_S,
    Desk,
    add_person,
    events,
    stored_answer,
)

pytestmark = pytest.mark.timeout(60)


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

    page = await desk.store.teams.feed("camp-a", member_a, limit=2)
    assert [i.question.id for i in page] == mine[:2]
    rest = await desk.store.teams.feed("camp-a", member_a, after=page[-1].assignment.id, limit=2)
    assert [i.question.id for i in rest] == mine[2:]
    assert await desk.store.teams.feed("camp-a", member_a, after=rest[-1].assignment.id) == []
    assert all(i.assignment.team_id == camp_a.id for i in page + rest)

    await desk.store.questions.act(
        mine[0], "reject", mod_a
    )  # taken back: no longer the team's work
    await desk.store.questions.act(mine[1], "quarantine", mod_a)
    assert [i.question.id for i in await desk.store.teams.feed("camp-a", member_a)] == mine[2:]
    await desk.store.questions.act(mine[0], "restore", mod_a)
    await desk.store.questions.act(mine[0], "assign", mod_a, team="camp-a")  # and given again
    assert [i.question.id for i in await desk.store.teams.feed("camp-a", member_a)] == [
        mine[2],
        mine[0],
    ]


async def test_a_team_sees_and_touches_only_its_own_questions(
    desk: Desk,
    camp_a: Team,
    camp_b: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    theirs = await desk.assigned(camp_b, mod_a)
    with pytest.raises(Forbidden):
        await desk.store.teams.feed("camp-b", member_a)
    with pytest.raises(Forbidden):
        await desk.store.teams.take(theirs, member_a)
    with pytest.raises(Forbidden):
        await desk.store.teams.give_back(theirs, member_a)
    with pytest.raises(Forbidden):
        await desk.store.answers.record(theirs, member_a, stored_answer())
    with pytest.raises(Forbidden):
        await desk.store.teams.mark_filmed(theirs, member_a)
    with pytest.raises(NotFound):
        await desk.store.teams.feed("camp-gone", member_a)
    assert await desk.status(theirs) == "assigned"
    assert [i.question.id for i in await desk.store.teams.feed("camp-b", mod_a)] == [
        theirs
    ]  # moderators


async def test_a_team_member_takes_a_question_from_the_others(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    colleague = await add_person(desk.store, "member-a2", Role.TEAM, camp_a)
    question_id = await desk.assigned(camp_a, mod_a)
    until = await desk.store.teams.take(question_id, member_a)

    with pytest.raises(ClaimedByOther) as caught:
        await desk.store.teams.take(question_id, colleague)
    assert (caught.value.holder, caught.value.until) == ("member-a", until)
    with pytest.raises(ClaimedByOther):
        await desk.store.answers.record(question_id, colleague, stored_answer())
    with pytest.raises(Forbidden):
        await desk.store.teams.give_back(question_id, colleague)

    desk.clock.advance(seconds=CLAIM_TTL_S + 1)
    assert await desk.store.teams.take(question_id, colleague) > until
    [item] = await desk.store.teams.feed("camp-a", member_a)
    assert item.assignment.claimed_by == colleague.user_id
    await desk.store.teams.give_back(question_id, colleague)
    [item] = await desk.store.teams.feed("camp-a", member_a)
    assert item.assignment.claimed_by is None
    await desk.store.teams.mark_filmed(question_id, colleague)
    assert [e[:2] for e in await events(desk.store, question_id)][-4:] == [
        ("team_claimed", "member-a"),
        ("team_claimed", "member-a2"),
        ("team_released", "member-a2"),
        ("filmed", "member-a2"),
    ]


async def test_a_question_no_team_holds_cannot_be_taken(desk: Desk, member_a: Actor) -> None:
    question_id = await desk.ingest()
    with pytest.raises(Conflict, match="not assigned"):
        await desk.store.teams.take(question_id, member_a)
    with pytest.raises(Conflict, match="not assigned"):
        await desk.store.answers.record(question_id, member_a, stored_answer())
    with pytest.raises(NotFound):
        await desk.store.teams.take("nope", member_a)
