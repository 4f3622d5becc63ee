"""The media worker's part in the triage web's tests: every job the web queued done by
the real claim loop (:class:`services.media.worker.Worker`) with stand-in work — a
transcript of :data:`SPOKEN`, a tiny real rendition, a poster — and taken in by the
web, until nothing is left. The real work has its own tests (``tests/media``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from services.common.jobs import Job
from services.media.config import MediaSettings
from services.media.worker import Handler, Worker
from services.triage.web.store import TriageStore
from services.triage.web.store.media import KINDS
from tests.helpers.media import rendition_bytes

#: What the stand-in transcript says was said.
SPOKEN = "We need clean water and schools for our children."


def stand_in(media_dir: Path) -> Handler:
    root = media_dir.resolve()

    def handle(job: Job, progress: Any, cancelled: Any) -> dict[str, Any]:
        sha = str(job.payload["sha256"])
        if job.kind == "poster":
            path = root / "posters" / f"{sha}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\xff\xd8\xff\xe0 a poster")
            return {"path": str(path.relative_to(root)), "bytes": path.stat().st_size}
        if job.kind == "transcript":
            segments = [[0.0, 0.9, SPOKEN]]
            return {
                "model": "stand-in",
                "language": str(job.payload.get("language") or "en"),
                "language_probability": 0.99,
                "segments": segments,
                "text": SPOKEN,
                "translation": SPOKEN,
                "translation_segments": segments,
                "audio_s": 1.0,
            }
        data = rendition_bytes()
        name = hashlib.sha256(job.key.encode()).hexdigest()[:16]
        path = root / "renditions" / sha / f"{name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        progress(1.0)
        return {
            "uri": path.as_uri(),
            "path": str(path.relative_to(root)),
            "mime": "video/mp4",
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "width": 32,
            "height": 24,
            "fps": 5.0,
            "duration_s": 0.6,
            "platform": job.payload["platform"],
        }

    return handle


async def run_media_jobs(store: TriageStore, handler: Handler | None = None) -> int:
    """Do every queued job and take the results in, until nothing is left; how many."""
    media_dir = store.media.policy.media_dir
    worker = Worker(
        engine=store.engine,
        jobs=store.jobs,
        handler=handler or stand_in(media_dir),
        settings=MediaSettings(media_dir=media_dir, heartbeat_s=0.05),
        kinds=KINDS,
    )
    done = 0
    while True:
        progressed = False
        while job := await store.jobs.claim(store.engine, worker.owner, kinds=KINDS, lease_s=60):
            await worker.do(job)
            done += 1
            progressed = True
        if await store.media.apply_finished():
            progressed = True
        if not progressed:
            return done
