"""Learning from the moderators, in the database: their labels (from actions and
given explicitly), the questions the model is least sure of, the retrain jobs, and
the agreement between the model and the moderators per model version.

What an action teaches (:func:`action_labels`):

| action | label |
|---|---|
| approve (a genuine question) | offensive 0, hate 0, question 1 |
| quarantine (by a moderator) | offensive 1 |
| confirm a quarantine | offensive 1, and hate 1 when it was quarantined for hate |
| restore from quarantine | offensive 0, hate 0 |
| reject with reason ``abusive`` | offensive 1 |

A plain rejection (off topic, not a question) teaches nothing about abuse. Undo
retracts the labels of the action it takes back. For training, a question's
latest label per task wins (:meth:`Labels.for_training`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.triage.web.exceptions import Conflict, NotFound
from services.triage.web.models import Label, ModelJob, Question, QuestionEvent, Status
from services.triage.web.store.transaction import Actor, Database, as_json

TASKS = ("offensive", "hate", "question")
#: The reason a rejection gives when it rejects a text as abusive.
ABUSIVE = "abusive"
#: Retrain job states: waiting, running, then promoted, kept as a candidate, or failed.
JOB_STATES = ("queued", "running", "promoted", "candidate", "failed")
OPEN_JOB_STATES = ("queued", "running")


def action_labels(
    action: str, previous: Status, reason: str = "", rule: str = ""
) -> dict[str, int] | None:
    """The label a moderator's action gives the question's text (see the module table)."""
    if action == "approve":
        return {"offensive": 0, "hate": 0, "question": 1}
    if action == "quarantine":
        return {"offensive": 1}
    if action == "confirm":
        return {"offensive": 1, "hate": 1} if rule == "hate" else {"offensive": 1}
    if action == "restore" and previous is Status.QUARANTINED:
        return {"offensive": 0, "hate": 0}
    if action == "reject" and reason.strip().lower().startswith(ABUSIVE):
        return {"offensive": 1}
    return None


@dataclass(frozen=True, slots=True)
class TrainingLabel:
    """A question's text with its latest label per task (1, 0 or None) and when."""

    question_id: str
    text: str
    at: datetime
    offensive: int | None
    hate: int | None
    question: int | None


@dataclass(frozen=True, slots=True)
class Agreement:
    """How a model version and the moderators agreed."""

    version: str
    first_seen: datetime
    decided: int
    auto_quarantined: int
    restored: int
    moderator_quarantines: int
    flagged_by_model: int

    @property
    def restored_share(self) -> float | None:
        return self.restored / self.auto_quarantined if self.auto_quarantined else None

    @property
    def flagged_share(self) -> float | None:
        return (
            self.flagged_by_model / self.moderator_quarantines
            if self.moderator_quarantines
            else None
        )


