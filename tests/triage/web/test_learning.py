"""Learning from the moderators through the JSON API (SQLite and Postgres): labels from
every moderator action (who and when; undo retracts them), explicit labels (validated,
audited, moderators only, CSRF on a page session), the JSON Lines export, the "model is
unsure" view, and the model: its state, and rollback (admins only, earlier versions)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from services.common.messages import Decision, MentionReceived, Scores
from services.triage.classifier.registry import COMMITTED, Registry
from services.triage.web.deps import COOKIE
from services.triage.web.exceptions import Conflict
from services.triage.web.models import AuditEntry, ModelJob
from services.triage.web.store import Actor
from tests.helpers.db import KINDS
from tests.triage.learning.helpers import candidate
from tests.triage.web.helpers.api import PASSWORD, Web, serve_api


@pytest.fixture(name="learn", params=KINDS)
async def learn_fixture(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mention_factory: Callable[..., MentionReceived],
) -> AsyncIterator[Web]:
    async with serve_api(
        request.param, tmp_path, mention_factory, models_dir=tmp_path / "models"
    ) as web:
        yield web


async def labels(web: Web, question: str) -> list[dict[str, Any]]:
    response = await web.call("mod1", "GET", f"/api/questions/{question}/labels")
    assert response.status_code == 200
    return [
        {k: v for k, v in row.items() if k in {"source", "by", "offensive", "hate", "question"}}
        for row in response.json()
        if row["retracted_at"] is None
    ]


# --- labels from the moderators' actions ------------------------------------------------


async def test_an_approval_is_a_genuine_question(learn: Web) -> None:
    question = await learn.ingest()
    assert (await learn.call("mod1", "POST", f"/api/questions/{question}/approve")).is_success
    assert await labels(learn, question) == [
        {"source": "approve", "by": "mod1", "offensive": False, "hate": False, "question": True}
    ]
    (row,) = (await learn.call("mod1", "GET", f"/api/questions/{question}/labels")).json()
    assert row["model_version"] == "test-model-1"
    assert row["at"].startswith("20")


async def test_a_quarantine_and_a_restore_from_it_are_labels(learn: Web) -> None:
    question = await learn.ingest()
    await learn.call("mod2", "POST", f"/api/questions/{question}/quarantine")
    await learn.call("mod1", "POST", f"/api/questions/{question}/restore")
    assert await labels(learn, question) == [
        {"source": "quarantine", "by": "mod2", "offensive": True, "hate": None, "question": None},
        {"source": "restore", "by": "mod1", "offensive": False, "hate": False, "question": None},
    ]


async def test_a_rejection_is_a_label_only_when_rejected_as_abusive(learn: Web) -> None:
    plain, abusive = await learn.ingest(), await learn.ingest()
    await learn.call("mod1", "POST", f"/api/questions/{plain}/reject", json={"reason": "off topic"})
    await learn.call("mod1", "POST", f"/api/questions/{abusive}/reject", json={"reason": "abusive"})
    assert await labels(learn, plain) == []
    assert await labels(learn, abusive) == [
        {"source": "reject", "by": "mod1", "offensive": True, "hate": None, "question": None}
    ]


async def test_a_confirmed_quarantine_keeps_why_the_model_quarantined(learn: Web) -> None:
    hateful = await learn.ingest(
        decision=Decision.QUARANTINE,
        rule="hate",
        scores=Scores(offensive=0.8, hate=0.9, question=0.1, relevance=0.5),
    )
    rude = await learn.ingest(decision=Decision.QUARANTINE, rule="offensive")
    open_one = await learn.ingest()
    for question in (hateful, rude):
        confirmed = await learn.call(
            "mod1", "POST", f"/api/questions/{question}/quarantine/confirm"
        )
        assert confirmed.json() == {"question_id": question, "status": "quarantined"}
    assert (await labels(learn, hateful))[0]["hate"] is True
    assert (await labels(learn, rude))[0] == {
        "source": "confirm", "by": "mod1", "offensive": True, "hate": None, "question": None
    }  # fmt: skip
    refused = await learn.call("mod1", "POST", f"/api/questions/{open_one}/quarantine/confirm")
    assert refused.status_code == 409
    timeline = (await learn.call("mod1", "GET", f"/api/questions/{hateful}/timeline")).json()
    assert "quarantine_confirmed" in [e["event"] for e in timeline]


async def test_undo_retracts_the_label_of_the_action_it_takes_back(learn: Web) -> None:
    question = await learn.ingest()
    await learn.call("mod1", "POST", f"/api/questions/{question}/approve")
    assert (await learn.call("mod1", "POST", f"/api/questions/{question}/undo")).is_success
    assert await labels(learn, question) == []
    assert await learn.runtime.store.labels.for_training() == []


# --- explicit labels -----------------------------------------------------------------------


async def test_an_explicit_label_takes_any_subset_and_is_audited(learn: Web) -> None:
    question = await learn.ingest()
    response = await learn.call(
        "mod2", "POST", f"/api/questions/{question}/labels", json={"hate": True}
    )
    assert response.json() == {"question_id": question, "labels": {"hate": True}}
    await learn.call("mod1", "POST", f"/api/questions/{question}/labels", json={"question": False})
    (row,) = await learn.runtime.store.labels.for_training()
    assert (row.offensive, row.hate, row.question) == (None, 1, 0)
    async with learn.runtime.store.sessions() as session:
        audit = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "label"))
        ).all()
    assert [(a.actor, a.subject) for a in audit] == [("mod2", question), ("mod1", question)]
    assert json.loads(audit[0].detail_json) == {"source": "explicit", "hate": 1}


@pytest.mark.parametrize(
    "body",
    [{}, {"offensive": "yes"}, {"hate": 1}, {"spam": True}, {"hate": True, "offensive": False}],
)
async def test_a_bad_label_is_refused(learn: Web, body: dict[str, Any]) -> None:
    question = await learn.ingest()
    response = await learn.call("mod1", "POST", f"/api/questions/{question}/labels", json=body)
    assert response.status_code == 422
    assert await labels(learn, question) == []


async def test_labels_are_for_moderators_and_need_the_csrf_token_on_a_page(learn: Web) -> None:
    question = await learn.ingest()
    url = f"/api/questions/{question}/labels"
    assert (await learn.call("team-a", "POST", url, json={"hate": True})).status_code == 403
    assert (await learn.client.post(url, json={"hate": True})).status_code == 401
    missing = await learn.call("mod1", "POST", "/api/questions/nope/labels", json={"hate": True})
    assert missing.status_code == 404
    token, principal = await learn.runtime.accounts.login(
        "mod1", PASSWORD, address="198.51.100.9", kind="web"
    )
    cookie = {"Cookie": f"{COOKIE}={token}"}
    forged = await learn.client.post(url, json={"hate": True}, headers=cookie)
    assert forged.status_code == 403
    good = await learn.client.post(
        url, json={"hate": True}, headers={**cookie, "X-CSRF-Token": principal.csrf_token}
    )
    assert good.status_code == 200


async def test_the_export_is_json_lines_with_who_and_when(learn: Web) -> None:
    first = await learn.ingest(mention={"text": "what do you study?"})
    second = await learn.ingest()
    await learn.call("mod1", "POST", f"/api/questions/{first}/approve")
    await learn.call("mod2", "POST", f"/api/questions/{second}/labels", json={"offensive": True})
    response = await learn.call("mod1", "GET", "/api/labels.jsonl")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert [(r["question_id"], r["source"], r["by"]) for r in rows] == [
        (first, "approve", "mod1"),
        (second, "explicit", "mod2"),
    ]
    assert rows[0]["text"] == "what do you study?"
    assert rows[1]["offensive"] is True
    assert rows[1]["hate"] is None
    assert (await learn.call("team-a", "GET", "/api/labels.jsonl")).status_code == 403


async def test_the_unsure_view_asks_for_the_least_certain_first(learn: Web) -> None:
    def scores(offensive: float, question: float) -> Scores:
        return Scores(offensive=offensive, hate=0.01, question=question, relevance=0.5)

    sure = await learn.ingest(scores=scores(0.02, 0.95))
    coin = await learn.ingest(scores=scores(0.49, 0.95))
    unsure_question = await learn.ingest(scores=scores(0.02, 0.6))
    labelled = await learn.ingest(scores=scores(0.5, 0.5))
    await learn.call("mod1", "POST", f"/api/questions/{labelled}/labels", json={"hate": False})
    response = await learn.call("mod1", "GET", "/api/questions/unsure?limit=10")
    items = response.json()["items"]
    assert [i["question"]["id"] for i in items] == [coin, unsure_question, sure]
    assert [i["margin"] for i in items] == [0.01, 0.1, 0.45]


# --- the model -----------------------------------------------------------------------------


async def test_the_model_shows_the_live_version_candidates_and_jobs(learn: Web) -> None:
    state = (await learn.call("mod1", "GET", "/api/model")).json()
    assert state["live"]["version"] == COMMITTED
    assert state["live"]["model_version"].startswith("minilm-l6-")
    assert "hateval/hate macro-F1" in state["live"]["metrics"]["validation"]
    assert (state["candidates"], state["jobs"]) == ([], [])
    assert state["gate"] == {"min_gain": 0.01, "tolerance": 0.02}
    assert (await learn.call("team-a", "GET", "/api/model")).status_code == 403


async def test_rollback_to_an_earlier_live_version(learn: Web) -> None:
    registry = Registry(learn.runtime.settings.models_dir)
    candidate(registry, "v1")
    candidate(registry, "v2")
    registry.switch("v1", by="job", why="gate passed")
    url = "/api/model/rollback"
    assert (await learn.call("mod1", "POST", url, json={"version": COMMITTED})).status_code == 403
    never = await learn.call("admin", "POST", url, json={"version": "v2"})
    assert never.status_code == 422
    assert "never live" in never.json()["error"]["message"]
    assert (await learn.call("admin", "POST", url, json={"version": "v9"})).status_code == 404
    state = (await learn.call("admin", "POST", url, json={"version": COMMITTED})).json()
    assert state["live"]["version"] == COMMITTED
    assert [c["version"] for c in state["candidates"]] == ["v2", "v1"]
    assert state["history"][-1]["why"] == "rollback"
    again = await learn.call("admin", "POST", url, json={"version": "v1"})
    assert again.json()["live"]["version"] == "v1"
    assert registry.live().version == "v1"


async def test_a_job_that_stopped_reporting_is_failed_and_frees_the_next(learn: Web) -> None:
    jobs = learn.runtime.store.model_jobs
    job = await jobs.queue(Actor.system("test"), {})
    with pytest.raises(Conflict):
        await jobs.queue(Actor.system("test"), {})
    assert await jobs.abandon_stale(timedelta(hours=2)) == 0
    async with learn.runtime.store.sessions() as session:
        await session.execute(
            update(ModelJob).values(updated_at=datetime.now(UTC) - timedelta(hours=3))
        )
        await session.commit()
    assert await jobs.abandon_stale(timedelta(hours=2)) == 1
    stale = await jobs.get(job.id)
    assert (stale.state, stale.reason) == (
        "failed",
        "the job stopped reporting (its process ended)",
    )
    assert (await jobs.queue(Actor.system("test"), {})).id > job.id
