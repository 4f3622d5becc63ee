"""The ONNX Runtime path: exported once per artefacts version (the cache key), the
same scores as torch fp32, and a cached export reused without exporting again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.triage.classifier import onnx_runtime
from services.triage.classifier.transformer import TransformerClassifier

TEXTS = [
    "how do I register my children at the camp school?",
    "@user you absolute idiot, go back where you came from",
    "r3fug33s are vermin and should be deported",
    "Thank you for the help yesterday! URL",
    "is the clinic open on sunday",
    "ok",
]
CAMPAIGN = ["questions about the refugee camp: school, clinic, water, registration"]


def key(**changes: object) -> str:
    args: dict[str, object] = {
        "base_sha256": "a" * 64,
        "weights_sha256": "b" * 64,
        "int8_layers": (),
        "max_length": 128,
    }
    args.update(changes)
    return onnx_runtime.cache_key(**args)  # type: ignore[arg-type]


def test_the_cache_key_follows_everything_the_graph_depends_on() -> None:
    assert key() == key()
    assert key(int8_layers=(1, 0)) == key(int8_layers=(0, 1))
    different = {
        key(weights_sha256="c" * 64),  # a new artefacts version (a promoted retrain)
        key(base_sha256="d" * 64),
        key(int8_layers=(0, 1)),
        key(max_length=64),
    }
    assert key() not in different
    assert len(different) == 4


@pytest.fixture(scope="module")
def torch_classifier() -> TransformerClassifier:
    return TransformerClassifier(CAMPAIGN, precision="fp32", runtime="torch")


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def onnx_classifier(onnx_dir: Path) -> TransformerClassifier:
    return TransformerClassifier(CAMPAIGN, runtime="onnx", onnx_dir=onnx_dir)


def test_onnx_scores_as_torch_fp32(
    torch_classifier: TransformerClassifier, onnx_classifier: TransformerClassifier
) -> None:
    assert onnx_classifier.runtime == "onnx"
    assert onnx_classifier.version == torch_classifier.version
    expected = torch_classifier.classify(TEXTS)
    got = onnx_classifier.classify(TEXTS, languages=["en"] * len(TEXTS))
    for want, have in zip(expected, got, strict=True):
        for field in ("offensive", "hate", "question", "relevance"):
            assert getattr(have, field) == pytest.approx(getattr(want, field), abs=1e-4)
        assert float(np.dot(want.embedding, have.embedding)) > 0.9999
    # scores in a batch and alone agree (no per-batch quantisation)
    alone = onnx_classifier.classify(TEXTS[1:2])[0]
    assert alone.offensive == pytest.approx(got[1].offensive, abs=1e-4)


def test_the_export_is_cached_by_key_and_reused(
    onnx_dir: Path, onnx_classifier: TransformerClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    [folder] = [p for p in onnx_dir.iterdir() if not p.name.startswith(".")]
    assert (folder / onnx_runtime.GRAPH_FILE).is_file()
    assert onnx_classifier.runtime == "onnx"

    def no_export(*args: object, **kwargs: object) -> Path:
        raise AssertionError("a cached export must not be exported again")

    monkeypatch.setattr(onnx_runtime, "export", no_export)
    again = TransformerClassifier(CAMPAIGN, runtime="onnx", onnx_dir=onnx_dir)
    assert again.runtime == "onnx"
    assert again.classify(TEXTS[:1])[0].offensive == pytest.approx(
        onnx_classifier.classify(TEXTS[:1])[0].offensive, abs=1e-6
    )


def test_the_torch_runtime_stays_available(torch_classifier: TransformerClassifier) -> None:
    assert torch_classifier.runtime == "torch"
    with pytest.raises(ValueError, match="runtime"):
        TransformerClassifier(runtime="tensorflow")  # type: ignore[arg-type]


def test_auto_runs_onnx_unless_torch_would_compute_in_bf16_or_int8(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.triage.classifier import transformer  # noqa: PLC0415

    monkeypatch.setattr(transformer, "native_bf16", lambda: False)
    assert transformer.resolve_runtime("auto", "auto") == "onnx"
    assert transformer.resolve_runtime("auto", "fp32") == "onnx"
    assert transformer.resolve_runtime("auto", "bf16") == "torch"
    assert transformer.resolve_runtime("auto", "int8") == "torch"
    assert transformer.resolve_runtime("torch", "fp32") == "torch"
    monkeypatch.setattr(transformer, "native_bf16", lambda: True)
    assert transformer.resolve_runtime("auto", "auto") == "torch"
    assert transformer.resolve_runtime("onnx", "auto") == "onnx"


def test_a_new_artefacts_version_gets_its_own_export(
    tmp_path: Path, onnx_dir: Path, onnx_classifier: TransformerClassifier
) -> None:
    """What a hot swap loads: another version's folder (other weights) is exported
    anew and scores with its own heads, never with the cached graph of the old one."""
    import json  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    from safetensors.torch import load_file, save_file  # noqa: PLC0415

    from services.triage.classifier.artefacts import (  # noqa: PLC0415
        ARTEFACT_DIR,
        METADATA_FILE,
        WEIGHTS_FILE,
    )
    from services.triage.classifier.model import file_sha256  # noqa: PLC0415

    retrained = tmp_path / "v2"
    shutil.copytree(ARTEFACT_DIR, retrained)
    weights = load_file(str(retrained / WEIGHTS_FILE))
    bias = next(k for k in weights if k.startswith("heads.mlps.0.") and k.endswith("4.bias"))
    weights[bias] = weights[bias] + 2.0  # the offensive head, retrained to say more
    save_file(weights, str(retrained / WEIGHTS_FILE))
    meta = json.loads((retrained / METADATA_FILE).read_text())
    meta["weights_sha256"] = file_sha256(retrained / WEIGHTS_FILE)
    meta["version"] = "minilm-test-v2"
    (retrained / METADATA_FILE).write_text(json.dumps(meta))

    before = {p.name for p in onnx_dir.iterdir()}
    swapped = TransformerClassifier(
        CAMPAIGN, artefacts_dir=retrained, runtime="onnx", onnx_dir=onnx_dir
    )
    assert swapped.version == "minilm-test-v2"
    new = {p.name for p in onnx_dir.iterdir()} - before
    assert len(new) == 1
    assert swapped.onnx_graph is not None
    assert swapped.onnx_graph.parent.name in new
    old, fresh = onnx_classifier.classify(TEXTS[:2]), swapped.classify(TEXTS[:2])
    for a, b in zip(old, fresh, strict=True):
        assert b.offensive > a.offensive
        assert b.hate == pytest.approx(a.hate, abs=1e-5)


def test_an_unwritable_onnx_dir_falls_back_to_torch(tmp_path: Path) -> None:
    """A read-only filesystem (the k8s pod) must not stop the worker: same scores in torch."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    classifier = TransformerClassifier(CAMPAIGN, runtime="onnx", onnx_dir=blocker / "onnx")
    assert classifier.runtime == "torch"
    assert classifier.onnx_graph is None
    assert len(classifier.classify(TEXTS[:2])) == 2
