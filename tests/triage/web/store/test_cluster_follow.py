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
