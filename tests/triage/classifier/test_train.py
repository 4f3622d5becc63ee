"""``make train`` end to end on a tiny data set laid out like ``../shared/data``:
artefacts written, loadable, and marked with the precision they were trained in."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from services.triage.classifier import train
from services.triage.classifier.artefacts import load_metadata
from services.triage.classifier.transformer import TransformerClassifier

ABUSE = ["you are a disgusting idiot", "shut up you stupid clown", "go away, trash person"]
HATE = ["send all of them back, they are vermin", "those people are animals, deport them"]
CALM = ["lovely weather in the camp today", "thanks for sharing this story", "football later"]
QUESTIONS = ["what do you eat for breakfast ?", "how far is the school ?", "can I help ?"]


def _tweeteval(root: Path, task: str, rows: list[tuple[str, int]]) -> None:
    folder = root / "tweeteval" / task
    folder.mkdir(parents=True)
    for split in ("train", "val"):
        texts = [f"{text} {split} {n}" for n, (text, _) in enumerate(rows)]
        (folder / f"{split}_text.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        labels = "\n".join(str(label) for _, label in rows) + "\n"
        (folder / f"{split}_labels.txt").write_text(labels, encoding="utf-8")


def tiny_data(root: Path) -> Path:
    offensive = [(t, 1) for t in ABUSE + HATE] + [(t, 0) for t in CALM + QUESTIONS]
    _tweeteval(root, "offensive", offensive * 4)
    _tweeteval(root, "hate", ([(t, 1) for t in HATE] + [(t, 0) for t in ABUSE + CALM]) * 4)
    davidson = root / "davidson"
    davidson.mkdir()
    with (davidson / "labeled_data.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        header = ["", "count", "hate_speech", "offensive_language", "neither", "class", "tweet"]
        writer.writerow(header)
        for n in range(90):
            cls, text = [(0, HATE[n % 2]), (1, ABUSE[n % 3]), (2, CALM[n % 3])][n % 3]
            writer.writerow([n, 3, 0, 0, 0, cls, f"{text} #{n}"])
    dialogues = root / "dailydialog"
    dialogues.mkdir()
    lines, acts = [], []
    for n in range(30):
        lines.append(f"{QUESTIONS[n % 3]} {n} __eou__ {CALM[n % 3]} {n} __eou__")
        acts.append("2 1")
    (dialogues / "dialogues_validation.txt").write_text("\n".join(lines) + "\n")
    (dialogues / "dialogues_act_validation.txt").write_text("\n".join(acts) + "\n")
    return root


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(train, "CACHE_DIR", tmp_path / "cache")
    return tiny_data(tmp_path / "data")


def test_int8_training_writes_artefacts_the_classifier_runs_in_int8(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    assert train.main(["--data-dir", str(data), "--out", str(out), "--epochs", "1", "--int8"]) == 0
    meta = load_metadata(out)
    assert meta.quantized
    assert "-int8-" in meta.version
    assert meta.replaced_layers == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["cached_val"]["headline"]) >= {"olid/offensive macro-F1"}
    assert meta.version in (out / "MODEL_CARD.md").read_text()
    assert list((tmp_path / "cache").glob("states-*.pt"))  # int8 states cached apart

    classifier = TransformerClassifier(artefacts_dir=out)
    assert classifier.quantized
    assert classifier.version == meta.version
    (pred,) = classifier.classify(["how far is the school ?"])
    assert 0.0 <= pred.question <= 1.0


def test_int8_is_refused_with_fine_tuned_layers(data: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        train.main(["--data-dir", str(data), "--out", str(tmp_path), "--int8", "--top-layers", "1"])
    assert exc.value.code == 2
    assert not (tmp_path / "metadata.json").exists()


def test_the_default_fine_tunes_the_top_two_layers(data: Path, tmp_path: Path) -> None:
    """Plain ``make train`` reproduces the committed kind of model: top 2 layers + heads."""
    out = tmp_path / "model"
    assert train.main(["--data-dir", str(data), "--out", str(out), "--epochs", "1"]) == 0
    meta = load_metadata(out)
    assert meta.replaced_layers == [4, 5]
    assert not meta.quantized
    assert "-top2-" in meta.version
    classifier = TransformerClassifier(artefacts_dir=out)
    assert not classifier.quantized
    (pred,) = classifier.classify(["what do you eat for breakfast ?"])
    assert 0.0 <= pred.offensive <= 1.0
