"""Finishing a resumable upload through the API, on SQLite and Postgres: once per
upload (a retried finish answers the answer it became), nothing kept when the
recording is refused, and a media volume whose locks fail. Each test failed before
its fix."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.common.media.profiles import MediaInfo
from services.common.messages import AnswerRecorded
from services.triage.web.models import Answer, Consent
from services.triage.web.store import Actor, StoredAnswer
from tests.helpers.media import video_bytes
from tests.triage.web.helpers.api import Web, assigned
from tests.triage.web.helpers.media import run_media_jobs
from tests.triage.web.helpers.store import outbox

pytestmark = pytest.mark.timeout(120)

FINISH = {"language": "en", "consent_given_by": "Amina", "consent_scope": "public"}


async def _uploaded(web: Web, question: str, video: bytes) -> str:
    """A complete upload of ``video`` for ``question`` by team-a; its id."""
    created = await web.call(
        "team-a", "POST", f"/api/questions/{question}/uploads",
        json={"size": len(video), "mime": "video/mp4", "sha256": hashlib.sha256(video).hexdigest()},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    upload: str = created.json()["upload_id"]
    sent = await web.call(
        "team-a", "PATCH", f"/api/uploads/{upload}", content=video,
        headers={"Upload-Offset": "0"},
    )  # fmt: skip
    assert sent.json()["complete"], sent.text
    return upload


async def _finish(web: Web, upload: str) -> httpx.Response:
    return await web.call("team-a", "POST", f"/api/uploads/{upload}/answer", json=FINISH)


async def _counts(web: Web) -> tuple[int, int]:
    """(answers, consents) in the database."""
    async with web.runtime.store.sessions() as session:
        answers = await session.scalar(select(func.count()).select_from(Answer))
        consents = await session.scalar(select(func.count()).select_from(Consent))
        return int(answers or 0), int(consents or 0)


def _objects(web: Web) -> list[str]:
    return sorted(p.name for p in (web.runtime.settings.media_dir / "objects").iterdir())


# --- a retried finish -----------------------------------------------------------------


async def test_a_retried_finish_answers_the_same_answer_whatever_became_of_it(web: Web) -> None:
    question = await assigned(web)
    upload = await _uploaded(web, question, video_bytes(120_000))
    first = await _finish(web, upload)
    assert first.status_code == 201, first.text

    retried = await _finish(web, upload)  # the phone never saw the first response

    assert retried.status_code == 200, retried.text
    assert retried.json() == first.json()
    assert await _counts(web) == (1, 1)
    assert len(await outbox(web.runtime.store, "answers.recorded", AnswerRecorded)) == 1
    await run_media_jobs(web.runtime.store)
    approved = await web.call(
        "mod1", "POST", f"/api/questions/{question}/answer/approve",
        json={"answer_id": first.json()["id"]},
    )  # fmt: skip
    assert approved.status_code == 200, approved.text  # not "answer_replaced"
    after = await _finish(web, upload)  # a reload of the phone's page, long after
    assert after.status_code == 200, after.text
    assert (after.json()["id"], after.json()["state"]) == (first.json()["id"], "approved")
    assert await _counts(web) == (1, 1)
    played = await web.call("mod1", "GET", after.json()["video_url"])
    assert played.status_code == 200


async def test_concurrent_finishes_of_one_upload_record_one_answer(web: Web) -> None:
    question = await assigned(web)
    upload = await _uploaded(web, question, video_bytes(120_000))

    both = await asyncio.gather(_finish(web, upload), _finish(web, upload))

    assert sorted(r.status_code for r in both) == [200, 201], [r.text for r in both]
    assert both[0].json()["id"] == both[1].json()["id"]
    assert await _counts(web) == (1, 1)
    assert len(await outbox(web.runtime.store, "answers.recorded", AnswerRecorded)) == 1


async def test_a_new_upload_still_replaces_the_answer_waiting_for_review(web: Web) -> None:
    question = await assigned(web)
    first = await _finish(web, await _uploaded(web, question, video_bytes(120_000)))

    newer = await _finish(web, await _uploaded(web, question, video_bytes(130_000)))

    assert newer.status_code == 201, newer.text
    assert newer.json()["id"] != first.json()["id"]
    listed = await web.call("team-a", "GET", f"/api/questions/{question}/answers")
    assert [(a["id"], a["state"]) for a in listed.json()] == [
        (newer.json()["id"], "submitted"),
        (first.json()["id"], "returned"),
    ]


async def test_a_retry_after_the_question_left_the_team_is_refused_and_keeps_the_video(
    web: Web,
) -> None:
    question = await assigned(web)
    upload = await _uploaded(web, question, video_bytes(120_000))
    assert (await _finish(web, upload)).status_code == 201
    sent_back = await web.call(
        "mod1", "POST", f"/api/questions/{question}/answer/return", json={"note": "not ours"}
    )
    assert sent_back.status_code == 204, sent_back.text
    moved = await web.call(
        "mod1", "POST", f"/api/questions/{question}/assign", json={"team": "dadaab-b"}
    )
    assert moved.status_code == 200, moved.text

    retried = await _finish(web, upload)

    assert retried.status_code == 403, retried.text
    assert len(_objects(web)) == 1  # the recorded answer's video stays
    assert await _counts(web) == (1, 1)


# --- a refused recording keeps nothing -------------------------------------------------


async def test_a_finish_refused_by_the_claim_stores_nothing_and_keeps_the_upload(
    web: Web,
) -> None:
    question = await assigned(web)
    upload = await _uploaded(web, question, video_bytes(120_000))
    assert (await web.call("mod1", "POST", f"/api/questions/{question}/take")).status_code == 200

    refused = await _finish(web, upload)

    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "claimed"
    assert _objects(web) == []  # checked before the video was moved in
    state = await web.call("team-a", "GET", f"/api/uploads/{upload}")
    assert state.json()["complete"]


async def test_a_recording_refused_after_the_video_was_stored_keeps_nothing(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A moderator takes the question while the server probes the video: the answer
    is refused after the video went into the store."""
    question = await assigned(web)
    upload = await _uploaded(web, question, video_bytes(120_000))
    loop = asyncio.get_running_loop()
    real_probe = web.runtime.uploads.prober

    def probe_while_taken(path: Path) -> MediaInfo:
        taking = web.call("mod1", "POST", f"/api/questions/{question}/take")
        assert asyncio.run_coroutine_threadsafe(taking, loop).result(30).status_code == 200
        return real_probe(path)

    monkeypatch.setattr(web.runtime.uploads, "prober", probe_while_taken)

    refused = await _finish(web, upload)

    assert refused.status_code == 409, refused.text
    assert _objects(web) == []
    assert await _counts(web) == (0, 0)
    assert (await web.call("team-a", "GET", f"/api/uploads/{upload}")).status_code == 404
    monkeypatch.undo()
    await web.call("mod1", "POST", f"/api/questions/{question}/give-back")
    again = await _finish(web, await _uploaded(web, question, video_bytes(120_000)))
    assert again.status_code == 201, again.text  # the phone sends it again


