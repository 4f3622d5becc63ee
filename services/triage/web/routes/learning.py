"""Learning from the moderators (JSON API): explicit labels and confirmed
quarantines, the label export (JSON Lines), the questions the model is least sure
of, and the model: its live version, candidates and retrain jobs, a retrain, a
rollback. Included before ``questions`` (whose routes would take these paths)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.triage.classifier.registry import Registry, RegistryError
from services.triage.web.deps import Admin, Moderator, Runtime, TriageRuntime
from services.triage.web.exceptions import Conflict, Invalid, NotFound
from services.triage.web.retrain import STALE_AFTER, spawn_job
from services.triage.web.routes.questions import render_questions
from services.triage.web.schemas import ActionResult
from services.triage.web.store import Actor
from services.triage.web.store.learning import job_view, labels_from_body

router = APIRouter(prefix="/api", tags=["learning"])


class LabelBody(BaseModel):
    """Any subset of the three tasks (JSON booleans); at least one. ``hate`` implies
    ``offensive``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    offensive: bool | None = None
    hate: bool | None = None
    question: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> LabelBody:
        if self.offensive is None and self.hate is None and self.question is None:
            raise ValueError("give at least one of offensive, hate, question")
        if self.hate and self.offensive is False:
            raise ValueError("hate speech is offensive: hate true with offensive false")
        return self


@router.post(
    "/questions/{question_id}/labels",
    summary="Label a question's text (offensive, hate, question: any subset)",
)
async def give_labels(
    question_id: str, body: LabelBody, runtime: Runtime, principal: Moderator
) -> dict[str, Any]:
    values = labels_from_body(
        [("offensive", body.offensive), ("hate", body.hate), ("question", body.question)]
    )
    await runtime.store.labels.give(question_id, principal.actor, values)
    return {"question_id": question_id, "labels": {k: bool(v) for k, v in values.items()}}


@router.get("/questions/{question_id}/labels", summary="Every label of a question, oldest first")
async def question_labels(question_id: str, runtime: Runtime, _: Moderator) -> list[dict[str, Any]]:
    await runtime.store.questions.get(question_id)
    return [
        {
            "source": label.source,
            "by": label.actor,
            "at": label.at.isoformat(),
            "offensive": None if label.offensive is None else bool(label.offensive),
            "hate": None if label.hate is None else bool(label.hate),
            "question": None if label.question is None else bool(label.question),
            "model_version": label.model_version,
            "retracted_at": label.retracted_at.isoformat() if label.retracted_at else None,
        }
        for label in await runtime.store.labels.of_question(question_id)
    ]


@router.post(
    "/questions/{question_id}/quarantine/confirm",
    summary="Confirm that a quarantined mention is abuse (a label for the model)",
)
async def confirm_quarantine(
    question_id: str, runtime: Runtime, principal: Moderator
) -> ActionResult:
    await runtime.store.labels.confirm_quarantine(question_id, principal.actor)
    return ActionResult(question_id=question_id, status="quarantined")


@router.get("/labels.jsonl", summary="Every label with its text, who and when (JSON Lines)")
async def export_labels(runtime: Runtime, _: Moderator) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        after = 0
        while True:
            rows = await runtime.store.labels.export(after=after, limit=1000)
            for row in rows:
                yield (json.dumps(row, ensure_ascii=False) + "\n").encode()
            if len(rows) < 1000:
                return
            after = rows[-1]["id"]

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="labels.jsonl"'},
    )


