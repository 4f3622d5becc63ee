"""What the database names of the media folder, for the sweep: an answer's video and
poster, its jobs' renditions (live while queued or running), the subtitle files its
replies' requests carry, and when those cannot be known."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from services.common import topics
from services.common.messages import Platform, ReplyPublished
from services.triage.web.models import OutboxMessage, Team
from services.triage.web.store import Actor
from services.triage.web.store.media_refs import words
from tests.triage.web.helpers.store import Desk, stored_answer

pytestmark = pytest.mark.timeout(60)


def _files(desk: Desk, folder: str) -> list[Path]:
    return sorted((desk.store.media.policy.media_dir / folder).rglob("*"))


def test_words_keep_file_names_whole() -> None:
    found = words(
        "file:///srv/media/objects/Ab_cd-EF0123456789xyz.mp4",
        b'{"path":"renditions/0f1e/9a8b.mp4","uri":"file:///x/subtitles/77.srt"}',
        None,
    )
    assert {"Ab_cd-EF0123456789xyz.mp4", "0f1e", "9a8b.mp4", "77.srt"} <= found
    assert "objects/Ab_cd-EF0123456789xyz.mp4" not in found


async def test_an_answered_question_names_its_video_poster_renditions_and_subtitles(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question = await desk.assigned(camp_a, mod_a)
    stored = stored_answer(uri="file:///elsewhere/objects/Kq3Zr8d2_x-Lm0PnTy5VbWc1uEjHaGs9.mp4")
    await desk.store.answers.record(question, member_a, stored)
    await desk.approve(question, mod_a)

    refs = await desk.store.media_refs.snapshot()

    files = [p.name for p in _files(desk, "posters") + _files(desk, "subtitles")]
    files += [p.name for p in _files(desk, "renditions") if p.is_file()]
    assert len(files) == 3  # a poster, the X rendition, its subtitle file
    assert {"Kq3Zr8d2_x-Lm0PnTy5VbWc1uEjHaGs9.mp4", *files} <= refs.words
    assert refs.live == frozenset()  # every job done
    assert refs.subtitles_unknown is False  # the request is in the outbox


async def test_a_queued_job_s_original_is_live(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question = await desk.assigned(camp_a, mod_a)
    stored = stored_answer()
    await desk.store.answers.record(question, member_a, stored)  # poster, transcript queued

    refs = await desk.store.media_refs.snapshot()

    assert stored.sha256 in refs.live


async def test_subtitles_are_unknown_while_a_reply_waits_and_its_request_left_the_outbox(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    question, reply_id = await desk.answered(camp_a, mod_a, member_a)
    assert (await desk.store.media_refs.snapshot()).subtitles_unknown is False

    async def sent(_: object) -> None:
        return None

    await desk.store.outbox.relay(sent, limit=1000)
    desk.clock.advance(days=8)
    assert await desk.store.outbox.prune(timedelta(days=7)) > 0
    # The prune keeps a request whose reply still waits: its subtitle files stay known.
    assert (await desk.store.media_refs.snapshot()).subtitles_unknown is False
    async with desk.store.sessions() as session:  # as a prune before 2026-12-05 did
        await session.execute(
            delete(OutboxMessage).where(OutboxMessage.topic == topics.REPLIES_REQUESTED)
        )
        await session.commit()

    assert (await desk.store.media_refs.snapshot()).subtitles_unknown is True

    await desk.store.answers.reply_outcome(
        ReplyPublished(
            reply_id=reply_id,
            question_id=question,
            platform=Platform.X,
            post_id="1",
            at=desk.clock(),
        )
    )
    assert (await desk.store.media_refs.snapshot()).subtitles_unknown is False
