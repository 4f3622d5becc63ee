"""The retrain job, off the web process:

    python -m services.triage.web.retrain [--job ID] [--shuffle-labels] [--data-dir DIR]

The web queues a job (``POST /api/model/retrain``, or the schedule) and starts
this module as a process of its own (:func:`spawn_job`); ``make retrain`` runs
it without ``--job`` and it queues one itself. It reads the labels from the
triage database, trains a candidate on the live model's body
(:mod:`services.triage.classifier.campaign`), puts it in the registry, asks the
gate (:mod:`services.triage.classifier.gate`) and promotes it or keeps it as a
candidate with the reason; its stage and progress go to ``model_jobs`` as it
goes. The worker takes a promoted version up at its next batch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.common.db import open_database
from services.common.logs import configure_logging
from services.triage.classifier.registry import Registry
from services.triage.web.config import WebSettings
from services.triage.web.db import migrate
from services.triage.web.store.learning import Labels, ModelJobs, TrainingLabel
from services.triage.web.store.transaction import Actor, Database

log = logging.getLogger(__name__)

#: The settings a job process needs from the web's (passed in its environment).
_JOB_SETTINGS = (
    "database_url",
    "database_schema",
    "models_dir",
    "retrain_epochs",
    "retrain_public_per_source",
    "retrain_val_per_set",
    "retrain_threads",
    "gate_min_gain",
    "gate_tolerance",
)
#: A job that reported nothing for this long is taken as dead (its process ended).
STALE_AFTER = timedelta(hours=2)


def job_environment(settings: WebSettings) -> dict[str, str]:
    env = dict(os.environ)
    for name in _JOB_SETTINGS:
        value = getattr(settings, name)
        key = f"TRIAGE_{name.upper()}"
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def spawn_job(settings: WebSettings, job_id: int) -> None:
    """Start the job's process (its output in ``<models_dir>/jobs/<id>.log``); reaped
    by a thread, so it never lingers as a zombie of the web."""
    logs = settings.models_dir / "jobs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{job_id}.log").open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own module, no shell
            [sys.executable, "-m", "services.triage.web.retrain", "--job", str(job_id)],
            env=job_environment(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    threading.Thread(target=process.wait, name=f"retrain-{job_id}", daemon=True).start()
    log.info("retrain job %d started (pid %d)", job_id, process.pid)


def _campaign_labels(rows: Sequence[TrainingLabel]) -> list[Any]:
    from services.triage.classifier.campaign import CampaignLabel  # noqa: PLC0415 - torch
    from services.triage.classifier.data import MISSING  # noqa: PLC0415

    def value(v: int | None) -> int:
        return MISSING if v is None else int(v)

    return [
        CampaignLabel(
            text=r.text,
            at=r.at,
            offensive=value(r.offensive),
            hate=value(r.hate),
            question=value(r.question),
            id=r.question_id,
        )
        for r in rows
    ]


async def train_and_judge(
    settings: WebSettings,
    db: Database,
    job_id: int,
    *,
    data_dir: Path | None = None,
) -> str:
    """Run job ``job_id`` to its end; returns its final state."""
    import torch  # noqa: PLC0415 - heavy: only in the job process

    from services.triage.classifier import campaign, data, gate  # noqa: PLC0415

    jobs, labels = ModelJobs(db), Labels(db)
    job = await jobs.get(job_id)
    options = json.loads(job.options_json or "{}")
    await jobs.advance(job_id, state="running", stage="reading labels", pid=os.getpid())
    rows = _campaign_labels(await labels.for_training())
    registry = Registry(settings.models_dir)
    live = registry.live()
    config = campaign.RetrainConfig(
        epochs=settings.retrain_epochs,
        public_per_source=settings.retrain_public_per_source,
        val_per_set=settings.retrain_val_per_set,
        min_holdout=gate.MIN_HOLDOUT,
        shuffle_labels=bool(options.get("shuffle_labels")),
    )
    loop = asyncio.get_running_loop()

    def progress(stage: str, done: float) -> None:
        asyncio.run_coroutine_threadsafe(
            jobs.advance(job_id, stage=stage, progress=done), loop
        ).result(timeout=60)

    torch.set_num_threads(settings.retrain_threads)
    staged = registry.staging(f"job-{job_id}")
    result = await asyncio.to_thread(
        campaign.retrain,
        live.directory,
        rows,
        data.data_dir(data_dir),
        staged,
        config=config,
        progress=progress,
        cache_dir=settings.models_dir / "cache",
    )
    version = result["version"]
    (staged / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    registry.add(staged, version)
    verdict = gate.judge(
        result["live"],
        result["candidate"],
        min_gain=settings.gate_min_gain,
        tolerance=settings.gate_tolerance,
    )
    registry.write_gate(
        version,
        {
            **verdict.as_dict(),
            "job": job_id,
            "against": live.version,
            "labels": result["labels"],
            "at": datetime.now(UTC).isoformat(),
        },
    )
    actor = Actor(name=job.requested_by)
    if verdict.promote:
        registry.switch(version, by=job.requested_by, why=f"retrain job {job_id}: gate passed")
        await jobs.note(actor, "model_promoted", version, job=job_id, reason=verdict.reason)
    state = "promoted" if verdict.promote else "candidate"
    await jobs.advance(
        job_id, state=state, stage="done", progress=1.0, version=version, reason=verdict.reason
    )
    log.info("retrain job %d: %s %s (%s)", job_id, version, state, verdict.reason)
    return state


async def run(
    settings: WebSettings,
    job_id: int | None,
    *,
    shuffle_labels: bool = False,
    data_dir: Path | None = None,
) -> int:
    """Run one job (queued here without ``job_id``); a failure is recorded on the job."""
    async with contextlib.AsyncExitStack() as stack:
        engine = await open_database(
            stack, settings.database_url, schema=settings.database_schema, migrate=migrate
        )
        db = Database(engine)
        jobs = ModelJobs(db)
        if job_id is None:
            job_id = (
                await jobs.queue(Actor.system("make-retrain"), {"shuffle_labels": shuffle_labels})
            ).id
        try:
            state = await train_and_judge(settings, db, job_id, data_dir=data_dir)
        except Exception as exc:
            log.exception("retrain job %d failed", job_id)
            await jobs.advance(
                job_id, state="failed", stage="failed", reason=f"{type(exc).__name__}: {exc}"[:2000]
            )
            return 1
        return 0 if state in {"promoted", "candidate"} else 1


async def schedule(settings: WebSettings, labels: Labels, jobs: ModelJobs) -> None:
    """The optional schedule (``TRIAGE_RETRAIN_EVERY_H``): a retrain when the last one is
    that old and enough labels came since; jobs whose process died are marked failed."""
    while True:
        await jobs.abandon_stale(STALE_AFTER)
        last = await jobs.last_started_at()
        due = last is None or datetime.now(UTC) - last >= timedelta(hours=settings.retrain_every_h)
        if due and await labels.count(since=last) >= settings.retrain_min_new_labels:
            with contextlib.suppress(Exception):  # another job running: next time
                job = await jobs.queue(Actor.system("schedule"), {"shuffle_labels": False})
                spawn_job(settings, job.id)
        await asyncio.sleep(60)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.triage.web.retrain")
    parser.add_argument("--job", type=int, default=None, help="the queued job to run")
    parser.add_argument(
        "--shuffle-labels",
        action="store_true",
        help="train on wrong (shuffled) labels: a candidate the gate must refuse",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="default: TRIAGE_DATA_DIR")
    args = parser.parse_args(argv)
    configure_logging("triage-retrain")
    settings = WebSettings()
    return asyncio.run(
        run(settings, args.job, shuffle_labels=args.shuffle_labels, data_dir=args.data_dir)
    )


if __name__ == "__main__":
    sys.exit(main())
