"""The packed-token encoder against BertModel's own forward, and the classifier on it."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from services.triage.classifier import packed, transformer
from services.triage.classifier.packed import PackedEncoder
from services.triage.classifier.precision import quantize_int8
from services.triage.classifier.transformer import TransformerClassifier, default_base_path

TEXTS = [
    "What do children do all day in the camp?",
    "ok",
    "@user you are a pathetic worthless idiot " * 5,
    "How do you get clean water in Dadaab?",
    "🙏🏽",
    "Thank you for sharing your story, sending love to everyone in Kakuma and Dadaab",
]


def base_model() -> PreTrainedModel:
    model: PreTrainedModel = AutoModel.from_pretrained(str(default_base_path())).eval()
    return model


@pytest.fixture(scope="module")
def base() -> tuple[PreTrainedModel, object]:
    path = str(default_base_path())
    return base_model(), AutoTokenizer.from_pretrained(path)


def _reference(model: PreTrainedModel, tokenizer: object, texts: list[str]) -> tuple:  # type: ignore[type-arg]
    enc = tokenizer(texts, padding=True, return_tensors="pt")  # type: ignore[operator]
    with torch.inference_mode():
        out = model(**enc, output_hidden_states=True)
    return out.hidden_states, enc["attention_mask"]


@pytest.mark.parametrize(
    "order",
    [list(range(6)), [5, 4, 3, 2, 1, 0], [3, 0, 3, 5, 1, 0, 4, 2, 1]],
    ids=["given", "longest-first", "shuffled-with-repeats"],
)
def test_fp32_states_equal_bert_models_own(
    base: tuple[PreTrainedModel, object], order: list[int]
) -> None:
    """Every layer's states of every real token, in the order the texts were given,
    whatever that order (the encoder lays them out shortest first inside, texts of
    one length sharing one attention call)."""
    model, tokenizer = base
    texts = [TEXTS[i] for i in order]
    ids = [tokenizer(t)["input_ids"] for t in texts]  # type: ignore[operator]
    hidden, mask = _reference(model, tokenizer, texts)
    encoder = PackedEncoder(model, torch.float32)
    layers = list(range(encoder.num_layers + 1))
    with torch.inference_mode():
        states = encoder.encode(ids, layers)
    assert states.lengths.tolist() == [len(x) for x in ids]
    padded, packed_mask = states.padded(list(range(len(texts))))
    assert torch.equal(packed_mask, mask)
    for layer in layers:
        got = padded[layer]
        want = hidden[layer] * mask.unsqueeze(-1)
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def test_texts_of_one_length_form_one_run_of_tokens() -> None:
    assert packed._equal_length_runs([]) == []
    assert packed._equal_length_runs([3, 3, 5, 7, 7, 7]) == [(0, 2, 3), (6, 1, 5), (11, 3, 7)]
    assert packed._equal_length_runs([4, 2, 4]) == [(0, 1, 4), (4, 1, 2), (6, 1, 4)]


def test_token_counts_are_rounded_to_a_few_shapes() -> None:
    """Fewer than 64 more rows or at most 1/8 more, and few distinct counts: oneDNN
    keeps a primitive per shape, so a stream's calls reuse them instead of building
    anew."""
    for rows in range(1, 20_000, 7):
        padded = packed.padded_rows(rows)
        assert padded % 64 == 0
        assert rows <= padded < rows + 64 or padded <= rows + rows // 8
    assert len({packed.padded_rows(rows) for rows in range(1, 16_385)}) == 48


def test_the_products_see_the_rounded_count_and_a_calibration_the_real_one(
    base: tuple[PreTrainedModel, object],
) -> None:
    model, tokenizer = base
    encoder = PackedEncoder(model, torch.float32)
    seen: list[int] = []
    layer = encoder._layers[0]
    real_qkv = layer.qkv

    def spying(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return real_qkv(x)

    object.__setattr__(layer, "qkv", spying)
    calls: list[list[list[int]]] = [
        [tokenizer(t)["input_ids"] for t in texts]  # type: ignore[operator]
        for texts in (TEXTS[:3], TEXTS[1:5], TEXTS)
    ]
    with torch.inference_mode():
        for ids in calls:
            encoder.encode(ids, [1])
    real = [sum(len(x) for x in ids) for ids in calls]
    assert len(set(real)) == 3
    assert seen == [packed.padded_rows(n) for n in real]
    assert len(set(seen)) < len(set(real))

    observed: list[int] = []
    encoder.observe(lambda n, kind, x: observed.append(x.shape[0]) if kind == "qkv" else None)
    with torch.inference_mode():
        encoder.encode(calls[2], [1])
    assert observed[0] == real[2]


def test_padded_rows_follow_the_requested_order(base: tuple[PreTrainedModel, object]) -> None:
    model, tokenizer = base
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]  # type: ignore[operator]
    encoder = PackedEncoder(model, torch.float32)
    with torch.inference_mode():
        states = encoder.encode(ids, [encoder.num_layers])
    (pair,), mask = states.padded([3, 1])
    assert pair.shape[:2] == mask.shape == (2, len(ids[3]))
    assert mask[1].sum() == len(ids[1])
    assert torch.count_nonzero(pair[1, len(ids[1]) :]) == 0  # zeros in the padding
    (alone,), _ = states.padded([1])
    torch.testing.assert_close(pair[1, : len(ids[1])], alone[0])


def test_bf16_states_stay_close_to_autocast(base: tuple[PreTrainedModel, object]) -> None:
    """The packed bf16 path keeps BertModel-under-autocast's numerics (fp32 residual
    stream and LayerNorm): as close to it as autocast itself is to fp32."""
    model, tokenizer = base
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]  # type: ignore[operator]
    fp32, mask = _reference(model, tokenizer, TEXTS)
    encoder = PackedEncoder(transformer.with_precision(base_model(), "bf16"), torch.bfloat16)
    with torch.inference_mode():
        (last,), _ = encoder.encode(ids, [encoder.num_layers]).padded(list(range(6)))
    diff = (last - fp32[-1] * mask.unsqueeze(-1)).abs().max()
    assert 0 < diff < 0.05


def test_only_plain_float_bert_encoders_qualify(base: tuple[PreTrainedModel, object]) -> None:
    model, _ = base
    assert PackedEncoder.supports(model)
    int8 = quantize_int8(base_model())
    assert not PackedEncoder.supports(int8)
    with pytest.raises(ValueError, match="not a plain BERT encoder"):
        PackedEncoder(int8, torch.float32)


@pytest.fixture(scope="module")
def pair() -> tuple[TransformerClassifier, TransformerClassifier]:
    return (
        TransformerClassifier(precision="fp32"),
        TransformerClassifier(precision="fp32", packed=False),
    )


def _mixed(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = [
        "camp",
        "water",
        "school",
        "refugee",
        "question",
        "why",
        "how",
        "you",
        "idiot",
        "love",
        "Kakuma",
    ]
    return [" ".join(rng.choices(words, k=rng.randint(1, 90))) for _ in range(n)]


def test_the_classifier_scores_the_same_packed_or_padded(
    pair: tuple[TransformerClassifier, TransformerClassifier],
) -> None:
    packed, padded = pair
    assert packed._packed is not None
    assert padded._packed is None
    texts = TEXTS + _mixed(120, 3)
    got_scores, got_emb = packed._forward(texts)
    want_scores, want_emb = padded._forward(texts)
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)
    np.testing.assert_allclose(got_emb, want_emb, atol=1e-5)


def test_a_large_call_is_encoded_in_several_passes(
    pair: tuple[TransformerClassifier, TransformerClassifier],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PACKED_TOKENS bounds one pass's tokens: the same scores in small passes."""
    packed, _ = pair
    texts = _mixed(80, 9)
    whole, _ = packed._forward(texts)
    calls: list[int] = []
    encode = PackedEncoder.encode

    def counting(self: PackedEncoder, ids, layers):  # type: ignore[no-untyped-def]
        calls.append(sum(len(x) for x in ids))
        return encode(self, ids, layers)

    monkeypatch.setattr(PackedEncoder, "encode", counting)
    monkeypatch.setattr(transformer, "PACKED_TOKENS", 300)
    parts, _ = packed._forward(texts)
    assert len(calls) > 3
    assert max(calls) <= 300  # a pass closes before the text that would pass the limit
    np.testing.assert_allclose(parts, whole, atol=1e-5)


