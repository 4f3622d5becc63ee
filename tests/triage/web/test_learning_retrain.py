"""A retrain through the API, run by its own process (``python -m
services.triage.web.retrain``) on a tiny public data set and synthetic campaign labels
given through ``POST /api/questions/{id}/labels``: its progress is in the jobs, the gate
promotes it (``live.version`` moves); a retrain on the same labels shuffled is refused,
with the reason, and the promoted version stays live."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from services.common.messages import MentionReceived
from services.triage.classifier.registry import COMMITTED
from tests.helpers.campaign import campaign_tweets
from tests.triage.classifier.tiny_data import tiny_data
from tests.triage.learning.helpers import finished_job
from tests.triage.web.helpers.api import serve_api


async def test_a_retrain_through_the_api_is_promoted_and_a_shuffled_one_refused(
    tmp_path: Path,
    mention_factory: Callable[..., MentionReceived],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tiny_data(tmp_path / "data")))
    async with serve_api(
        "sqlite",
        tmp_path,
        mention_factory,
        models_dir=tmp_path / "models",
        retrain_epochs=3,
        retrain_public_per_source=40,
        retrain_val_per_set=40,
    ) as web:
        for tweet in campaign_tweets(240, seed=3):
            question = await web.ingest(mention={"text": tweet.text})
            given = {"offensive": tweet.hate, "hate": tweet.hate}
            response = await web.call(
                "mod1", "POST", f"/api/questions/{question}/labels", json=given
            )
            assert response.status_code == 200

        assert (await web.call("mod1", "POST", "/api/model/retrain")).status_code == 403
        started = await web.call("admin", "POST", "/api/model/retrain")
        assert started.status_code == 202
        job = started.json()["job"]
        assert (job["state"], job["requested_by"]) == ("queued", "admin")
        busy = await web.call("admin", "POST", "/api/model/retrain")
        assert busy.status_code == 409

        done = await finished_job(web, job["id"])
        assert done["job"]["state"] == "promoted", done["job"]["reason"]
        assert (done["job"]["stage"], done["job"]["progress"]) == ("done", 1.0)
        assert done["job"]["finished_at"] is not None
        live = done["state"]["live"]
        assert live["version"] == done["job"]["version"] != COMMITTED
        assert live["gate"]["promote"] is True
        assert live["metrics"]["holdout"]["n"] == 48
        assert [c["version"] for c in done["state"]["candidates"]] == [COMMITTED]

        wrong = await web.call("admin", "POST", "/api/model/retrain", json={"shuffle_labels": True})
        refused = await finished_job(web, wrong.json()["job"]["id"])
        assert refused["job"]["state"] == "candidate"
        assert refused["job"]["reason"].startswith("campaign holdout macro-F1 (n=48)")
        assert refused["state"]["live"]["version"] == live["version"]
        shown = refused["state"]["candidates"][0]
        assert shown["version"] == refused["job"]["version"]
        assert shown["gate"]["promote"] is False
        assert shown["gate"]["reason"] == refused["job"]["reason"]
