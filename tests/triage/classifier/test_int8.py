"""Static int8 products: the ops against F.linear, calibration, and the classifier on them."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention

from services.triage.classifier import artefacts, int8
from services.triage.classifier.int8 import (
    INT8_SUFFIX,
    Calibration,
    InputScale,
    Int8Linear,
    Observer,
)
from services.triage.classifier.precision import bf16_linear
from services.triage.classifier.transformer import TransformerClassifier
from tests.triage.classifier import test_packed

TEXTS = [
    *test_packed.TEXTS,
    "Send them all back, they are vermin",
    "Do the teachers in Kakuma speak Swahili or English?",
]

needs_ops = pytest.mark.skipif(
    not int8.int8_products_work(), reason="torch has no working oneDNN int8 linear ops here"
)


def _activations(generator: torch.Generator, rows: int = 64, channels: int = 96) -> torch.Tensor:
    """Activations like a transformer's: most channels near 1, two 20x larger."""
    x = torch.randn(rows, channels, generator=generator)
    x[:, 5] *= 20
    x[:, 40] *= 15
    return x


def _observed(x: torch.Tensor, kind: str, layer: int = 0) -> Observer:
    observer = Observer()
    observer(layer, kind, x)
    return observer


@needs_ops
@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_product_is_close_to_f_linear(alpha: float) -> None:
    generator = torch.Generator().manual_seed(1)
    x = _activations(generator)
    weight = torch.randn(48, 96, generator=generator) / 10
    bias = torch.randn(48, generator=generator)
    scale = int8.scales_from(_observed(x, "qkv"), lambda n, k: weight, alpha=alpha)["0.qkv"]
    assert (scale.smooth is not None) == (alpha > 0)
    got = Int8Linear(weight, bias, scale, out_dtype=torch.float32)(x)
    want = F.linear(x, weight, bias)
    error = float((got - want).abs().mean() / want.abs().mean())
    assert error < (0.02 if alpha else 0.06)
    assert got.dtype == torch.float32
    half = Int8Linear(weight, bias, scale, out_dtype=torch.bfloat16)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    assert float((half.float() - want).abs().mean() / want.abs().mean()) < 0.07


@needs_ops
def test_smoothing_beats_plain_per_tensor_scales_on_outlier_channels() -> None:
    generator = torch.Generator().manual_seed(2)
    x = _activations(generator)
    weight = torch.randn(48, 96, generator=generator) / 10
    bias = torch.zeros(48)
    want = F.linear(x, weight, bias)
    errors = {}
    for alpha in (0.0, 0.5):
        scale = int8.scales_from(_observed(x, "up"), lambda n, k: weight, alpha=alpha)["0.up"]
        got = Int8Linear(weight, bias, scale, out_dtype=torch.float32)(x)
        errors[alpha] = float((got - want).abs().mean())
    assert errors[0.5] < errors[0.0] * 0.7


@needs_ops
def test_gelu_is_fused_into_a_u8_output_on_the_next_products_scale() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(50, 64, generator=generator)
    weight = torch.randn(80, 64, generator=generator) / 6
    bias = torch.randn(80, generator=generator) / 4
    scale = int8.scales_from(_observed(x, "up"), lambda n, k: weight)["0.up"]
    want = F.gelu(F.linear(x, weight, bias))
    out_scale = int8.scales_from(_observed(want, "down"), lambda n, k: weight, outliers=0)["0.down"]
    got = Int8Linear(weight, bias, scale, out_dtype=torch.uint8, gelu=True, out_scale=out_scale)(x)
    assert got.dtype == torch.uint8
    decoded = (got.float() - out_scale.zero_point) * out_scale.scale
    assert float((decoded - want).abs().max()) < 0.15 * float(want.abs().max())
    assert float((decoded - want).abs().mean()) < 2 * out_scale.scale
    with pytest.raises(ValueError, match="scale"):
        Int8Linear(weight, bias, scale, out_dtype=torch.uint8)


def test_the_largest_gelu_channels_are_left_out_of_the_down_projections_scale() -> None:
    generator = torch.Generator().manual_seed(4)
    inner = F.gelu(torch.randn(200, 32, generator=generator))
    inner[:, 7] *= 30
    inner[:, 19] *= 12
    weight = torch.randn(16, 32, generator=generator)
    scales = int8.scales_from(_observed(inner, "down"), lambda n, k: weight, outliers=2)
    down = scales["0.down"]
    assert down.smooth is None  # the GELU sits between this input and any weight
    assert down.outliers is not None
    assert down.outliers.tolist() == [7, 19]
    others = torch.cat([inner[:, :7], inner[:, 8:19], inner[:, 20:]], 1)
    assert down.scale == pytest.approx(float(others.max() - min(0.0, float(others.min()))) / 255)
    no_split = int8.scales_from(_observed(inner, "down"), lambda n, k: weight, outliers=0)
    assert no_split["0.down"].outliers is None
    assert no_split["0.down"].scale > 5 * down.scale


