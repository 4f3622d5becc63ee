"""The answers aggregate: recording with consent, review, the replies' outcomes."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from urllib.request import url2pathname

import pytest
from sqlalchemy import select

from services.common import topics
from services.common.messages import (
    AnswerRecorded,
    MentionClassified,
    Platform,
    PublishReply,
    ReplyFailed,
    ReplyPublished,
)
from services.triage.web import domain as queue
from services.triage.web.exceptions import (
    Conflict,
    ConsentMissing,
    NotFound,
)
from services.triage.web.models import (
    AnswerState,
    AssignmentState,
    Consent,
    Reply,
    ReplyState,
    Team,
)
from services.triage.web.store import Actor, TriageStore
from tests.helpers.media import rendition_bytes
from tests.triage.web.helpers.store import (
    Desk,
    all_events,
    all_outbox,
    events,
    outbox,
    outbox_topics,
    stored_answer,
)

pytestmark = pytest.mark.timeout(60)


# --- answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "consent",
    [("", "campaign-social"), ("   ", "public"), ("speaker-1", "anything-goes")],
)
async def test_no_consent_no_answer(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor, consent: tuple[str, str]
) -> None:
    given_by, scope = consent
    question_id = await desk.assigned(camp_a, mod_a)
    answer = stored_answer(consent_given_by=given_by, consent_scope=scope)
    with pytest.raises(ConsentMissing) as caught:
        await desk.store.answers.record(question_id, member_a, answer)
    assert caught.value.code == "consent_required"
    assert await desk.status(question_id) == "assigned"
    assert await desk.store.answers.of_question(question_id) == []
    assert await outbox_topics(desk.store) == [topics.QUESTIONS_ASSIGNED]


async def test_recording_an_answer_stores_it_with_consent_and_announces_it(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    question_id = await desk.assigned(camp_a, mod_a)
    await desk.store.teams.take(question_id, member_a)
    given = stored_answer(consent_given_by="  Amina (guardian)  ", consent_scope="public")
    answer = await desk.store.answers.record(question_id, member_a, given)

    assert await desk.status(question_id) == "recorded"
    [(row, consent)] = await desk.store.answers.of_question(question_id)
    assert (row.id, row.state, row.sha256, row.team_id) == (
        answer.id,
        "submitted",
        given.sha256,
        camp_a.id,
    )
    assert consent is not None
    assert (consent.given_by, consent.scope, consent.recorded_by) == (
        "Amina (guardian)",
        "public",
        "member-a",
    )
    [item] = await desk.store.teams.feed("camp-a", member_a)
    assert (item.assignment.state, item.assignment.claimed_by) == ("recorded", None)
    assert (await events(desk.store, question_id))[-1] == (
        "answer_recorded",
        "member-a",
        "assigned",
        "recorded",
        None,
    )

    [(key, message)] = await outbox(desk.store, topics.ANSWERS_RECORDED, AnswerRecorded)
    assert key == question_id
    assert (message.question_id, message.team, message.language) == (question_id, "camp-a", "en")
    assert (message.media.uri, message.media.sha256, message.media.bytes) == (
        given.uri,
        given.sha256,
        given.bytes,
    )
    assert (message.consent.speaker_ref, message.consent.scope) == ("Amina (guardian)", "public")
    assert (message.consent.recorded_by, message.consent.at) == ("member-a", desk.clock.now)
    assert message.caption == given.caption
    [(pending, _, consent)] = await desk.store.answers.pending()
    assert pending.id == answer.id
    assert consent is not None
    assert consent.given_by == "Amina (guardian)"


async def test_a_new_recording_replaces_the_one_waiting_for_review(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question_id = await desk.recorded(camp_a, mod_a, member_a)
    [(first, _)] = await desk.store.answers.of_question(question_id)
    second = await desk.store.answers.record(question_id, member_a, stored_answer())
    states = {a.id: a.state for a, _ in await desk.store.answers.of_question(question_id)}
    assert states == {first.id: "returned", second.id: "submitted"}
    assert [a.id for a, _, _ in await desk.store.answers.pending()] == [second.id]
    latest = await desk.store.answers.latest([question_id, "no-such-question"])
    assert list(latest) == [question_id]
    assert latest[question_id][0].id == second.id


async def test_approving_an_answer_requests_one_reply_per_asker_in_the_cluster(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    cluster = {"cluster_id": "miss-home"}
    main = await desk.ingest(**cluster)
    same_new = await desk.ingest(**cluster)
    same_approved = await desk.ingest(**cluster)
    await desk.store.questions.act(same_approved, "approve", mod_a)
    same_rejected = await desk.ingest(**cluster)
    await desk.store.questions.act(same_rejected, "reject", mod_a)
    await desk.store.questions.act(main, "assign", mod_a, team=camp_a.slug)
    follower = await desk.ingest(**cluster)  # asked after: follows the cluster to the team
    elsewhere = await desk.ingest(cluster_id="other")
    answer = await desk.store.answers.record(
        main, member_a, stored_answer(caption="We miss the sea.", language="fr")
    )
    desk.clock.advance(minutes=5)

    replies = await desk.approve(main, mod_a)
    _, consent = await desk.store.answers.get(answer.id)
    assert consent is not None

    askers = [main, same_new, same_approved, follower]
    assert sorted(r.question_id for r in replies) == sorted(askers)
    assert len({r.reply_id for r in replies}) == 4
    assert all(r.state == "requested" and r.answer_id == answer.id for r in replies)
    assert [await desk.status(q) for q in (*askers, same_rejected, elsewhere)] == [
        "answered",
        "answered",
        "answered",
        "answered",
        "rejected",
        "new",
    ]
    requested = await outbox(desk.store, topics.REPLIES_REQUESTED, PublishReply)
    assert sorted(key for key, _ in requested) == sorted(askers)
    for key, message in requested:
        question = await desk.store.questions.get(key)
        mention = MentionClassified.model_validate_json(question.classified_json).mention
        assert message.question_id == key
        assert message.answer_id == answer.id  # a withdrawal of it refuses every asker's
        assert message.reply_id == queue.reply_id(answer.id, question.mention_id)
        assert (message.mention_id, message.in_reply_to) == (
            question.mention_id,
            question.native_id,
        )
        assert (message.author.id, message.author.handle) == (
            question.author_id,
            question.author_handle,
        )
        # A French answer to askers who wrote in English: each gets the reply line in
        # English (the video, with English subtitles, carries the answer).
        assert (message.text, message.language, message.approved_by) == (
            queue.FALLBACK_TEXT["en"],
            "en",
            "mod-a",
        )
        # The rendition made for the asker's platform (X here), never the original.
        assert message.media is not None
        assert message.media.sha256 == hashlib.sha256(rendition_bytes()).hexdigest()
        assert message.media.sha256 != answer.sha256
        assert message.media.alt_text == "We miss the sea."
        [subtitles] = message.media.subtitles  # X takes a subtitle file beside the video
        assert subtitles.language == "en"  # the askers wrote in English: the translation
        srt = await asyncio.to_thread(Path(url2pathname(subtitles.uri[7:])).read_bytes)
        assert b"We need clean water" in srt
        assert (message.consent.speaker_ref, message.consent.recorded_by) == (
            consent.given_by,
            "member-a",
        )
        assert message.requested_at == desk.clock.now
        assert (mention.native_id, mention.author) == (message.in_reply_to, message.author)
    # Waiting when the cluster was assigned, it followed it to the team.
    assert (await events(desk.store, same_new))[-1] == (
        "answer_approved",
        "mod-a",
        "assigned",
        "answered",
        "approve_answer",
    )
    assert (await desk.store.answers.get(answer.id))[0].state == AnswerState.APPROVED
    assert await desk.store.teams.feed("camp-a", member_a) == []  # the team's work is done
    assert await desk.store.answers.pending() == []


async def test_approving_again_requests_nothing_new(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    main = await desk.recorded(camp_a, mod_a, member_a, cluster_id="c")
    await desk.ingest(cluster_id="c")
    first = await desk.approve(main, mod_a)
    messages = len(await all_outbox(desk.store))

    again = await desk.approve(main, mod_a)
    assert sorted(r.reply_id for r in again) == sorted(r.reply_id for r in first)
    assert len(await all_outbox(desk.store)) == messages
    assert len(first) == 2


async def test_approving_closes_the_other_askers_team_work(
    desk: Desk,
    camp_a: Team,
    camp_b: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    main = await desk.recorded(camp_a, mod_a, member_a, cluster_id="c")
    also_given = await desk.assigned(camp_b, mod_a, cluster_id="c")
    await desk.approve(main, mod_a)
    assert await desk.status(also_given) == "answered"
    assert (
        await desk.store.teams.feed("camp-b", mod_a) == []
    )  # answered already: nothing left to film


async def test_approving_leaves_another_asker_s_own_recorded_answer_for_review(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    main = await desk.recorded(camp_a, mod_a, member_a, cluster_id="c")
    own = await desk.recorded(camp_a, mod_a, member_a, cluster_id="c")

    replies = await desk.approve(main, mod_a)

    assert [r.question_id for r in replies] == [main]
    assert await desk.status(own) == "recorded"
    [(pending, _, _)] = await desk.store.answers.pending()
    assert pending.question_id == own
    own_replies = await desk.approve(own, mod_a)
    assert [r.question_id for r in own_replies] == [own]
    assert await desk.status(own) == "answered"


async def test_an_answer_cannot_be_approved_before_it_is_recorded(
    desk: Desk, camp_a: Team, mod_a: Actor
) -> None:
    question_id = await desk.assigned(camp_a, mod_a)
    with pytest.raises(Conflict, match="no answer"):
        await desk.approve(question_id, mod_a)
    with pytest.raises(Conflict, match="no answer"):
        await desk.store.review.send_back(question_id, mod_a, "")
    with pytest.raises(NotFound):
        await desk.approve("nope", mod_a)
    with pytest.raises(NotFound):
        await desk.store.answers.get("nope")


async def test_withdrawn_consent_stops_the_approval(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question_id = await desk.recorded(camp_a, mod_a, member_a)
    async with desk.store.sessions() as session:
        consent = await session.scalar(select(Consent))
        assert consent is not None
        consent.withdrawn_at = desk.store.clock()
        await session.commit()
    with pytest.raises(Conflict, match="withdrew their consent") as refused:
        await desk.approve(question_id, mod_a)
    assert refused.value.status == 409
    assert await desk.status(question_id) == "recorded"
    assert topics.REPLIES_REQUESTED not in await outbox_topics(desk.store)


async def test_returning_an_answer_sends_the_question_back_to_the_team(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question_id = await desk.recorded(camp_a, mod_a, member_a)
    [(answer, _)] = await desk.store.answers.of_question(question_id)
    await desk.store.review.send_back(question_id, mod_a, "too dark, please film again")

    assert await desk.status(question_id) == "assigned"
    returned, _ = await desk.store.answers.get(answer.id)
    assert (returned.state, returned.review_note, returned.reviewed_by) == (
        "returned",
        "too dark, please film again",
        "mod-a",
    )
    [item] = await desk.store.teams.feed("camp-a", member_a)
    assert item.assignment.state == AssignmentState.ACTIVE
    last = (await desk.store.questions.timeline(question_id))[-1]
    assert (last.event, last.from_status, last.to_status, last.reason) == (
        "answer_returned",
        "recorded",
        "assigned",
        "too dark, please film again",
    )
    with pytest.raises(Conflict):
        await desk.approve(question_id, mod_a)

    await desk.store.answers.record(question_id, member_a, stored_answer())  # filmed again
    assert len(await desk.approve(question_id, mod_a)) == 1
    with pytest.raises(Conflict, match="cannot be sent back"):
        await desk.store.review.send_back(question_id, mod_a, "too late")


# --- reply outcomes ------------------------------------------------------------------


async def reply_row(store: TriageStore, reply_id: str) -> Reply:
    async with store.sessions() as session:
        reply = await session.get(Reply, reply_id)
    assert reply is not None
    return reply


async def test_a_published_reply_publishes_the_question_once(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    question_id, reply_id = await desk.answered(camp_a, mod_a, member_a)
    published = ReplyPublished(
        reply_id=reply_id,
        question_id=question_id,
        platform=Platform.X,
        post_id="1900000000000000001",
        url="https://x.test/status/1900000000000000001",
        at=desk.clock.now,
    )
    assert await desk.store.answers.reply_outcome(published) is True
    assert await desk.status(question_id) == "published"
    reply = await reply_row(desk.store, reply_id)
    assert (reply.state, reply.post_id, reply.url) == (
        ReplyState.PUBLISHED,
        published.post_id,
        published.url,
    )
    assert (await events(desk.store, question_id))[-1] == (
        "reply_published",
        "system:publish",
        "answered",
        "published",
        None,
    )
    count = await all_events(desk.store)

    assert await desk.store.answers.reply_outcome(published) is False  # redelivered
    assert await all_events(desk.store) == count
    unknown = published.model_copy(update={"reply_id": "reply-unknown"})
    assert await desk.store.answers.reply_outcome(unknown) is False


async def test_a_failed_reply_is_recorded_and_a_later_success_still_counts(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    member_a: Actor,
) -> None:
    question_id, reply_id = await desk.answered(camp_a, mod_a, member_a)
    failed = ReplyFailed(
        reply_id=reply_id,
        question_id=question_id,
        platform=Platform.X,
        error="HTTP 503",
        attempts=4,
        retryable=True,
        at=desk.clock.now,
    )
    assert await desk.store.answers.reply_outcome(failed) is True
    assert await desk.store.answers.reply_outcome(failed) is False
    assert await desk.status(question_id) == "answered"
    last = (await desk.store.questions.timeline(question_id))[-1]
    assert (last.event, last.reason) == ("reply_failed", "HTTP 503")

    published = ReplyPublished(
        reply_id=reply_id,
        question_id=question_id,
        platform=Platform.X,
        post_id="7",
        at=desk.clock.now,
    )
    assert await desk.store.answers.reply_outcome(published) is True
    assert await desk.status(question_id) == "published"
    assert await desk.store.answers.reply_outcome(failed) is False  # a late failure changes nothing
    reply = await reply_row(desk.store, reply_id)
    assert (reply.state, reply.post_id, reply.error) == (ReplyState.PUBLISHED, "7", "HTTP 503")
    assert await desk.status(question_id) == "published"