async def test_a_recording_whose_response_was_lost_keeps_its_video_for_the_retry(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer committed, then the request failed (the database's reply was lost):
    the video is the answer's, not deleted, and the retry finds the answer."""
    question = await assigned(web)
    upload = await _uploaded(web, question, video_bytes(120_000))
    answers = web.runtime.store.answers
    real_record = answers.record

    async def record_then_fail(question_id: str, actor: Actor, stored: StoredAnswer) -> Any:
        await real_record(question_id, actor, stored)
        raise ConnectionResetError("the database's reply was lost")

    monkeypatch.setattr(answers, "record", record_then_fail)
    with pytest.raises(ConnectionResetError):
        await _finish(web, upload)
    monkeypatch.undo()

    assert len(_objects(web)) == 1
    retried = await _finish(web, upload)
    assert retried.status_code == 200, retried.text
    played = await web.call("mod1", "GET", retried.json()["video_url"])
    assert played.status_code == 200
    assert await _counts(web) == (1, 1)


# --- a media volume whose locks fail --------------------------------------------------


def _nfs_flock(monkeypatch: pytest.MonkeyPatch) -> None:
    """``flock`` as on NFS: an exclusive lock needs a descriptor open for writing."""
    real = fcntl.flock

    def flock(fd: int, operation: int) -> None:
        readonly = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        if operation & fcntl.LOCK_EX and readonly:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)


async def test_uploads_are_finished_on_an_nfs_media_volume(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    _nfs_flock(monkeypatch)
    question = await assigned(web)

    finished = await _finish(web, await _uploaded(web, question, video_bytes(120_000)))

    assert finished.status_code == 201, finished.text


async def test_a_lock_the_volume_refuses_is_a_503(
    web: Web, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    question = await assigned(web)
    video = video_bytes(120_000)
    created = await web.call(
        "team-a", "POST", f"/api/questions/{question}/uploads",
        json={"size": len(video), "mime": "video/mp4", "sha256": hashlib.sha256(video).hexdigest()},
    )  # fmt: skip
    upload = created.json()["upload_id"]

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    refused = await web.call(
        "team-a", "PATCH", f"/api/uploads/{upload}", content=video, headers={"Upload-Offset": "0"}
    )

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "upload_lock_failed"
    assert f"upload {upload}: cannot lock its lock file" in caplog.text
    monkeypatch.undo()
    assert (await web.call("team-a", "GET", f"/api/uploads/{upload}")).json()["offset"] == 0
