"""A question whose cluster already went to a team follows it (issue 18, item 6)."""

from __future__ import annotations

import pytest

from services.triage.web.models import Team
from services.triage.web.store import Actor
from tests.triage.web.helpers.store import Desk, events

pytestmark = pytest.mark.timeout(60)


async def test_a_new_asker_of_an_assigned_cluster_follows_it_without_costing_the_team(
    desk: Desk, mod_a: Actor, camp_a: Team
) -> None:
    head = await desk.assigned(camp_a, mod_a, cluster_id="c-dreams")
    before = {x.team.slug: x.remaining for x in await desk.store.teams.loads()}

    follower = await desk.ingest(cluster_id="c-dreams")
    question = await desk.store.questions.get(follower)
    assert (question.status, question.team_id) == ("assigned", camp_a.id)
    assert (await events(desk.store, follower))[-1] == (
        "follows_cluster",
        "system:cluster",
        "new",
        "assigned",
        None,
    )
    assert {x.team.slug: x.remaining for x in await desk.store.teams.loads()} == before
    feed = await desk.store.teams.feed(camp_a.slug, mod_a)
    assert [item.question.id for item in feed] == [head]  # nothing more to film


async def test_a_cluster_nobody_took_yet_waits_for_triage(desk: Desk) -> None:
    await desk.ingest(cluster_id="c-food")
    second = await desk.ingest(cluster_id="c-food")
    assert await desk.status(second) == "new"


async def test_askers_already_waiting_follow_when_their_cluster_is_assigned(
    desk: Desk, mod_a: Actor, mod_b: Actor, camp_a: Team, camp_b: Team
) -> None:
    waiting = await desk.ingest(cluster_id="c-home")
    approved = await desk.ingest(cluster_id="c-home")
    await desk.store.questions.act(approved, "approve", mod_a)
    held = await desk.ingest(cluster_id="c-home")
    await desk.store.questions.claim(held, mod_b)
    elsewhere = await desk.ingest(cluster_id="c-other")
    before = {x.team.slug: x.remaining for x in await desk.store.teams.loads()}

    head = await desk.assigned(camp_a, mod_a, cluster_id="c-home")
    for member in (waiting, approved):
        question = await desk.store.questions.get(member)
        assert (question.status, question.team_id) == ("assigned", camp_a.id)
    assert (await events(desk.store, approved))[-1] == (
        "follows_cluster",
        "system:cluster",
        "approved",
        "assigned",
        None,
    )
    assert [await desk.status(q) for q in (held, elsewhere)] == ["new", "new"]
    after = {x.team.slug: x.remaining for x in await desk.store.teams.loads()}
    assert after == {**before, camp_a.slug: before[camp_a.slug] - 1}  # one film for all
    assert [i.question.id for i in await desk.store.teams.feed(camp_a.slug, mod_a)] == [head]

    # Given to another team instead: the followers go with it.
    await desk.store.questions.act(head, "assign", mod_a, team=camp_b.slug)
    assert {(await desk.store.questions.get(q)).team_id for q in (waiting, approved)} == {camp_b.id}


async def test_undoing_the_cluster_s_assignment_sends_its_followers_back_to_triage(
    desk: Desk, mod_a: Actor, camp_a: Team
) -> None:
    waiting = await desk.ingest(cluster_id="c-home")
    head = await desk.assigned(camp_a, mod_a, cluster_id="c-home")
    assert await desk.status(waiting) == "assigned"
    await desk.store.questions.undo(head, mod_a)
    question = await desk.store.questions.get(waiting)
    assert (question.status, question.team_id) == ("new", None)
    assert (await events(desk.store, waiting))[-1][:4] == ("undone", mod_a.name, "assigned", "new")


@pytest.mark.parametrize("action", ["reject", "quarantine"])
async def test_taking_the_cluster_s_question_from_the_team_sends_its_followers_back(
    desk: Desk, mod_a: Actor, camp_a: Team, action: str
) -> None:
    """The followers were with the team only because of it: they wait for triage again
    (one of them can be assigned in its place), rather than sit with a team that has
    nothing to film for them."""
    waiting = await desk.ingest(cluster_id="c-home")
    head = await desk.assigned(camp_a, mod_a, cluster_id="c-home")
    late = await desk.ingest(cluster_id="c-home")  # followed at once
    elsewhere = await desk.assigned(camp_a, mod_a, cluster_id="c-other")
    other_follower = await desk.ingest(cluster_id="c-other")
    await desk.store.questions.act(head, action, mod_a, reason="troll account")
    for member in (waiting, late):
        question = await desk.store.questions.get(member)
        assert (question.status, question.team_id) == ("new", None)
        assert (await events(desk.store, member))[-1][:4] == (
            "undone",
            mod_a.name,
            "assigned",
            "new",
        )
    assert [await desk.status(q) for q in (elsewhere, other_follower)] == ["assigned"] * 2
    # One of them can go to the team in the question's place, and the other follows it.
    await desk.store.questions.act(waiting, "assign", mod_a, team=camp_a.slug)
    assert await desk.status(late) == "assigned"
