"""The sweep of media files nothing references, on SQLite and Postgres: an orphan past
the grace goes (logged, counted), everything an answer uses stays whatever its age, a
young orphan stays, a database that cannot be read removes nothing, no symbolic link
is followed, and two replicas sweeping at once remove each file once. (Transcripts
are no files: they live in the answer's row and its job's result.)"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from services.common.db import make_engine
from services.common.messages import MentionReceived
from services.triage.web import metrics
from services.triage.web.config import WebSettings
from services.triage.web.media import LocalMediaStore
from services.triage.web.models import Role
from services.triage.web.store import TriageStore
from services.triage.web.store.media_refs import References
from services.triage.web.sweep import OrphanSweep
from tests.helpers.db import KINDS
from tests.triage.web.helpers.app import serve_test_client
from tests.triage.web.helpers.media import run_media_jobs
from tests.triage.web.helpers.store import (
    ClassifiedFactory,
    Desk,
    FakeClock,
    add_person,
    add_team,
    classified_factory,
    migrated_store,
    stored_answer,
)

pytestmark = pytest.mark.timeout(60)

GRACE_S = 24 * 3600
#: Upload ids (``<id>.<ext>`` is the key), as ``Uploads`` makes them.
KEY = "Kq3Zr8d2_x-Lm0PnTy5VbWc1uEjHaGs9.mp4"
ORPHAN = "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp.mp4"
OTHER = "Aa1Bb2Cc3Dd4Ee5Ff6Gg7Hh8Ii9Jj0Kk.webm"
NOTHING = References(frozenset(), frozenset(), subtitles_unknown=False)


def later() -> float:
    """A sweep's "now" an hour past the grace of every file written just now (a file's
    ctime cannot be set back, so the sweep is moved forward instead)."""
    return time.time() + GRACE_S + 3600


def put(media: Path, *parts: str, data: bytes = b"video of a person") -> Path:
    path = media.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def files(media: Path) -> list[Path]:
    return sorted(p for p in media.rglob("*") if p.is_file())


def removed_count(folder: str) -> float:
    value: float = metrics.MEDIA_ORPHANS_REMOVED.labels(folder)._value.get()
    return value


class Reads:
    """References read in turn: each a snapshot, or the error that read raises."""

    def __init__(self, *reads: References | Exception) -> None:
        self.reads = list(reads)

    async def snapshot(self) -> References:
        read = self.reads.pop(0)
        if isinstance(read, Exception):
            raise read
        return read


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TriageStore]:
    async with migrated_store(str(request.param), tmp_path, FakeClock()) as store:
        yield store


@pytest.fixture
def media(store: TriageStore) -> Path:
    return store.media.policy.media_dir.resolve()


@pytest.fixture
def sweep(store: TriageStore, media: Path) -> OrphanSweep:
    return OrphanSweep(media, store.media_refs, grace_s=GRACE_S)


@pytest.fixture
def desk(store: TriageStore, mention_factory: Callable[..., MentionReceived]) -> Desk:
    clock = store.db.clock
    assert isinstance(clock, FakeClock)
    return Desk(store, clock, classified_factory(mention_factory))


async def test_an_orphan_past_the_grace_is_removed_logged_and_counted(
    sweep: OrphanSweep, media: Path, caplog: pytest.LogCaptureFixture
) -> None:
    orphan = put(media, "objects", ORPHAN)
    before = removed_count("objects")

    with caplog.at_level(logging.INFO, logger="services.triage.web.sweep"):
        removed = await sweep.sweep(now=later())

    assert removed == [f"objects/{ORPHAN}"]
    assert not orphan.exists()
    assert removed_count("objects") == before + 1
    assert f"removed objects/{ORPHAN}" in caplog.text


async def test_a_young_orphan_is_kept(sweep: OrphanSweep, media: Path) -> None:
    orphan = put(media, "objects", ORPHAN)

    assert await sweep.sweep(now=time.time() + GRACE_S - 600) == []
    assert orphan.exists()


async def test_a_video_moved_in_keeps_its_old_mtime_but_counts_from_the_move(
    sweep: OrphanSweep, media: Path, tmp_path: Path
) -> None:
    """A rename keeps the mtime of the upload's last chunk; the sweep goes by the ctime."""
    chunk = put(tmp_path, "uploads", "data")
    os.utime(chunk, (time.time() - 3 * GRACE_S, time.time() - 3 * GRACE_S))
    moved = chunk.rename(put(media, "objects", ORPHAN))

    assert await sweep.sweep(now=time.time() + 60) == []
    assert moved.exists()


