"""The answer-media aggregate: what an answer asks of the media worker, the limits named
at upload, the results taken in, the moderator's cut, people's edits and subtitle
files — each on the timeline — and approval waiting for each platform's rendition."""

from __future__ import annotations

import json

import pytest

from services.common import topics
from services.common.jobs import JobState
from services.common.messages import Platform, PublishReply
from services.triage.web.exceptions import Conflict, Invalid
from services.triage.web.models import Team
from services.triage.web.store import Actor
from services.triage.web.store.media import POSTER, RENDITION, TRANSCRIPT
from tests.triage.web.helpers.media import SPOKEN, run_media_jobs
from tests.triage.web.helpers.store import Desk, events, outbox, probed, stored_answer

pytestmark = pytest.mark.timeout(60)

VTT = (
    "WEBVTT\n\n00:00:00.500 --> 00:00:02.000\nWe need <b>water</b>.\n\n"
    "00:00:02.000 --> 00:00:03.500\nAnd schools.\n"
)


async def _jobs(desk: Desk, kind: str) -> list[dict[str, object]]:
    async with desk.store.sessions() as session:
        table = desk.store.jobs.table
        rows = await session.execute(table.select().where(table.c.kind == kind))
        return [dict(r._mapping) for r in rows]


async def test_an_answer_asks_for_a_poster_and_a_transcript_then_renditions(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question = await desk.assigned(camp_a, mod_a)
    answer = await desk.store.answers.record(
        question, member_a, stored_answer(transcript="", language="en")
    )

    assert [j["state"] for j in await _jobs(desk, POSTER)] == ["queued"]
    assert [j["state"] for j in await _jobs(desk, TRANSCRIPT)] == ["queued"]
    assert await _jobs(desk, RENDITION) == []  # they wait for the transcript
    [status] = (await desk.store.media.statuses([answer])).values()
    assert [(r.platform, r.state, r.note) for r in status.renditions] == [
        ("x", "waiting", "waiting for the transcript")
    ]

    await run_media_jobs(desk.store)

    done, _ = await desk.store.answers.get(answer.id)
    assert (done.transcript, done.transcript_source, done.translation) == (
        SPOKEN,
        "machine",
        SPOKEN,
    )
    assert done.poster_key is not None
    [status] = (await desk.store.media.statuses([done])).values()
    assert status.ready
    assert status.poster
    assert [(r.platform, r.state, r.captions) for r in status.renditions] == [
        ("x", "done", "attach")
    ]
    timeline = [e[0] for e in await events(desk.store, question)]
    assert {"transcribed", "rendition_ready"} <= set(timeline)


async def test_the_team_s_own_transcript_is_kept_over_the_machine_s(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question = await desk.assigned(camp_a, mod_a)
    answer = await desk.store.answers.record(
        question, member_a, stored_answer(transcript="Our words, typed by the team.")
    )
    await run_media_jobs(desk.store)

    done, _ = await desk.store.answers.get(answer.id)
    assert (done.transcript, done.transcript_source) == ("Our words, typed by the team.", "team")
    assert json.loads(done.cues_json)[0][2] == "Our words, typed by the team."


async def test_a_long_answer_is_flagged_at_upload_and_waits_for_a_trim(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question = await desk.assigned(camp_a, mod_a)
    answer = await desk.store.answers.record(
        question, member_a, stored_answer(info=probed(duration_s=190.0))
    )
    assert [f["message"] for f in json.loads(answer.flags_json)] == [
        "X: at most 140 s; this answer is 3:10"
    ]
    recorded = [e for e in await events(desk.store, question) if e[0] == "answer_recorded"]
    assert recorded

    await run_media_jobs(desk.store)  # the transcript; no X rendition: nothing cut silently
    assert await _jobs(desk, RENDITION) == []
    with pytest.raises(Conflict, match="X: at most 140 s; this answer is 3:10"):
        await desk.approve(question, mod_a)

    trimmed = await desk.store.media.trim(answer.id, mod_a, 10.0, 130.0)

    assert (trimmed.trim_start_s, trimmed.trim_end_s) == (10.0, 130.0)
    assert json.loads(trimmed.flags_json) == []
    event = next(e for e in await events(desk.store, question) if e[0] == "answer_trimmed")
    assert event[1] == "mod-a"
    [job] = await _jobs(desk, RENDITION)
    payload = json.loads(str(job["payload_json"]))
    assert (payload["start_s"], payload["end_s"]) == (10.0, 130.0)
    replies = await desk.approve(question, mod_a)
    assert len(replies) == 1


async def test_a_cut_must_keep_half_a_second(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question = await desk.assigned(camp_a, mod_a)
    answer = await desk.store.answers.record(question, member_a, stored_answer())
    with pytest.raises(Invalid, match="half a second"):
        await desk.store.media.trim(answer.id, mod_a, 41.8, None)


async def test_approval_waits_for_every_platform_s_rendition(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question = await desk.assigned(camp_a, mod_a, cluster_id="c1")
    other = await desk.ingest(cluster_id="c1", mention={"platform": Platform.MASTODON})
    await desk.store.answers.record(question, member_a, stored_answer())

    with pytest.raises(Conflict, match=r"not asked for yet|queued"):
        await desk.store.review.approve(question, mod_a)
    assert await desk.status(question) == "recorded"  # nothing moved

    replies = await desk.approve(question, mod_a)

    assert sorted(r.question_id for r in replies) == sorted([question, other])
    requested = dict(await outbox(desk.store, topics.REPLIES_REQUESTED, PublishReply))
    x, mastodon = requested[question], requested[other]
    assert x.media is not None
    assert mastodon.media is not None
    assert len(x.media.subtitles) == 1  # X: a subtitle file beside the video
    assert mastodon.media.subtitles == ()  # Mastodon: burned in
    burned = [j for j in await _jobs(desk, RENDITION) if "mastodon" in str(j["key"])]
    assert json.loads(str(burned[0]["payload_json"]))["burn"][0][2] == "I miss the market."


async def test_edits_and_subtitle_files_are_on_the_timeline_and_remake_burned_renditions(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question = await desk.assigned(camp_a, mod_a, mention={"platform": Platform.MASTODON})
    answer = await desk.store.answers.record(question, member_a, stored_answer(transcript=""))
    await run_media_jobs(desk.store)
    before = {j["key"] for j in await _jobs(desk, RENDITION)}

    edited = await desk.store.media.edit_transcript(
        answer.id, member_a, transcript="We need clean water.", translation=None
    )

    assert (edited.transcript, edited.transcript_source) == ("We need clean water.", "edited")
    after = {j["key"] for j in await _jobs(desk, RENDITION)} - before
    [remade] = [j for j in await _jobs(desk, RENDITION) if j["key"] in after]
    assert json.loads(str(remade["payload_json"]))["burn"][0][2] == "We need clean water."
    provided = await desk.store.media.provide_subtitles(answer.id, mod_a, VTT, english=False)
    assert provided.subtitles_source == "provided"
    assert json.loads(provided.cues_json) == [
        [0.5, 2.0, "We need water."],
        [2.0, 3.5, "And schools."],
    ]
    with pytest.raises(Invalid, match="cannot be read"):
        await desk.store.media.provide_subtitles(answer.id, mod_a, "not subtitles", english=False)
    timeline = [(e[0], e[1]) for e in await events(desk.store, question)]
    assert ("transcript_edited", "member-a") in timeline
    assert ("subtitles_provided", "mod-a") in timeline


async def test_the_same_video_is_transcribed_once(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    first = await desk.assigned(camp_a, mod_a)
    given = stored_answer(transcript="")
    await desk.store.answers.record(first, member_a, given)
    await run_media_jobs(desk.store)
    second = await desk.assigned(camp_a, mod_a)

    again = await desk.store.answers.record(second, member_a, given)  # same bytes, same sha256

    assert again.transcript == SPOKEN  # taken from the finished job at once
    assert [j["state"] for j in await _jobs(desk, TRANSCRIPT)] == [JobState.DONE.value]
