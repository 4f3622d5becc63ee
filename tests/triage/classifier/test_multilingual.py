"""The multilingual path and the language router, on fake encoders and fake paths."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from services.triage.classifier.base import CampaignRelevance, Classifier, Prediction
from services.triage.classifier.multilingual import (
    N_FEATURES,
    TASKS,
    Heads,
    LanguageRouter,
    MultiCalibration,
    MultilingualClassifier,
    MultiMetadata,
    available,
    mostly_latin,
    primary_language,
    question_features,
    save,
)

DIM = 8


class HashEncoder:
    """A deterministic fake encoder: one unit vector per text."""

    name = "fake-e5"
    dim = DIM

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            rng = np.random.default_rng(sum(map(ord, text)))
            v = rng.normal(size=DIM).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), DIM)


class FakePath:
    """A path that records its calls and marks its predictions with ``offensive``."""

    def __init__(self, version: str, offensive: float) -> None:
        self.version = version
        self.offensive = offensive
        self.calls: list[tuple[list[str], list[str | None]]] = []
        self.campaign: Sequence[str] = ()

    def classify(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        self.calls.append((list(texts), list(languages or [None] * len(texts))))
        return [
            Prediction(self.offensive, 0.0, 0.0, 0.0, np.zeros(DIM, dtype=np.float32))
            for _ in texts
        ]

    def set_campaign(self, texts: Sequence[str]) -> None:
        self.campaign = texts

    def relevance(
        self, embeddings: npt.NDArray[np.float32], *, path: str = "en"
    ) -> npt.NDArray[np.float64]:
        return np.full(len(embeddings), self.offensive)


def router() -> tuple[LanguageRouter, FakePath, FakePath]:
    en, multi = FakePath("minilm-1", 0.1), FakePath("e5-1", 0.9)
    return LanguageRouter(en, multi), en, multi


def test_the_router_sends_each_language_to_its_path_in_one_call_each() -> None:
    r, en, multi = router()
    texts = ["you idiot", "du Idiot", "أنت غبي", "tu es idiot", "ok cool then", "كلام"]
    langs: list[str | None] = ["en", "de-DE", "ar", "FR", None, None]
    out = r.classify(texts, langs)
    assert [p.path for p in out] == ["en", "multi", "multi", "multi", "en", "multi"]
    assert [p.offensive for p in out] == [0.1, 0.9, 0.9, 0.9, 0.1, 0.9]
    assert en.calls == [(["you idiot", "ok cool then"], ["en", None])]
    assert multi.calls == [
        (["du Idiot", "أنت غبي", "tu es idiot", "كلام"], ["de-DE", "ar", "FR", None])
    ]
    assert [p.model_version for p in out[:2]] == ["minilm-1", "e5-1"]
    assert r.version == "en:minilm-1+multi:e5-1"


def test_without_languages_latin_text_stays_english_and_a_batch_of_one_path_is_one_call() -> None:
    r, en, multi = router()
    out = r.classify(["hello there", "bonjour"])
    assert [p.path for p in out] == ["en", "en"]
    assert len(en.calls) == 1
    assert multi.calls == []
    assert r.classify([]) == []


def test_the_router_refuses_a_languages_list_of_another_length() -> None:
    r, _, _ = router()
    with pytest.raises(ValueError, match="languages"):
        r.classify(["a", "b"], ["en"])


def test_the_router_is_a_classifier_and_measures_relevance_in_each_paths_space() -> None:
    r, en, multi = router()
    assert isinstance(r, CampaignRelevance)
    classifier: Classifier = r
    assert classifier.version
    r.set_campaign(["What is school like?"])
    assert en.campaign == multi.campaign == ["What is school like?"]
    row = np.zeros((1, DIM), dtype=np.float32)
    assert r.relevance(row, path="multi")[0] == 0.9
    assert r.relevance(row)[0] == 0.1


def test_languages_are_read_by_their_primary_subtag_and_scripts_are_told_apart() -> None:
    assert primary_language("pt-BR") == "pt"
    assert primary_language("EN") == "en"
    assert primary_language("und") is None
    assert primary_language("") is None
    assert mostly_latin("Wo ist die Schule")
    assert not mostly_latin("أين المدرسة @user")
    assert mostly_latin("🙂 123")


def test_question_marks_of_every_script_are_features() -> None:
    feats = question_features(["¿Dónde estás", "أين أنت؟", "where are you? URL", "no"])
    assert feats[:, :2].tolist() == [[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]


def test_question_grammar_features_follow_the_language() -> None:
    texts = ["Wo wohnst du", "Kannst du uns schreiben", "Wir wohnen in Kakuma", "Was macht ihr"]
    feats = question_features(texts, ["de", "de-DE", "de", "en"])
    assert feats.shape == (4, N_FEATURES)
    assert feats[:, 2:].tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    # no language: no word list applies ("was" asks in German, not in English)
    assert question_features(["Wo wohnst du"])[0, 2:].tolist() == [0.0, 0.0]


def write_heads(directory: Path, *, de_shift: float = 0.0) -> MultiMetadata:
    weight = np.zeros((len(TASKS), DIM + N_FEATURES), dtype=np.float32)
    weight[0, 0] = 4.0  # offensive follows the first embedding dimension
    weight[2, DIM + 1] = 6.0  # question follows "ends with a question mark"
    bias = np.array([0.0, -2.0, -3.0], dtype=np.float32)
    # one hidden unit, far on GELU's linear side: logit = weight @ x + bias
    heads = Heads(
        weight[:, None, :],
        np.full((3, 1), 10.0, np.float32),
        np.ones((3, 1), np.float32),
        bias - 10.0,
    )
    tasks = {t: MultiCalibration() for t in TASKS}
    tasks["offensive"] = MultiCalibration(shifts={"de": de_shift})
    meta = MultiMetadata(version="e5-test", encoder="fake-e5", weights_sha256="", tasks=tasks)
    return save(directory, heads, meta)


def test_the_multilingual_classifier_scores_with_its_committed_heads(tmp_path: Path) -> None:
    write_heads(tmp_path, de_shift=2.0)
    assert available(tmp_path)
    encoder = HashEncoder()
    clf = MultilingualClassifier(encoder, tmp_path, campaign=["Was ist dein Traum?"])
    texts = ["Wo ist die Schule?", "Wo ist die Schule"]
    out = clf.classify(texts, ["de", "de"])
    assert all(p.path == "multi" and p.model_version == "e5-test" for p in out)
    assert out[0].question > 0.5 > out[1].question
    assert out[0].multilingual_embedding is not None
    np.testing.assert_allclose(out[0].embedding, out[0].multilingual_embedding)
    # the German decision point moves German offensive scores, not others'
    same = clf.classify(["Wo ist die Schule?"] * 2, ["de", "fr"])
    assert same[0].offensive < same[1].offensive
    assert 0.0 <= out[0].relevance <= 1.0
    assert clf.classify([]) == []


def test_heads_that_do_not_match_their_metadata_or_encoder_are_refused(tmp_path: Path) -> None:
    write_heads(tmp_path)

    class Other(HashEncoder):
        name = "another-encoder"

    class Wider(HashEncoder):
        dim = DIM + 2  # heads of another feature count (trained before a code change)

    with pytest.raises(ValueError, match="trained on"):
        MultilingualClassifier(Other(), tmp_path)
    with pytest.raises(ValueError, match="retrain"):
        MultilingualClassifier(Wider(), tmp_path)
    meta = tmp_path / "metadata.json"
    meta.write_text(meta.read_text().replace('"weights_sha256": "', '"weights_sha256": "0'))
    with pytest.raises(ValueError, match="sha256"):
        MultilingualClassifier(HashEncoder(), tmp_path)
    assert not available(tmp_path / "missing")


class FixedEnglish:
    """A language identifier that gives every text the same English probability."""

    def __init__(self, english: float | None) -> None:
        self.english = english
        self.asked: list[str] = []

    def probability(self, text: str, lang: str) -> float | None:
        assert lang == "en"
        self.asked.append(text)
        return self.english


@pytest.mark.parametrize(
    ("english", "path"),
    [(0.001, "multi"), (0.019, "multi"), (0.02, "en"), (0.9, "en"), (None, "en")],
)
def test_untagged_latin_text_that_is_plainly_not_english_goes_multilingual(
    english: float | None, path: str
) -> None:
    en, multi = FakePath("minilm-1", 0.1), FakePath("e5-1", 0.9)
    detector = FixedEnglish(english)
    r = LanguageRouter(en, multi, detector=detector)
    out = r.classify(["Qué asignatura te gusta más", "du Idiot", "كلام"], [None, "de", None])
    assert [p.path for p in out] == [path, "multi", "multi"]
    assert detector.asked == ["Qué asignatura te gusta más"]  # only untagged Latin text


def test_the_real_identifier_routes_short_untagged_questions_by_their_language() -> None:
    from services.common.langid import default_detector  # noqa: PLC0415

    en, multi = FakePath("minilm-1", 0.1), FakePath("e5-1", 0.9)
    r = LanguageRouter(en, multi, detector=default_detector())
    texts = [
        "Qué asignatura te gusta más",  # es 0.85 beside gl, an: langid abstains
        "Podemos enviarte algo",  # es 0.40, gl 0.21, pt 0.17
        "Welches Fach magst du am liebsten",
        "what do you want to be when you grow up",
        "lol same here honestly",
        "ok",
    ]
    assert [r.path_for(t, None) for t in texts] == ["multi", "multi", "multi", "en", "en", "en"]
