"""The triage web's JSON API, through the real app (lifespan, migrations,
auth, error mapping) on SQLite and Postgres; Kafka is off (the outbox is
checked instead)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.messages import (
    AnswerRecorded,
    Decision,
    PublishReply,
    QuestionAssigned,
)
from tests.helpers.media import long_answer_bytes, video_bytes
from tests.triage.web.helpers.api import PASSWORD, Web, assigned
from tests.triage.web.helpers.media import SPOKEN, run_media_jobs
from tests.triage.web.helpers.store import outbox

# --- authentication and roles ------------------------------------------------------


async def test_token_flow_and_me(web: Web) -> None:
    response = await web.call("team-a", "GET", "/api/me")
    assert response.json() == {"username": "team-a", "role": "team", "team": "kakuma-a"}


async def test_wrong_password_and_unknown_user_get_the_same_401(web: Web) -> None:
    wrong = await web.client.post("/api/token", data={"username": "mod1", "password": "nope" * 4})
    unknown = await web.client.post(
        "/api/token", data={"username": "ghost", "password": "nope" * 4}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_failed_logins_are_limited(web: Web) -> None:
    for _ in range(5):
        await web.client.post("/api/token", data={"username": "mod2", "password": "wrong" * 4})
    response = await web.client.post("/api/token", data={"username": "mod2", "password": PASSWORD})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic abc"])
async def test_no_or_bad_token_is_401(web: Web, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = await web.client.get("/api/questions", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_logout_revokes_the_token(web: Web) -> None:
    assert (await web.call("mod2", "POST", "/api/logout")).status_code == 204
    assert (await web.call("mod2", "GET", "/api/me")).status_code == 401


async def test_a_team_member_cannot_see_the_moderator_queue(web: Web) -> None:
    response = await web.call("team-a", "GET", "/api/questions")
    assert response.status_code == 403
    assert (await web.call("team-a", "GET", "/api/answers")).status_code == 403


async def test_a_team_sees_only_its_own_feed_and_questions(web: Web) -> None:
    question = await web.ingest()
    await web.call("mod1", "POST", f"/api/questions/{question}/assign", json={"team": "dadaab-b"})
    assert (await web.call("team-a", "GET", "/api/teams/dadaab-b/feed")).status_code == 403
    assert (await web.call("team-a", "GET", f"/api/questions/{question}")).status_code == 403
    assert (await web.call("team-a", "POST", f"/api/questions/{question}/take")).status_code == 403
    upload = await web.call(
        "team-a",
        "POST",
        f"/api/questions/{question}/uploads",
        json={"size": 10, "mime": "video/mp4", "sha256": "0" * 64},
    )
    assert upload.status_code == 403
    teams = await web.call("team-a", "GET", "/api/teams")
    assert [t["slug"] for t in teams.json()] == ["kakuma-a"]
    own = await web.call("team-b", "GET", "/api/teams/dadaab-b/feed")
    assert [i["question_id"] for i in own.json()["items"]] == [question]


async def test_only_an_admin_manages_teams_and_users(web: Web) -> None:
    body = {"name": "New", "languages": ["so"], "capacity": 3}
    assert (await web.call("mod1", "PUT", "/api/teams/new-team", json=body)).status_code == 403
    created = await web.call("admin", "PUT", "/api/teams/new-team", json=body)
    assert created.status_code == 200
    assert created.json()["languages"] == ["so"]
    user = {"username": "newbie", "password": PASSWORD, "role": "team", "team": "new-team"}
    assert (await web.call("mod1", "POST", "/api/users", json=user)).status_code == 403
    assert (await web.call("admin", "POST", "/api/users", json=user)).status_code == 201


# --- the queue and its actions ------------------------------------------------------


async def test_questions_are_listed_by_priority_and_filtered(web: Web) -> None:
    low = await web.ingest(priority=20)
    high = await web.ingest(
        priority=90, mention={"text": "@IWelcome what is school like in Kakuma?"}
    )
    await web.ingest(decision=Decision.QUARANTINE, priority=0)
    listed = (await web.call("mod1", "GET", "/api/questions", params={"status": "new"})).json()
    assert [i["id"] for i in listed["items"]] == [high, low]
    assert {"id", "mention_id", "status", "priority", "decision", "team"} <= listed["items"][
        0
    ].keys()
    found = (await web.call("mod1", "GET", "/api/questions", params={"q": "school"})).json()
    assert [i["id"] for i in found["items"]] == [high]
    ranged = await web.call(
        "mod1", "GET", "/api/questions", params={"min_priority": 50, "status": "new"}
    )
    assert [i["id"] for i in ranged.json()["items"]] == [high]
    bad = await web.call("mod1", "GET", "/api/questions", params={"status": "nonsense"})
    assert bad.status_code == 422


async def test_questions_say_whether_they_can_be_answered_by_reply(web: Web) -> None:
    hashtag_only = await web.ingest(mention={"summoned": False})
    summoned = await web.ingest(mention={"summoned": True})
    unknown = await web.ingest()  # summoned not known: X decides

    listed = {q["id"]: q for q in (await web.call("mod1", "GET", "/api/questions")).json()["items"]}
    one = (await web.call("mod1", "GET", f"/api/questions/{hashtag_only}")).json()
    assert (one["can_reply"], listed[hashtag_only]["can_reply"]) == (False, False)
    assert "@mentions it or quotes one of its posts" in one["can_reply_reason"]
    for question in (summoned, unknown):
        assert (listed[question]["can_reply"], listed[question]["can_reply_reason"]) == (True, None)

    await web.call(
        "mod1", "POST", f"/api/questions/{hashtag_only}/assign", json={"team": "kakuma-a"}
    )
    feed = (await web.call("team-a", "GET", "/api/teams/kakuma-a/feed")).json()["items"]
    assert [(e["question_id"], e["can_reply"]) for e in feed] == [(hashtag_only, False)]


@pytest.mark.parametrize(
    ("action", "status"),
    [("approve", "approved"), ("reject", "rejected"), ("quarantine", "quarantined")],
)
async def test_each_action_moves_the_question_and_records_who(
    web: Web, action: str, status: str
) -> None:
    question = await web.ingest()
    response = await web.call(
        "mod1", "POST", f"/api/questions/{question}/{action}", json={"reason": "t"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    timeline = (await web.call("mod1", "GET", f"/api/questions/{question}/timeline")).json()
    assert (timeline[-1]["actor"], timeline[-1]["to_status"]) == ("mod1", status)
    assert timeline[0]["model_version"] == "test-model-1"
    again = await web.call("mod1", "POST", f"/api/questions/{question}/approve")
    assert again.status_code == 409


async def test_block_author_rejects_their_open_questions(web: Web) -> None:
    author = {"author": {"id": "troll-1", "handle": "troll"}}
    first = await web.ingest(mention=author)
    second = await web.ingest(mention=author)
    response = await web.call("mod1", "POST", f"/api/questions/{first}/block")
    assert response.json()["status"] == "rejected"
    other = (await web.call("mod1", "GET", f"/api/questions/{second}")).json()
    assert other["status"] == "rejected"
    later = await web.ingest(mention=author)
    assert (await web.call("mod1", "GET", f"/api/questions/{later}")).json()["status"] == "rejected"


async def test_assign_produces_questions_assigned_and_uses_capacity(web: Web) -> None:
    question = await web.ingest()
    suggested = await web.call("mod1", "GET", f"/api/questions/{question}/suggested-team")
    assert suggested.json() == {"team": "kakuma-a"}
    response = await web.call(
        "mod1", "POST", f"/api/questions/{question}/assign", json={"team": "kakuma-a"}
    )
    assert response.json()["status"] == "assigned"
    teams = {t["slug"]: t for t in (await web.call("mod1", "GET", "/api/teams")).json()}
    assert teams["kakuma-a"]["remaining"] == 4
    sent = await outbox(web.runtime.store, "questions.assigned", QuestionAssigned)
    assert [(key, m.question_id, m.assigned_by) for key, m in sent] == [
        ("kakuma-a", question, "mod1")
    ]
    unknown = await web.call(
        "mod1", "POST", f"/api/questions/{question}/assign", json={"team": "nope"}
    )
    assert unknown.status_code == 404


async def test_a_claim_keeps_a_second_moderator_off(web: Web) -> None:
    question = await web.ingest()
    assert (await web.call("mod1", "POST", f"/api/questions/{question}/claim")).status_code == 200
    refused = await web.call("mod2", "POST", f"/api/questions/{question}/approve")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "claimed"
    assert refused.json()["error"]["details"]["holder"] == "mod1"
    await web.call("mod1", "POST", f"/api/questions/{question}/release")
    assert (await web.call("mod2", "POST", f"/api/questions/{question}/approve")).status_code == 200


async def test_bulk_reports_each_item(web: Web) -> None:
    first, second = await web.ingest(), await web.ingest()
    await web.call("mod2", "POST", f"/api/questions/{second}/claim")
    response = await web.call(
        "mod1",
        "POST",
        "/api/questions/bulk",
        json={"ids": [first, second, "missing"], "action": "approve"},
    )
    results = {r["question_id"]: (r["ok"], r["code"]) for r in response.json()}
    assert results == {
        first: (True, None),
        second: (False, "claimed"),
        "missing": (False, "not_found"),
    }


# --- answers ------------------------------------------------------------------------


async def test_resumable_upload_survives_a_dropped_connection(web: Web) -> None:
    question = await assigned(web)
    video = video_bytes(300_000)
    created = await web.call(
        "team-a",
        "POST",
        f"/api/questions/{question}/uploads",
        json={
            "filename": "a.mp4",
            "size": len(video),
            "mime": "video/mp4",
            "sha256": hashlib.sha256(video).hexdigest(),
        },
    )
    assert created.status_code == 201, created.text
    upload = created.json()["upload_id"]
    chunk = 100_000
    first = await web.call(
        "team-a",
        "PATCH",
        f"/api/uploads/{upload}",
        content=video[:chunk],
        headers={**web.auth("team-a"), "Upload-Offset": "0"},
    )
    assert first.json()["offset"] == chunk
    # The phone lost the connection; it asks where to resume, and a stale offset is refused.
    stale = await web.client.patch(
        f"/api/uploads/{upload}",
        content=video[:chunk],
        headers={**web.auth("team-a"), "Upload-Offset": "0"},
    )
    assert stale.status_code == 409
    assert stale.headers["upload-offset"] == str(chunk)
    status = await web.call("team-a", "GET", f"/api/uploads/{upload}")
    offset = status.json()["offset"]
    while offset < len(video):
        part = await web.client.patch(
            f"/api/uploads/{upload}",
            content=video[offset : offset + chunk],
            headers={**web.auth("team-a"), "Upload-Offset": str(offset)},
        )
        assert part.status_code == 200, part.text
        offset = part.json()["offset"]
    assert (await web.call("team-b", "GET", f"/api/uploads/{upload}")).status_code == 404
    no_consent = await web.call(
        "team-a", "POST", f"/api/uploads/{upload}/answer", json={"language": "en"}
    )
    assert no_consent.status_code == 422
    assert no_consent.json()["error"]["code"] == "consent_required"
    answer = await web.call(
        "team-a",
        "POST",
        f"/api/uploads/{upload}/answer",
        json={
            "language": "en",
            "caption": "School is hard but we learn.",
            "consent_given_by": "Amina (speaker)",
            "consent_scope": "campaign-social",
        },
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["sha256"] == hashlib.sha256(video).hexdigest()
    assert body["consent"]["given_by"] == "Amina (speaker)"
    recorded = await outbox(web.runtime.store, "answers.recorded", AnswerRecorded)
    assert [(k, m.media.bytes, m.consent.scope) for k, m in recorded] == [
        (question, len(video), "campaign-social")
    ]
    played = await web.call(
        "mod1", "GET", body["video_url"], headers={**web.auth("mod1"), "Range": "bytes=0-99"}
    )
    assert played.status_code == 206
    assert played.content == video[:100]


async def test_multipart_answer_without_consent_stores_nothing(web: Web, tmp_path: Path) -> None:
    question = await assigned(web)
    files = {"video": ("a.mp4", video_bytes(300_000), "video/mp4")}
    refused = await web.call(
        "team-a", "POST", f"/api/questions/{question}/answer", files=files, data={"language": "en"}
    )
    assert refused.status_code == 422
    assert list((tmp_path / "media" / "objects").iterdir()) == []
    fake = {"video": ("a.mp4", b"this is not a video at all", "video/mp4")}
    data = {"language": "en", "consent_given_by": "Amina", "consent_scope": "campaign-social"}
    assert (
        await web.call("team-a", "POST", f"/api/questions/{question}/answer", files=fake, data=data)
    ).status_code == 415
    ok = await web.call(
        "team-a", "POST", f"/api/questions/{question}/answer", files=files, data=data
    )
    assert ok.status_code == 201, ok.text


async def test_approving_an_answer_requests_one_reply_per_asker_in_the_cluster(web: Web) -> None:
    question = await assigned(web, cluster_id="c-school")
    twin = await web.ingest(cluster_id="c-school")
    files = {"video": ("a.mp4", video_bytes(300_000), "video/mp4")}
    data = {
        "language": "en",
        "consent_given_by": "Amina",
        "consent_scope": "public",
        "caption": "Hi",
    }
    assert (
        await web.call(
            "team-a", "POST", f"/api/questions/{question}/answer", files=files, data=data
        )
    ).status_code == 201
    assert (
        await web.call("team-a", "POST", f"/api/questions/{question}/answer/approve")
    ).status_code == 403
    early = await web.call("mod1", "POST", f"/api/questions/{question}/answer/approve")
    assert early.status_code == 409  # the X rendition is not made yet
    assert "X version" in early.json()["error"]["message"]
    await run_media_jobs(web.runtime.store)
    approved = await web.call("mod1", "POST", f"/api/questions/{question}/answer/approve")
    assert approved.status_code == 200, approved.text
    assert {r["question_id"] for r in approved.json()} == {question, twin}
    again = await web.call("mod1", "POST", f"/api/questions/{question}/answer/approve")
    assert sorted(r["reply_id"] for r in again.json()) == sorted(
        r["reply_id"] for r in approved.json()
    )
    requested = await outbox(web.runtime.store, "replies.requested", PublishReply)
    assert len(requested) == 2
    assert {m.approved_by for _, m in requested} == {"mod1"}


async def test_a_moderator_can_answer_a_non_replyable_question_with_a_standalone_post(
    web: Web,
) -> None:
    """X will not let us reply to a hashtag-only post: the moderator approves the answer
    as a standalone post for that asker; an asker of the cluster who summoned us
    still gets a reply."""
    question = await assigned(web, cluster_id="c-hashtag", mention={"summoned": False})
    twin = await web.ingest(cluster_id="c-hashtag", mention={"summoned": True})
    files = {"video": ("a.mp4", video_bytes(300_000), "video/mp4")}
    data = {"language": "en", "consent_given_by": "Amina", "consent_scope": "public"}
    uploaded = await web.call(
        "team-a", "POST", f"/api/questions/{question}/answer", files=files, data=data
    )
    assert uploaded.status_code == 201
    await run_media_jobs(web.runtime.store)
    approved = await web.call(
        "mod1", "POST", f"/api/questions/{question}/answer/approve", json={"standalone": True}
    )
    assert approved.status_code == 200, approved.text
    requested = {
        m.question_id: m
        for _, m in await outbox(web.runtime.store, "replies.requested", PublishReply)
    }
    assert (requested[question].standalone, requested[question].summoned) == (True, False)
    assert (requested[twin].standalone, requested[twin].summoned) == (False, True)


async def test_an_answer_can_be_sent_back(web: Web) -> None:
    question = await assigned(web)
    files = {"video": ("a.mp4", video_bytes(300_000), "video/mp4")}
    data = {"language": "en", "consent_given_by": "Amina", "consent_scope": "public"}
    await web.call("team-a", "POST", f"/api/questions/{question}/answer", files=files, data=data)
    sent_back = await web.call(
        "mod1", "POST", f"/api/questions/{question}/answer/return", json={"note": "too dark"}
    )
    assert sent_back.status_code == 204
    assert (await web.call("mod1", "GET", f"/api/questions/{question}")).json()[
        "status"
    ] == "assigned"
    feed = (await web.call("team-a", "GET", "/api/teams/kakuma-a/feed")).json()
    assert [i["state"] for i in feed["items"]] == ["active"]


async def test_the_feed_is_cursor_paginated(web: Web) -> None:
    ids = [await assigned(web) for _ in range(3)]
    page = (await web.call("team-a", "GET", "/api/teams/kakuma-a/feed", params={"limit": 2})).json()
    assert [i["question_id"] for i in page["items"]] == ids[:2]
    rest = await web.call(
        "team-a", "GET", "/api/teams/kakuma-a/feed", params={"after": page["next_cursor"]}
    )
    assert [i["question_id"] for i in rest.json()["items"]] == ids[2:]
    assert rest.json()["next_cursor"] is None


async def test_health(web: Web) -> None:
    assert (await web.client.get("/healthz")).status_code == 200
    assert (await web.client.get("/readyz")).json() == {"status": "ok"}


async def test_openapi_documents_the_routes(web: Web) -> None:
    spec = (await web.call("admin", "GET", "/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]["type"] == "oauth2"
    paths = spec["paths"]
    for path in (
        "/api/token",
        "/api/questions",
        "/api/teams",
        "/api/teams/{slug}/feed",
        "/api/questions/{question_id}/assign",
        "/api/questions/{question_id}/answer",
        "/api/questions/{question_id}/answer/approve",
    ):
        assert path in paths, path


async def test_bodies_are_limited_by_route(web: Web) -> None:
    question = await assigned(web)
    huge_json = b'{"ids": ["' + b"x" * 300_000 + b'"], "action": "approve"}'
    refused = await web.call(
        "mod1", "POST", "/api/questions/bulk", content=huge_json,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert refused.status_code == 413
    video = video_bytes(300_000)
    created = await web.call(
        "team-a", "POST", f"/api/questions/{question}/uploads",
        json={"size": len(video), "mime": "video/mp4", "sha256": hashlib.sha256(video).hexdigest()},
    )  # fmt: skip
    upload = created.json()["upload_id"]
    too_big_chunk = await web.call(
        "team-a", "PATCH", f"/api/uploads/{upload}", content=video,
        headers={"Upload-Offset": "0"},
    )  # fmt: skip
    assert too_big_chunk.status_code == 413
    data = {"language": "en", "consent_given_by": "Amina", "consent_scope": "public"}
    whole = await web.call(
        "team-a", "POST", f"/api/questions/{question}/answer",
        files={"video": ("a.mp4", video, "video/mp4")}, data=data,
    )  # fmt: skip
    assert whole.status_code == 201, whole.text


async def test_the_answer_body_is_not_read_before_the_caller_is_allowed(web: Web) -> None:
    question = await assigned(web)
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(64):
            pulled.append(1)
            yield b"x" * 65536

    for headers in ({}, web.auth("team-b")):  # nobody, and another team
        pulled.clear()
        response = await web.client.post(
            f"/api/questions/{question}/answer",
            content=body(),
            headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert response.status_code in {401, 403}
        assert len(pulled) <= 1, "the body was read before the caller was checked"


async def test_a_refused_finish_keeps_the_upload_for_the_retry(web: Web) -> None:
    question = await assigned(web)
    video = video_bytes(120_000)
    created = await web.call(
        "team-a", "POST", f"/api/questions/{question}/uploads",
        json={"size": len(video), "mime": "video/mp4", "sha256": hashlib.sha256(video).hexdigest()},
    )  # fmt: skip
    upload = created.json()["upload_id"]
    sent = await web.call(
        "team-a", "PATCH", f"/api/uploads/{upload}", content=video,
        headers={"Upload-Offset": "0"},
    )  # fmt: skip
    assert sent.json()["complete"]
    await web.call("mod1", "POST", f"/api/questions/{question}/take")  # someone else holds it
    finish = {"language": "en", "consent_given_by": "Amina", "consent_scope": "public"}
    refused = await web.call("team-a", "POST", f"/api/uploads/{upload}/answer", json=finish)
    assert refused.status_code == 409
    await web.call("mod1", "POST", f"/api/questions/{question}/give-back")
    retried = await web.call("team-a", "POST", f"/api/uploads/{upload}/answer", json=finish)
    assert retried.status_code == 201, retried.text
    played = await web.call("mod1", "GET", retried.json()["video_url"])
    assert played.content == video


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/questions/{q}/approve", None),
        ("POST", "/api/questions/{q}/reject", None),
        ("POST", "/api/questions/{q}/quarantine", None),
        ("POST", "/api/questions/{q}/restore", None),
        ("POST", "/api/questions/{q}/block", None),
        ("POST", "/api/questions/{q}/claim", None),
        ("POST", "/api/questions/{q}/assign", {"team": "kakuma-a"}),
        ("POST", "/api/questions/bulk", {"ids": ["{q}"], "action": "approve"}),
        ("GET", "/api/questions/{q}/timeline", None),
        ("GET", "/api/events", None),
    ],
)
async def test_a_team_member_cannot_act_as_a_moderator(
    web: Web, method: str, path: str, body: dict[str, Any] | None
) -> None:
    question = await web.ingest()
    json_body = None
    if body is not None:
        json_body = {k: ([question] if v == ["{q}"] else v) for k, v in body.items()}
    response = await web.call("team-a", method, path.format(q=question), json=json_body)
    assert response.status_code == 403, response.text
    assert (await web.call("mod1", "GET", f"/api/questions/{question}")).json()["status"] == "new"


async def test_a_team_cannot_open_another_team_s_live_stream(web: Web) -> None:
    response = await web.call("team-a", "GET", "/api/teams/dadaab-b/stream")
    assert response.status_code == 403


async def test_a_quarantined_question_is_never_routed(web: Web) -> None:
    question = await web.ingest(decision=Decision.QUARANTINE)
    single = await web.call(
        "mod1", "POST", f"/api/questions/{question}/assign", json={"team": "kakuma-a"}
    )
    assert single.status_code == 409
    bulk = await web.call(
        "mod1", "POST", "/api/questions/bulk",
        json={"ids": [question], "action": "assign", "team": "kakuma-a"},
    )  # fmt: skip
    assert [(r["ok"], r["code"]) for r in bulk.json()] == [(False, "conflict")]
    assert (await web.call("mod1", "GET", f"/api/questions/{question}")).json()["status"] == (
        "quarantined"
    )
    assert (await web.call("team-a", "GET", "/api/teams/kakuma-a/feed")).json()["items"] == []


# --- answer media -------------------------------------------------------------------

ANSWER = {"language": "en", "consent_given_by": "Amina", "consent_scope": "public"}


async def _answer(web: Web, question: str, video: bytes, **fields: str) -> httpx.Response:
    files = {"video": ("a.mp4", video, "video/mp4")}
    return await web.call(
        "team-a",
        "POST",
        f"/api/questions/{question}/answer",
        files=files,
        data={**ANSWER, **fields},
    )


async def test_a_truncated_mp4_is_refused_at_upload_as_undecodable(web: Web) -> None:
    question = await assigned(web)
    whole = video_bytes()
    cut = whole[: len(whole) * 6 // 10]

    refused = await _answer(web, question, cut)

    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "undecodable_media"
    assert "cannot be decoded" in refused.json()["error"]["message"]
    created = await web.call(
        "team-a",
        "POST",
        f"/api/questions/{question}/uploads",
        json={"size": len(cut), "mime": "video/mp4", "sha256": hashlib.sha256(cut).hexdigest()},
    )
    upload = created.json()["upload_id"]
    await web.call(
        "team-a", "PATCH", f"/api/uploads/{upload}", content=cut, headers={"Upload-Offset": "0"}
    )
    finish = await web.call("team-a", "POST", f"/api/uploads/{upload}/answer", json=ANSWER)
    assert finish.status_code == 422
    assert finish.json()["error"]["code"] == "undecodable_media"
    assert (await web.call("team-a", "GET", f"/api/uploads/{upload}")).status_code == 404
    listed = await web.call("team-a", "GET", f"/api/questions/{question}/answers")
    assert listed.json() == []


async def test_an_answer_longer_than_x_takes_is_flagged_at_upload_then_trimmed(web: Web) -> None:
    question = await assigned(web)

    answered = await _answer(web, question, long_answer_bytes())

    assert answered.status_code == 201, answered.text
    media = answered.json()["media"]
    assert [f["message"] for f in media["flags"]] == ["X: at most 140 s; this answer is 2:30"]
    assert media["info"]["duration_s"] == pytest.approx(150, abs=1)
    answer = answered.json()["id"]
    assert (
        await web.call("team-a", "POST", f"/api/answers/{answer}/trim", json={"end_s": 120})
    ).status_code == 403  # a moderator's cut
    await run_media_jobs(web.runtime.store)
    listed = (await web.call("mod1", "GET", f"/api/questions/{question}/answers")).json()
    [x] = listed[0]["media"]["renditions"]
    assert (x["platform"], x["state"]) == ("x", "needs_trim")

    trimmed = await web.call(
        "mod1", "POST", f"/api/answers/{answer}/trim", json={"start_s": 5, "end_s": 125}
    )

    assert trimmed.status_code == 200, trimmed.text
    assert (trimmed.json()["trim_start_s"], trimmed.json()["trim_end_s"]) == (5, 125)
    assert trimmed.json()["media"]["flags"] == []
    await run_media_jobs(web.runtime.store)
    approved = await web.call("mod1", "POST", f"/api/questions/{question}/answer/approve")
    assert approved.status_code == 200, approved.text
    timeline = (await web.call("mod1", "GET", f"/api/questions/{question}/timeline")).json()
    assert "answer_trimmed" in [e["event"] for e in timeline]


async def test_transcript_poster_and_edits_through_the_api(web: Web) -> None:
    question = await assigned(web)
    answered = await _answer(web, question, video_bytes())
    answer = answered.json()["id"]
    assert answered.json()["transcript_source"] == ""
    assert (await web.call("team-a", "GET", f"/api/answers/{answer}/poster")).status_code == 404

    await run_media_jobs(web.runtime.store)

    [listed] = (await web.call("team-a", "GET", f"/api/questions/{question}/answers")).json()
    assert (listed["transcript"], listed["transcript_source"]) == (SPOKEN, "machine")
    assert listed["media"]["ready"] is True
    poster = await web.call("team-a", "GET", listed["media"]["poster_url"])
    assert (poster.status_code, poster.headers["content-type"]) == (200, "image/jpeg")
    edited = await web.call(
        "team-a",
        "PUT",
        f"/api/answers/{answer}/transcript",
        json={"transcript": "We need clean water.", "translation": "We need clean water."},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["transcript_source"] == "edited"
    assert (
        await web.call("team-b", "PUT", f"/api/answers/{answer}/transcript", json={})
    ).status_code == 403
    vtt = "WEBVTT\n\n00:00.000 --> 00:00.900\nWe need water.\n"
    given = await web.call(
        "team-a",
        "POST",
        f"/api/answers/{answer}/subtitles",
        content=vtt.encode(),
        headers={"Content-Type": "text/vtt"},
    )
    assert given.status_code == 200, given.text
    status = await web.call("mod1", "GET", f"/api/answers/{answer}/media")
    # X takes the subtitles beside the video: its rendition is not made again for new words.
    assert status.json()["renditions"][0]["state"] == "done"
