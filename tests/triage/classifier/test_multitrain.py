"""Training the multilingual heads on tiny data with a fake encoder (fast), the
embedding cache, and the data helpers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from services.triage.classifier import multidata as md
from services.triage.classifier.data import TRAIN, Example
from services.triage.classifier.embedcache import EmbeddingCache
from services.triage.classifier.multilingual import (
    TASKS,
    MultiCalibration,
    MultilingualClassifier,
    MultiMetadata,
    save,
)
from services.triage.classifier.multitrain import as_matrix, logits_of, train_heads

DIM = 16
HATE_WORDS = ("vermin", "ungeziefer", "vermine", "حشرات")


class WordEncoder:
    """A fake encoder whose first dimension says "has a hateful word" and whose
    second says "starts like a question"; the rest is noise."""

    name = "fake-e5"
    dim = DIM

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        rows = []
        for text in texts:
            rng = np.random.default_rng(len(text))
            v = rng.normal(scale=0.1, size=DIM)
            v[0] = 1.0 if any(w in text.lower() for w in HATE_WORDS) else -1.0
            v[1] = 1.0 if text.lower().split()[0] in ("where", "wo", "où", "أين") else -1.0
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32)


def tiny() -> list[md.LangExample]:
    out = []
    for lang, word, where in (("en", "vermin", "where"), ("de", "Ungeziefer", "wo")):
        for i in range(12):
            out.append(md.LangExample(Example(f"they are {word} {i}", "x", TRAIN, 1, 1), lang))
            out.append(md.LangExample(Example(f"they are kind {i}", "x", TRAIN, 0, 0), lang))
            q = Example(f"{where} is school {i}?", "own-x", TRAIN, question=1)
            out.append(md.LangExample(q, lang))
            s = Example(f"school is here {i}.", "own-x", TRAIN, question=0)
            out.append(md.LangExample(s, lang))
    return md.with_stripped_questions(out, seed=1)


def test_heads_trained_on_tiny_data_carry_over_to_unseen_languages(tmp_path: Path) -> None:
    encoder = WordEncoder()
    cache = EmbeddingCache(tmp_path / "cache.sqlite", encoder.name, lambda: encoder)
    train = as_matrix(tiny(), cache)
    heads = train_heads(train, seed=0)
    logits = logits_of(heads, train)
    k = TASKS.index("hate")
    has = train.labels[:, k] >= 0
    assert ((logits[has, k] > 0) == (train.labels[has, k] == 1)).mean() >= 0.95
    meta = MultiMetadata(
        version="tiny",
        encoder=encoder.name,
        weights_sha256="",
        tasks={t: MultiCalibration() for t in TASKS},
    )
    save(tmp_path / "heads", heads, meta)
    classifier = MultilingualClassifier(encoder, tmp_path / "heads")
    fr, ar, q = classifier.classify(
        ["ils sont de la vermine", "إنهم حشرات وليسوا بشرا", "où est l'école"], ["fr", "ar", "fr"]
    )
    calm = classifier.classify(["ils sont gentils"], ["fr"])[0]
    assert fr.hate > 0.5 > calm.hate
    assert ar.hate > 0.5
    assert q.question > 0.5 > calm.question


def test_the_cache_embeds_each_text_once(tmp_path: Path) -> None:
    encoder = WordEncoder()
    cache = EmbeddingCache(tmp_path / "c.sqlite", encoder.name, lambda: encoder)
    first = cache.embed(["a b", "c d", "a b"])
    assert encoder.calls == 1
    again = EmbeddingCache(tmp_path / "c.sqlite", encoder.name, lambda: encoder).embed(["c d"])
    assert encoder.calls == 1
    np.testing.assert_array_equal(first[1], again[0])
    assert cache.missing(["a b", "new"]) == ["new"]


def test_end_punctuation_is_stripped_in_every_script() -> None:
    assert md.strip_end_punctuation("¿Dónde estás?") == "Dónde estás"
    assert md.strip_end_punctuation("أين أنت؟ ") == "أين أنت"
    assert md.strip_end_punctuation("Wo bist du?!") == "Wo bist du"
    assert md.strip_end_punctuation("¿Dónde estás?", opening=False) == "¿Dónde estás"
    assert md.strip_end_punctuation("¡Hola, amigos!", opening=False) == "¡Hola, amigos"
    examples = tiny()
    stripped = [le for le in examples if le.example.question == 1 and "?" not in le.example.text]
    assert stripped, "a share of the questions is added without its question mark"


def test_germeval_is_split_into_train_and_an_own_validation_set(tmp_path: Path) -> None:
    folder = tmp_path / "germeval"
    folder.mkdir()
    lines = [f"@user Text {i} |LBR| mehr\t{'OFFENSE' if i % 3 else 'OTHER'}\tX" for i in range(200)]
    (folder / "germeval2018.training.txt").write_text("\n".join(lines) + "\n")
    train, val = md.load_germeval(tmp_path, seed=13)
    assert len(train) + len(val) == 200
    assert 20 <= len(val) <= 60
    assert not {le.example.text for le in train} & {le.example.text for le in val}
    assert all(le.lang == "de" and "|LBR|" not in le.example.text for le in train)
    assert md.load_germeval(tmp_path, seed=13)[1] == val