def test_int8_and_the_degraded_modes_keep_bert_models_forward() -> None:
    assert TransformerClassifier(precision="int8")._packed is None
    assert TransformerClassifier(artefacts_dir=None)._packed is None


def test_nothing_to_score_is_no_error(
    pair: tuple[TransformerClassifier, TransformerClassifier],
) -> None:
    scores, embeddings = pair[0]._forward([])
    assert scores.shape == (0, 3)
    assert embeddings.shape == (0, 384)


def _onednn_bf16() -> bool:
    """torch's oneDNN linear takes bf16 only where the CPU has AVX-NE-CONVERT or
    AVX-512 BW, VL and DQ (its bf16 device check); elsewhere it refuses (a
    RuntimeError) and the encoder keeps F.linear."""
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            return "avx_ne_convert" in flags or {"avx512bw", "avx512vl", "avx512dq"} <= flags
    return False


def test_the_linear_layers_run_as_onednn_products_with_the_gelu_fused(
    base: tuple[PreTrainedModel, object],
) -> None:
    """torch 2.13's x86 CPU build has the ops: the fast path is on for fp32 (whose
    states equal BertModel's above through it) and, where oneDNN takes bf16, for bf16,
    which agrees with F.linear and a separate GELU."""
    model, tokenizer = base
    assert packed.fused_linear_works(torch.float32)
    assert packed.fused_linear_works(torch.bfloat16) == _onednn_bf16()
    assert PackedEncoder(model, torch.float32).fused
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]  # type: ignore[operator]
    bf16 = transformer.with_precision(base_model(), "bf16")
    fused = PackedEncoder(bf16, torch.bfloat16)
    plain = PackedEncoder(bf16, torch.bfloat16, fused=False)
    assert fused.fused == _onednn_bf16()
    assert not plain.fused
    layers = [fused.num_layers]
    with torch.inference_mode():
        (got,) = fused.encode(ids, layers).layers
        (want,) = plain.encode(ids, layers).layers
    difference = (got - want).abs().max()
    if fused.fused:
        assert 0 < difference < 0.05  # GELU on the unrounded sums
    else:
        assert difference == 0


