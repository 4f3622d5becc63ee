"""The approval dialog's preview: each recipient's reply exactly as the publisher will
post it (its template, its platform's form), for every platform and language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.common.messages import Author, Platform, PublishReply
from services.common.replies import Templates
from services.publish import domain as publisher
from services.triage.web import domain
from services.triage.web.config import WebSettings
from services.triage.web.routes.review import posted
from tests.helpers.media import video_bytes
from tests.publish.helpers import request_factory
from tests.triage.web.helpers.api import Web, assigned
from tests.triage.web.helpers.media import run_media_jobs
from tests.triage.web.helpers.store import outbox

CAPTION = "We walk to school together, see https://example.org/school"


def _mention(platform: Platform, lang: str, n: int) -> dict[str, Any]:
    native = {
        Platform.X: f"{1_700_000_000_000 + n}",
        Platform.MASTODON: f"{110_000_000_000 + n}",
        Platform.BLUESKY: f"at://did:plc:asker{n}/app.bsky.feed.post/3kq{n}",
    }[platform]
    text = "Comment va l'école ?" if lang == "fr" else "How do the children get to school?"
    return {"platform": platform, "native_id": native, "lang": lang, "text": text}


async def _answered(web: Web) -> tuple[str, list[str]]:
    """A question with five more askers in its cluster (x, mastodon, bluesky in English
    and French), answered in English and ready to approve."""
    question = await assigned(web, cluster_id="c-walk", mention=_mention(Platform.X, "en", 0))
    others = [
        await web.ingest(cluster_id="c-walk", mention=_mention(platform, lang, n))
        for n, (platform, lang) in enumerate(
            [
                (Platform.X, "fr"),
                (Platform.MASTODON, "en"),
                (Platform.MASTODON, "fr"),
                (Platform.BLUESKY, "en"),
                (Platform.BLUESKY, "fr"),
            ],
            start=1,
        )
    ]
    files = {"video": ("a.mp4", video_bytes(300_000), "video/mp4")}
    data = {
        "language": "en",
        "consent_given_by": "Amina",
        "consent_scope": "public",
        "caption": CAPTION,
    }
    uploaded = await web.call(
        "team-a", "POST", f"/api/questions/{question}/answer", files=files, data=data
    )
    assert uploaded.status_code == 201, uploaded.text
    await run_media_jobs(web.runtime.store)
    return question, [question, *others]


async def test_the_preview_shows_each_recipient_the_publisher_s_exact_text(web: Web) -> None:
    question, askers = await _answered(web)

    preview = await web.call("mod1", "GET", f"/api/questions/{question}/answer/preview")
    approved = await web.call("mod1", "POST", f"/api/questions/{question}/answer/approve")

    assert preview.status_code == 200, preview.text
    assert approved.status_code == 200, approved.text
    shown = {r["question_id"]: r for r in preview.json()["recipients"]}
    assert sorted(shown) == sorted(askers)
    requested = await outbox(web.runtime.store, "replies.requested", PublishReply)
    assert len(requested) == len(askers)
    templates = Templates.load()  # the publisher's default (PUBLISH_TEMPLATES_FILE unset)
    seen: set[tuple[str, str | None]] = set()
    for _, request in requested:
        composed = publisher.compose(request, publisher.Snapshot(), templates, publisher.Policy())
        assert isinstance(composed, publisher.Composed), composed
        recipient = shown[request.question_id]
        assert recipient["posted_text"] == composed.text, request.platform
        assert recipient["template_id"] == composed.template_id
        assert recipient["reply_language"] == request.language
        seen.add((request.platform.value, request.language))
    assert seen == {(p, lang) for p in ("x", "mastodon", "bluesky") for lang in ("en", "fr")}
    # The platforms' forms, visible in the preview: @handle first on Mastodon only, no
    # link on X, the French askers' line in French.
    by_platform = {(r["platform"], r["reply_language"]): r for r in shown.values()}
    mastodon = by_platform[("mastodon", "en")]
    assert mastodon["posted_text"].startswith(f"@{mastodon['author_handle']} ")
    assert "https://" not in by_platform[("x", "en")]["posted_text"]
    assert "https://example.org/school" in by_platform[("bluesky", "en")]["posted_text"]
    assert "school" not in by_platform[("x", "fr")]["posted_text"]  # the video answers
    assert by_platform[("x", "fr")]["template_id"].startswith("fr-")


async def test_a_correction_is_previewed_without_being_saved(web: Web) -> None:
    question, _ = await _answered(web)
    url = f"/api/questions/{question}/answer/preview"

    typed = await web.call("mod1", "GET", url, params={"caption": "  Together, on foot.  "})
    saved = await web.call("mod1", "GET", url)

    assert typed.status_code == 200, typed.text
    assert typed.json()["text"] == "Together, on foot."
    english = [r for r in typed.json()["recipients"] if r["reply_language"] == "en"]
    assert english
    assert all("Together, on foot." in r["posted_text"] for r in english)
    assert saved.json()["caption"] == CAPTION
    assert all("Together" not in r["posted_text"] for r in saved.json()["recipients"])


def test_the_preview_renders_with_the_publisher_s_template_settings(tmp_path: Path) -> None:
    """A deployment's own templates and X link policy (PUBLISH_TEMPLATES_FILE,
    PUBLISH_DEFAULT_LANGUAGE, PUBLISH_X_ALLOW_URLS, set for both services) reach the
    preview: it still shows what the publisher will post."""
    custom = tmp_path / "templates.yaml"
    custom.write_text(
        "de:\n"
        "  - {id: de-one, text: 'Danke! {text}'}\n"
        "  - {id: de-two, text: 'Antwort: {text}'}\n"
        "sw:\n"
        "  - {id: sw-one, text: 'Asante! {text}'}\n"
        "  - {id: sw-two, text: 'Jibu: {text}'}\n",
        encoding="utf-8",
    )
    settings = WebSettings(
        PUBLISH_TEMPLATES_FILE=custom, PUBLISH_DEFAULT_LANGUAGE="de", PUBLISH_X_ALLOW_URLS=True
    )
    policy = publisher.Policy(default_language="de", x_allow_urls=True)
    templates = Templates.load(custom)
    for lang, expected in (("en", "de-"), ("sw", "sw-")):  # no English templates: German
        text, language, template = posted(CAPTION, lang, lang, "x", "asker", True, False, settings)
        request = request_factory(
            text=domain.reply_for(CAPTION, lang, lang)[0],
            language=language,
            author=Author(id="a1", handle="asker"),
            summoned=True,
        )
        composed = publisher.compose(request, publisher.Snapshot(), templates, policy)
        assert isinstance(composed, publisher.Composed), composed
        assert (text, template) == (composed.text, composed.template_id)
        assert template.startswith(expected)
        assert "https://example.org/school" in text  # links kept on X, as configured
    # Unset, the publisher's shipped templates and no link on X.
    text, _, template = posted(CAPTION, "en", "en", "x", "asker", True)
    assert template.startswith("en-")
    assert "https://" not in text


# --- the answer reviewed is the answer approved ---------------------------------------


async def _record(web: Web, question: str, caption: str, given_by: str) -> str:
    files = {"video": ("a.mp4", video_bytes(300_000), "video/mp4")}
    data = {
        "language": "en",
        "consent_given_by": given_by,
        "consent_scope": "public",
        "caption": caption,
    }
    recorded = await web.call(
        "team-a", "POST", f"/api/questions/{question}/answer", files=files, data=data
    )
    assert recorded.status_code == 201, recorded.text
    answer: str = recorded.json()["id"]
    return answer


async def _replaced_under_review(web: Web) -> tuple[str, str, str]:
    """A question whose answer A the moderator opened for review, then the team
    recorded B (another caption, another person's consent): (question, A, B)."""
    question = await assigned(web)
    first = await _record(web, question, "Reviewed words.", "Amina")
    await run_media_jobs(web.runtime.store)
    opened = await web.call(
        "mod1", "GET", f"/api/questions/{question}/answer/preview", params={"answer_id": first}
    )
    assert (opened.status_code, opened.json()["answer_id"]) == (200, first), opened.text
    second = await _record(web, question, "Words nobody reviewed.", "Someone else")
    await run_media_jobs(web.runtime.store)
    return question, first, second


async def test_approving_an_answer_a_newer_recording_replaced_is_refused(web: Web) -> None:
    question, first, second = await _replaced_under_review(web)
    url = f"/api/questions/{question}/answer/approve"

    stale = await web.call("mod1", "POST", url, json={"answer_id": first})

    assert stale.status_code == 409, stale.text
    assert stale.json()["error"]["code"] == "answer_replaced"
    assert second in stale.json()["error"]["message"]
    assert await outbox(web.runtime.store, "replies.requested", PublishReply) == []
    seen = (await web.call("mod1", "GET", f"/api/questions/{question}")).json()
    assert seen["status"] == "recorded"
    approved = await web.call("mod1", "POST", url, json={"answer_id": second})
    assert approved.status_code == 200, approved.text
    [(_, request)] = await outbox(web.runtime.store, "replies.requested", PublishReply)
    assert "Words nobody reviewed." in request.text
    assert request.consent.speaker_ref == "Someone else"


async def test_approving_without_naming_the_answer_approves_the_newest(web: Web) -> None:
    question, _, _ = await _replaced_under_review(web)

    approved = await web.call("mod1", "POST", f"/api/questions/{question}/answer/approve")

    assert approved.status_code == 200, approved.text
    [(_, request)] = await outbox(web.runtime.store, "replies.requested", PublishReply)
    assert "Words nobody reviewed." in request.text


async def test_the_review_s_other_calls_refuse_a_replaced_answer(web: Web) -> None:
    question, first, second = await _replaced_under_review(web)
    base = f"/api/questions/{question}/answer"

    preview = await web.call("mod1", "GET", f"{base}/preview", params={"answer_id": first})
    caption = await web.call(
        "mod1", "PUT", f"{base}/caption", json={"caption": "Edited.", "answer_id": first}
    )
    back = await web.call(
        "mod1", "POST", f"{base}/return", json={"note": "dark", "answer_id": first}
    )

    for refused in (preview, caption, back):
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "answer_replaced"
    current = (await web.call("mod1", "GET", f"{base}/preview")).json()
    assert (current["answer_id"], current["caption"]) == (second, "Words nobody reviewed.")
    edited = await web.call(
        "mod1", "PUT", f"{base}/caption", json={"caption": "Edited.", "answer_id": second}
    )
    assert (edited.status_code, edited.json()["caption"]) == (200, "Edited.")
    sent_back = await web.call(
        "mod1", "POST", f"{base}/return", json={"note": "dark", "answer_id": second}
    )
    assert sent_back.status_code == 204, sent_back.text


async def test_approving_a_reply_text_another_moderator_changed_since_is_refused(
    web: Web,
) -> None:
    """The reply's text the approval dialog showed is the one approved: corrected by
    another moderator since, the approval is refused (409 ``answer_changed``, nothing
    requested); the text as it is now approves it."""
    question = await assigned(web)
    answer = await _record(web, question, "Reviewed words.", "Amina")
    await run_media_jobs(web.runtime.store)
    base = f"/api/questions/{question}/answer"
    shown = (await web.call("mod1", "GET", f"{base}/preview?answer_id={answer}")).json()
    edited = await web.call(
        "mod2",
        "PUT",
        f"{base}/caption",
        json={"caption": "Not what mod1 read.", "answer_id": answer},
    )
    assert edited.status_code == 200, edited.text

    stale = await web.call(
        "mod1",
        "POST",
        f"{base}/approve",
        json={"answer_id": answer, "caption": shown["caption"]},
    )

    assert stale.status_code == 409, stale.text
    assert stale.json()["error"]["code"] == "answer_changed"
    assert await outbox(web.runtime.store, "replies.requested", PublishReply) == []
    approved = await web.call(
        "mod1",
        "POST",
        f"{base}/approve",
        json={"answer_id": answer, "caption": " Not what mod1 read. "},
    )
    assert approved.status_code == 200, approved.text
    assert len(await outbox(web.runtime.store, "replies.requested", PublishReply)) == 1


async def test_approving_words_the_team_changed_after_the_moderator_looked_is_refused(
    web: Web,
) -> None:
    """Four eyes on what goes out: the team may still correct the words while the answer
    waits for review, and an approval naming the revision the moderator saw is refused
    once they changed (409 ``answer_changed``, nothing requested); the revision of what
    is there now approves it, with the words it shows."""
    question = await assigned(web)
    answer = await _record(web, question, "Reviewed words.", "Amina")
    await run_media_jobs(web.runtime.store)
    [seen] = (await web.call("mod1", "GET", f"/api/questions/{question}/answers")).json()
    assert seen["revision"]
    edited = await web.call(
        "team-a",
        "PUT",
        f"/api/answers/{answer}/transcript",
        json={"translation": "Words the moderator never read."},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["revision"] != seen["revision"]
    await run_media_jobs(web.runtime.store)
    url = f"/api/questions/{question}/answer/approve"

    stale = await web.call(
        "mod1", "POST", url, json={"answer_id": answer, "revision": seen["revision"]}
    )

    assert stale.status_code == 409, stale.text
    assert stale.json()["error"]["code"] == "answer_changed"
    assert await outbox(web.runtime.store, "replies.requested", PublishReply) == []
    assert (await web.call("mod1", "GET", f"/api/questions/{question}")).json()["status"] == (
        "recorded"
    )
    [now] = (await web.call("mod1", "GET", f"/api/questions/{question}/answers")).json()
    assert now["revision"] == edited.json()["revision"]
    approved = await web.call(
        "mod1", "POST", url, json={"answer_id": answer, "revision": now["revision"]}
    )
    assert approved.status_code == 200, approved.text
    assert len(await outbox(web.runtime.store, "replies.requested", PublishReply)) == 1
