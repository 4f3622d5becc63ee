"""``make eval``: the committed artefacts measured on validation sets, with floors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.triage.classifier import evaluate
from services.triage.classifier.artefacts import ARTEFACT_DIR, load_metadata
from tests.triage.classifier.tiny_data import tiny_data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_data(tmp_path_factory.mktemp("eval") / "data")


def test_reports_every_set_and_the_throughput(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    args = ["--data-dir", str(data), "--json", str(out), "--throughput", "40"]
    assert evaluate.main(args) == 0
    report = json.loads(out.read_text())
    assert set(report["headline"]) == set(evaluate.HEADLINES)
    for value in report["headline"].values():
        assert 0.0 <= value <= 1.0
    olid = report["sets"]["olid/offensive"]
    lines = (data / "tweeteval" / "offensive" / "val_text.txt").read_text().splitlines()
    assert olid["n"] == len(lines)  # every line of the OLID val set scored
    own = load_metadata(ARTEFACT_DIR).tasks["offensive"].threshold
    assert olid["threshold"] == pytest.approx(own)  # the model's, from its metadata
    speed = report["throughput"]
    assert speed["texts"] == 40
    assert speed["classify_per_s"] > 0
    assert speed["plain_forward_per_s"] > 0


def test_a_floor_that_is_not_met_fails_the_run(
    data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert evaluate.main(["--data-dir", str(data), "--min-question", "1.01"]) == 1
    assert "question" in caplog.text
    assert "below the floor" in caplog.text


def test_an_unknown_precision_is_refused(data: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        evaluate.main(["--data-dir", str(data), "--precision", "fp64"])
    assert exc.value.code == 2
