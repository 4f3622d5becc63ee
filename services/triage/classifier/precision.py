"""How the classifier's encoder computes: fp32, bf16 under CPU autocast, or dynamic int8.

Shared by the classifier, ``make eval``'s plain forward and the benchmark's raw
forward, so all compare like with like. Which precision runs where:
:func:`services.triage.classifier.transformer.resolve_precision`.
"""

from __future__ import annotations

import os
import warnings
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from transformers import PreTrainedModel

from services.triage.classifier.base import Precision

#: oneDNN primitives kept for reuse. Its default (1,024) holds about 240 MB more in
#: bf16, where every (rows, tokens) shape of a forward group gets its own primitive;
#: 64 measured the same speed at 955 MB steady RSS against 1,190. The packed path
#: (:mod:`.packed`) gives each call's linear layers their own token count, so few
#: primitives are reused at all: 8 measured the same speed as 64 over the bench's
#: three profiles (2,000 tweets each, three rounds) with a peak of 1,085 MB against
#: 1,147 (1 was 20 % slower: every call built its primitives again). Since the
#: packed path rounds its token counts (:func:`.packed.padded_rows`, 2026-12-05), a
#: stream's calls reuse a few dozen shapes: 32 keeps those of similar batch sizes
#: (a batch's four products each), which 8 could not (at 200 mentions/s paced, p50
#: 73-86 against 114-140 ms), and peaked at 1,130 MB over batches of 1-256 texts
#: where the exact counts had grown to 1,280.
ONEDNN_CACHE_CAPACITY = "32"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (``flags`` on x86, ``Features`` on Arm) from the first
    processor in ``cpuinfo``; empty where it cannot be read."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_summary(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name and the matrix units the encoder's products can use, e.g.
    ``Intel(R) Xeon(R) Processor; bf16: AMX; int8: AMX`` (``none`` where it has none):
    the benchmarks' ratios differ by these, so they print it with the numbers."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    name = next(
        (
            value.strip()
            for key, _, value in (line.partition(":") for line in text.splitlines())
            if key.strip() in ("model name", "Model name")
        ),
        "unknown CPU",
    )
    flags = cpu_flags(cpuinfo)
    bf16 = "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else "none"
    int8 = (
        "AMX"
        if "amx_int8" in flags
        else "AVX512-VNNI"
        if "avx512_vnni" in flags
        else "AVX-VNNI"
        if "avx_vnni" in flags
        else "none"
    )
    return f"{name}; bf16: {bf16}; int8: {int8}"


def quantize_int8(model: PreTrainedModel) -> PreTrainedModel:
    """``model`` with its ``Linear`` layers in dynamic int8 (weights int8, activations
    quantized per tensor, per call): about 3x fp32 and 1.2x bf16 on these CPUs.

    Two costs keep it off unless the heads were trained on it. The states move
    (cosine 0.89-0.95 to fp32), so heads trained on fp32 states lose points on
    int8 ones and the other way round: ``auto`` runs int8 only for artefacts
    trained on it (``Metadata.quantized``); ``TRIAGE_PRECISION`` overrides. And
    one activation scale per group makes a text's scores depend on the texts
    batched with it (measured: up to 0.20, mean 0.05 in probability between a
    tweet alone and within a batch of 300), so the same mention can be scored
    differently on a replay."""
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which needs
        # torch.compile to be fast on CPU; the eager dynamic path is still supported.
        warnings.simplefilter("ignore")
        quantized: PreTrainedModel = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {torch.nn.Linear}, dtype=torch.qint8
        )
    return quantized


def bf16_linear(model: PreTrainedModel) -> PreTrainedModel:
    """``model`` with its ``Linear`` weights stored in bf16, to run under CPU autocast.

    Measured on these CPUs (AMD EPYC, AVX512-BF16), 1,000 OLID tweets: about 3x the
    fp32 throughput (639 against 210 tweets/s; autocast alone, which casts the
    weights on every call, 544). Matmuls accumulate in fp32 and LayerNorm, softmax
    and the heads stay fp32, so scores move little: mean 0.0005, at most 0.013
    from fp32, embeddings at cosine > 0.9999; and a tweet's scores move at most
    0.004 with its batch-mates (dynamic int8: 0.20)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(torch.bfloat16)
    return model


def with_precision(model: PreTrainedModel, precision: Precision) -> PreTrainedModel:
    """``model`` made to compute in ``precision``; run it under
    :func:`precision_context`. Shared by the classifier, ``make eval``'s plain
    forward and the benchmark's raw forward, so all compare like with like."""
    if precision == "int8":
        return quantize_int8(model)
    if precision == "bf16":
        # Read by oneDNN when it first builds a primitive, so before any forward.
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)
        return bf16_linear(model)
    return model


def precision_context(precision: Precision) -> AbstractContextManager[object]:
    """What a forward in ``precision`` runs under: bf16 autocast (the weights are
    bf16 already, see :func:`bf16_linear`), else nothing."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()
