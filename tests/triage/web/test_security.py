"""The triage web against what an attacker with an account would try (issue 17):
headers that do not parse, bodies that are large before the caller is known to
be allowed, and what a team may see and do. Each test failed before its fix."""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.common import topics
from services.common.db import make_engine
from services.common.messages import ConsentWithdrawn, PublishReply
from services.triage.web.app import create_internal_app
from services.triage.web.deps import COOKIE
from services.triage.web.models import AuditEntry
from services.triage.web.routes import streams
from tests.helpers.media import video_bytes
from tests.triage.web.helpers.api import PASSWORD, Web, assigned
from tests.triage.web.helpers.media import run_media_jobs
from tests.triage.web.helpers.store import outbox

pytestmark = pytest.mark.timeout(120)


async def _chunks(pulled: list[int], count: int, size: int = 65536) -> AsyncIterator[bytes]:
    for _ in range(count):
        pulled.append(size)
        yield b"x" * size


async def _cookie_session(web: Web, who: str) -> tuple[dict[str, str], str]:
    """A page session of ``who``: (its cookie, its CSRF token)."""
    token, principal = await web.runtime.accounts.login(
        who, PASSWORD, address="198.51.100.9", kind="web"
    )
    return {"Cookie": f"{COOKIE}={token}"}, principal.csrf_token


# --- Low 1: numeric headers are parsed strictly ----------------------------------------------


@pytest.mark.parametrize("value", ["²", "-1", "+1", " 1", "1e3", "9" * 5000])
async def test_a_bad_upload_offset_is_400(web: Web, value: str) -> None:
    question = await assigned(web)
    video = video_bytes(1000)
    created = await web.call(
        "team-a", "POST", f"/api/questions/{question}/uploads",
        json={"size": len(video), "mime": "video/mp4", "sha256": hashlib.sha256(video).hexdigest()},
    )  # fmt: skip
    upload = created.json()["upload_id"]
    response = await web.call(
        "team-a", "PATCH", f"/api/uploads/{upload}", content=video[:10],
        headers={"Upload-Offset": value.encode()},
    )  # fmt: skip
    assert response.status_code == 400, response.text
    assert "Upload-Offset" in response.json()["error"]["message"]


@pytest.mark.parametrize("value", ["²", "-1", "x", "9" * 5000, "99999999999999999999999"])
async def test_a_bad_last_event_id_is_400(web: Web, value: str) -> None:
    for who, path in (("mod1", "/api/events"), ("team-a", "/api/teams/kakuma-a/stream")):
        response = await web.call(who, "GET", path, headers={"Last-Event-ID": value.encode()})
        assert response.status_code == 400, (path, response.text)
        assert "Last-Event-ID" in response.json()["error"]["message"]


#: Past the 32-bit id columns (Postgres ``integer``), and past SQLite's 64 bits.
_TOO_BIG = (2**31, 10**30)


@pytest.mark.parametrize("value", _TOO_BIG)
async def test_a_cursor_or_offset_past_any_id_is_422_not_a_server_error(
    web: Web, value: int
) -> None:
    for who, path in (
        ("mod1", f"/api/questions?offset={value}"),
        ("team-a", f"/api/teams/kakuma-a/feed?after={value}"),
        ("mod1", f"/api/events?after={value}"),  # refused before the stream starts
        ("team-a", f"/api/teams/kakuma-a/stream?after={value}"),
    ):
        response = await asyncio.wait_for(web.call(who, "GET", path), timeout=10)
        assert response.status_code == 422, (path, response.text)
    read = await web.call("mod1", "POST", "/api/notifications/read", json={"ids": [value]})
    assert read.status_code == 422, read.text


async def test_a_last_event_id_past_any_id_is_400(web: Web) -> None:
    for who, path in (("mod1", "/api/events"), ("team-a", "/api/teams/kakuma-a/stream")):
        response = await asyncio.wait_for(
            web.call(who, "GET", path, headers={"Last-Event-ID": str(2**31)}), timeout=10
        )
        assert response.status_code == 400, (path, response.text)