async def test_everything_an_answer_uses_is_kept_whatever_its_age(
    desk: Desk, sweep: OrphanSweep, media: Path
) -> None:
    team = await add_team(desk.store, "camp-a")
    moderator = await add_person(desk.store, "mod-a", Role.MODERATOR)
    member = await add_person(desk.store, "member-a", Role.TEAM, team)
    question = await desk.assigned(team, moderator)
    original = put(media, "objects", KEY)
    answer = stored_answer(uri=LocalMediaStore(media).uri(KEY))
    await desk.store.answers.record(question, member, answer)
    await desk.approve(question, moderator)  # poster, transcript, X rendition, subtitles
    used = files(media)
    assert {p.relative_to(media).parts[0] for p in used} == {
        "objects",
        "posters",
        "renditions",
        "subtitles",
    }
    orphans = [
        put(media, "objects", ORPHAN),
        put(media, "posters", f"{'0' * 64}.jpg"),
        put(media, "renditions", answer.sha256, f".{'1' * 24}.mp4.0a1b2c3d.part"),
        put(media, "subtitles", f"{'2' * 64}.srt"),
    ]

    removed = await sweep.sweep(now=later())

    assert sorted(removed) == sorted(str(p.relative_to(media)) for p in orphans)
    assert all(p.exists() for p in used)
    assert original in used


async def test_files_a_queued_job_may_write_or_reuse_are_kept_until_it_is_done(
    desk: Desk, sweep: OrphanSweep, media: Path
) -> None:
    team = await add_team(desk.store, "camp-a")
    moderator = await add_person(desk.store, "mod-a", Role.MODERATOR)
    member = await add_person(desk.store, "member-a", Role.TEAM, team)
    question = await desk.assigned(team, moderator)
    answer = stored_answer()
    await desk.store.answers.record(question, member, answer)  # poster, transcript queued
    stale = put(media, "renditions", answer.sha256, "made-but-never-recorded.mp4")
    poster = put(media, "posters", f"{answer.sha256}.jpg")

    assert await sweep.sweep(now=later()) == []

    await run_media_jobs(desk.store)  # the poster recorded; the renditions name others

    assert await sweep.sweep(now=later()) == [
        f"renditions/{answer.sha256}/made-but-never-recorded.mp4"
    ]
    assert poster.exists()
    assert not stale.exists()


async def test_the_video_of_an_upload_a_retry_may_still_finish_is_kept(
    sweep: OrphanSweep, media: Path
) -> None:
    upload = media / "uploads" / KEY.removesuffix(".mp4")
    upload.mkdir(parents=True)
    video = put(media, "objects", KEY)

    assert await sweep.sweep(now=later()) == []

    upload.rmdir()  # expired
    assert await sweep.sweep(now=later()) == [f"objects/{KEY}"]
    assert not video.exists()