@router.get("/questions/unsure", summary="Unlabelled questions, the model's least sure first")
async def unsure(
    runtime: Runtime, _: Moderator, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> dict[str, Any]:
    pairs = await runtime.store.labels.unsure(limit=limit)
    views = await render_questions(runtime, [q for q, _ in pairs])
    return {
        "items": [
            {"margin": round(m, 4), "question": view.model_dump(mode="json")}
            for (_, m), view in zip(pairs, views, strict=True)
        ]
    }


# --- the model ----------------------------------------------------------------------------


def registry_of(runtime: TriageRuntime) -> Registry:
    return Registry(runtime.settings.models_dir)


def version_view(registry: Registry, version: str, live: str) -> dict[str, Any]:
    gate = registry.read_json(version, "gate.json")
    return {
        "version": version,
        "model_version": _model_version(registry, version),
        "live": version == live,
        "gate": gate or None,
        "metrics": _metrics(registry, version),
    }


def _model_version(registry: Registry, version: str) -> str | None:
    try:
        return registry.model_version(version)
    except Exception:
        return None


def _metrics(registry: Registry, version: str) -> dict[str, Any]:
    """The headline validation figures (and the campaign holdout) a version was measured
    with: its own measurement for a retrained one, the model card's for the committed."""
    measured = registry.read_json(version, "metrics.json")
    if "candidate" in measured:
        own = measured["candidate"]
        return {"validation": own.get("headline", {}), "holdout": own.get("holdout", {})}
    cached = measured.get("cached_val", {})
    return {"validation": cached.get("headline", {})}


async def model_state(runtime: TriageRuntime) -> dict[str, Any]:
    registry = registry_of(runtime)
    live = registry.live()
    views = [version_view(registry, v, live.version) for v in registry.versions()]
    settings = runtime.settings
    return {
        "live": next(v for v in views if v["live"]),
        "candidates": [v for v in reversed(views) if not v["live"]],
        "jobs": [job_view(j) for j in await runtime.store.model_jobs.recent()],
        "history": registry.history()[-50:],
        "gate": {"min_gain": settings.gate_min_gain, "tolerance": settings.gate_tolerance},
        "labels": await runtime.store.labels.count(),
    }


@router.get("/model", summary="The live model with its metrics, the candidates and the jobs")
async def model(runtime: Runtime, _: Moderator) -> dict[str, Any]:
    return await model_state(runtime)


class RetrainBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Train on the labels shuffled among themselves: a control the gate must refuse.
    shuffle_labels: bool = False


@router.post(
    "/model/retrain",
    status_code=202,
    summary="Retrain the heads on the public data and the campaign's labels (another process)",
)
async def retrain(
    runtime: Runtime, principal: Admin, body: RetrainBody | None = None
) -> dict[str, Any]:
    return {"job": job_view(await start_retrain(runtime, principal.actor, body or RetrainBody()))}


async def start_retrain(runtime: TriageRuntime, actor: Actor, body: RetrainBody) -> Any:
    # A job whose process died long ago must not hold the next one back for ever.
    await runtime.store.model_jobs.abandon_stale(STALE_AFTER)
    job = await runtime.store.model_jobs.queue(actor, body.model_dump())
    try:
        spawn_job(runtime.settings, job.id)
    except OSError as exc:
        await runtime.store.model_jobs.advance(
            job.id, state="failed", reason=f"the job process did not start: {exc}"
        )
        raise Conflict(f"the retrain job could not start: {exc}") from exc
    return job


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=128)


@router.post("/model/rollback", summary="Make an earlier live version (or the committed) live")
async def rollback(body: RollbackBody, runtime: Runtime, principal: Admin) -> dict[str, Any]:
    registry = registry_of(runtime)
    earlier = {"committed", *(entry.get("version") for entry in registry.history())}
    if body.version not in registry.versions():
        raise NotFound(f"no model version {body.version!r}")
    if body.version not in earlier:
        raise Invalid(f"{body.version} was never live: only the gate promotes a candidate")
    if body.version == registry.live().version:
        raise Conflict(f"{body.version} is live already")
    try:
        registry.switch(body.version, by=principal.actor.name, why="rollback")
    except RegistryError as exc:
        raise Conflict(str(exc)) from exc
    await runtime.store.model_jobs.note(principal.actor, "model_rollback", body.version)
    return await model_state(runtime)
