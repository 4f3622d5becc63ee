"""``make train`` end to end on a tiny data set laid out like ``../shared/data``:
artefacts written, loadable, and marked with the precision they were trained in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.triage.classifier import train
from services.triage.classifier.artefacts import load_metadata
from services.triage.classifier.augment import augmented_split
from services.triage.classifier.transformer import TransformerClassifier
from tests.triage.classifier.tiny_data import tiny_data


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(train, "CACHE_DIR", tmp_path / "cache")
    augment_train, augment_val = augmented_split()  # a slice: tiny data, tiny templates
    monkeypatch.setattr(train, "augmented_split", lambda: (augment_train[::40], augment_val[::20]))
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
    assert classifier.precision == "int8"
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
    assert classifier.precision in ("fp32", "bf16")  # auto: bf16 where the CPU has it
    (pred,) = classifier.classify(["what do you eat for breakfast ?"])
    assert 0.0 <= pred.offensive <= 1.0


@pytest.mark.timeout(480)
def test_bf16_training_fine_tunes_every_layer_and_records_it(data: Path, tmp_path: Path) -> None:
    """``--bf16 --top-layers 6``: mixed-precision training of the whole encoder; the
    weights are saved like any others (fp16) and the config records bf16. On a CPU
    without bf16 units (a first-generation EPYC: AVX2 only) bf16 is emulated and this
    ran past the default 120 s under the suite's load: the work is the same, the limit
    longer."""
    out = tmp_path / "model"
    args = ["--data-dir", str(data), "--out", str(out), "--epochs", "1", "--top-layers", "6"]
    assert train.main([*args, "--bf16"]) == 0
    meta = load_metadata(out)
    assert meta.replaced_layers == [0, 1, 2, 3, 4, 5]
    assert meta.training["config"]["bf16"] is True
    assert "-top6-" in meta.version
    (pred,) = TransformerClassifier(artefacts_dir=out).classify(["is the camp school open ?"])
    assert 0.0 <= pred.question <= 1.0


def test_more_layers_than_the_model_has_are_refused(data: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        train.main(["--data-dir", str(data), "--out", str(tmp_path), "--top-layers", "7"])
    assert exc.value.code == 2