@pytest.mark.parametrize("unreachable", ["sqlite-folder", "postgres-refused"])
async def test_nothing_is_removed_when_the_database_cannot_be_read(
    unreachable: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if unreachable == "sqlite-folder":
        (tmp_path / "not-a-database").mkdir()
        url = f"sqlite+aiosqlite:///{tmp_path / 'not-a-database'}"
    else:
        url = "postgresql+asyncpg://postgres@127.0.0.1:1/test"
    engine = make_engine(url)
    media = tmp_path / "media"
    orphan = put(media, "objects", ORPHAN)
    try:
        sweep = OrphanSweep(media, TriageStore(engine).media_refs, grace_s=GRACE_S)
        assert await sweep.sweep(now=later()) == []
    finally:
        await engine.dispose()
    assert orphan.exists()
    assert "references unreadable, no file removed" in caplog.text


async def test_a_failed_read_before_the_removals_removes_nothing(tmp_path: Path) -> None:
    orphan = put(tmp_path, "objects", ORPHAN)
    failing = Reads(NOTHING, OperationalError("SELECT", {}, Exception("server closed")))

    assert await OrphanSweep(tmp_path, failing, grace_s=GRACE_S).sweep(now=later()) == []
    assert orphan.exists()


async def test_an_emptied_renditions_folder_goes_a_grace_after_it_emptied(
    tmp_path: Path,
) -> None:
    """A ``renditions/<sha256>/`` folder whose files were swept stayed for good, one per
    original ever rendered: it goes once empty for the grace period, unless a queued or
    running job of that original may write into it; a young one stays."""
    old_sha, live_sha, young_sha, full_sha = "a" * 64, "b" * 64, "c" * 64, "d" * 64
    for sha in (old_sha, live_sha, young_sha):
        (tmp_path / "renditions" / sha).mkdir(parents=True)
    put(tmp_path, "renditions", full_sha, "x.mp4")
    live = References(frozenset({live_sha}), frozenset({live_sha}), subtitles_unknown=False)
    sweep = OrphanSweep(tmp_path, Reads(live, live), grace_s=GRACE_S)
    now = later()
    young = tmp_path / "renditions" / young_sha
    os.utime(young, (now - 600, now - 600))  # emptied 10 minutes before the sweep

    assert await sweep.sweep(now=now) == [f"renditions/{full_sha}/x.mp4"]

    left = sorted(p.name for p in (tmp_path / "renditions").iterdir())
    assert left == sorted([live_sha, young_sha, full_sha])
    assert not any((tmp_path / "renditions" / full_sha).iterdir())


async def test_a_file_a_row_names_after_the_first_read_is_kept(tmp_path: Path) -> None:
    orphan = put(tmp_path, "objects", ORPHAN)
    named = References(frozenset({ORPHAN}), frozenset(), subtitles_unknown=False)

    assert (
        await OrphanSweep(tmp_path, Reads(NOTHING, named), grace_s=GRACE_S).sweep(now=later()) == []
    )
    assert orphan.exists()


async def test_subtitle_files_are_kept_while_some_cannot_be_known(tmp_path: Path) -> None:
    subtitles = put(tmp_path, "subtitles", f"{'2' * 64}.srt")
    video = put(tmp_path, "objects", ORPHAN)
    unknown = References(frozenset(), frozenset(), subtitles_unknown=True)

    sweep = OrphanSweep(tmp_path, Reads(unknown, unknown), grace_s=GRACE_S)

    assert await sweep.sweep(now=later()) == [f"objects/{ORPHAN}"]
    assert subtitles.exists()
    assert not video.exists()


async def test_symbolic_links_are_neither_followed_nor_removed(
    sweep: OrphanSweep, media: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    secret = put(outside, f"{OTHER}")
    elsewhere = put(outside, "renditions", "x.mp4")
    poster = put(outside, "posters", f"{'3' * 64}.jpg")
    (media / "objects").mkdir(parents=True)
    (media / "renditions").mkdir()
    links = [
        media / "objects" / KEY,
        media / "renditions" / ("4" * 64),
        media / "posters",
    ]
    links[0].symlink_to(secret)
    links[1].symlink_to(elsewhere.parent, target_is_directory=True)
    links[2].symlink_to(poster.parent, target_is_directory=True)
    orphan = put(media, "objects", ORPHAN)

    removed = await sweep.sweep(now=later())

    assert removed == [f"objects/{ORPHAN}"]  # the sweep ran
    assert not orphan.exists()
    assert all(p.exists() for p in (secret, elsewhere, poster))
    assert all(p.is_symlink() for p in links)


async def test_a_file_that_cannot_be_removed_is_logged_and_the_others_go(
    sweep: OrphanSweep,
    media: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stuck, other = put(media, "objects", KEY), put(media, "objects", ORPHAN)
    unlink = os.unlink

    def refusing(path: str, *, dir_fd: int | None = None) -> None:
        if path == KEY:
            raise PermissionError(1, "Operation not permitted", path)
        unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", refusing)

    assert await sweep.sweep(now=later()) == [f"objects/{ORPHAN}"]
    assert stuck.exists()
    assert not other.exists()
    assert f"objects/{KEY} not removed" in caplog.text


async def test_two_replicas_sweeping_at_once_remove_each_file_once(
    store: TriageStore, media: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = [f"{n:032d}.mp4" for n in range(30)]
    for name in names:
        put(media, "objects", name)
    before = removed_count("objects")
    now = later()
    replicas = [OrphanSweep(media, store.media_refs, grace_s=GRACE_S) for _ in range(2)]

    first, second = await asyncio.gather(*(r.sweep(now=now) for r in replicas))

    assert sorted(first + second) == [f"objects/{n}" for n in names]
    assert removed_count("objects") == before + len(names)
    assert list((media / "objects").iterdir()) == []
    assert "not removed" not in caplog.text  # one gone under the other is no error


def test_the_grace_is_at_least_an_hour() -> None:
    with pytest.raises(ValidationError, match="orphan_grace_s"):
        WebSettings(orphan_grace_s=600)


@pytest.mark.parametrize("sweeping", [True, False])
def test_the_web_sweeps_unless_told_not_to(
    sweeping: bool, tmp_path: Path, classified: ClassifiedFactory
) -> None:
    with serve_test_client(tmp_path, classified, orphan_sweep=sweeping) as (web, _):
        assert ("media-sweep" in web.runtime.tasks) is sweeping
