"""The model's pages: /model (live version and metrics, the agreement chart per version,
candidates with the gate's reason, rollback buttons for admins) and /model/unsure; the
queue and the quarantine page load the label keys."""

from __future__ import annotations

from pathlib import Path

from services.triage.classifier.registry import Registry
from tests.triage.learning.helpers import candidate
from tests.triage.web.helpers.app import ADMIN, MODERATOR, TEAM_A, serve_test_client, sign_in
from tests.triage.web.helpers.store import ClassifiedFactory


def test_the_model_page_shows_agreement_per_version_and_the_gate(
    tmp_path: Path, classified: ClassifiedFactory
) -> None:
    models = tmp_path / "models"
    registry = Registry(models)
    candidate(registry, "v1")
    registry.write_gate("v1", {"promote": False, "reason": "campaign holdout macro-F1: worse"})
    with serve_test_client(tmp_path, classified, models_dir=models) as (web, client):
        mod = web.actor(MODERATOR)
        # The seeded auto-quarantine is restored; the moderator quarantines a flagged one.
        web.call(web.store.questions.act, web.questions["quarantined"], "restore", mod)
        web.call(web.store.questions.act, web.questions["abusive"], "quarantine", mod)
        rows = web.call(web.store.labels.agreement)
        (row,) = rows
        assert (row.auto_quarantined, row.restored, row.restored_share) == (1, 1, 1.0)
        assert (row.moderator_quarantines, row.flagged_by_model) == (1, 1)

        sign_in(client, MODERATOR)
        page = client.get("/model")
        assert page.status_code == 200
        assert "minilm-l6-top2body-heads" in page.text
        assert "hateval/hate macro-F1" in page.text
        assert "auto-quarantines restored: 100%" in page.text
        assert "refused by the gate" in page.text
        assert "campaign holdout macro-F1: worse" in page.text
        assert "data-rollback" not in page.text  # moderators do not roll back
        assert "labels.js" in client.get("/queue").text
        assert "data-confirm-quarantine" in client.get("/quarantine").text

        unsure = client.get("/model/unsure")
        assert unsure.status_code == 200
        assert web.questions["urgent"] in unsure.text
        assert 'data-label="hate"' in unsure.text

        client.post("/logout", data={})
        client.cookies.clear()
        sign_in(client, ADMIN)
        admin_page = client.get("/model").text
        assert 'data-rollback="v1"' in admin_page
        assert 'id="retrain"' in admin_page


def test_a_team_member_cannot_see_the_model_page(
    tmp_path: Path, classified: ClassifiedFactory
) -> None:
    with serve_test_client(tmp_path, classified, models_dir=tmp_path / "models") as (_, client):
        sign_in(client, TEAM_A)
        assert client.get("/model").status_code == 403
        assert client.get("/model/unsure").status_code == 403
