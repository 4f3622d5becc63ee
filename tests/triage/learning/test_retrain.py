"""A retrain end to end on a tiny public data set and synthetic campaign labels: the
candidate's artefacts load, the labels teach it the campaign's coded hate, and the
gate refuses a candidate trained on shuffled (wrong) labels, with the reason."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch

from services.triage.classifier import campaign, gate, train
from services.triage.classifier.campaign import CampaignLabel, RetrainConfig
from services.triage.classifier.registry import Registry
from services.triage.classifier.transformer import TransformerClassifier
from tests.helpers.campaign import campaign_tweets
from tests.triage.classifier.tiny_data import tiny_data

#: Small enough for make test on two busy cores, large enough to learn from.
CONFIG = RetrainConfig(epochs=3, public_per_source=40, val_per_set=40, min_holdout=40)
START = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[CampaignLabel]]:
    root = tmp_path_factory.mktemp("retrain")
    labels = [
        CampaignLabel(
            text=t.text,
            at=START + timedelta(minutes=i),
            offensive=int(t.hate),
            hate=int(t.hate),
            id=f"q{i}",
        )
        for i, t in enumerate(campaign_tweets(240, seed=3))
    ]
    return tiny_data(root / "data"), labels


def _retrain(
    setting: tuple[Path, list[CampaignLabel]],
    live: Path,
    out: Path,
    **options: bool,
) -> dict[str, Any]:
    data, labels = setting
    torch.set_num_threads(1)
    return campaign.retrain(
        live, labels, data, out, config=dataclasses.replace(CONFIG, **options), now=START
    )


def test_the_most_recent_labels_are_held_back(setting: tuple[Path, list[CampaignLabel]]) -> None:
    _, labels = setting
    split = campaign.split_labels(list(reversed(labels)), CONFIG)
    assert len(split.holdout) == 48  # 20% of 240
    assert min(x.at for x in split.holdout) > max(x.at for x in split.train + split.calibration)
    assert not {x.id for x in split.holdout} & {x.id for x in split.train}
    assert split.calibration
    assert len(split.train) > 4 * len(split.calibration)


def test_a_retrain_learns_the_campaign_and_a_shuffled_one_is_refused(
    setting: tuple[Path, list[CampaignLabel]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committed model misses the campaign's coded hate; a retrain on the labels
    learns it and is promoted; then a retrain on the same labels shuffled (from the
    promoted model) is refused for the holdout, and the good version stays live."""
    monkeypatch.setattr(train, "CACHE_DIR", tmp_path / "cache")
    registry = Registry(tmp_path / "models")
    result = _retrain(setting, registry.live().directory, registry.staging("a"))
    live, cand = result["live"], result["candidate"]
    assert cand["holdout"]["n"] == live["holdout"]["n"] == 48
    assert cand["holdout"]["macro_f1"] > live["holdout"]["macro_f1"] + 0.2
    verdict = gate.judge(live, cand)
    assert verdict.promote, verdict.reason
    version = str(result["version"])
    committed = json.loads((registry.live().directory / "metadata.json").read_text())["version"]
    assert version == f"{committed}-campaign-20261201T000000"
    registry.add(tmp_path / "models" / "tmp-a", version)
    registry.switch(version, by="test", why=verdict.reason)

    classifier = TransformerClassifier(artefacts_dir=registry.live().directory)
    assert classifier.version.split("+")[0] == version  # "+bf16" where the CPU runs bf16

    cached = set((tmp_path / "cache").glob("states-*.pt"))
    wrong = _retrain(setting, registry.live().directory, tmp_path / "wrong", shuffle_labels=True)
    # The same body (only the heads changed): every text state came from the cache.
    assert set((tmp_path / "cache").glob("states-*.pt")) == cached
    refused = gate.judge(wrong["live"], wrong["candidate"])
    assert not refused.promote
    assert refused.reason.startswith("campaign holdout macro-F1 (n=48): live ")
    assert wrong["candidate"]["holdout"]["macro_f1"] < wrong["live"]["holdout"]["macro_f1"] - 0.1
    assert wrong["labels"]["shuffled"] is True
    assert registry.live().version == version
