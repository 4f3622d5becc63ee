"""Replies to our answers through the JSON API and the page: moderators list, unhide
(sticky) and hide replies and read who decided what; abusive text is blurred; teams
are refused; a paused person's answer is not approved, and the publisher is told of
each pause and resume."""

from __future__ import annotations

from services.common import topics
from services.common.messages import (
    Author,
    Escalation,
    ModerateReply,
    Platform,
    ReplyClassified,
    ReplyVerdict,
    SpeakerPaused,
)
from services.triage.rules import load_rules
from tests.helpers.replies import reply_classified, reply_received
from tests.triage.web.helpers.api import Web
from tests.triage.web.helpers.store import outbox


def judged(
    native: str, text: str, verdict: ReplyVerdict, *escalations: Escalation
) -> ReplyClassified:
    """A reply under our Bluesky answer (its ids hold slashes)."""
    uri = f"at://did:plc:abc/app.bsky.feed.post/{native}"
    reply = reply_received(
        uri,
        platform=Platform.BLUESKY,
        answer_post_id="at://did:plc:us/app.bsky.feed.post/answer",
        author=Author(id="did:plc:abc", handle="someone.test"),
        text=text,
    )
    return reply_classified(reply, verdict, *escalations)


async def _stored(web: Web) -> tuple[str, str]:
    protection = web.runtime.store.protection
    section = load_rules(web.runtime.settings.rules_path).protection
    abusive = judged("a1", "you are vermin, go back", ReplyVerdict.HIDE, Escalation.THREAT)
    kind = judged("k1", "thank you for sharing this", ReplyVerdict.KEEP)
    await protection.ingest(abusive, section)
    await protection.ingest(kind, section)
    return abusive.reply.id, kind.reply.id


async def test_moderators_list_unhide_and_hide_replies(web: Web) -> None:
    abusive, kind = await _stored(web)
    listed = await web.call("mod1", "GET", "/api/replies")
    assert {(r["reply_id"], r["state"]) for r in listed.json()} == {
        (abusive, "waiting"), (kind, "kept"),
    }  # fmt: skip
    by_id = {r["reply_id"]: r for r in listed.json()}
    # Derived fields: escalations split, reasons parsed, the rules' hide blurred.
    assert (by_id[abusive]["escalations"], by_id[abusive]["sensitive"]) == (["threat"], True)
    assert (by_id[kind]["escalations"], by_id[kind]["sensitive"]) == ([], False)
    assert isinstance(by_id[abusive]["reasons"], list)
    assert by_id[abusive]["author_handle"] == "someone.test"
    waiting = await web.call("mod1", "GET", "/api/replies", params={"state": "waiting"})
    assert [r["reply_id"] for r in waiting.json()] == [abusive]

    unhidden = await web.call("mod1", "POST", "/api/replies/unhide", json={"reply_id": abusive})
    assert unhidden.status_code == 200, unhidden.text
    assert (unhidden.json()["state"], unhidden.json()["sticky"]) == ("restored", True)
    hidden = await web.call("mod2", "POST", "/api/replies/hide", json={"reply_id": kind})
    assert hidden.json()["decided_by"] == "mod2"
    actions = await outbox(web.runtime.store, topics.REPLIES_ACTION, ModerateReply)
    assert [(m.action.value, m.decided_by) for _, m in actions] == [
        ("hide", "rules r-1"), ("unhide", "mod1"), ("hide", "mod2"),
    ]  # fmt: skip
    timeline = await web.call("mod1", "GET", "/api/replies/timeline", params={"reply_id": abusive})
    assert [e["event"] for e in timeline.json()][-1] == "unhide_asked"


async def test_alerts_and_pauses_through_the_api(web: Web) -> None:
    await _stored(web)
    [alert] = (await web.call("mod1", "GET", "/api/alerts")).json()
    assert (alert["kind"], alert["speaker_ref"]) == ("threat", "Amina, filmed in Kakuma")
    done = await web.call("mod1", "POST", f"/api/alerts/{alert['id']}/acknowledge")
    assert done.json()["acknowledged_by"] == "mod1"
    resumed = await web.call(
        "mod1", "POST", "/api/speakers/resume", json={"speaker_ref": "Amina, filmed in Kakuma"}
    )
    assert resumed.status_code == 204
    again = await web.call(
        "mod1", "POST", "/api/speakers/resume", json={"speaker_ref": "Amina, filmed in Kakuma"}
    )
    assert again.status_code == 409
    paused = await web.call(
        "mod1", "POST", "/api/speakers/pause", json={"speaker_ref": "Nadia", "reason": "threat"}
    )
    assert paused.status_code == 204
    commands = await outbox(web.runtime.store, topics.SPEAKERS_PAUSED, SpeakerPaused)
    assert [(c.speaker_ref, c.paused, c.decided_by) for _, c in commands] == [
        ("Amina, filmed in Kakuma", True, "rules"),
        ("Amina, filmed in Kakuma", False, "mod1"),
        ("Nadia", True, "mod1"),
    ]
    blank = await web.call("mod1", "POST", "/api/speakers/pause", json={"speaker_ref": "  "})
    assert blank.status_code == 422  # no command can name nobody


async def test_teams_are_refused_and_unknown_replies_are_404(web: Web) -> None:
    await _stored(web)
    assert (await web.call("team-a", "GET", "/api/replies")).status_code == 403
    missing = await web.call("mod1", "POST", "/api/replies/unhide", json={"reply_id": "x:404"})
    assert missing.status_code == 404


async def test_the_page_blurs_abusive_text_and_lists_every_state(web: Web) -> None:
    await _stored(web)
    page = await web.call("mod1", "GET", "/replies")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'class="blur"' in html
    assert "you are vermin" in html
    assert "thank you for sharing this</p>" in html  # kept: not blurred
    assert "Pause this person" in html
    assert "waiting (1)" in html
    assert "kept (1)" in html


async def test_a_pause_names_the_person_as_their_consent_does(web: Web) -> None:
    """Consents are stored trimmed, at most 128 characters: a pause of " Nadia " is a
    pause of "Nadia" (as sent, it matched no consent, and Nadia's answers were still
    approved and published); a name no consent can hold is refused."""
    paused = await web.call(
        "mod1", "POST", "/api/speakers/pause", json={"speaker_ref": " Nadia \n", "reason": "x"}
    )
    assert paused.status_code == 204
    commands = await outbox(web.runtime.store, topics.SPEAKERS_PAUSED, SpeakerPaused)
    assert [c.speaker_ref for _, c in commands] == ["Nadia"]
    assert [p.speaker_ref for p in await web.runtime.store.protection.paused()] == ["Nadia"]
    resumed = await web.call("mod1", "POST", "/api/speakers/resume", json={"speaker_ref": "Nadia "})
    assert resumed.status_code == 204
    too_long = await web.call(
        "mod1", "POST", "/api/speakers/pause", json={"speaker_ref": "n" * 129}
    )
    assert too_long.status_code == 422
