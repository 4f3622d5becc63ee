"""The transformer classifier with the committed artefacts, end to end (fast: one load)."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from safetensors import safe_open

from services.triage.classifier import Classifier, Prediction, transformer
from services.triage.classifier.artefacts import (
    ARTEFACT_DIR,
    METADATA_FILE,
    WEIGHTS_FILE,
    ArtefactError,
    BaseModelMismatch,
    load_metadata,
)
from services.triage.classifier.model import TASKS, file_sha256
from services.triage.classifier.transformer import (
    MAX_GROUP_TOKENS,
    MAX_PADDING,
    TransformerClassifier,
    default_base_path,
    load_classifier,
    native_bf16,
)

CAMPAIGN = [
    "Ask refugees living in Kakuma and Dadaab camps in Kenya your questions",
    "What is daily life like for a refugee in a Kenyan camp?",
]

TEXTS = [
    "What do children do all day in the camp?",
    "@user you are a pathetic worthless idiot, shut the fuck up",
    "Thank you for sharing your story, sending love to everyone in Kakuma",
    "ok",
    "I had pasta for dinner and then watched the football match with my brother. " * 6,
    "How do you get clean water in Dadaab?",
    "🙏🏽🙏🏽",
    "",
]


@pytest.fixture(scope="module")
def classifier() -> TransformerClassifier:
    """fp32, whatever the CPU: the reference the other precisions are held to."""
    return TransformerClassifier(CAMPAIGN, precision="fp32")


@pytest.fixture(scope="module")
def bf16() -> TransformerClassifier:
    return TransformerClassifier(CAMPAIGN, precision="bf16")


def test_implements_the_classifier_port(classifier: TransformerClassifier) -> None:
    port: Classifier = classifier
    assert port.version == load_metadata(ARTEFACT_DIR).version


def test_artefacts_match_their_metadata() -> None:
    meta = load_metadata(ARTEFACT_DIR)
    assert meta.base_model_sha256 == file_sha256(default_base_path() / "model.safetensors")
    assert meta.weights_sha256 == file_sha256(ARTEFACT_DIR / WEIGHTS_FILE)
    with safe_open(str(ARTEFACT_DIR / WEIGHTS_FILE), framework="pt") as fh:
        keys = set(fh.keys())
        dtypes = {str(fh.get_tensor(k).dtype) for k in keys}
    layers = {int(k.split(".")[2]) for k in keys if k.startswith("encoder.layer.")}
    assert layers == set(meta.replaced_layers)
    assert any(k.startswith("heads.") for k in keys)
    assert dtypes == {"torch.float16"}
    size = sum(p.stat().st_size for p in ARTEFACT_DIR.iterdir())
    assert size < 12 * 2**20, f"artefacts are {size} bytes"


def test_scores_in_range_and_embeddings_normalised(classifier: TransformerClassifier) -> None:
    preds = classifier.classify(TEXTS)
    assert len(preds) == len(TEXTS)
    for p in preds:
        assert isinstance(p, Prediction)
        for score in (p.offensive, p.hate, p.question, p.relevance):
            assert 0.0 <= score <= 1.0
        assert p.embedding.dtype == np.float32
        assert p.embedding.shape == (384,)
        assert np.linalg.norm(p.embedding) == pytest.approx(1.0, abs=1e-4)


def test_input_order_is_kept_for_a_shuffled_batch(classifier: TransformerClassifier) -> None:
    texts = list(TEXTS)
    random.Random(7).shuffle(texts)
    shuffled = classifier.classify(texts)
    one_by_one = {t: classifier.classify([t])[0] for t in TEXTS}
    for text, pred in zip(texts, shuffled, strict=True):
        expected = one_by_one[text]
        assert pred.question == pytest.approx(expected.question, abs=1e-4)
        assert pred.offensive == pytest.approx(expected.offensive, abs=1e-4)
        np.testing.assert_allclose(pred.embedding, expected.embedding, atol=1e-4)


def test_question_scores_above_statement(classifier: TransformerClassifier) -> None:
    question, statement, bare = classifier.classify(
        [
            "Where do you go to school in the camp?",
            "I went to school in the city last year.",
            "where do you go to school in the camp",
        ]
    )
    assert question.question > classifier.thresholds["question"] > statement.question
    assert bare.question > statement.question


def test_insult_scores_above_kind_message(classifier: TransformerClassifier) -> None:
    insult, kind = classifier.classify(
        [
            "@user you are a pathetic worthless idiot, shut the fuck up",
            "Thank you for sharing your story, sending love to everyone in the camp",
        ]
    )
    assert insult.offensive > classifier.thresholds["offensive"] > kind.offensive
    assert insult.offensive > kind.offensive + 0.4


def test_relevance_higher_for_campaign_text(classifier: TransformerClassifier) -> None:
    campaign, unrelated = classifier.classify(
        [
            "What is life like for refugees in Kakuma camp?",
            "Best recipe for chocolate chip cookies",
        ]
    )
    assert campaign.relevance > 0.5 > unrelated.relevance


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀😀😀🔥",
        "word " * 2000,
        "مرحبا كيف حالك",
        "\u4f60\u597d\uff0c\u4f60\u5728\u8425\u5730\u91cc\u8fc7\u5f97\u600e\u4e48\u6837\uff1f",
        "@user @user https://t.co/abc",
        "\x00\t\n",
    ],
)
def test_awkward_input_does_not_crash(classifier: TransformerClassifier, text: str) -> None:
    (pred,) = classifier.classify([text])
    assert 0.0 <= pred.offensive <= 1.0
    assert np.isfinite(pred.embedding).all()


def test_empty_batch(classifier: TransformerClassifier) -> None:
    assert classifier.classify([]) == []


def test_batch_of_one_matches_batch_of_300(classifier: TransformerClassifier) -> None:
    rng = random.Random(3)
    batch = [rng.choice(TEXTS) + f" {i}" * rng.randint(0, 30) for i in range(299)]
    target = "Do you feel safe at night in the camp?"
    batch.insert(150, target)
    big = classifier.classify(batch)[150]
    (single,) = classifier.classify([target])
    for task in ("offensive", "hate", "question", "relevance"):
        assert getattr(big, task) == pytest.approx(getattr(single, task), abs=1e-4)
    np.testing.assert_allclose(big.embedding, single.embedding, atol=1e-4)


def test_a_mixed_batch_is_cut_into_groups_with_little_padding(
    classifier: TransformerClassifier,
) -> None:
    """A stream batch mixes one-word and 100-token tweets: each forward group holds
    texts of similar length, so padding stays under MAX_PADDING of its cells."""
    rng = random.Random(5)
    texts = [" ".join(["word"] * rng.randint(1, 110)) for _ in range(200)]
    groups = classifier._batches(texts)
    seen = sorted(i for idx, _, _ in groups for i in idx)
    assert seen == list(range(200))
    assert len(groups) > 200 / 64  # not one padded block per 64
    for idx, input_ids, attention_mask in groups:
        rows, width = input_ids.shape
        assert rows == len(idx) <= 64
        real = int(attention_mask.sum())
        if rows > 1:
            assert rows * width <= MAX_GROUP_TOKENS
            assert rows * width - real <= MAX_PADDING * rows * width
        for row, i in enumerate(idx):  # each row holds its own text
            assert int(attention_mask[row].sum()) == len(
                classifier._tokenizer(texts[i], truncation=True, max_length=128)["input_ids"]
            )


def _copy_artefacts(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(ARTEFACT_DIR, target)
    return target


def test_mismatched_base_is_refused(tmp_path: Path) -> None:
    target = _copy_artefacts(tmp_path)
    meta = json.loads((target / METADATA_FILE).read_text())
    meta["base_model_sha256"] = "0" * 64
    (target / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(BaseModelMismatch, match="sha256"):
        TransformerClassifier(artefacts_dir=target)


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    target = _copy_artefacts(tmp_path)
    with (target / WEIGHTS_FILE).open("r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(ArtefactError, match="does not match"):
        TransformerClassifier(artefacts_dir=target)


def test_missing_artefacts_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ArtefactError, match="no classifier metadata"):
        TransformerClassifier(artefacts_dir=tmp_path)


def test_plain_model_degrades_to_embedding_mode() -> None:
    degraded = TransformerClassifier(CAMPAIGN, artefacts_dir=None)
    assert degraded.mode == "embedding"
    assert degraded.version.startswith("degraded-embedding:")
    question, statement = degraded.classify(["How are you?", "Fine thanks"])
    assert question.offensive == 0.5
    assert question.question > statement.question
    assert np.linalg.norm(question.embedding) == pytest.approx(1.0, abs=1e-4)


def test_load_classifier_uses_the_artefacts_for_their_own_base() -> None:
    chosen = load_classifier(CAMPAIGN, model_path=default_base_path())
    assert chosen.mode == "full"


def test_sequence_classification_checkpoint_uses_its_own_labels(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification  # noqa: PLC0415

    model = AutoModelForSequenceClassification.from_pretrained(
        str(default_base_path()),
        num_labels=3,
        id2label={0: "not-offensive", 1: "offensive", 2: "hate"},
        label2id={"not-offensive": 0, "offensive": 1, "hate": 2},
    )
    model.save_pretrained(str(tmp_path))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(default_base_path() / name, tmp_path / name)
    degraded = load_classifier(CAMPAIGN, model_path=tmp_path)
    assert degraded.mode == "sequence-classification"
    (pred,) = degraded.classify(["What is the weather like?"])
    assert 0.0 <= pred.hate <= pred.offensive <= 1.0
    assert pred.question == pytest.approx(0.9)


def test_heads_trained_on_int8_states_run_int8_unless_overridden(tmp_path: Path) -> None:
    """``make train ARGS=--int8`` marks the artefacts ``quantized``: the classifier then
    runs int8 by default; forcing fp32 is allowed, logged, and shows in the version."""
    target = _copy_artefacts(tmp_path)
    meta = json.loads((target / METADATA_FILE).read_text())
    meta["quantized"] = True
    (target / METADATA_FILE).write_text(json.dumps(meta))
    int8 = TransformerClassifier(artefacts_dir=target)
    assert int8.precision == "int8"
    assert int8.version == meta["version"]
    forced = TransformerClassifier(artefacts_dir=target, precision="fp32")
    assert forced.precision == "fp32"
    assert forced.version == f"{meta['version']}+fp32"


def test_the_int8_option_scores_close_to_fp32(classifier: TransformerClassifier) -> None:
    """TRIAGE_PRECISION=int8: the same artefacts with int8 linear layers; scores move a
    little (the trade-off in the README), embeddings a little too."""
    int8 = TransformerClassifier(CAMPAIGN, precision="int8")
    assert int8.precision == "int8"
    assert classifier.precision == "fp32"
    texts = [
        "What do you study in the camp school?",
        "you are all disgusting idiots",
        "RT @x: thanks for sharing this story",
        "How far is the nearest hospital from Kakuma?",
    ]
    assert int8.version == f"{classifier.version}+int8"
    for fp32, q in zip(classifier.classify(texts), int8.classify(texts), strict=True):
        for task in ("offensive", "hate", "question", "relevance"):
            assert abs(getattr(fp32, task) - getattr(q, task)) < 0.2, task
        assert float(fp32.embedding @ q.embedding) > 0.85  # measured 0.89-0.95


def _mixed_batch(size: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(TEXTS) + f" {i}" * rng.randint(0, 30) for i in range(size)]


def test_bf16_scores_close_to_fp32(
    classifier: TransformerClassifier, bf16: TransformerClassifier
) -> None:
    """TRIAGE_PRECISION=bf16: bf16 matmuls, fp32 heads; measured on 1,000 OLID tweets:
    mean 0.0005, at most 0.013 from fp32."""
    assert bf16.precision == "bf16"
    assert bf16.version == f"{classifier.version}+bf16"  # recorded with every decision
    texts = [*TEXTS, *_mixed_batch(60, 5)]
    diffs = []
    for fp32, half in zip(classifier.classify(texts), bf16.classify(texts), strict=True):
        diffs += [abs(getattr(fp32, t) - getattr(half, t)) for t in TASKS]
        assert abs(fp32.relevance - half.relevance) < 0.05
        assert float(fp32.embedding @ half.embedding) > 0.999
        assert half.embedding.dtype == np.float32
    assert max(diffs) < 0.03
    assert float(np.mean(diffs)) < 0.005


def test_bf16_bounds_onednn_s_primitive_cache(bf16: TransformerClassifier) -> None:
    """Set before the first bf16 forward (oneDNN reads it once): about 240 MB less."""
    assert bf16.precision == "bf16"
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == transformer.ONEDNN_CACHE_CAPACITY


def test_bf16_scores_barely_depend_on_the_batch(bf16: TransformerClassifier) -> None:
    """Unlike dynamic int8 (up to 0.20), a replayed mention scores the same to 0.01
    whatever it is batched with (measured at most 0.004)."""
    batch = _mixed_batch(299, 3)
    target = "Do you feel safe at night in the camp?"
    batch.insert(150, target)
    big = bf16.classify(batch)[150]
    (single,) = bf16.classify([target])
    for task in ("offensive", "hate", "question", "relevance"):
        assert getattr(big, task) == pytest.approx(getattr(single, task), abs=0.01)
    assert float(big.embedding @ single.embedding) > 0.9999


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_only_on_cpus_with_a_bf16_unit(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: str
) -> None:
    monkeypatch.setattr(transformer, "native_bf16", lambda: native)
    auto = TransformerClassifier()
    assert auto.precision == expected
    meta = load_metadata(ARTEFACT_DIR)
    assert auto.version == (meta.version if expected == "fp32" else f"{meta.version}+bf16")


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        TransformerClassifier(precision="fp16")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n", True),
        ("processor\t: 0\nflags\t\t: fpu sse avx2 amx_bf16 amx_tile\n", True),
        ("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n", False),
        ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", True),
        ("processor\t: 0\nFeatures\t: fp asimd crc32\n", False),
        ("", False),
    ],
)
def test_native_bf16_reads_the_cpu_flags(tmp_path: Path, cpuinfo: str, expected: bool) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert native_bf16(path) is expected
    assert native_bf16(tmp_path / "absent") is False


@pytest.mark.parametrize(("limit_mb", "trims"), [(1, 1), (10**6, 0), (0, 0)])
def test_freed_heap_goes_back_to_the_os_only_above_the_limit(
    monkeypatch: pytest.MonkeyPatch, limit_mb: int, trims: int
) -> None:
    """TRIAGE_MEMORY_TRIM_MB: after a batch, trim only when RSS is above it (every call
    would cost about 18%); 0 never trims."""
    calls: list[None] = []
    monkeypatch.setattr(transformer, "return_freed_memory", lambda: calls.append(None))
    small = TransformerClassifier(precision="fp32", trim_above_mb=limit_mb)
    calls.clear()  # set_campaign may have run a forward
    small.classify(["Is there a school in the camp?"])
    assert len(calls) == trims


def test_resident_bytes_reads_this_process() -> None:
    rss = transformer.resident_bytes()
    assert rss is not None
    assert 50 * 2**20 < rss < 64 * 2**30


def test_load_classifier_passes_the_trim_limit_in_every_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base with our artefacts, and another local model in degraded mode."""
    calls: list[None] = []
    monkeypatch.setattr(transformer, "return_freed_memory", lambda: calls.append(None))
    other = tmp_path / "other"
    shutil.copytree(default_base_path(), other)
    (other / "model.safetensors").write_bytes(
        (default_base_path() / "model.safetensors").read_bytes()[:-1] + b" "
    )
    modes = []
    for path in (default_base_path(), other):
        loaded = load_classifier(model_path=path, precision="fp32", trim_above_mb=1)
        modes.append(loaded.mode)
        calls.clear()
        loaded.classify(["Is there a school in the camp?"])
        assert len(calls) == 1, loaded.mode
    assert modes == ["full", "embedding"]


def test_the_same_campaign_texts_are_embedded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A decider hands the rules' campaign texts over at start and at every reload:
    unchanged texts cost no forward pass (the worker paid ~0.6 s at each start)."""
    model = TransformerClassifier(["Ask a refugee a question"], precision="fp32")
    embedded: list[list[str]] = []
    embed = model._embed

    def counting(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        embedded.append(list(texts))
        return embed(texts)

    monkeypatch.setattr(model, "_embed", counting)
    model.set_campaign(["Ask a refugee a question"])
    assert embedded == []
    model.set_campaign(["Ask the camp about school"])
    assert embedded == [["Ask the camp about school"]]
    model.set_campaign([])
    assert model.relevance(np.ones((1, 384), dtype=np.float32))[0] == 0.0
