"""The triage pages through ``TestClient``: signing in and out, CSRF, who may see
which page, and what the queue, quarantine, question, answers and team pages show."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from services.common.messages import Decision
from services.triage.web.deps import COOKIE
from services.triage.web.routes.login import LOGIN_CSRF_COOKIE
from services.triage.web.routes.pages import group_clusters
from services.triage.web.routes.rendering import safe_next
from services.triage.web.schemas import QuestionView
from tests.helpers import ROOT
from tests.helpers.media import long_answer_bytes, video_bytes
from tests.triage.web.helpers.app import (
    ADMIN,
    MODERATOR,
    TEAM_A,
    TEAM_B,
    Person,
    WebApp,
    classify,
    login_form_token,
    page_csrf,
    serve_test_client,
    sign_in,
)
from tests.triage.web.helpers.media import SPOKEN, run_media_jobs
from tests.triage.web.helpers.store import ClassifiedFactory

STATIC = ROOT / "services" / "triage" / "web" / "static"
MP4 = video_bytes()

Pair = tuple[WebApp, TestClient]


def item_ids(html: str) -> list[str]:
    """Question ids of the queue's rows, in page order."""
    return re.findall(r'<article class="item[^"]*" id="q-([0-9a-f]+)"', html)


def names(web: WebApp, html: str) -> list[str]:
    by_id = {v: k for k, v in web.questions.items()}
    return [by_id.get(i, i) for i in item_ids(html)]


def post_login(client: TestClient, username: str, password: str, **extra: str) -> httpx2.Response:
    token = login_form_token(client.get("/login").text)
    data = {"username": username, "password": password, "csrf_token": token, **extra}
    return client.post("/login", data=data)


# --- signing in and out -------------------------------------------------------------


def test_login_sets_a_strict_http_only_session_cookie_and_goes_to_the_queue(
    web_app: Pair,
) -> None:
    web, client = web_app
    response = client.get("/login")
    assert response.status_code == 200
    token = login_form_token(response.text)
    form_cookie = response.headers["set-cookie"]
    assert f"{LOGIN_CSRF_COOKIE}={token}" in form_cookie
    assert "HttpOnly" in form_cookie
    assert "SameSite=strict" in form_cookie

    response = client.post(
        "/login",
        data={"username": MODERATOR.username, "password": MODERATOR.password, "csrf_token": token},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/queue"
    session = next(c for c in response.headers.get_list("set-cookie") if c.startswith(COOKIE))
    assert "HttpOnly" in session
    assert "SameSite=strict" in session
    assert f"Max-Age={web.settings.session_ttl_s}" in session
    assert "Secure" not in session  # cookie_secure=False in the harness
    assert client.get("/queue").status_code == 200


@pytest.mark.parametrize(
    ("person", "home"),
    [(ADMIN, "/queue"), (MODERATOR, "/queue"), (TEAM_A, "/team/camp-a"), (TEAM_B, "/team/camp-b")],
)
def test_login_and_the_root_redirect_by_role(web_app: Pair, person: Person, home: str) -> None:
    _, client = web_app
    assert client.get("/").headers["location"] == "/login"
    response = post_login(client, person.username, person.password)
    assert response.headers["location"] == home
    assert client.get("/").headers["location"] == home


def test_a_page_without_a_session_sends_to_login_and_back(web_app: Pair) -> None:
    _, client = web_app
    response = client.get("/queue?status=approved")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fqueue%3Fstatus%3Dapproved"
    login_page = client.get(response.headers["location"])
    assert 'name="next" value="/queue?status=approved"' in login_page.text
    response = post_login(
        client, MODERATOR.username, MODERATOR.password, next="/queue?status=approved"
    )
    assert response.headers["location"] == "/queue?status=approved"


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil", "queue"]
)
def test_login_never_redirects_off_site(target: str) -> None:
    assert safe_next(target) is None


def test_wrong_password_shows_the_form_again_with_401(web_app: Pair) -> None:
    _, client = web_app
    response = post_login(client, MODERATOR.username, "not the password at all")
    assert response.status_code == 401
    text = response.text
    assert "Wrong user name or password." in text
    assert 'value="moira"' in text
    assert COOKIE not in response.headers.get("set-cookie", "")
    assert post_login(client, "nobody", "whatever-whatever").status_code == 401


