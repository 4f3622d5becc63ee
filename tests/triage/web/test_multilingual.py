"""The triage web in every language: the model path and language on the question page,
and one answer to a cluster that spans languages replying to each asker in theirs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.common.messages import Decision, ModelPath, PublishReply
from services.triage.web import domain
from tests.helpers.media import video_bytes
from tests.triage.web.helpers.api import Web, assigned
from tests.triage.web.helpers.app import MODERATOR, WebApp, sign_in
from tests.triage.web.helpers.media import run_media_jobs
from tests.triage.web.helpers.store import ClassifiedFactory, outbox

Pair = tuple[WebApp, TestClient]


@pytest.mark.parametrize(
    ("caption", "answer", "asker", "expected"),
    [
        ("Hi from Kakuma", "en", "en-GB", ("Hi from Kakuma", "en")),
        ("Hi from Kakuma", "en", "fr", (domain.FALLBACK_TEXT["fr"], "fr")),
        ("Hi from Kakuma", "en", "ar", (domain.FALLBACK_TEXT["ar"], "ar")),
        ("Hi from Kakuma", "en", "it", ("Hi from Kakuma", "en")),  # no line in Italian
        ("Hi from Kakuma", "en", None, ("Hi from Kakuma", "en")),
        ("", "so", "de", (domain.FALLBACK_TEXT["de"], "de")),
    ],
)
def test_each_asker_gets_the_reply_in_their_language_where_one_exists(
    caption: str, answer: str, asker: str | None, expected: tuple[str, str]
) -> None:
    assert domain.reply_for(caption, answer, asker) == expected


def test_language_names_read_as_words() -> None:
    assert domain.language_name("de-AT") == "German (de-AT)"
    assert domain.language_name("xx") == "xx"
    assert domain.language_name(None) == "language unknown"


async def test_one_answer_replies_to_a_french_and_an_english_asker_each_in_theirs(
    web: Web,
) -> None:
    question = await assigned(web, cluster_id="c-school", mention={"lang": "en"})
    french = await web.ingest(
        cluster_id="c-school",
        mention={"lang": "fr", "text": "Comment les enfants vont-ils à l'école ?"},
    )
    files = {"video": ("a.mp4", video_bytes(300_000), "video/mp4")}
    data = {
        "language": "en",
        "consent_given_by": "Amina",
        "consent_scope": "public",
        "caption": "We walk to school together",
    }
    uploaded = await web.call(
        "team-a", "POST", f"/api/questions/{question}/answer", files=files, data=data
    )
    assert uploaded.status_code == 201, uploaded.text
    await run_media_jobs(web.runtime.store)

    preview = await web.call("mod1", "GET", f"/api/questions/{question}/answer/preview")
    approved = await web.call("mod1", "POST", f"/api/questions/{question}/answer/approve")

    assert preview.status_code == 200, preview.text
    own = {r["question_id"]: r["own_language_reply"] for r in preview.json()["recipients"]}
    assert own == {question: None, french: domain.FALLBACK_TEXT["fr"]}
    assert approved.status_code == 200, approved.text
    requested = {
        m.question_id: m
        for _, m in await outbox(web.runtime.store, "replies.requested", PublishReply)
    }
    assert (requested[question].language, requested[question].text) == (
        "en",
        "We walk to school together",
    )
    assert (requested[french].language, requested[french].text) == (
        "fr",
        domain.FALLBACK_TEXT["fr"],
    )


def test_the_question_page_says_which_model_scored_it_and_the_language(
    web_app: Pair, classified: ClassifiedFactory
) -> None:
    web, client = web_app
    question = web.ingest(
        classified(
            mention={
                "text": "Wie kommen die Kinder zur Schule?",
                "lang": "de",
                "lang_source": "detected",
            },
            model_path=ModelPath.MULTI,
            model_language="de",
            model_version="e5-heads-1",
        )
    )
    sign_in(client, MODERATOR)

    html = client.get(f"/questions/{question}").text
    queue = client.get("/queue").text

    assert "German (de)" in html
    assert "(detected)" in html
    assert "scored by the multilingual model" in html
    assert "e5-heads-1" in html
    assert "scored by the" not in queue  # no model jargon on the queue cards


def test_a_question_stored_from_a_version_1_decision_shows_no_path(
    web_app: Pair, classified: ClassifiedFactory
) -> None:
    web, client = web_app
    question = web.ingest(classified(schema_version=1))
    sign_in(client, MODERATOR)

    html = client.get(f"/questions/{question}").text

    assert "scored by the" not in html
    assert "English (en)" in html


async def test_auto_assign_goes_to_a_team_that_speaks_the_language(web: Web) -> None:
    """The routing rules still send French to kakuma-a, but the teams' languages (edited
    in the web since) say only dadaab-b speaks it: the question goes there."""
    routed_wrong = await web.ingest(
        decision=Decision.AUTO_ASSIGN, team="kakuma-a", mention={"lang": "fr-FR"}
    )
    nobody = await web.ingest(
        decision=Decision.AUTO_ASSIGN, team="kakuma-a", mention={"lang": "de"}
    )
    routed_right = await web.ingest(
        decision=Decision.AUTO_ASSIGN, team="kakuma-a", mention={"lang": "sw"}
    )

    teams = {}
    for question in (routed_wrong, nobody, routed_right):
        shown = await web.call("mod1", "GET", f"/api/questions/{question}")
        assert shown.status_code == 200, shown.text
        teams[question] = (shown.json()["status"], shown.json()["team"])

    assert teams == {
        routed_wrong: ("assigned", "dadaab-b"),
        nobody: ("new", None),  # no team speaks German: a moderator decides
        routed_right: ("assigned", "kakuma-a"),
    }
