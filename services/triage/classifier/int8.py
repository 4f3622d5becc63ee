"""Static int8 products for the packed encoder (:mod:`.packed`), calibrated offline.

The recipe torch's own x86 quantizer targets (PT2E's ``X86InductorQuantizer``):
activations u8 with one scale per tensor, weights s8 with one scale per output
channel, run by oneDNN's VNNI kernels (``torch.ops.onednn.qlinear_pointwise``)
with the bias, the exact GELU and the re-quantization of the GELU's output fused
into the products. Attention, LayerNorm and the residual stream keep the
encoder's own dtype.

*Static*: every activation scale is fixed by :func:`calibrate` on training
text and stored next to the artefacts (``int8.safetensors``), so a text's scores
never depend on its batch-mates (dynamic int8, :func:`.precision.quantize_int8`,
moved them up to 0.2) and no product waits for a min/max pass. Before each
input's scale is fixed, SmoothQuant's migration (Xiao et al. 2023) divides the
input's outlier channels by ``s_j = max|X_j|^a / max|W_j|^(1-a)`` and
multiplies the weight's columns by them (the division is folded into the
quantization step, one scale per channel); the GELU's output, which feeds the
down-projection, is quantized by the up-projection's own product.

A calibration holds the :func:`fingerprint` of the encoder weights it was made
on; any other weights (another training run, another base) do not get it and
keep the float products.

Measured on the bench's 2,000 TweetEval tweets (2-core Zen 4, AVX512-VNNI and
-BF16): see the triage README.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from services.triage.classifier.artefacts import ARTEFACT_DIR
from services.triage.classifier.model import TASKS
from services.triage.classifier.precision import cpu_flags

log = logging.getLogger(__name__)

CALIBRATION_FILE = "int8.safetensors"
#: ``TRIAGE_INT8``: see :func:`choose`.
Int8Mode = Literal["auto", "on", "off"]
INT8_MODES: tuple[Int8Mode, ...] = ("auto", "on", "off")
#: Appended to the version recorded with every decision while the int8 products run.
INT8_SUFFIX = "int8s"
#: The linear layers of one encoder layer, in the order they run.
KINDS = ("qkv", "out", "up", "down")
#: SmoothQuant's migration strength (0: none, 1: everything onto the weights).
DEFAULT_ALPHA = 0.7
#: Most any headline metric may lose on validation for ``auto`` to run a calibration
#: (the issue's limit: "no head may lose more than 0.005 macro-F1").
QUALITY_LIMIT = 0.005
#: GELU channels per layer the down-projection takes in fp32 (:class:`Outliers`).
DEFAULT_OUTLIERS = 8
#: Texts the calibration reads (drawn from the training texts with a fixed seed).
DEFAULT_TEXTS = 1500
#: The instruction sets oneDNN's int8 kernels need to beat bf16 (``auto`` only).
_VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@dataclass(frozen=True)
class InputScale:
    """How one linear layer's input becomes u8: ``q = round(x / (scale * smooth)) + zero``,
    clamped to 0..255 (``smooth``: SmoothQuant's per-channel divisor, or None).
    ``outliers``: input channels left out of the int8 product (their share is added
    in float: see :class:`Outliers`); the scale covers the others."""

    scale: float
    zero_point: int
    smooth: torch.Tensor | None = None
    outliers: torch.Tensor | None = None


@dataclass(frozen=True)
class Calibration:
    """Every input scale of an encoder (``"<layer>.<kind>"``), for the weights with
    ``fingerprint``."""

    fingerprint: str
    inputs: dict[str, InputScale]
    info: dict[str, Any] = field(default_factory=dict)
    #: Per task, the int8 products' mean logit bias on the calibration texts, added to
    #: the task's shift while they run (bias correction, Nagel et al. 2019): without it
    #: offensive and hate read ~0.03 higher and question ~0.03 lower in logit.
    shifts: dict[str, float] = field(default_factory=dict)

    @property
    def validated(self) -> bool:
        """Whether :func:`validate` passed it (recorded by the calibration's CLI)."""
        return bool(self.info.get("validation", {}).get("passed"))

    def covers(self, layer: int) -> bool:
        """Whether ``layer``'s products are calibrated (the others stay float)."""
        return all(f"{layer}.{kind}" in self.inputs for kind in KINDS)

    def input(self, layer: int, kind: str) -> InputScale:
        return self.inputs[f"{layer}.{kind}"]

    def save(self, path: Path) -> None:
        tensors = {
            f"{key}.{name}": tensor.contiguous()
            for key, value in self.inputs.items()
            for name, tensor in (("smooth", value.smooth), ("outliers", value.outliers))
            if tensor is not None
        }
        scales = {k: [v.scale, v.zero_point] for k, v in self.inputs.items()}
        meta = {
            "fingerprint": self.fingerprint,
            "scales": scales,
            "shifts": self.shifts,
            "info": self.info,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata={"calibration": json.dumps(meta, sort_keys=True)})
        path.chmod(0o644)  # committed with the artefacts

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Raises ``OSError`` or ``ValueError`` for a missing or unreadable file."""
        try:
            tensors = load_file(str(path))
            from safetensors import safe_open  # noqa: PLC0415 - the metadata only

            with safe_open(str(path), "pt") as handle:
                raw = (handle.metadata() or {}).get("calibration")
            meta = json.loads(raw or "")
            inputs = {
                key: InputScale(
                    float(scale),
                    int(zero),
                    tensors.get(f"{key}.smooth"),
                    tensors.get(f"{key}.outliers"),
                )
                for key, (scale, zero) in meta["scales"].items()
            }
            shifts = {str(k): float(v) for k, v in meta.get("shifts", {}).items()}
            return cls(str(meta["fingerprint"]), inputs, dict(meta.get("info", {})), shifts)
        except OSError:
            raise
        except Exception as exc:  # a corrupt or foreign file: the float products
            raise ValueError(f"unreadable int8 calibration {path}: {exc}") from exc


def fingerprint(model: PreTrainedModel) -> str:
    """sha256 over the encoder's weights and biases, in order, rounded to bf16 (so the
    same before and after :func:`.precision.bf16_linear`)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if name.startswith("encoder.") and tensor.is_floating_point():
            digest.update(name.encode())
            rounded = tensor.detach().to(torch.bfloat16).contiguous().view(torch.int16)
            digest.update(rounded.numpy().tobytes())
    return digest.hexdigest()


def find(
    model: PreTrainedModel, directories: Sequence[Path], *, validated: bool = False
) -> Calibration | None:
    """The first calibration in ``directories`` made for ``model``'s weights (and,
    with ``validated``, one that passed :func:`validate`)."""
    wanted: str | None = None
    for directory in directories:
        path = directory / CALIBRATION_FILE
        if not path.exists():
            continue
        try:
            calibration = Calibration.load(path)
        except (OSError, ValueError) as exc:
            log.warning("%s", exc)
            continue
        if validated and not calibration.validated:
            log.info("int8 calibration %s did not pass validation: not used", path)
            continue
        wanted = wanted or fingerprint(model)  # ~0.1 s: only for a usable file
        if calibration.fingerprint == wanted:
            return calibration
        log.info("int8 calibration %s is for other weights: not used", path)
    return None


def choose(
    model: PreTrainedModel,
    mode: Int8Mode,
    precision: str,
    artefacts_dir: str | os.PathLike[str] | None,
) -> Calibration | None:
    """The calibration a classifier in ``precision`` runs in ``mode``: ``auto`` where
    the encoder runs bf16 on a CPU with VNNI and the calibration passed
    :func:`validate`; ``on`` in bf16 or fp32; ``off`` none. From ``artefacts_dir``,
    else the committed artefacts' folder (a retrain that kept the body keeps it)."""
    if mode == "off" or precision not in ("bf16", "fp32"):
        return None
    if mode == "auto" and not (precision == "bf16" and has_vnni()):
        return None
    folders = [Path(artefacts_dir)] if artefacts_dir is not None else []
    found = find(model, [*folders, ARTEFACT_DIR], validated=mode == "auto")
    if found is None:
        log.log(
            logging.WARNING if mode == "on" else logging.INFO,
            "no %sint8 calibration for these weights (make int8): float products",
            "validated " if mode == "auto" else "",
        )
    return found


def has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has the int8 dot-product instructions (VNNI or AMX)."""
    return not _VNNI_FLAGS.isdisjoint(cpu_flags(cpuinfo))


class Int8Linear:
    """One linear layer as oneDNN's int8 product: ``x`` (float, or u8 already in
    ``scale``'s terms) -> ``out_dtype`` (a float dtype, or u8 in ``out_scale``'s terms
    for the next product); ``gelu``: the exact GELU fused after the bias."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        scale: InputScale,
        *,
        out_dtype: torch.dtype,
        gelu: bool = False,
        out_scale: InputScale | None = None,
    ) -> None:
        w = weight.detach().to(torch.float32)
        if scale.smooth is not None:
            w = w * scale.smooth.to(torch.float32)
        if scale.outliers is not None:
            w = w.index_fill(1, scale.outliers, 0.0)
        self._scales = (w.abs().amax(1) / 127).clamp(min=1e-12)
        quantized = torch.round(w / self._scales[:, None]).clamp(-127, 127).to(torch.int8)
        self._weight = torch.ops.onednn.qlinear_prepack(quantized, None)
        self._zeros = torch.zeros(w.shape[0], dtype=torch.int64)
        self._bias = bias.detach().to(torch.float32)
        self._scale = scale
        # q = round(x * multiplier + zero): one multiplier per channel with SmoothQuant's
        # divisor in it (torch.quantize_per_channel took 15 ms on [8192, 384] here, this
        # 1.4; torch's quantized dtypes are deprecated besides).
        divisor = scale.scale * (
            scale.smooth.to(torch.float32) if scale.smooth is not None else torch.ones(())
        )
        self._multiplier = 1.0 / divisor
        self._zero = torch.tensor(float(scale.zero_point))
        if out_dtype == torch.uint8 and out_scale is None:
            raise ValueError("a u8 output needs its scale")
        self._out = (out_scale.scale, out_scale.zero_point) if out_scale is not None else (1.0, 0)
        self._out_dtype = out_dtype
        self._post = ("gelu", "none") if gelu else ("none", "")

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as this layer's u8 input (u8 passes through)."""
        if x.dtype == torch.uint8:
            return x
        shifted = torch.addcmul(self._zero, x, self._multiplier)  # fp32 whatever x is
        return shifted.round_().clamp_(0, 255).to(torch.uint8)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        post, algorithm = self._post
        return torch.ops.onednn.qlinear_pointwise(  # type: ignore[no-any-return]
            self.quantize(x),
            self._scale.scale,
            self._scale.zero_point,
            self._weight,
            self._scales,
            self._zeros,
            self._bias,
            self._out[0],
            self._out[1],
            self._out_dtype,
            post,
            [],
            algorithm,
        )


