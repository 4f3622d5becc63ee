"""What people are told (issue 18): new work for their team, once per assignment;
their team's answer out, once per answer (not once per asker of its cluster)."""

from __future__ import annotations

import pytest

from services.common.messages import Platform, ReplyPublished
from services.triage.web.models import Role, Team
from services.triage.web.store import Actor
from tests.triage.web.helpers.store import Desk, add_person

pytestmark = pytest.mark.timeout(60)


async def _kinds(desk: Desk, who: Actor) -> list[tuple[str, str]]:
    assert who.user_id is not None
    return [(n.kind, n.link) for n in await desk.store.notifications.recent(who.user_id)]


async def test_a_team_is_told_of_each_assignment_not_of_its_followers(
    desk: Desk, camp_a: Team, camp_b: Team, mod_a: Actor, member_a: Actor
) -> None:
    other_team = await add_person(desk.store, "member-b", Role.TEAM, camp_b)
    await desk.ingest(cluster_id="c-1")
    head = await desk.assigned(camp_a, mod_a, cluster_id="c-1")
    assert await _kinds(desk, member_a) == [("team_assigned", "/team/camp-a")]
    assert await _kinds(desk, other_team) == []
    assert await _kinds(desk, mod_a) == []
    assert member_a.user_id is not None
    assert await desk.store.notifications.unread(member_a.user_id) == 1
    assert await desk.store.notifications.mark_read(member_a.user_id) == 1
    assert await desk.store.notifications.unread(member_a.user_id) == 0
    [seen] = await desk.store.notifications.recent(member_a.user_id)
    assert (seen.question_id, seen.read_at) == (head, desk.clock.now)


async def test_the_team_is_told_once_when_its_answer_is_out(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question_id, reply_id = await desk.answered(camp_a, mod_a, member_a)
    assert member_a.user_id is not None
    await desk.store.notifications.mark_read(member_a.user_id)
    published = ReplyPublished(
        reply_id=reply_id,
        question_id=question_id,
        platform=Platform.X,
        post_id="1900000000000000002",
        url="https://x.test/status/1900000000000000002",
        at=desk.clock.now,
    )
    await desk.store.answers.reply_outcome(published)
    await desk.store.answers.reply_outcome(published)  # redelivered: told once
    told = await desk.store.notifications.recent(member_a.user_id)
    assert [(n.kind, n.link, n.read_at) for n in told[:1]] == [
        ("answer_published", published.url, None)
    ]
    assert [n.kind for n in told].count("answer_published") == 1
    assert told[0].text.startswith("Your answer is out: the reply to @")
