"""The moderators' desk in the JSON API (issue 18): undoing a block, tags on
questions and the queue filtered by one; on SQLite and Postgres through the real app."""

from __future__ import annotations

from tests.triage.web.helpers.api import Web


async def test_a_block_is_undone_like_any_action(web: Web) -> None:
    author = {"author": {"id": "heated-1", "handle": "heated"}}
    first = await web.ingest(mention=author)
    second = await web.ingest(mention=author)
    assert (await web.call("mod1", "POST", f"/api/questions/{first}/block")).status_code == 200
    refused = await web.call("mod2", "POST", f"/api/questions/{first}/undo")
    assert refused.status_code == 409
    undone = await web.call("mod1", "POST", f"/api/questions/{first}/undo")
    assert undone.json() == {"question_id": first, "status": "new"}
    other = (await web.call("mod1", "GET", f"/api/questions/{second}")).json()
    assert other["status"] == "new"
    later = await web.ingest(mention=author)
    assert (await web.call("mod1", "GET", f"/api/questions/{later}")).json()["status"] == "new"


async def test_tags_are_added_removed_and_filter_the_queue(web: Web) -> None:
    tagged = await web.ingest()
    other = await web.ingest()
    added = await web.call(
        "mod1", "POST", f"/api/questions/{tagged}/tags", json={"tag": " Ask the camp "}
    )
    assert added.json() == {"question_id": tagged, "tags": ["ask-the-camp"]}
    await web.call("mod2", "POST", f"/api/questions/{tagged}/tags", json={"tag": "press"})
    again = await web.call("mod2", "POST", f"/api/questions/{tagged}/tags", json={"tag": "press"})
    assert again.json()["tags"] == ["ask-the-camp", "press"]
    await web.call("mod1", "POST", f"/api/questions/{other}/tags", json={"tag": "press"})

    listed = (await web.call("mod1", "GET", "/api/questions?tag=ask-the-camp")).json()
    assert [(q["id"], q["tags"]) for q in listed["items"]] == [(tagged, ["ask-the-camp", "press"])]
    used = (await web.call("mod1", "GET", "/api/tags")).json()
    assert used == [
        {"tag": "press", "questions": 2},
        {"tag": "ask-the-camp", "questions": 1},
    ]

    removed = await web.call("mod1", "DELETE", f"/api/questions/{tagged}/tags/press")
    assert removed.json()["tags"] == ["ask-the-camp"]
    timeline = (await web.call("mod1", "GET", f"/api/questions/{tagged}/timeline")).json()
    assert [(e["event"], e["actor"], e["reason"]) for e in timeline[-3:]] == [
        ("tagged", "mod1", "ask-the-camp"),
        ("tagged", "mod2", "press"),  # the second "press" changed nothing
        ("untagged", "mod1", "press"),
    ]


async def test_a_tag_is_checked_and_only_moderators_tag(web: Web) -> None:
    question = await web.ingest()
    bad = await web.call("mod1", "POST", f"/api/questions/{question}/tags", json={"tag": "#!?"})
    assert bad.status_code == 422
    assert "not a tag" in bad.json()["error"]["message"]
    team = await web.call("team-a", "POST", f"/api/questions/{question}/tags", json={"tag": "x"})
    assert team.status_code == 403
    missing = await web.call("mod1", "POST", "/api/questions/nope/tags", json={"tag": "x"})
    assert missing.status_code == 404
    for n in range(12):
        await web.call("mod1", "POST", f"/api/questions/{question}/tags", json={"tag": f"t{n}"})
    full = await web.call("mod1", "POST", f"/api/questions/{question}/tags", json={"tag": "more"})
    assert full.status_code == 409


# --- a person on a question, and what people are told ---------------------------------