@pytest.mark.parametrize("priority", [str(2**31), str(10**30)])
async def test_a_queue_key_with_an_impossible_priority_is_refused_not_a_server_error(
    web: Web, priority: str
) -> None:
    cookie, _ = await _cookie_session(web, "mod1")
    for path in ("/queue/more", "/queue/items"):
        name = "after" if path.endswith("more") else "through"
        key = f"{priority}|2026-01-01T00:00:00+00:00|q-1"
        response = await web.client.get(path, params={name: key}, headers=cookie)
        assert response.status_code < 500, (path, response.text)
    more = await web.client.get("/queue/more", params={"after": key}, headers=cookie)
    assert more.status_code == 422, more.text


async def test_a_nul_character_anywhere_is_refused_not_a_server_error(web: Web) -> None:
    """Postgres stores no NUL in text (SQLite does): one in a name, a search or a
    path reached the database and failed there, a 500, even before sign-in."""
    question = await assigned(web)
    signed = await web.client.post("/api/token", data={"username": "mod1\x00", "password": "x"})
    assert signed.status_code in {400, 401}, signed.text
    login = await web.client.post(
        "/login",
        data={"username": "mod1\x00", "password": "x", "csrf_token": "a" * 32},
        headers={"Cookie": "ta_login_csrf=" + "a" * 32},
    )
    assert login.status_code in {400, 401}, login.text
    for method, path, body in (
        ("GET", "/api/questions?q=%00", None),
        ("GET", "/api/questions/%00", None),
        ("POST", f"/api/questions/{question}/notes", {"text": "a\x00b"}),
    ):
        response = await web.call("mod1", method, path, json=body)
        assert response.status_code < 500, (path, response.text)


# --- Low 3: an oversized chunked body is 413 -------------------------------------------------