class Outliers:
    """The down-projection's share from the GELU channels its int8 product leaves out
    (:attr:`InputScale.outliers`), in fp32: a channel or two per layer reaches 14-25
    where the rest stay under 7, and covering them would make the u8 steps of every
    other channel 3-4x coarser."""

    def __init__(
        self,
        up: tuple[torch.Tensor, torch.Tensor],
        down: torch.Tensor,
        channels: torch.Tensor,
    ) -> None:
        self._up_weight = up[0].detach().to(torch.float32)[channels].contiguous()
        self._up_bias = up[1].detach().to(torch.float32)[channels].contiguous()
        self._down = down.detach().to(torch.float32)[:, channels].t().contiguous()

    def add_to(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``out`` (the int8 product's fp32 result) plus those channels' share, from the
        up-projection's input ``x``."""
        inner = F.gelu(F.linear(x.to(torch.float32), self._up_weight, self._up_bias))
        return torch.addmm(out, inner, self._down)


@dataclass(frozen=True)
class Int8Layer:
    """One encoder layer's products in static int8 (see :func:`int8_layer`)."""

    qkv: Int8Linear
    out: Int8Linear
    up: Int8Linear
    down: Int8Linear
    outliers: Outliers | None


def int8_layer(
    linear: Callable[[str], tuple[torch.Tensor, torch.Tensor]],
    scale: Callable[[str], InputScale],
    attention_dtype: torch.dtype,
) -> Int8Layer:
    """The int8 products of one layer from its float ``linear(kind)`` weights and
    biases and its input scales: query/key/value out in ``attention_dtype``, the
    attention output and the down-projection in fp32 (the residual stream's), the
    up-projection with its GELU into u8 on the down-projection's scale."""
    down_scale = scale("down")
    products = {
        kind: Int8Linear(*linear(kind), scale(kind), out_dtype=dtype)
        for kind, dtype in (("qkv", attention_dtype), ("out", torch.float32))
    }
    up = Int8Linear(
        *linear("up"), scale("up"), out_dtype=torch.uint8, gelu=True, out_scale=down_scale
    )
    down_weight, down_bias = linear("down")
    down = Int8Linear(down_weight, down_bias, down_scale, out_dtype=torch.float32)
    outliers = (
        Outliers(linear("up"), down_weight, down_scale.outliers)
        if down_scale.outliers is not None and down_scale.outliers.numel()
        else None
    )
    return Int8Layer(products["qkv"], products["out"], up, down, outliers)


@functools.cache
def int8_products_work() -> bool:
    """Whether oneDNN's int8 linear ops are here and agree with ``F.linear`` (and the
    GELU after it, into u8) on a probe: checked once per process."""
    ops = getattr(torch.ops, "onednn", None)
    if ops is None or not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(37, 64, generator=generator) * 4 - 1
    weight = torch.randn(96, 64, generator=generator) / 8
    bias = torch.randn(96, generator=generator) / 4
    smooth = torch.rand(64, generator=generator) + 0.5
    scale = InputScale(float((x / smooth).abs().max()) * 2 / 255, 128, smooth)
    want = F.linear(x, weight, bias)
    gelu_scale = InputScale(*_range(-0.2, float(F.gelu(want).max())))
    try:
        plain = Int8Linear(weight, bias, scale, out_dtype=torch.float32)(x)
        gelu = Int8Linear(
            weight, bias, scale, out_dtype=torch.uint8, gelu=True, out_scale=gelu_scale
        )(x)
    except (RuntimeError, AttributeError) as exc:
        log.info("packed encoder: no oneDNN int8 linear ops (%s)", exc)
        return False
    step = float(want.abs().max()) / 40  # a few quantization steps of the product
    ok = bool(
        plain.dtype == torch.float32
        and gelu.dtype == torch.uint8
        and torch.allclose(plain, want, atol=step)
        and torch.allclose(
            (gelu.float() - gelu_scale.zero_point) * gelu_scale.scale,
            F.gelu(want),
            atol=step + gelu_scale.scale,
        )
    )
    if not ok:
        log.warning("packed encoder: oneDNN's int8 linear ops disagree with F.linear")
    return ok


class Observer:
    """Collects what :func:`calibrate` needs from the inputs of every linear layer:
    per-channel minima, maxima and absolute maxima."""

    def __init__(self) -> None:
        self.low: dict[str, torch.Tensor] = {}
        self.high: dict[str, torch.Tensor] = {}

    def __call__(self, layer: int, kind: str, x: torch.Tensor) -> None:
        key = f"{layer}.{kind}"
        x = x.detach().to(torch.float32)
        low, high = x.amin(0), x.amax(0)
        if key in self.low:
            low = torch.minimum(low, self.low[key])
            high = torch.maximum(high, self.high[key])
        self.low[key], self.high[key] = low, high


def _range(low: float, high: float) -> tuple[float, int]:
    """u8 scale and zero point covering [low, high] (and 0)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max(high - low, 1e-8) / 255
    return scale, max(0, min(255, round(-low / scale)))


def scales_from(
    observer: Observer,
    weights: Callable[[int, str], torch.Tensor],
    *,
    alpha: float = DEFAULT_ALPHA,
    outliers: int = DEFAULT_OUTLIERS,
) -> dict[str, InputScale]:
    """The input scales from what ``observer`` saw: SmoothQuant's migration with
    strength ``alpha`` for every input but the GELU's output (``down``: the GELU sits
    between it and the weights it could move into), whose ``outliers`` largest
    channels are left to :class:`Outliers` instead."""
    inputs: dict[str, InputScale] = {}
    for key in observer.low:
        layer, kind = key.split(".")
        low, high = observer.low[key], observer.high[key]
        smooth: torch.Tensor | None = None
        left_out: torch.Tensor | None = None
        if kind != "down" and alpha > 0:
            weight = weights(int(layer), kind).detach().to(torch.float32)
            activation = torch.maximum(low.abs(), high.abs()).clamp(min=1e-5)
            smooth = activation**alpha / weight.abs().amax(0).clamp(min=1e-5) ** (1 - alpha)
            low, high = low / smooth, high / smooth
        elif kind == "down" and outliers > 0:
            largest = torch.maximum(low.abs(), high.abs()).topk(outliers).indices
            left_out = largest.sort().values
            keep = torch.ones_like(low, dtype=torch.bool).index_fill(0, left_out, False)
            low, high = low[keep], high[keep]
        scale, zero = _range(float(low.min()), float(high.max()))
        inputs[key] = InputScale(scale, zero, smooth, left_out)
    return inputs


def calibrate(
    classifier: Any,
    texts: Sequence[str],
    *,
    alpha: float = DEFAULT_ALPHA,
    outliers: int = DEFAULT_OUTLIERS,
    layers: Sequence[int] | None = None,
) -> Calibration:
    """Runs ``texts`` through the packed encoder of ``classifier`` (a
    :class:`.transformer.TransformerClassifier`) in its float products, watching every
    linear layer's input; fixes the scales from that; then scores ``texts`` on the
    int8 products too, for each task's mean logit bias. ``classifier`` keeps running
    the new calibration's products (where the ops work)."""
    encoder = classifier.packed_encoder
    if encoder is None:
        raise ValueError("the classifier runs no packed encoder: nothing to calibrate")
    observer = Observer()
    encoder.observe(observer)
    try:
        with encoder.float_products():
            before = classifier.classify(list(texts))
    finally:
        encoder.observe(None)
    inputs = scales_from(
        observer, lambda n, kind: encoder.linear(n, kind)[0], alpha=alpha, outliers=outliers
    )
    if layers is not None:
        inputs = {k: v for k, v in inputs.items() if int(k.split(".")[0]) in set(layers)}
    info = {
        "alpha": alpha,
        "outliers": outliers,
        "layers": sorted({int(k.split(".")[0]) for k in inputs}),
        "texts": len(texts),
        "torch": torch.__version__,
    }
    calibration = Calibration(fingerprint(classifier.encoder_model), inputs, info)
    if not classifier.use_int8(calibration):
        log.warning("no int8 products here: the calibration has no bias correction")
        return calibration
    after = classifier.classify(list(texts))
    shifts = {
        task: _mean_logit_gap([getattr(p, task) for p in after], [getattr(p, task) for p in before])
        for task in TASKS
    }
    calibration = Calibration(calibration.fingerprint, inputs, info, shifts)
    classifier.use_int8(calibration)
    return calibration


def _mean_logit_gap(after: Sequence[float], before: Sequence[float]) -> float:
    def logit(p: torch.Tensor) -> torch.Tensor:
        p = p.clamp(1e-6, 1 - 1e-6)
        return torch.log(p / (1 - p))

    gap = logit(torch.tensor(after, dtype=torch.float64)) - logit(
        torch.tensor(before, dtype=torch.float64)
    )
    return float(gap.mean())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Calibrate the committed classifier's int8 products on training text"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="default: TRIAGE_DATA_DIR")
    parser.add_argument("--artefacts", type=Path, default=None, help="default: the committed")
    parser.add_argument("--texts", type=int, default=DEFAULT_TEXTS)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--outliers", type=int, default=DEFAULT_OUTLIERS)
    parser.add_argument("--seed", type=int, default=13)
    return parser


def validate(
    classifier: Any, calibration: Calibration, val: dict[str, Any], *, limit: float = QUALITY_LIMIT
) -> dict[str, Any]:
    """``make eval``'s headline metrics on ``val`` with the float products and with
    ``calibration``'s: passed when no headline loses more than ``limit``."""
    from services.triage.classifier.evaluate import evaluate  # noqa: PLC0415 - a cycle

    classifier.use_int8(None)
    before = evaluate(classifier, val)["headline"]
    if not classifier.use_int8(calibration):
        return {"passed": False, "reason": "no int8 products on the validating CPU"}
    after = evaluate(classifier, val)["headline"]
    losses = {name: before[name] - after[name] for name in before}
    return {
        "passed": max(losses.values()) <= limit,
        "limit": limit,
        "float": before,
        "int8": after,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.triage.classifier.int8``: writes ``int8.safetensors`` into
    the artefacts folder, from ``--texts`` training texts drawn with ``--seed``, and
    records whether the int8 products keep ``make eval``'s headlines within
    :data:`QUALITY_LIMIT` of the float ones (``auto`` runs only a calibration that does)."""
    from services.triage.classifier.data import data_dir, load_corpus  # noqa: PLC0415
    from services.triage.classifier.transformer import TransformerClassifier  # noqa: PLC0415

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    directory = args.artefacts or ARTEFACT_DIR
    corpus = load_corpus(data_dir(args.data_dir), seed=args.seed)
    draw = random.Random(args.seed)  # noqa: S311 - a reproducible sample, not a secret
    texts = [e.text for e in draw.sample(corpus.train, args.texts)]
    classifier = TransformerClassifier(artefacts_dir=directory, precision="bf16", int8="off")
    calibration = calibrate(classifier, texts, alpha=args.alpha, outliers=args.outliers)
    report = validate(classifier, calibration, corpus.val)
    calibration = replace(calibration, info={**calibration.info, "validation": report})
    calibration.save(directory / CALIBRATION_FILE)
    print(json.dumps(report, indent=2))
    print(
        f"{directory / CALIBRATION_FILE}: {len(calibration.inputs)} inputs, {len(texts)} texts; "
        f"{'validated' if report['passed'] else 'NOT validated (auto keeps the float products)'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