def test_too_many_failed_logins_answer_429(tmp_path: Path, classified: ClassifiedFactory) -> None:
    with serve_test_client(tmp_path, classified, login_max_failures=2) as (_, client):
        for _ in range(2):
            assert post_login(client, MODERATOR.username, "wrong-wrong-wrong").status_code == 401
        response = post_login(client, MODERATOR.username, MODERATOR.password)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0
        assert "too many failed logins" in response.text


def test_login_without_the_form_token_is_refused(web_app: Pair) -> None:
    _, client = web_app
    data = {"username": MODERATOR.username, "password": MODERATOR.password}
    assert client.post("/login", data=data).status_code == 403  # no cookie, no field
    token = login_form_token(client.get("/login").text)  # the cookie is set now
    assert client.post("/login", data=data).status_code == 403  # cookie, no field
    forged = client.post("/login", data={**data, "csrf_token": token[::-1]})
    assert forged.status_code == 403
    assert "expired or came from another site" in forged.text
    assert COOKIE not in forged.headers.get("set-cookie", "")


def test_login_posted_from_another_origin_is_refused(web_app: Pair) -> None:
    _, client = web_app

    def attempt(headers: dict[str, str]) -> int:
        token = login_form_token(client.get("/login").text)
        data = {"username": MODERATOR.username, "password": MODERATOR.password, "csrf_token": token}
        return client.post("/login", data=data, headers=headers).status_code

    assert attempt({"Origin": "https://evil.example"}) == 403
    assert attempt({"Sec-Fetch-Site": "cross-site"}) == 403
    assert attempt({"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}) == 303


def test_logout_needs_the_csrf_token_then_ends_the_session(web_app: Pair) -> None:
    _, client = web_app
    csrf = sign_in(client, MODERATOR)
    session = client.cookies[COOKIE]
    refused = client.post("/logout", data={})
    assert refused.status_code == 403
    assert client.get("/queue").status_code == 200  # still signed in

    response = client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert f'{COOKIE}=""' in response.headers["set-cookie"]
    assert client.get("/queue").status_code == 303
    # The old token is revoked server-side, not just forgotten by the browser.
    client.cookies.set(COOKIE, session)
    assert client.get("/queue").status_code == 303


def test_a_new_login_ends_the_browser_s_previous_session(web_app: Pair) -> None:
    _, client = web_app
    sign_in(client, MODERATOR)
    first = client.cookies[COOKIE]
    assert client.get("/login").headers["location"] == "/queue"  # signed in: no form
    # A login form left open in another tab, posted while the first session lives:
    client.cookies.set(LOGIN_CSRF_COOKIE, "t" * 32, domain="testserver.local", path="/login")
    response = client.post(
        "/login",
        data={"username": ADMIN.username, "password": ADMIN.password, "csrf_token": "t" * 32},
    )
    assert response.status_code == 303
    assert client.cookies[COOKIE] != first
    client.cookies.set(COOKIE, first, domain="testserver.local")
    assert client.get("/queue").status_code == 303


def test_cookie_requests_to_the_api_need_the_csrf_header(web_app: Pair) -> None:
    web, client = web_app
    csrf = sign_in(client, MODERATOR)
    url = f"/api/questions/{web.questions['urgent']}/approve"
    refused = client.post(url, json={})
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "missing or wrong CSRF token"
    assert client.post(url, json={}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    done = client.post(url, json={}, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200
    assert done.json()["status"] == "approved"


# --- who may see what -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/queue", "/queue/items", "/quarantine", "/answers", "/replies"])
def test_team_members_may_not_open_moderator_pages(web_app: Pair, path: str) -> None:
    _, client = web_app
    sign_in(client, TEAM_A)
    response = client.get(path)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "This page is for admins and moderators." in response.text


def test_team_members_may_not_open_a_question_page(web_app: Pair) -> None:
    web, client = web_app
    sign_in(client, TEAM_A)
    assert client.get(f"/questions/{web.questions['urgent']}").status_code == 403


def test_a_team_sees_only_its_own_page(web_app: Pair) -> None:
    _, client = web_app
    sign_in(client, TEAM_A)
    assert client.get("/team/camp-a").status_code == 200
    other = client.get("/team/camp-b")
    assert other.status_code == 403
    assert "A team sees only its own feed." in other.text
    assert client.get("/team/camp-b/cards").status_code == 403


def test_moderators_may_open_any_team_page(web_app: Pair) -> None:
    _, client = web_app
    sign_in(client, MODERATOR)
    assert client.get("/team/camp-a").status_code == 200
    assert client.get("/team/camp-b").status_code == 200
    missing = client.get("/team/nowhere")
    assert missing.status_code == 404
    assert "There is no team" in missing.text


def test_an_unknown_question_is_a_404_page(web_app: Pair) -> None:
    _, client = web_app
    sign_in(client, MODERATOR)
    response = client.get("/questions/0123456789abcdef")
    assert response.status_code == 404
    assert "not found" in response.text


# --- the queue ------------------------------------------------------------------------


def test_the_queue_lists_new_questions_by_priority_grouping_clusters(web_app: Pair) -> None:
    web, client = web_app
    sign_in(client, MODERATOR)
    html = client.get("/queue").text
    assert names(web, html) == ["urgent", "abusive", "food-1", "food-2", "french", "quiet"]
    # food-2 shares food-1's cluster: it sits in food-1's "+1 similar" group.
    group = html.split(f'id="q-{web.questions["food-1"]}"')[1].split('<li class="group"')[0]
    assert '<details class="similar" data-cluster="c-food">' in group
    assert "+1 similar" in group
    assert f'id="q-{web.questions["food-2"]}"' in group
    assert "asked by 2 people" in group


def test_the_queue_shows_why_each_question_is_there(web_app: Pair) -> None:
    web, client = web_app
    sign_in(client, MODERATOR)
    html = client.get("/queue").text
    row = html.split(f'id="q-{web.questions["urgent"]}"')[1].split("</article>")[0]
    assert "question <b>+40</b> <small>a direct question</small>" in row
    assert "reach <b>+22</b>" in row
    assert "decision <b>review</b>" in row
    assert "rule <code>default-review</code>" in row
    assert "model <code>test-model-1</code>" in row
    suggested = 'suggested <b class="suggested-team">camp-a</b>'
    assert suggested + " <small>(speaks en; the most room today: 20 more)" in row
    assert 'value="0.90"' in row  # the question score
    # The team list is numbered for the 1-9 keys, with what each can still take today.
    teams = html.split('<ol id="teams"')[1].split("</ol>")[0]
    assert re.search(r"<kbd>1</kbd>\s*<span class=\"name\">Camp A</span>", teams)
    assert "room for 20 more today (limit 20)" in teams
    assert re.search(r"<kbd>2</kbd>\s*<span class=\"name\">Camp B</span>", teams)


def test_the_queue_and_the_question_page_say_whether_a_reply_can_answer(web_app: Pair) -> None:
    web, client = web_app
    sign_in(client, MODERATOR)
    html = client.get("/queue").text
    quiet = html.split(f'id="q-{web.questions["quiet"]}"')[1].split("</article>")[0]
    urgent = html.split(f'id="q-{web.questions["urgent"]}"')[1].split("</article>")[0]
    assert "not replyable: standalone post only" in quiet
    assert "@mentions it or quotes one of its posts" in quiet  # the reason, as a tooltip
    assert "can be answered by reply" in urgent
    page = client.get(f"/questions/{web.questions['quiet']}").text
    assert "not replyable: standalone post only" in page


def test_abusive_text_is_blurred_and_the_rest_is_not(web_app: Pair) -> None:
    web, client = web_app
    sign_in(client, MODERATOR)
    html = client.get("/queue").text

    def row(name: str) -> str:
        return (
            html.split(f'id="q-{web.questions[name]}"')[0].rsplit("<article", 1)[1]
            + html.split(f'id="q-{web.questions[name]}"')[1].split("</article>")[0]
        )

    abusive = row("abusive")
    assert 'class="item sensitive"' in abusive
    assert re.search(r'<span class="blur"[^>]*>why should we care about you parasites', abusive)
    assert "blur" not in row("urgent")


def test_the_queue_escapes_what_people_wrote(web_app: Pair, classified: ClassifiedFactory) -> None:
    web, client = web_app
    web.ingest(classify(classified, '<script>alert("x")</script><b onclick=x>', priority=99))
    sign_in(client, MODERATOR)
    html = client.get("/queue").text
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b onclick=x&gt;" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("language=fr", ["french"]),
        ("q=FOOD", ["food-1", "food-2"]),
        ("q=%40asker1", ["urgent"]),
        ("min_priority=50", ["urgent", "abusive", "food-1"]),
        ("min_priority=30&max_priority=60", ["food-1", "food-2", "french"]),
        ("max_offensive=0.5", ["urgent", "food-1", "food-2", "french", "quiet"]),
        ("min_offensive=0.5", ["abusive"]),
        ("status=quarantined", ["quarantined"]),
        ("status=&decision=quarantine", ["quarantined"]),
        ("status=&decision=review&min_priority=90", ["urgent"]),
        ("status=approved", []),
    ],
)
def test_queue_filters(web_app: Pair, query: str, expected: list[str]) -> None:
    web, client = web_app
    sign_in(client, MODERATOR)
    assert names(web, client.get(f"/queue?{query}").text) == expected
    fragment = client.get(f"/queue/items?{query}")
    assert names(web, fragment.text) == expected
    assert "<html" not in fragment.text


def test_the_list_fragment_keeps_the_address_bar_in_step(web_app: Pair) -> None:
    _, client = web_app
    sign_in(client, MODERATOR)
    response = client.get("/queue/items?status=new&q=food&language=&min_priority=10")
    assert response.headers["hx-replace-url"] == "/queue?status=new&q=food&min_priority=10"


def test_filters_that_make_no_sense_are_ignored_and_said_so(web_app: Pair) -> None:
    _, client = web_app
    sign_in(client, MODERATOR)
    html = client.get("/queue?min_priority=lots&max_offensive=7&status=bogus&decision=x").text
    assert "min priority &#39;lots&#39; is not a number; ignored" in html
    assert "max offensive must be within 0.0-1.0; ignored" in html
    assert "unknown status &#39;bogus&#39;: showing new questions" in html
    assert "unknown decision &#39;x&#39; ignored" in html
    assert len(item_ids(html)) == 6


def test_a_question_claimed_by_someone_else_shows_a_lock(web_app: Pair) -> None:
    web, client = web_app
    admin = TestClient(web.app, follow_redirects=False)
    admin_csrf = sign_in(admin, ADMIN)
    claimed = admin.post(
        f"/api/questions/{web.questions['quiet']}/claim", headers={"X-CSRF-Token": admin_csrf}
    )
    assert claimed.status_code == 200
    sign_in(client, MODERATOR)
    html = client.get("/queue").text
    row = html.split(f'id="q-{web.questions["quiet"]}"')[1].split("</article>")[0]
    head = html.split(f'id="q-{web.questions["quiet"]}"')[0].rsplit("<article", 1)[1]
    assert 'class="item locked"' in head
    assert 'data-claimed-by="admin"' in row
    assert '<span class="holder">admin</span>' in row
    # The claimer sees no lock on their own claim.
    mine = admin.get("/queue").text.split(f'id="q-{web.questions["quiet"]}"')[0]
    assert "locked" not in mine.rsplit("<article", 1)[1]


def test_the_queue_page_starts_the_live_stream_where_its_list_was_read(web_app: Pair) -> None:
    web, client = web_app
    sign_in(client, MODERATOR)
    last = web.call(web.store.questions.last_event_id)
    assert f'<div id="queue-body" data-after="{last}">' in client.get("/queue").text


# --- quarantine, a question, answers, team pages ------------------------------------------------


def test_quarantine_lists_quarantined_questions_blurred(web_app: Pair) -> None:
    web, client = web_app
    sign_in(client, MODERATOR)
    html = client.get("/quarantine").text
    assert names(web, html) == ["quarantined"]
    assert re.search(r'<span class="blur"[^>]*>threatening garbage', html)
    assert "rule <code>abuse-quarantine</code>" in html
    assert "They are never routed to a team and never answered." in " ".join(html.split())


def test_the_question_page_shows_the_whole_timeline(web_app: Pair) -> None:
    web, client = web_app
    csrf = sign_in(client, MODERATOR)
    question = web.questions["urgent"]
    headers = {"X-CSRF-Token": csrf}
    client.post(f"/api/questions/{question}/approve", json={"reason": "good one"}, headers=headers)
    client.post(f"/api/questions/{question}/assign", json={"team": "camp-a"}, headers=headers)
    client.post(f"/api/questions/{question}/claim", headers=headers)
    html = client.get(f"/questions/{question}").text
    timeline = html.split('<ol class="plain-list timeline">')[1].split("</ol>")[0]
    entries = [
        " ".join(unescape(re.sub(r"<[^>]+>", " ", entry)).split())
        for entry in re.findall(r'<li class="event[^"]*">(.*?)</li>', timeline, re.S)
    ]
    assert len(entries) == 3  # the claim is counted, not listed
    assert "1 claim and release entries (who had it open) are not listed." in html
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC classified by classifier", entries[0])
    assert "(automatic) · now new · rule default-review" in entries[0]
    assert "priority 92" in entries[0]
    assert "(rule default-review, model test-model-1)" in entries[0]
    assert entries[1].endswith("approve by moira · new → approved · good one")
    assert entries[2].endswith("assigned by moira · approved → assigned team camp-a")
    assert "{" not in timeline  # no raw JSON


def test_an_answer_goes_from_the_team_page_to_review(web_app: Pair) -> None:
    web, client = web_app
    csrf = sign_in(client, MODERATOR)
    question = web.questions["urgent"]
    client.post(
        f"/api/questions/{question}/assign", json={"team": "camp-a"}, headers={"X-CSRF-Token": csrf}
    )

    team = TestClient(web.app, follow_redirects=False)
    team_csrf = sign_in(team, TEAM_A)
    page = team.get("/team/camp-a").text
    assert "Do you get to talk to your family back home?" in page
    assert '<option value="campaign-social">campaign-social</option>' in page
    assert '<input type="checkbox" name="consent" value="yes" required>' in page
    other = TestClient(web.app, follow_redirects=False)
    sign_in(other, TEAM_B)
    assert "talk to your family" not in other.get("/team/camp-b").text

    fields = {"language": "en", "caption": "We call every Sunday.", "consent_scope": "public"}
    files = {"video": ("answer.mp4", MP4, "video/mp4")}
    headers = {"X-CSRF-Token": team_csrf}
    refused = team.post(
        f"/api/questions/{question}/answer", data=fields, files=files, headers=headers
    )
    assert refused.status_code == 422  # no consent, no answer
    assert refused.json()["error"]["code"] == "consent_required"
    fields["consent_given_by"] = "Speaker 7 (adult)"
    recorded = team.post(
        f"/api/questions/{question}/answer", data=fields, files=files, headers=headers
    )
    assert recorded.status_code == 201, recorded.text
    assert "Answer sent: waiting for review." in team.get("/team/camp-a/cards").text

    review = client.get("/answers").text
    answer_id = recorded.json()["id"]
    assert f'<video controls preload="metadata" src="/api/answers/{answer_id}/video">' in review
    assert "We call every Sunday." in review
    assert "given by <b>Speaker 7 (adult)</b> for <b>public</b>, recorded by amani" in review
    assert f'data-review="approve" data-question="{question}"' in review
    detail = client.get(f"/questions/{question}").text
    assert f"/api/answers/{answer_id}/video" in detail
    assert 'class="event event-answer_recorded"' in detail

    # Before approving: who receives a reply, and the reply's text, which can be corrected.
    preview = client.get(f"/api/questions/{question}/answer/preview").json()
    assert preview["text"] == "We call every Sunday."
    assert preview["canned"][0] == "A refugee answered your question on video."
    assert [(r["question_id"], r["platform"]) for r in preview["recipients"]] == [(question, "x")]
    edited = client.put(
        f"/api/questions/{question}/answer/caption",
        json={"caption": "  We call on Sundays.  "},
        headers={"X-CSRF-Token": csrf},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["text"] == "We call on Sundays."
    assert "caption edited" in client.get(f"/questions/{question}").text


def test_the_team_page_is_built_for_phones(web_app: Pair) -> None:
    _, client = web_app
    sign_in(client, TEAM_A)
    html = client.get("/team/camp-a").text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert 'data-chunk="1024"' in html  # the server's chunk limit, when below 1 MiB
    css = (STATIC / "app.css").read_text()
    assert "--tap: 44px" in css


# --- what every page is made of ------------------------------------------------------------------


def test_pages_have_no_inline_script_or_style(web_app: Pair) -> None:
    """The CSP forbids them: they would silently not run."""
    web, client = web_app
    sign_in(client, MODERATOR)
    paths = [
        "/queue",
        "/quarantine",
        "/answers",
        "/replies",
        f"/questions/{web.questions['urgent']}",
        "/team/camp-a",
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]
        html = response.text
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], path
        assert "<style" not in html, path
        assert not re.search(r"\sstyle=", html), path
        assert not re.search(r"\son[a-z]+=", html), path
    login = TestClient(web.app).get("/login").text
    assert not re.search(r"\sstyle=|<style|<script(?![^>]*\bsrc=)", login)


def test_the_vendored_htmx_is_the_recorded_file(web_app: Pair) -> None:
    _, client = web_app
    recorded = (STATIC / "VENDORED.md").read_text()
    served = client.get("/static/vendor/htmx.min.js")
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() in recorded
    assert "2.0.11" in recorded


def test_group_clusters_keeps_priority_order_and_groups_members() -> None:
    received = datetime(2026, 11, 23, tzinfo=UTC)

    def view(qid: str, cluster: str | None) -> QuestionView:
        return QuestionView(
            id=qid, mention_id=f"x:{qid}", status="new", priority=50, decision="review",
            team=None, suggested_team=None, platform="x", author_handle="a", text="?",
            lang="en", url=None, scores={}, reasons=[], model_version="m", rule="r",
            cluster_id=cluster, received_at=received, updated_at=received, sensitive=False,
        )  # fmt: skip

    groups = group_clusters(
        [view("a", "c1"), view("b", None), view("c", "c1"), view("d", "c2"), view("e", "c2")]
    )
    assert [(g.leader.id, [m.id for m in g.members]) for g in groups] == [
        ("a", ["c"]),
        ("b", []),
        ("d", ["e"]),
    ]


def test_decisions_listed_on_the_filter_form_are_the_known_ones(web_app: Pair) -> None:
    _, client = web_app
    sign_in(client, MODERATOR)
    html = client.get("/queue").text
    for decision in Decision:
        assert f'<option value="{decision.value}">' in html
    assert page_csrf(html)


# --- answer media on the pages ------------------------------------------------------------


def test_the_review_page_shows_what_was_said_beside_the_video_and_each_version(
    web_app: Pair,
) -> None:
    web, client = web_app
    sign_in(client, MODERATOR)
    question = web.questions["urgent"]
    web.call(web.store.questions.act, question, "assign", web.actor(MODERATOR), team="camp-a")
    team = TestClient(web.app, follow_redirects=False)
    team_csrf = sign_in(team, TEAM_A)
    page = team.get("/team/camp-a").text
    assert 'data-target-kbps="2000" data-max-long="1280"' in page
    assert "Record with this phone" in page
    fields = {
        "language": "en",
        "caption": "We call.",
        "consent_given_by": "S7",
        "consent_scope": "public",
    }
    recorded = team.post(
        f"/api/questions/{question}/answer",
        data=fields,
        files={"video": ("a.mp4", long_answer_bytes(), "video/mp4")},
        headers={"X-CSRF-Token": team_csrf},
    )
    answer = recorded.json()["id"]

    waiting = client.get("/answers").text
    assert "X: at most 140 s; this answer is 2:30" in waiting
    assert 'data-ready="no"' in waiting
    assert 'data-review="approve"' in waiting
    assert "Approve once every platform" in waiting
    web.call(run_media_jobs, web.store)

    review = client.get("/answers").text
    assert f'poster="/api/answers/{answer}/poster"' in review
    assert SPOKEN in review  # the transcript, beside the video, in a form to correct it
    assert '<form method="post" class="trim-form"' in review
    assert "needs trim" in review
    panel = client.get(f"/answers/{answer}/media-panel").text
    assert panel.lstrip().startswith('<div class="media-panel"')
    assert "transcript" in panel.lower()
    assert "X: at most 140 s" in team.get("/team/camp-a/cards").text  # the team sees it too


def test_the_team_page_s_service_worker_is_served_from_the_root(web_app: Pair) -> None:
    _, client = web_app
    response = client.get("/team-sw.js")
    assert response.status_code == 200
    assert response.headers["service-worker-allowed"] == "/"
    assert response.headers["cache-control"] == "no-cache"
    assert "caches.open" in response.text