async def test_an_oversized_chunked_json_body_is_413(web: Web) -> None:
    pulled: list[int] = []
    response = await web.call(
        "mod1", "POST", "/api/questions/bulk", content=_chunks(pulled, 16),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


# --- Medium 2: nothing big is read before the caller is known to be allowed ---------------


async def test_a_form_body_on_the_answer_route_is_capped_small(web: Web) -> None:
    """A team member's page session sends a large urlencoded body to the answer
    route of a question that does not exist: the server stops reading at the
    small-body cap (the CSRF check used to parse all of it first)."""
    cookies, csrf = await _cookie_session(web, "team-a")
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield f"csrf_token={csrf}&junk=".encode()
        async for chunk in _chunks(pulled, 64):
            yield chunk

    response = await web.client.post(
        "/api/questions/no-such-question/answer",
        content=body(),
        headers={**cookies, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code in {404, 413}, response.text
    assert sum(pulled) <= 512 * 1024, f"{sum(pulled)} bytes read for a missing question"


async def test_a_multipart_answer_to_a_missing_question_reads_nothing(web: Web) -> None:
    cookies, csrf = await _cookie_session(web, "team-a")
    pulled: list[int] = []
    response = await web.client.post(
        "/api/questions/no-such-question/answer",
        content=_chunks(pulled, 64),
        headers={
            **cookies,
            "Content-Type": "multipart/form-data; boundary=b",
            "X-CSRF-Token": csrf,
        },
    )
    assert response.status_code == 404, response.text
    assert sum(pulled) <= 65536


# --- Medium 4: multipart spools on the media volume, not /tmp --------------------------------


async def test_a_multipart_answer_spools_on_the_media_volume(
    web: Web, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the default temporary folder unusable (a tmpfs that is full, say), a
    2 MB answer (over the 1 MB kept in memory) still goes up: it spools beside
    the media."""
    video = video_bytes(2_000_000)
    question = await assigned(web)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    response = await web.call(
        "team-a", "POST", f"/api/questions/{question}/answer",
        files={"video": ("a.mp4", video, "video/mp4")},
        data={"language": "en", "consent_given_by": "Amina", "consent_scope": "public"},
    )  # fmt: skip
    assert response.status_code == 201, response.text


# --- Low 4: a team sees only its own answers -------------------------------------------------

ANSWER = {"language": "en", "consent_given_by": "Amina of Kakuma", "consent_scope": "public"}


async def _upload(web: Web, who: str, question: str, **fields: str) -> str:
    response = await web.call(
        who, "POST", f"/api/questions/{question}/answer",
        files={"video": ("a.mp4", video_bytes(50_000), "video/mp4")},
        data={**ANSWER, **fields},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_question_moved_to_another_team_shows_it_only_its_own_answers(web: Web) -> None:
    question = await assigned(web)
    first = await _upload(web, "team-a", question, transcript="what Amina said")
    sent_back = await web.call(
        "mod1", "POST", f"/api/questions/{question}/answer/return", json={"note": "redo"}
    )
    assert sent_back.status_code == 204
    moved = await web.call(
        "mod1", "POST", f"/api/questions/{question}/assign", json={"team": "dadaab-b"}
    )
    assert moved.status_code == 200, moved.text

    seen = await web.call("team-b", "GET", f"/api/questions/{question}/answers")
    assert seen.status_code == 200
    assert seen.json() == []
    assert "Amina" not in seen.text
    assert (await web.call("team-b", "GET", f"/api/answers/{first}/video")).status_code == 403
    everything = await web.call("mod1", "GET", f"/api/questions/{question}/answers")
    assert [a["id"] for a in everything.json()] == [first]  # moderators see all


# --- Low 5: four eyes ----------------------------------------------------------------------


async def test_whoever_uploaded_an_answer_cannot_approve_it(web: Web) -> None:
    question = await assigned(web)
    await _upload(web, "mod2", question)  # a moderator may answer; then not approve
    await run_media_jobs(web.runtime.store)
    own = await web.call("mod2", "POST", f"/api/questions/{question}/answer/approve")
    assert own.status_code == 403, own.text
    assert "uploaded" in own.json()["error"]["message"]
    other = await web.call("mod1", "POST", f"/api/questions/{question}/answer/approve")
    assert other.status_code == 200, other.text


async def test_the_review_page_says_why_the_uploader_cannot_approve(web: Web) -> None:
    question = await assigned(web)
    await _upload(web, "mod2", question)
    for who, own in (("mod2", True), ("mod1", False)):
        cookies, _ = await _cookie_session(web, who)
        page = await web.client.get("/answers", headers=cookies)
        assert page.status_code == 200
        assert ("another moderator approves it" in page.text) is own
        assert ('data-own="yes"' in page.text) is own


# --- Medium 6: a live stream ends with its session ----------------------------------------


async def _ends_after(web: Web, who: str, path: str, end: Callable[[], Awaitable[Any]]) -> None:
    """Open the stream at ``path`` as ``who``, ``end`` the session, and see the stream close."""
    stream = asyncio.create_task(web.call(who, "GET", path))
    await asyncio.sleep(0.5)
    assert not stream.done(), "the stream did not stay open"
    await end()
    response = await asyncio.wait_for(stream, timeout=10)
    assert response.status_code == 200


@pytest.fixture
def quick_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "RECHECK_S", 0.2)
    monkeypatch.setattr(streams, "POLL_S", 0.1)


@pytest.mark.usefixtures("quick_recheck")
async def test_the_live_queue_closes_after_logout(web: Web) -> None:
    async def logout() -> None:
        assert (await web.call("mod2", "POST", "/api/logout")).status_code == 204

    await _ends_after(web, "mod2", "/api/events", logout)


@pytest.mark.usefixtures("quick_recheck")
async def test_the_team_stream_closes_after_a_password_reset(web: Web) -> None:
    async def reset() -> None:
        response = await web.call(
            "admin", "POST", "/api/users",
            json={"username": "team-a", "password": "a brand new password", "role": "team",
                  "team": "kakuma-a"},
        )  # fmt: skip
        assert response.status_code == 201, response.text

    await _ends_after(web, "team-a", "/api/teams/kakuma-a/stream", reset)


# --- Medium 3: login limiting ------------------------------------------------------------


async def test_a_burst_of_wrong_passwords_is_limited_and_the_real_user_still_signs_in(
    web: Web,
) -> None:
    responses = await asyncio.gather(
        *(
            web.client.post("/api/token", data={"username": "mod2", "password": f"guess {i:08}"})
            for i in range(12)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert 429 in codes, codes
    elsewhere = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web.app, client=("198.51.100.2", 4711)),
        base_url="http://triage.test",
    )
    async with elsewhere:
        real = await elsewhere.post("/api/token", data={"username": "mod2", "password": PASSWORD})
    assert real.status_code == 200, real.text


# --- Low 7: metrics, readiness details and the API description are not public ------------


async def test_the_public_port_shows_no_metrics_no_error_text_and_no_api_to_strangers(
    web: Web,
) -> None:
    assert (await web.client.get("/metrics")).status_code == 404
    assert (await web.client.get("/openapi.json")).status_code == 401
    described = await web.call("team-a", "GET", "/openapi.json")
    assert described.status_code == 200
    assert "/api/token" in described.json()["paths"]
    assert (await web.client.get("/healthz")).json() == {"status": "ok"}

    store = web.runtime.store
    working = store.engine
    store.engine = make_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        public = await web.client.get("/readyz")
        async with _internal(web) as internal:
            detailed = await internal.get("/readyz")
    finally:
        await store.engine.dispose()
        store.engine = working
    assert public.status_code == detailed.status_code == 503
    assert public.json() == {"status": "degraded"}
    assert detailed.json()["database"]["connected"] is False
    assert detailed.json()["database"]["error"]  # what failed, on the internal port only
    assert (await web.client.get("/readyz")).status_code == 200  # back


async def test_the_internal_port_serves_metrics_and_the_details(web: Web) -> None:
    async with _internal(web) as internal:
        metrics = await internal.get("/metrics")
        ready = await internal.get("/readyz")
        alive = await internal.get("/healthz")
    assert "triage_web_actions_total" in metrics.text
    assert ready.json()["database"]["connected"] is True
    assert alive.json()["tasks"]["housekeeping"] == "running"


def _internal(web: Web) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_internal_app(web.app)),
        base_url="http://triage-internal.test",
    )


# --- Low 6: consent withdrawal from the page; deactivation ------------------------------


async def test_a_moderator_records_a_consent_withdrawal_and_every_post_comes_down(
    web: Web,
) -> None:
    question = await assigned(web, cluster_id="c-withdraw")
    twin = await web.ingest(cluster_id="c-withdraw")
    answer = await _upload(web, "team-a", question)
    await run_media_jobs(web.runtime.store)
    approved = await web.call("mod1", "POST", f"/api/questions/{question}/answer/approve")
    assert approved.status_code == 200, approved.text
    asked = {
        "requested_by": "Amina herself",
        "requested_at": "2026-12-01T09:30:00Z",
        "channel": "in person, at the camp office",
        "note": "she no longer wants to be seen",
    }
    assert (
        await web.call("team-a", "POST", f"/api/answers/{answer}/consent/withdraw", json=asked)
    ).status_code == 403
    path = f"/api/answers/{answer}/consent/withdraw"
    withdrawn = await web.call("mod1", "POST", path, json=asked)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["state"] == "withdrawn"
    assert withdrawn.json()["consent"]["withdrawn_by"] == "mod1"
    assert withdrawn.json()["consent"]["withdrawn_at"] is not None

    [(key, event)] = await outbox(web.runtime.store, topics.CONSENT_WITHDRAWN, ConsentWithdrawn)
    assert key == event.speaker_ref == ANSWER["consent_given_by"]
    assert set(event.question_ids) == {question, twin}  # every post of this answer
    assert event.answer_id == answer  # and any request of it, whatever its question
    assert event.withdrawn_by == "mod1"
    assert "Amina herself" in event.reason
    assert "in person" in event.reason

    timeline = (await web.call("mod1", "GET", f"/api/questions/{question}/timeline")).json()
    [entry] = [e for e in timeline if e["event"] == "consent_withdrawn"]
    assert entry["detail"]["requested_by"] == "Amina herself"
    audit = await _audit(web, "withdraw_consent")
    assert audit == [("mod1", answer)]
    # Recorded again (idempotent): the take-down goes out again, the first stays the
    # consent's, both are audited.
    again = await web.call("mod2", "POST", path, json=asked)
    assert again.status_code == 200, again.text
    assert again.json()["consent"]["withdrawn_by"] == "mod1"
    first, second = await outbox(web.runtime.store, topics.CONSENT_WITHDRAWN, ConsentWithdrawn)
    assert set(second[1].question_ids) == {question, twin}
    assert second[1].answer_id == answer
    assert (second[1].at, second[1].withdrawn_by) == (first[1].at, "mod2")
    assert await _audit(web, "withdraw_consent") == [("mod1", answer), ("mod2", answer)]


async def test_an_answer_whose_consent_was_withdrawn_is_never_approved(web: Web) -> None:
    question = await assigned(web, cluster_id="c-refused")
    await web.ingest(cluster_id="c-refused")
    answer = await _upload(web, "team-a", question)
    await run_media_jobs(web.runtime.store)
    asked = {"requested_by": "Amina", "requested_at": "2026-12-01T09:30:00Z", "channel": "phone"}
    path = f"/api/answers/{answer}/consent/withdraw"
    assert (await web.call("mod1", "POST", path, json=asked)).status_code == 200

    for body in (None, {"answer_id": answer}):
        refused = await web.call(
            "mod2", "POST", f"/api/questions/{question}/answer/approve", json=body
        )
        assert refused.status_code == 409, refused.text
        assert "withdrew their consent" in refused.text
    assert await outbox(web.runtime.store, topics.REPLIES_REQUESTED, PublishReply) == []
    assert (await web.call("mod1", "GET", f"/api/questions/{question}")).json()["status"] == (
        "recorded"
    )


async def _audit(web: Web, action: str) -> list[tuple[str, str]]:
    async with web.runtime.store.sessions() as session:
        rows = await session.execute(
            select(AuditEntry.actor, AuditEntry.subject).where(AuditEntry.action == action)
        )
        return [(str(a), str(s)) for a, s in rows.all()]


async def test_the_question_page_offers_the_withdrawal_then_says_it_was_recorded(
    web: Web,
) -> None:
    question = await assigned(web)
    answer = await _upload(web, "team-a", question)
    cookies, _ = await _cookie_session(web, "mod1")
    page = await web.client.get(f"/questions/{question}", headers=cookies)
    assert f'class="withdraw-form" data-answer="{answer}"' in page.text
    asked = {"requested_by": "Amina", "requested_at": "2026-12-01T09:30:00Z", "channel": "phone"}
    path = f"/api/answers/{answer}/consent/withdraw"
    assert (await web.call("mod1", "POST", path, json=asked)).status_code == 200
    page = await web.client.get(f"/questions/{question}", headers=cookies)
    assert "withdraw-form" not in page.text
    assert "Consent withdrawn" in page.text


async def test_an_admin_deactivates_a_user_and_their_sessions_end_at_once(web: Web) -> None:
    assert (await web.call("mod1", "POST", "/api/users/team-a/deactivate")).status_code == 403
    done = await web.call("admin", "POST", "/api/users/team-a/deactivate")
    assert done.status_code == 204, done.text
    assert (await web.call("team-a", "GET", "/api/me")).status_code == 401
    again = await web.client.post("/api/token", data={"username": "team-a", "password": PASSWORD})
    assert again.status_code == 401
    assert await _audit(web, "deactivate_user") == [("admin", "team-a")]
    missing = await web.call("admin", "POST", "/api/users/nobody/deactivate")
    assert missing.status_code == 404


async def test_an_admin_deactivates_a_team_and_its_members_are_out(web: Web) -> None:
    assert (await web.call("team-a", "POST", "/api/teams/dadaab-b/deactivate")).status_code == 403
    done = await web.call("admin", "POST", "/api/teams/dadaab-b/deactivate")
    assert done.status_code == 204, done.text
    assert (await web.call("team-b", "GET", "/api/me")).status_code == 401
    again = await web.client.post("/api/token", data={"username": "team-b", "password": PASSWORD})
    assert again.status_code == 401
    assert (await web.call("team-a", "GET", "/api/me")).status_code == 200  # another team
    assert await _audit(web, "deactivate_team") == [("admin", "dadaab-b")]


def test_every_form_names_its_method() -> None:
    """A form the page's script handles has no real action; submitted natively (a
    click before the deferred script listens) it would be a GET of the page with
    its fields — a note's text — in the URL, the history and the access log.
    With ``method="post"`` the stray submission carries nothing in the URL and is
    refused (no route posts there); ``dialog`` forms only close their dialog."""
    templates = Path(__file__).resolve().parents[3] / "services" / "triage" / "web" / "templates"
    tags = {
        f"{path.name}: {tag}"
        for path in templates.glob("*.html")
        for tag in re.findall(r"<form\b[^>]*>", path.read_text(encoding="utf-8"))
        if not re.search(r"\bmethod=\"(post|get|dialog)\"", tag)
    }
    assert tags == set()