@needs_ops
def test_a_layer_with_outlier_channels_matches_the_float_layer() -> None:
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(120, 32, generator=generator)
    up = (torch.randn(64, 32, generator=generator) / 5, torch.randn(64, generator=generator) / 5)
    up[0][3] *= 25  # GELU channel 3 runs far larger than the rest
    down = (torch.randn(32, 64, generator=generator) / 8, torch.randn(32, generator=generator))
    inner = F.gelu(F.linear(x, *up))
    want = F.linear(inner, *down)
    observer = _observed(x, "up")
    observer(0, "down", inner)
    weights = {"up": up[0], "down": down[0]}
    errors = {}
    for outliers in (0, 1):
        scales = int8.scales_from(observer, lambda n, k: weights[k], outliers=outliers)
        by_kind = {kind: scales["0.down" if kind == "down" else "0.up"] for kind in int8.KINDS}
        layer = int8.int8_layer(
            lambda kind: down if kind == "down" else up,
            by_kind.__getitem__,
            torch.bfloat16,
        )
        got = layer.down(layer.up(x))
        assert (layer.outliers is not None) == (outliers > 0)
        if layer.outliers is not None:
            got = layer.outliers.add_to(got, x)
        errors[outliers] = float((got - want).abs().mean() / want.abs().mean())
    assert errors[1] < 0.03
    assert errors[1] < errors[0] / 2


def test_calibration_round_trips_through_its_file(tmp_path: Path) -> None:
    calibration = Calibration(
        "abc",
        {
            "0.qkv": InputScale(0.02, 128, torch.rand(8) + 0.5),
            "0.down": InputScale(0.01, 9, None, torch.tensor([2, 5])),
        },
        {"alpha": 0.5},
    )
    path = tmp_path / int8.CALIBRATION_FILE
    calibration.save(path)
    loaded = Calibration.load(path)
    assert loaded.fingerprint == "abc"
    assert loaded.info == {"alpha": 0.5}
    qkv, down = loaded.input(0, "qkv"), loaded.input(0, "down")
    assert (qkv.scale, qkv.zero_point, qkv.outliers) == (0.02, 128, None)
    assert qkv.smooth is not None
    assert torch.equal(qkv.smooth, calibration.inputs["0.qkv"].smooth)  # type: ignore[arg-type]
    assert down.smooth is None
    assert down.outliers is not None
    assert down.outliers.tolist() == [2, 5]
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="unreadable"):
        Calibration.load(path)
    with pytest.raises(FileNotFoundError):
        Calibration.load(tmp_path / "absent.safetensors")


def test_has_vnni_reads_the_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx512f avx512_vnni avx512_bf16\n")
    assert int8.has_vnni(cpuinfo)
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx2 fma\n")
    assert not int8.has_vnni(cpuinfo)
    assert not int8.has_vnni(tmp_path / "absent")


@pytest.fixture(scope="module")
def float_classifier() -> TransformerClassifier:
    return TransformerClassifier(precision="bf16", int8="off")


def test_the_fingerprint_follows_the_encoder_weights(
    float_classifier: TransformerClassifier,
) -> None:
    model = float_classifier.encoder_model
    print_ = int8.fingerprint(model)
    assert print_ == int8.fingerprint(bf16_linear(model))  # already bf16: idempotent
    first = model.encoder.layer[0].intermediate.dense  # type: ignore[union-attr,index]
    kept = first.bias.detach().clone()
    with torch.no_grad():
        first.bias[0] += 1.0
    try:
        assert int8.fingerprint(model) != print_
    finally:
        with torch.no_grad():
            first.bias.copy_(kept)
    assert int8.fingerprint(model) == print_


def test_the_committed_calibration_is_for_the_committed_weights(
    float_classifier: TransformerClassifier,
) -> None:
    """A retrain must calibrate again (make train does): stale scales are not used."""
    path = artefacts.ARTEFACT_DIR / int8.CALIBRATION_FILE
    calibration = Calibration.load(path)
    assert calibration.fingerprint == int8.fingerprint(float_classifier.encoder_model)
    layers = float_classifier.packed_encoder.num_layers  # type: ignore[union-attr]
    assert set(calibration.inputs) == {f"{n}.{k}" for n in range(layers) for k in int8.KINDS}


