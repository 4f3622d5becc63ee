"""A question taken from its team (rejected, quarantined, given to another team) is
no longer the team's: it cannot read it, record or upload for it, and what it was
told of it goes. Through the JSON API, on SQLite and Postgres."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from services.triage.web import policy
from services.triage.web.exceptions import Conflict, Forbidden
from services.triage.web.models import Question, Role, Status
from tests.helpers.media import video_bytes
from tests.triage.web.helpers.api import Web, assigned
from tests.triage.web.helpers.media import run_media_jobs

TEXT = "What do the children eat at school in the camp?"
ANSWER = {"language": "en", "consent_given_by": "Amina", "consent_scope": "public"}


async def _record(web: Web, question: str) -> int:
    files = {"video": ("a.mp4", video_bytes(300_000), "video/mp4")}
    response = await web.call(
        "team-a", "POST", f"/api/questions/{question}/answer", files=files, data=ANSWER
    )
    return response.status_code


async def _start_upload(web: Web, question: str, video: bytes) -> str:
    created = await web.call(
        "team-a", "POST", f"/api/questions/{question}/uploads",
        json={"size": len(video), "mime": "video/mp4", "sha256": hashlib.sha256(video).hexdigest()},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    upload: str = created.json()["upload_id"]
    return upload


@pytest.mark.parametrize("action", ["reject", "quarantine"])
async def test_a_question_taken_from_the_team_is_no_longer_the_team_s(
    web: Web, action: str
) -> None:
    question = await assigned(web, mention={"text": TEXT})
    assert (await web.call("team-a", "GET", f"/api/questions/{question}")).status_code == 200
    video = video_bytes(120_000)
    upload = await _start_upload(web, question, video)  # the phone started sending
    half = await web.call(
        "team-a", "PATCH", f"/api/uploads/{upload}", content=video[:60_000],
        headers={"Upload-Offset": "0"},
    )  # fmt: skip
    assert half.status_code == 200, half.text

    taken = await web.call("mod1", "POST", f"/api/questions/{question}/{action}")
    assert taken.status_code == 200, taken.text

    read = await web.call("team-a", "GET", f"/api/questions/{question}")
    assert read.status_code == 403
    assert TEXT not in read.text
    answers = await web.call("team-a", "GET", f"/api/questions/{question}/answers")
    assert answers.status_code == 403
    rest = await web.call(
        "team-a", "PATCH", f"/api/uploads/{upload}", content=video[60_000:],
        headers={"Upload-Offset": "60000"},
    )  # fmt: skip
    assert rest.status_code == 403
    finish = await web.call("team-a", "POST", f"/api/uploads/{upload}/answer", json=ANSWER)
    assert finish.status_code == 403
    new_upload = await web.call(
        "team-a", "POST", f"/api/questions/{question}/uploads",
        json={"size": 10, "mime": "video/mp4", "sha256": "0" * 64},
    )  # fmt: skip
    assert new_upload.status_code == 403
    assert await _record(web, question) == 403
    feed = (await web.call("team-a", "GET", "/api/teams/kakuma-a/feed")).json()
    assert feed["items"] == []
    # The notice of the new work, with the question's text, went with it.
    told = (await web.call("team-a", "GET", "/api/notifications")).json()
    assert [n for n in told if n["question_id"] == question] == []
    # The moderators still see it all; it is no team's any more.
    seen = (await web.call("mod1", "GET", f"/api/questions/{question}")).json()
    assert (seen["status"], seen["team"], seen["text"]) == (
        "rejected" if action == "reject" else "quarantined",
        None,
        TEXT,
    )


async def test_a_rejected_question_that_still_names_the_team_is_not_shown_to_it(
    web: Web,
) -> None:
    """Rows rejected before the team was cleared from them: the status decides too."""
    question = await assigned(web, mention={"text": TEXT})
    await web.call("mod1", "POST", f"/api/questions/{question}/reject")
    team_id = (await web.runtime.store.teams.get("kakuma-a")).id
    async with web.runtime.store.sessions() as session:
        await session.execute(
            update(Question).where(Question.id == question).values(team_id=team_id)
        )
        await session.commit()
    for url in (f"/api/questions/{question}", f"/api/questions/{question}/answers"):
        assert (await web.call("team-a", "GET", url)).status_code == 403, url
    await web.call("mod1", "POST", f"/api/questions/{question}/quarantine")
    assert (await web.call("team-a", "GET", f"/api/questions/{question}")).status_code == 403


async def test_a_question_given_to_another_team_takes_its_notice_along(web: Web) -> None:
    question = await assigned(web, mention={"text": TEXT})
    moved = await web.call(
        "mod1", "POST", f"/api/questions/{question}/assign", json={"team": "dadaab-b"}
    )
    assert moved.status_code == 200, moved.text
    assert (await web.call("team-a", "GET", f"/api/questions/{question}")).status_code == 403
    assert (await web.call("team-a", "GET", "/api/notifications")).json() == []
    [told] = (await web.call("team-b", "GET", "/api/notifications")).json()
    assert told["question_id"] == question


async def test_an_undone_assignment_takes_its_notice_along(web: Web) -> None:
    question = await assigned(web, mention={"text": TEXT})
    assert (await web.call("mod1", "POST", f"/api/questions/{question}/undo")).status_code == 200
    assert (await web.call("team-a", "GET", f"/api/questions/{question}")).status_code == 403
    assert (await web.call("team-a", "GET", "/api/notifications")).json() == []


async def test_the_team_reads_its_question_while_it_works_on_it_and_after(web: Web) -> None:
    question = await assigned(web, mention={"text": TEXT})
    assert (await web.call("team-a", "GET", f"/api/questions/{question}")).status_code == 200
    assert await _record(web, question) == 201
    assert await _record(web, question) == 201  # a better take, before the review
    for url in (f"/api/questions/{question}", f"/api/questions/{question}/answers"):
        assert (await web.call("team-a", "GET", url)).status_code == 200, url
    await run_media_jobs(web.runtime.store)
    approved = await web.call("mod1", "POST", f"/api/questions/{question}/answer/approve")
    assert approved.status_code == 200, approved.text

    read = await web.call("team-a", "GET", f"/api/questions/{question}")
    assert (read.status_code, read.json()["status"]) == (200, "answered")
    listed = await web.call("team-a", "GET", f"/api/questions/{question}/answers")
    assert [a["state"] for a in listed.json()] == ["approved", "returned"]
    # Answered: nothing more to record for it.
    late = await web.call(
        "team-a", "POST", f"/api/questions/{question}/uploads",
        json={"size": 10, "mime": "video/mp4", "sha256": "0" * 64},
    )  # fmt: skip
    assert late.status_code == 409
    assert "answered" in late.json()["error"]["message"]


# --- the rule, without the app ------------------------------------------------------


@dataclass(frozen=True)
class _Someone:
    role: Role | None
    team_id: int | None


TEAM = _Someone(Role.TEAM, 1)
MODERATOR = _Someone(Role.MODERATOR, None)


@pytest.mark.parametrize("status", list(Status))
def test_a_team_reads_its_question_only_while_it_holds_it(status: Status) -> None:
    holds = status in {Status.ASSIGNED, Status.RECORDED, Status.ANSWERED, Status.PUBLISHED}
    if holds:
        policy.check_question(TEAM, 1, status)
    else:
        with pytest.raises(Forbidden):
            policy.check_question(TEAM, 1, status)
    with pytest.raises(Forbidden):
        policy.check_question(TEAM, 2, status)  # another team's, whatever its status
    policy.check_question(MODERATOR, None, status)


@pytest.mark.parametrize("status", list(Status))
def test_anyone_records_only_while_a_team_works_on_the_question(status: Status) -> None:
    if status in {Status.ASSIGNED, Status.RECORDED}:
        policy.check_recording(TEAM, 1, status)
        policy.check_recording(MODERATOR, 1, status)
        return
    refused = Conflict if status in {Status.ANSWERED, Status.PUBLISHED} else Forbidden
    with pytest.raises(refused):
        policy.check_recording(TEAM, 1, status)
    with pytest.raises(Conflict):
        policy.check_recording(MODERATOR, 1, status)