async def test_a_question_is_given_to_a_person_who_finds_it_under_mine(web: Web) -> None:
    question = await web.ingest()
    other = await web.ingest()
    given = await web.call(
        "mod1", "PUT", f"/api/questions/{question}/assignee", json={"user": "mod2"}
    )
    assert given.json() == {"question_id": question, "assignee": "mod2"}
    mine = (await web.call("mod2", "GET", "/api/questions?assignee=mod2")).json()
    assert [(q["id"], q["assignee"]) for q in mine["items"]] == [(question, "mod2")]
    listed = (await web.call("mod1", "GET", f"/api/questions/{other}")).json()
    assert listed["assignee"] is None

    # mod2 is told; mod1 (who gave it) is not.
    told = (await web.call("mod2", "GET", "/api/notifications")).json()
    assert [(n["kind"], n["link"], n["read"]) for n in told] == [
        ("given_to_you", f"/questions/{question}", False)
    ]
    assert told[0]["text"].startswith("mod1 gave you a question: “")
    assert (await web.call("mod1", "GET", "/api/notifications/unread-count")).json() == {
        "unread": 0
    }

    cleared = await web.call("mod2", "PUT", f"/api/questions/{question}/assignee", json={})
    assert cleared.json()["assignee"] is None
    timeline = (await web.call("mod1", "GET", f"/api/questions/{question}/timeline")).json()
    assert [(e["event"], e["actor"], e["reason"]) for e in timeline[-2:]] == [
        ("assignee_set", "mod1", "mod2"),
        ("assignee_set", "mod2", ""),
    ]


async def test_a_team_member_is_given_only_a_question_their_team_has(web: Web) -> None:
    question = await web.ingest()
    refused = await web.call(
        "mod1", "PUT", f"/api/questions/{question}/assignee", json={"user": "team-a"}
    )
    assert refused.status_code == 409
    assert "assign it to their team first" in refused.json()["error"]["message"]
    unknown = await web.call(
        "mod1", "PUT", f"/api/questions/{question}/assignee", json={"user": "ghost"}
    )
    assert unknown.status_code == 404
    by_team = await web.call(
        "team-a", "PUT", f"/api/questions/{question}/assignee", json={"user": "team-a"}
    )
    assert by_team.status_code == 403

    await web.call("mod1", "POST", f"/api/questions/{question}/assign", json={"team": "kakuma-a"})
    given = await web.call(
        "mod1", "PUT", f"/api/questions/{question}/assignee", json={"user": "team-a"}
    )
    assert given.json()["assignee"] == "team-a"
    feed = (await web.call("team-a", "GET", "/api/teams/kakuma-a/feed")).json()
    assert [(e["question_id"], e["given_to_me"]) for e in feed["items"]] == [(question, True)]


async def test_a_team_is_told_of_new_work_and_reads_it(web: Web) -> None:
    question = await web.ingest(mention={"text": "What do you cook on Fridays in the camp?"})
    await web.call("mod1", "POST", f"/api/questions/{question}/assign", json={"team": "kakuma-a"})
    assert (await web.call("team-a", "GET", "/api/notifications/unread-count")).json() == {
        "unread": 1
    }
    assert (await web.call("team-b", "GET", "/api/notifications/unread-count")).json() == {
        "unread": 0
    }
    [told] = (await web.call("team-a", "GET", "/api/notifications")).json()
    assert (told["kind"], told["text"], told["link"], told["question_id"]) == (
        "team_assigned",
        "New question for Kakuma A: “What do you cook on Fridays in the camp?”",
        "/team/kakuma-a",
        question,
    )
    read = await web.call("team-a", "POST", "/api/notifications/read", json={"ids": [told["id"]]})
    assert read.json() == {"unread": 0}
    # Someone else's ids change nothing of theirs.
    await web.call(
        "mod1", "POST", f"/api/questions/{await web.ingest()}/assign", json={"team": "kakuma-a"}
    )
    mod_read = await web.call("mod1", "POST", "/api/notifications/read", json={})
    assert mod_read.json() == {"unread": 0}
    assert (await web.call("team-a", "GET", "/api/notifications/unread-count")).json() == {
        "unread": 1
    }