@pytest.fixture(scope="module")
def calibrated_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed artefacts with a calibration made here on a few texts."""
    directory = tmp_path_factory.mktemp("artefacts")
    for name in (artefacts.WEIGHTS_FILE, artefacts.METADATA_FILE):
        shutil.copy(artefacts.ARTEFACT_DIR / name, directory / name)
    source = TransformerClassifier(artefacts_dir=directory, precision="bf16", int8="off")
    int8.calibrate(source, TEXTS * 4).save(directory / int8.CALIBRATION_FILE)
    return directory


@needs_ops
def test_the_classifier_runs_int8_products_close_to_its_float_ones(
    calibrated_dir: Path, float_classifier: TransformerClassifier
) -> None:
    quantized = TransformerClassifier(artefacts_dir=calibrated_dir, precision="bf16", int8="on")
    encoder = quantized.packed_encoder
    assert encoder is not None
    assert encoder.int8
    assert quantized.version == f"{float_classifier.version}+{INT8_SUFFIX}"
    got = quantized.classify(TEXTS)
    want = float_classifier.classify(TEXTS)
    for a, b in zip(got, want, strict=True):
        assert abs(a.offensive - b.offensive) < 0.1
        assert abs(a.hate - b.hate) < 0.1
        assert abs(a.question - b.question) < 0.1
        cosine = float(np.dot(a.embedding, b.embedding))
        assert cosine > 0.98
    with encoder.float_products():
        assert not encoder.int8
        again = quantized.classify(TEXTS)
    assert encoder.int8
    assert [p.offensive for p in again] == pytest.approx([p.offensive for p in want], abs=1e-6)


@needs_ops
def test_each_rows_product_is_the_same_whatever_rows_come_with_it() -> None:
    """Static scales: a row's int8 product never depends on the other rows (dynamic
    int8's per-call scale moved scores up to 0.2 with the batch). Up to the kernels'
    float rounding: bit for bit on Zen 4, but on an Intel CPU with AMX oneDNN runs a
    one- or two-row product through another kernel whose fp32 epilogue rounds
    differently (2.4e-7 here), which could move a u8 output by one step at a tie."""
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(300, 96, generator=generator)
    weight = torch.randn(128, 96, generator=generator) / 10
    bias = torch.randn(128, generator=generator)
    scale = int8.scales_from(_observed(x, "up"), lambda n, k: weight)["0.up"]
    out_scale = InputScale(*int8._range(-0.2, 6.0))
    for product in (
        Int8Linear(weight, bias, scale, out_dtype=torch.float32),
        Int8Linear(weight, bias, scale, out_dtype=torch.uint8, gelu=True, out_scale=out_scale),
    ):
        full = product(x)
        for rows in (1, 2, 7, 64):
            part = product(x[:rows])
            if part.dtype == torch.float32:
                torch.testing.assert_close(part, full[:rows], rtol=1e-6, atol=1e-6)
            else:
                steps = (part.int() - full[:rows].int()).abs()
                assert int(steps.max()) <= 1
                assert float((steps > 0).float().mean()) < 0.01


@needs_ops
def test_a_texts_int8_scores_barely_depend_on_its_batch_mates(calibrated_dir: Path) -> None:
    """What moves is attention's padding in a group of similar lengths (float: 0.001
    at most here); a u8 step can turn it into up to ~0.01 (dynamic int8: 0.2)."""
    quantized = TransformerClassifier(artefacts_dir=calibrated_dir, precision="bf16", int8="on")
    together = quantized.classify(TEXTS)
    for text, batched in zip(TEXTS, together, strict=True):
        alone = quantized.classify([text])[0]
        assert alone.offensive == pytest.approx(batched.offensive, abs=0.02)
        assert alone.hate == pytest.approx(batched.hate, abs=0.02)


def test_without_a_matching_calibration_the_float_products_run(
    tmp_path: Path, calibrated_dir: Path, float_classifier: TransformerClassifier
) -> None:
    stale = Calibration.load(calibrated_dir / int8.CALIBRATION_FILE)
    directory = tmp_path / "artefacts"
    directory.mkdir()
    for name in (artefacts.WEIGHTS_FILE, artefacts.METADATA_FILE):
        shutil.copy(artefacts.ARTEFACT_DIR / name, directory / name)
    Calibration("not these weights", stale.inputs).save(directory / int8.CALIBRATION_FILE)
    assert int8.find(float_classifier.encoder_model, [directory]) is None
    assert int8.find(float_classifier.encoder_model, [directory, calibrated_dir]) is not None
    off = TransformerClassifier(artefacts_dir=calibrated_dir, precision="bf16", int8="off")
    assert off.packed_encoder is not None
    assert not off.packed_encoder.int8
    fp32 = TransformerClassifier(artefacts_dir=calibrated_dir, precision="fp32", int8="auto")
    assert fp32.packed_encoder is not None
    assert not fp32.packed_encoder.int8
    with pytest.raises(ValueError, match="int8"):
        TransformerClassifier(artefacts_dir=calibrated_dir, int8="maybe")  # type: ignore[arg-type]


@needs_ops
def test_auto_runs_only_a_validated_calibration(tmp_path: Path, calibrated_dir: Path) -> None:
    unvalidated = TransformerClassifier(artefacts_dir=calibrated_dir, precision="bf16")
    assert unvalidated.packed_encoder is not None
    assert not unvalidated.packed_encoder.int8
    calibration = Calibration.load(calibrated_dir / int8.CALIBRATION_FILE)
    assert not calibration.validated
    passed = replace(calibration, info={**calibration.info, "validation": {"passed": True}})
    directory = tmp_path / "validated"
    directory.mkdir()
    for name in (artefacts.WEIGHTS_FILE, artefacts.METADATA_FILE):
        shutil.copy(artefacts.ARTEFACT_DIR / name, directory / name)
    passed.save(directory / int8.CALIBRATION_FILE)
    assert Calibration.load(directory / int8.CALIBRATION_FILE).validated
    auto = TransformerClassifier(artefacts_dir=directory, precision="bf16")
    assert auto.packed_encoder is not None
    assert auto.packed_encoder.int8 == int8.has_vnni()