class Labels:
    """The moderators' labels."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        session: AsyncSession,
        question: Question,
        actor: Actor,
        source: str,
        values: dict[str, int],
    ) -> None:
        """One label row in the caller's transaction (audited)."""
        session.add(
            Label(
                question_id=question.id,
                at=self.db.clock(),
                actor=actor.name,
                source=source,
                offensive=values.get("offensive"),
                hate=values.get("hate"),
                question=values.get("question"),
                model_version=question.model_version,
            )
        )
        self.db.audit(session, actor, "label", question.id, {"source": source, **values})

    async def from_action(
        self,
        session: AsyncSession,
        question_id: str,
        action: str,
        actor: Actor,
        *,
        previous: Status,
        reason: str = "",
    ) -> None:
        """The label a moderator's action gives, if any (same transaction as the action)."""
        question = await session.get(Question, question_id)
        if question is None:
            return
        values = action_labels(action, previous, reason, question.rule)
        if values is not None:
            self.add(session, question, actor, action, values)

    async def retract(
        self, session: AsyncSession, question_id: str, actor: Actor, since: datetime
    ) -> None:
        """Undo: the labels ``actor`` gave the question by actions since ``since``."""
        await session.execute(
            update(Label)
            .where(
                Label.question_id == question_id,
                Label.actor == actor.name,
                Label.source != "explicit",
                Label.at >= since,
                Label.retracted_at.is_(None),
            )
            .values(retracted_at=self.db.clock())
        )

    async def give(self, question_id: str, actor: Actor, values: dict[str, int]) -> None:
        """An explicit label (``POST /api/questions/{id}/labels``)."""
        async with self.db.sessions() as session:
            question = await self.db.question(session, question_id)
            self.add(session, question, actor, "explicit", values)
            detail = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in values.items())
            self.db.event(session, question_id, actor, "labelled", reason=detail)
            await session.commit()

    async def confirm_quarantine(self, question_id: str, actor: Actor) -> None:
        """A moderator confirms that a quarantined mention is abuse."""
        async with self.db.sessions() as session:
            question = await self.db.question(session, question_id)
            if question.status != Status.QUARANTINED.value:
                raise Conflict("only a quarantined mention can be confirmed")
            values = action_labels("confirm", Status.QUARANTINED, rule=question.rule) or {}
            self.add(session, question, actor, "confirm", values)
            self.db.event(session, question_id, actor, "quarantine_confirmed")
            await session.commit()

    async def of_question(self, question_id: str) -> list[Label]:
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(Label).where(Label.question_id == question_id).order_by(Label.id)
            )
            return list(rows)

    async def export(self, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Every label with its text and who/when (JSON Lines rows), by id."""
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Label, Question.text, Question.mention_id, Question.lang)
                .join(Question, Question.id == Label.question_id)
                .where(Label.id > after)
                .order_by(Label.id)
                .limit(limit)
            )
            return [
                {
                    "id": label.id,
                    "question_id": label.question_id,
                    "mention_id": mention_id,
                    "text": text,
                    "lang": lang,
                    **{task: _flag(getattr(label, task)) for task in TASKS},
                    "source": label.source,
                    "by": label.actor,
                    "at": label.at.isoformat(),
                    "model_version": label.model_version,
                    "retracted_at": label.retracted_at.isoformat() if label.retracted_at else None,
                }
                for label, text, mention_id, lang in rows
            ]

    async def for_training(self) -> list[TrainingLabel]:
        """Per labelled question: its latest (not retracted) label per task."""
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(Label, Question.text)
                .join(Question, Question.id == Label.question_id)
                .where(Label.retracted_at.is_(None))
                .order_by(Label.id)
            )
            merged: dict[str, dict[str, Any]] = {}
            for label, text in rows:
                entry = merged.setdefault(label.question_id, {"text": text})
                entry["at"] = label.at
                for task in TASKS:
                    value = getattr(label, task)
                    if value is not None:
                        entry[task] = value
        return [
            TrainingLabel(
                question_id=qid,
                text=e["text"],
                at=e["at"],
                offensive=e.get("offensive"),
                hate=e.get("hate"),
                question=e.get("question"),
            )
            for qid, e in merged.items()
        ]

    async def count(self, since: datetime | None = None) -> int:
        """Labels in force (given after ``since``, when given)."""
        query = select(func.count()).select_from(Label).where(Label.retracted_at.is_(None))
        if since is not None:
            query = query.where(Label.at > since)
        async with self.db.sessions() as session:
            return int(await session.scalar(query) or 0)

    async def unsure(self, *, limit: int = 50, scan: int = 2000) -> list[tuple[Question, float]]:
        """Open questions nobody labelled yet, the model's least certain first: by the
        distance of the closest score to its decision point (0.5: thresholds are folded)."""
        labelled = select(Label.question_id).where(Label.retracted_at.is_(None))
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(Question)
                .where(
                    Question.status.in_((Status.NEW.value, Status.QUARANTINED.value)),
                    Question.id.not_in(labelled),
                )
                .order_by(Question.created_at.desc())
                .limit(scan)
            )
            scored = [(q, margin(q)) for q in rows]
        scored.sort(key=lambda pair: (pair[1], pair[0].id))
        return scored[:limit]

    async def agreement(self) -> list[Agreement]:
        """Per model version: its auto-quarantines and how many moderators restored, and
        the moderators' own quarantines and how many the model had flagged."""
        async with self.db.sessions() as session:
            per_version = await session.execute(
                select(
                    Question.model_version,
                    func.min(Question.created_at),
                    func.count(),
                    func.sum(_when(Question.decision == "quarantine")),
                )
                .where(Question.model_version != "")
                .group_by(Question.model_version)
            )
            restored = dict(
                (
                    await session.execute(
                        select(Question.model_version, func.count(func.distinct(Question.id)))
                        .join(QuestionEvent, QuestionEvent.question_id == Question.id)
                        .where(
                            Question.decision == "quarantine",
                            QuestionEvent.event == "restore",
                        )
                        .group_by(Question.model_version)
                    )
                ).all()
            )
            flagged = _flagged()
            quarantines = (
                await session.execute(
                    select(
                        Question.model_version,
                        func.count(func.distinct(Question.id)),
                        func.count(func.distinct(Question.id)).filter(flagged),
                    )
                    .join(QuestionEvent, QuestionEvent.question_id == Question.id)
                    .where(QuestionEvent.event == "quarantine")
                    .group_by(Question.model_version)
                )
            ).all()
        by_moderators = {v: (int(n), int(f)) for v, n, f in quarantines}
        out = [
            Agreement(
                version=version,
                first_seen=first,
                decided=int(n),
                auto_quarantined=int(auto or 0),
                restored=int(restored.get(version, 0)),
                moderator_quarantines=by_moderators.get(version, (0, 0))[0],
                flagged_by_model=by_moderators.get(version, (0, 0))[1],
            )
            for version, first, n, auto in per_version
        ]
        out.sort(key=lambda a: a.first_seen)
        return out


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _when(condition: Any) -> Any:
    from sqlalchemy import case  # noqa: PLC0415

    return case((condition, 1), else_=0)


def _flagged() -> Any:
    """The model flagged it: its decision was a quarantine or a score passed 0.5."""
    return (
        (Question.decision == "quarantine") | (Question.offensive >= 0.5) | (Question.hate >= 0.5)
    )


def margin(question: Question) -> float:
    """How far the model's least certain score is from its decision point (0 = a coin toss)."""
    return min(
        abs(question.offensive - 0.5), abs(question.hate - 0.5), abs(question.question_score - 0.5)
    )


class ModelJobs:
    """The retrain jobs: queued by the web, run (and advanced) by the job process."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def queue(self, actor: Actor, options: dict[str, Any]) -> ModelJob:
        """A new job; refused while another is queued or running."""
        async with self.db.sessions() as session:
            busy = await session.scalar(
                select(ModelJob.id).where(ModelJob.state.in_(OPEN_JOB_STATES)).limit(1)
            )
            if busy is not None:
                raise Conflict(f"retrain job {busy} is still running")
            now = self.db.clock()
            job = ModelJob(
                state="queued",
                stage="queued",
                progress=0.0,
                requested_by=actor.name,
                options_json=as_json(options),
                reason="",
                created_at=now,
                updated_at=now,
            )
            session.add(job)
            await session.flush()
            self.db.audit(session, actor, "retrain", str(job.id), options)
            await session.commit()
            return job

    async def note(self, actor: Actor, action: str, subject: str, **detail: Any) -> None:
        """An audit entry about the model (a promotion, a rollback)."""
        async with self.db.sessions() as session:
            self.db.audit(session, actor, action, subject, detail or None)
            await session.commit()

    async def get(self, job_id: int) -> ModelJob:
        async with self.db.sessions() as session:
            job = await session.get(ModelJob, job_id)
            if job is None:
                raise NotFound(f"no retrain job {job_id}")
            return job

    async def recent(self, limit: int = 20) -> list[ModelJob]:
        async with self.db.sessions() as session:
            rows = await session.scalars(select(ModelJob).order_by(ModelJob.id.desc()).limit(limit))
            return list(rows)

    async def last_started_at(self) -> datetime | None:
        """When the latest job was queued (the schedule counts from there)."""
        async with self.db.sessions() as session:
            value: datetime | None = await session.scalar(select(func.max(ModelJob.created_at)))
            return value

    async def advance(self, job_id: int, **values: Any) -> None:
        """The job's stage, progress, state, pid, version or reason (the job process)."""
        values["updated_at"] = self.db.clock()
        if values.get("state") in {"promoted", "candidate", "failed"}:
            values["finished_at"] = values["updated_at"]
        async with self.db.sessions() as session:
            await session.execute(update(ModelJob).where(ModelJob.id == job_id).values(**values))
            await session.commit()

    async def abandon_stale(self, older_than: timedelta) -> int:
        """Jobs that stopped reporting (their process died): failed, with the reason."""
        cutoff = self.db.clock() - older_than
        async with self.db.sessions() as session:
            result = await session.execute(
                update(ModelJob)
                .where(and_(ModelJob.state.in_(OPEN_JOB_STATES), ModelJob.updated_at < cutoff))
                .values(
                    state="failed",
                    reason="the job stopped reporting (its process ended)",
                    finished_at=self.db.clock(),
                )
            )
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


def job_view(job: ModelJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state,
        "stage": job.stage,
        "progress": round(job.progress, 3),
        "requested_by": job.requested_by,
        "options": json.loads(job.options_json or "{}"),
        "version": job.version,
        "reason": job.reason,
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def labels_from_body(values: Sequence[tuple[str, bool | None]]) -> dict[str, int]:
    """The explicit label's tasks as 1/0, the ones not given left out."""
    return {task: int(value) for task, value in values if value is not None}
