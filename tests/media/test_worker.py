"""The media worker on a migrated triage database: the real claim loop and handlers
make a rendition that satisfies its profile (named by what it is made from, verified
before it counts as done); a worker that dies mid-job loses it to another when its
lease runs out; errors are tried again, permanent ones fail at once; the process
serves health and metrics."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.common.db import make_engine
from services.common.jobs import Job, JobState, JobTable
from services.common.media.probe import probe
from services.common.media.profiles import X, refusals
from services.media.app import Overrides, create_app
from services.media.config import MediaSettings
from services.media.exceptions import PermanentJobError
from services.media.handlers import Handlers
from services.media.worker import Worker
from services.triage.web.db import migrate
from services.triage.web.models import MediaJob

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'triage.db'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


def _settings(media_dir: Path, tmp_path: Path, **overrides: Any) -> MediaSettings:
    fields: dict[str, Any] = {
        "media_dir": media_dir,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'triage.db'}",
        "heartbeat_s": 0.05,
        "poll_s": 0.05,
        "retry_initial_s": 0,
        "kinds": ("poster", "rendition"),
    }
    return MediaSettings(**{**fields, **overrides})


async def _ask(
    engine: AsyncEngine, jobs: JobTable, media_dir: Path, name: str, **payload: Any
) -> str:
    source = media_dir / "objects" / name
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    key = f"{sha}:x:{name}"
    async with async_sessionmaker(engine)() as session:
        await jobs.enqueue(
            session,
            payload.pop("kind", "rendition"),
            key,
            subject="answer-1",
            payload={"source": source.as_uri(), "sha256": sha, "platform": "x", **payload},
            max_attempts=2,
        )
        await session.commit()
    return key


def _worker(
    engine: AsyncEngine, jobs: JobTable, settings: MediaSettings, handler: Any = None
) -> Worker:
    return Worker(
        engine=engine,
        jobs=jobs,
        handler=handler or Handlers(settings, None, {}).run,
        settings=settings,
        kinds=("poster", "rendition"),
    )


async def test_a_rendition_is_made_verified_and_named_by_what_it_is_made_from(
    engine: AsyncEngine, media_dir: Path, tmp_path: Path
) -> None:
    jobs = JobTable(MediaJob)
    settings = _settings(media_dir, tmp_path)
    key = await _ask(engine, jobs, media_dir, "iphone.mov", burn=[[0.0, 0.5, "Hello."]])
    worker = _worker(engine, jobs, settings)
    job = await jobs.claim(engine, worker.owner, kinds=["rendition"], lease_s=30)
    assert job is not None

    assert await worker.do(job) == JobState.DONE

    async with async_sessionmaker(engine)() as session:
        done = await jobs.get(session, "rendition", key)
    assert done is not None
    assert done.result is not None
    path = media_dir / done.result["path"]
    assert path.is_file()
    assert done.result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (done.result["width"], done.result["height"]) == (108, 192)
    assert done.result["burned_captions"] == 1
    assert refusals(probe(path), X) == []
    assert path.parent.name == key.split(":")[0]  # renditions/<sha256 of the original>/
    assert list(path.parent.glob(".*")) == []


async def test_a_job_whose_worker_died_is_done_by_another_after_its_lease(
    engine: AsyncEngine, media_dir: Path, tmp_path: Path
) -> None:
    jobs = JobTable(MediaJob)
    settings = _settings(media_dir, tmp_path, lease_s=5)
    await _ask(engine, jobs, media_dir, "plain.mp4")
    dead = await jobs.claim(engine, "dead-worker", kinds=["rendition"], lease_s=0.2)
    assert dead is not None  # ... and its process is killed here: no heartbeat, no result
    await asyncio.sleep(0.3)

    survivor = _worker(engine, jobs, settings)
    job = await jobs.claim(engine, survivor.owner, kinds=["rendition"], lease_s=5)

    assert job is not None
    assert (job.id, job.attempts) == (dead.id, 2)
    assert await survivor.do(job) == JobState.DONE
    assert not await jobs.finish(engine, dead, {"uri": "file:///half"})  # the dead one's late word


async def test_errors_are_tried_again_and_permanent_ones_fail_at_once(
    engine: AsyncEngine, media_dir: Path, tmp_path: Path
) -> None:
    jobs = JobTable(MediaJob)
    settings = _settings(media_dir, tmp_path)
    calls: list[str] = []

    def flaky(job: Job, progress: Any, cancelled: Any) -> dict[str, Any]:
        calls.append(job.key)
        if job.payload.get("gone"):
            raise PermanentJobError("the original is no longer stored")
        raise OSError("disk hiccup")

    await _ask(engine, jobs, media_dir, "plain.mp4")
    await _ask(engine, jobs, media_dir, "old.3gp", gone=True)
    worker = _worker(engine, jobs, settings, flaky)
    states = []
    while job := await jobs.claim(engine, worker.owner, kinds=["rendition"], lease_s=5):
        states.append(await worker.do(job))

    assert states == [JobState.QUEUED, JobState.FAILED, JobState.FAILED]  # 2 tries, then 1
    counts = await jobs.counts(engine)
    assert counts == {("rendition", "failed"): 2}


def test_the_process_serves_health_and_does_the_work(
    engine: AsyncEngine, media_dir: Path, tmp_path: Path
) -> None:
    jobs = JobTable(MediaJob)
    asyncio.run(_ask(engine, jobs, media_dir, "android.webm", kind="poster"))
    app = create_app(_settings(media_dir, tmp_path), Overrides())
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz").json()
        assert ready["database"]["connected"] is True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(media_dir.glob("posters/*.jpg")):
            time.sleep(0.1)
        assert list(media_dir.glob("posters/*.jpg"))
        deadline = time.monotonic() + 10
        while 'media_jobs_total{kind="poster",outcome="done"}' not in client.get("/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.1)


@pytest.fixture
def refused_originals(media_dir: Path) -> Path:
    """A picture past 8K (8200 a side: cheap to make) and a file with no picture."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg is not None, "ffmpeg is missing: make system-deps installs it"
    for name, source, codec in (
        ("wide.mp4", "color=gray:size=8200x16:rate=1", ["-frames:v", "1", "-c:v", "libx264"]),
        ("voice.m4a", "sine=duration=1", ["-c:a", "aac"]),
    ):
        subprocess.run(
            [ffmpeg, "-v", "error", "-f", "lavfi", "-i", source, *codec,
             str(media_dir / "objects" / name)],
            check=True,
        )  # fmt: skip
    return media_dir


async def test_a_poster_of_what_the_probe_refuses_fails_at_once(
    engine: AsyncEngine, refused_originals: Path, tmp_path: Path
) -> None:
    """The poster job probes the original too: a picture past 8K (a decompression bomb)
    or a file without a picture fails for good, not decoded (nor tried again)."""
    media_dir = refused_originals
    jobs = JobTable(MediaJob)
    settings = _settings(media_dir, tmp_path)
    worker = _worker(engine, jobs, settings)
    for name, why in (("wide.mp4", "larger than a phone records"), ("voice.m4a", "no video")):
        key = await _ask(engine, jobs, media_dir, name, kind="poster")
        job = await jobs.claim(engine, worker.owner, kinds=["poster"], lease_s=30)
        assert job is not None

        assert await worker.do(job) == JobState.FAILED

        async with async_sessionmaker(engine)() as session:
            failed = await jobs.get(session, "poster", key)
        assert failed is not None
        assert why in (failed.error or "")
    assert not await asyncio.to_thread(lambda: list(media_dir.glob("posters/*")))