@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_fused_linear_layer_equals_f_linear(gelu: bool, dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(1536, 384, generator=generator) / 20
    bias = torch.randn(1536, generator=generator)
    x = torch.randn(75, 384, generator=generator).to(dtype)
    fused = packed._Linear(weight, bias, dtype, gelu=gelu)
    plain = packed._Linear(weight, bias, dtype, gelu=gelu, fused=False)
    assert fused.fused == (dtype == torch.float32 or _onednn_bf16())
    assert not plain.fused
    with torch.inference_mode():
        got, want = fused(x), plain(x)
    assert got.dtype == want.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float32 else 0.04
    torch.testing.assert_close(got.float(), want.float(), atol=tolerance, rtol=tolerance)


def test_without_onednn_the_encoder_keeps_f_linear(
    base: tuple[PreTrainedModel, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert not packed.fused_linear_works.__wrapped__(torch.float32)
    packed.fused_linear_works.cache_clear()
    try:
        model, tokenizer = base
        encoder = PackedEncoder(model, torch.float32)
        assert not encoder.fused
        ids = [tokenizer(t)["input_ids"] for t in TEXTS]  # type: ignore[operator]
        hidden, mask = _reference(model, tokenizer, TEXTS)
        with torch.inference_mode():
            (last,), _ = encoder.encode(ids, [encoder.num_layers]).padded(list(range(6)))
        torch.testing.assert_close(last, hidden[-1] * mask.unsqueeze(-1), atol=2e-5, rtol=1e-4)
    finally:
        packed.fused_linear_works.cache_clear()
