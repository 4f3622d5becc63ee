"""Triage in every language: the path and language on each decision, clusters across
languages in the e5 space (e5 embeddings asked for questions only, cached), and the
abuse rules, rules engine and priority reasons the same whatever the language."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from services.common.codec import decode, encode
from services.common.kafka import KafkaSettings
from services.common.messages import Decision, MentionClassified, MentionReceived, ModelPath
from services.triage.classifier.base import Prediction
from services.triage.classifier.bridge import Bridge, BridgeMetadata
from services.triage.classifier.multilingual import LanguageRouter
from services.triage.rules import normalise
from services.triage.worker.batch import BatchProcessor, Incoming
from services.triage.worker.cache import PredictionCache
from services.triage.worker.domain import Triage
from services.triage.worker.multilingual import MultilingualEmbedder, unit_rows
from services.triage.worker.text import aims_at_someone
from tests.triage.worker.helpers import (
    E1,
    E1_NEAR,
    E2,
    NOW,
    ListSink,
    MentionFactory,
    PredictionFactory,
    TriageFactory,
    vec,
)

# --- the path, version and language on every decision ----------------------------------


def test_decision_records_the_path_its_model_and_the_language(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    mention = mention_factory(text="Wie geht ihr im Lager zur Schule?", lang="de-AT")
    scored = prediction(path="multi", model_version="e5-heads-2026.12.04")

    result = triage().decide(mention, scored, now=NOW)

    assert result.schema_version == 2
    assert (result.model_path, result.model_version, result.model_language) == (
        ModelPath.MULTI,
        "e5-heads-2026.12.04",
        "de",
    )


def test_decision_on_the_english_path_names_the_classifier_version_when_the_prediction_has_none(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    result = triage().decide(mention_factory(lang=None), prediction(), now=NOW)

    assert (result.model_path, result.model_version, result.model_language) == (
        ModelPath.EN,
        "fake-1",
        None,
    )


def test_a_rule_decision_without_the_model_has_no_path(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    mention = mention_factory(text="parasites dehors", lang="fr")

    result = triage().prejudge(mention, now=NOW)

    assert result is not None
    assert result.decision is Decision.QUARANTINE
    assert (result.model_path, result.model_language) == (None, "fr")


def test_a_version_1_decision_still_decodes_and_cannot_carry_the_new_fields(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    current = triage().decide(mention_factory(), prediction(), now=NOW)
    old = current.model_dump(mode="json", exclude={"model_path", "model_language"})
    old["schema_version"] = 1

    decoded = MentionClassified.model_validate(old)

    assert (decoded.schema_version, decoded.model_path, decoded.model_language) == (1, None, None)
    with pytest.raises(ValueError, match="schema version 2"):
        MentionClassified.model_validate({**old, "model_path": "en"})


# --- clusters across languages ------------------------------------------------------------

#: e5 embeddings: the same question in two languages lies close, another one apart.
M_SCHOOL = vec(1.0, 0.1)
M_SCHOOL_FR = vec(1.0, 0.15)
M_WATER = vec(0.0, 0.0, 1.0)


def test_the_same_question_in_french_and_english_is_one_cluster_in_the_e5_space(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    decider = triage()
    decider.cluster_multilingually()
    english = mention_factory(text="How do the children go to school?", lang="en")
    french = mention_factory(text="Comment les enfants vont-ils à l'école ?", lang="fr")
    water = mention_factory(text="Où trouvez-vous de l'eau potable ?", lang="fr")

    # MiniLM embeddings far apart (as they are across languages); e5 ones close.
    first = decider.decide(
        english, prediction(embedding=E1, multilingual_embedding=M_SCHOOL), now=NOW
    )
    second = decider.decide(
        french, prediction(embedding=E2, multilingual_embedding=M_SCHOOL_FR, path="multi"), now=NOW
    )
    third = decider.decide(
        water, prediction(embedding=E2, multilingual_embedding=M_WATER, path="multi"), now=NOW
    )

    assert first.cluster_id is not None
    assert second.cluster_id == first.cluster_id
    assert third.cluster_id not in {None, first.cluster_id}
    # Each asker keeps the team of their own language.
    assert (first.team, second.team) == ("kakuma-a", "dadaab-b")


def test_an_answered_cluster_drops_its_near_duplicate_in_another_language(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    decider = triage()
    decider.cluster_multilingually()
    english = mention_factory(text="How do the children go to school?", lang="en")
    first = decider.decide(english, prediction(multilingual_embedding=M_SCHOOL), now=NOW)
    assert decider.answer_approved(english.id) == first.cluster_id

    french = mention_factory(text="Comment les enfants vont-ils à l'école ?", lang="fr")
    result = decider.decide(french, prediction(multilingual_embedding=M_SCHOOL_FR), now=NOW)

    assert (result.decision, result.rule) == (Decision.DROP, "answered_cluster")


def test_without_the_multilingual_space_languages_stay_apart(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    decider = triage()
    en = decider.decide(
        mention_factory(text="What do you miss most?", lang="en"), prediction(embedding=E1), now=NOW
    )
    fr = decider.decide(
        mention_factory(text="Qu'est-ce qui vous manque ?", lang="fr"),
        prediction(embedding=E1_NEAR),
        now=NOW,
    )

    assert en.cluster_id != fr.cluster_id


def test_an_english_question_without_its_e5_embedding_clusters_by_minilm_and_exact_text(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    decider = triage()
    decider.cluster_multilingually()
    text = "How do the children go to school?"
    a = decider.decide(mention_factory(text=text), prediction(), now=NOW)
    b = decider.decide(mention_factory(text=text + " #2"), prediction(), now=NOW)
    c = decider.decide(
        mention_factory(text="Is there a doctor?"), prediction(embedding=E2), now=NOW
    )
    d = decider.decide(mention_factory(text="How r kids going to school"), prediction(), now=NOW)

    assert a.cluster_id == b.cluster_id == d.cluster_id
    assert c.cluster_id != a.cluster_id


def test_only_a_cluster_s_first_english_question_pays_the_e5_pass(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    decider = triage()
    decider.cluster_multilingually()
    first = mention_factory(text="How do the children go to school?")
    assert decider.wants_multilingual_embedding(first, prediction())
    founded = decider.decide(first, prediction(multilingual_embedding=M_SCHOOL), now=NOW)
    french = decider.decide(
        mention_factory(text="Comment les enfants vont-ils à l'école ?", lang="fr"),
        prediction(embedding=E2, multilingual_embedding=M_SCHOOL_FR, path="multi"),
        now=NOW,
    )
    again = mention_factory(text="how do kids get to school")
    other = mention_factory(text="Is there a doctor in the camp?")

    # A rewording MiniLM puts in the English cluster needs no e5 pass and joins the
    # cluster the French asker is in; a new question does need one.
    assert not decider.wants_multilingual_embedding(again, prediction(embedding=E1_NEAR))
    assert decider.wants_multilingual_embedding(other, prediction(embedding=E2))
    joined = decider.decide(again, prediction(embedding=E1_NEAR), now=NOW)

    assert founded.cluster_id == french.cluster_id == joined.cluster_id
    assert decider.clusters.size_of(founded.cluster_id or "") == 3


def test_the_e5_threshold_comes_from_the_rules(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    decider = triage(clusters={"multilingual_similarity": 0.999})
    decider.cluster_multilingually()

    a = decider.decide(
        mention_factory(text="How do the children go to school?"),
        prediction(multilingual_embedding=M_SCHOOL),
        now=NOW,
    )
    b = decider.decide(
        mention_factory(text="Comment les enfants vont-ils à l'école ?", lang="fr"),
        prediction(multilingual_embedding=M_SCHOOL_FR),
        now=NOW,
    )

    assert decider.clusters.similarity == 0.999
    assert a.cluster_id != b.cluster_id


def test_only_questions_that_are_not_abuse_want_an_e5_embedding(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    decider = triage()
    mention = mention_factory(text="How do the children go to school")
    assert not decider.wants_multilingual_embedding(mention, prediction())  # not multilingual
    decider.cluster_multilingually()

    assert decider.wants_multilingual_embedding(mention, prediction())
    assert not decider.wants_multilingual_embedding(mention, prediction(question=0.1))
    assert not decider.wants_multilingual_embedding(mention, prediction(hate=0.9))
    assert not decider.wants_multilingual_embedding(
        mention, prediction(multilingual_embedding=M_SCHOOL)
    )
    # A question the head missed but a cue catches ("?") is clustered, so it wants one.
    cued = mention_factory(text="Geht ihr zur Schule?", lang="de")
    assert decider.wants_multilingual_embedding(cued, prediction(question=0.2))


# --- the batch: languages to the classifier, e5 embeddings for questions only ----------


class RouterLike:
    """A multilingual classifier: English on one path, the rest on e5; embeds on demand."""

    version = "router-1"

    def __init__(self) -> None:
        self.languages: list[list[str | None]] = []
        self.embedded: list[list[str]] = []

    def classify(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        langs: list[str | None] = list(languages) if languages is not None else [None] * len(texts)
        self.languages.append(langs)
        return [
            Prediction(
                offensive=0.02,
                hate=0.0,
                question=0.95 if "?" in text else 0.05,
                relevance=0.8,
                embedding=E1,
                path="en" if lang == "en" else "multi",
                model_version="minilm-1" if lang == "en" else "e5-1",
                multilingual_embedding=None if lang == "en" else M_SCHOOL_FR,
            )
            for text, lang in zip(texts, langs, strict=True)
        ]

    def embed_multilingual(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.embedded.append(list(texts))
        return np.stack([M_SCHOOL] * len(texts))


def _processor(classifier: RouterLike, decider: Triage, sink: ListSink) -> BatchProcessor:
    async def run_inline(
        c: Any, texts: list[str], languages: list[str | None] | None = None
    ) -> list[Prediction]:
        result: list[Prediction] = c.classify(texts, languages)
        return result

    return BatchProcessor(
        kafka=KafkaSettings(topic_prefix="p."),
        classifier=classifier,
        decider=decider,
        cache=PredictionCache(100),
        sink=sink,
        now=lambda: NOW,
        run_classifier=run_inline,
    )


def _records(mentions: Sequence[MentionReceived]) -> list[Incoming]:
    return [Incoming(m.id.encode(), encode(m), 0, i, 1.0) for i, m in enumerate(mentions)]


async def test_the_batch_routes_by_language_and_embeds_only_english_questions_once(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    router, sink = RouterLike(), ListSink()
    decider = triage()
    decider.use_model(router)  # a multilingual classifier: clusters across languages
    assert decider.multilingual_clusters
    processor = _processor(router, decider, sink)
    question_en = "How do the children go to school?"
    mentions = [
        mention_factory(text=question_en, lang="en-GB"),
        mention_factory(text="Comment les enfants vont-ils à l'école ?", lang="fr"),
        mention_factory(text="We stand with you all", lang="en"),
        mention_factory(text="Nous sommes avec vous", lang="fr"),
    ]

    await processor.process(_records(mentions))
    await processor.process(_records([mention_factory(text=question_en, lang="en")]))

    assert router.languages == [["en", "fr", "en", "fr"]]
    # One e5 pass, for the English question alone; its repeat came from the cache.
    assert router.embedded == [[question_en]]
    out = [decode(MentionClassified, r.value) for r in sink.on("p.mentions.classified")]
    assert [(c.model_path, c.model_version) for c in out] == [
        (ModelPath.EN, "minilm-1"),
        (ModelPath.MULTI, "e5-1"),
        (ModelPath.EN, "minilm-1"),
        (ModelPath.MULTI, "e5-1"),
        (ModelPath.EN, "minilm-1"),
    ]
    # The English and French question (and the repeat) share one cluster.
    assert out[0].cluster_id is not None
    assert out[0].cluster_id == out[1].cluster_id == out[4].cluster_id


async def test_the_same_text_in_another_language_is_classified_again(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    router, sink = RouterLike(), ListSink()
    processor = _processor(router, triage(), sink)
    text = "Karibu sana marafiki"

    await processor.process(_records([mention_factory(text=text, lang="sw")]))
    await processor.process(_records([mention_factory(text=text, lang=None)]))

    assert router.languages == [["sw"], [None]]


async def test_a_failed_e5_pass_leaves_the_question_decided(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    class Failing(RouterLike):
        def embed_multilingual(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
            raise RuntimeError("engine fell over")

    router, sink = Failing(), ListSink()
    decider = triage()
    decider.use_model(router)
    processor = _processor(router, decider, sink)

    report = await processor.process(
        _records([mention_factory(text="How do you go to school?", lang="en")])
    )

    assert report.classified == 1
    assert not report.dead_lettered


def test_the_router_shape_is_recognised_and_e5_rows_are_unit_length() -> None:
    assert isinstance(RouterLike(), MultilingualEmbedder)
    rows = unit_rows([[3.0, 4.0], [0.0, 0.0]])
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 0.0]])


# --- abuse, the rules engine and priority the same in every language --------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Espèce d'idiot, retourne chez toi", "fr"),
        ("T'es vraiment un parasite", "fr"),
        ("Du bist so ein Idiot", "de"),
        ("Eres un idiota", "es"),
        ("يا حمار", "ar"),
        ("أنت غبي جدا", "ar"),
        ("Wewe ni mjinga kabisa", "sw"),
        ("Adiga waxaad tahay doqon", "so"),
        ("Die Flüchtlinge sind Abschaum", "de"),
        ("Bunu yapan salak", "hy"),  # a language without a word list: taken as aimed
    ],
)
def test_insults_in_other_languages_are_aimed_at_someone(text: str, lang: str) -> None:
    assert aims_at_someone(text, lang)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Quelle chaleur de merde aujourd'hui", "fr"),
        ("Scheißwetter heute", "de"),
        ("Qué calor de mierda", "es"),
    ],
)
def test_profanity_aimed_at_no_one_is_not_abuse_in_other_languages_either(
    text: str, lang: str
) -> None:
    assert not aims_at_someone(text, lang)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Espèce d'idiot", "fr"),
        ("Du bist so ein Idiot", "de"),
        ("يا حمار", "ar"),
    ],
)
def test_an_offensive_insult_is_quarantined_in_every_language(
    triage: TriageFactory,
    mention_factory: MentionFactory,
    prediction: PredictionFactory,
    text: str,
    lang: str,
) -> None:
    scored = prediction(offensive=0.93, question=0.05, relevance=0.1, path="multi")

    result = triage().decide(mention_factory(text=text, lang=lang), scored, now=NOW)

    assert (result.decision, result.rule) == (Decision.QUARANTINE, "offensive")


def test_block_keywords_match_arabic_however_it_is_voweled(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    assert normalise("غَبِـيّ") == normalise("غبي")
    decider = triage(block={"keywords": ["غبي"]})

    result = decider.prejudge(mention_factory(text="أنت غَبِـيّ", lang="ar"), now=NOW)

    assert result is not None
    assert (result.decision, result.rule) == (Decision.QUARANTINE, "blocked_keyword")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Was vermisst ihr am meisten an zu Hause?", "de"),
        ("ما الذي تفتقدونه أكثر من الوطن؟", "ar"),
        ("Ni nini mnachokikosa zaidi nyumbani", "sw"),
    ],
)
def test_priority_reasons_are_the_same_in_every_language(
    triage: TriageFactory,
    mention_factory: MentionFactory,
    prediction: PredictionFactory,
    text: str,
    lang: str,
) -> None:
    routing = {"routing": {"teams": {"en": "kakuma-a", lang: "kakuma-a"}, "fallback": None}}
    decider = triage(**routing)
    english = decider.decide(
        mention_factory(text="What do you miss most about home?", lang="en"),
        prediction(embedding=E1),
        now=NOW,
    )
    other = triage(**routing).decide(
        mention_factory(text=text, lang=lang), prediction(embedding=E1, path="multi"), now=NOW
    )

    assert (other.decision, other.priority) == (english.decision, english.priority)
    assert [(r.factor, r.points) for r in other.reasons] == [
        (r.factor, r.points) for r in english.reasons
    ]


def test_the_language_router_embeds_english_questions_in_the_e5_space() -> None:
    class Fixed:
        """A path that scores every text alike (its version names it)."""

        def __init__(self, version: str, e5: npt.NDArray[np.float32] | None) -> None:
            self.version, self.e5 = version, e5

        def classify(
            self, texts: Sequence[str], languages: Sequence[str | None] | None = None
        ) -> list[Prediction]:
            return [
                Prediction(0.0, 0.0, 0.9, 0.5, E1, multilingual_embedding=self.e5) for _ in texts
            ]

        def set_campaign(self, texts: Sequence[str]) -> None: ...

        def relevance(
            self, embeddings: npt.NDArray[np.float32], *, path: str = "en"
        ) -> npt.NDArray[np.float64]:
            return np.zeros(len(embeddings))

    router = LanguageRouter(Fixed("minilm", None), Fixed("e5", M_WATER))

    rows = router.embed_multilingual(["Where do you get water?", "Is there a doctor?"])

    assert isinstance(router, MultilingualEmbedder)
    np.testing.assert_allclose(rows, np.stack([M_WATER, M_WATER]))
    assert router.embed_multilingual([]).shape == (0, 0)


def test_with_a_bridge_english_questions_join_other_languages_without_an_e5_pass(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    # A bridge that maps MiniLM's E1 to e5's M_SCHOOL (and anything else near it).
    weight = np.zeros((len(E1) + 1, len(M_SCHOOL)), dtype=np.float32)
    weight[0] = M_SCHOOL
    decider = triage()
    decider.cluster_multilingually(
        Bridge(weight, BridgeMetadata("b-1", "fake-1", "e5", 2, 1.0, 0.9, 0.8))
    )
    english = mention_factory(text="How do the children go to school?")

    assert not decider.wants_multilingual_embedding(english, prediction())
    founded = decider.decide(english, prediction(), now=NOW)
    french = decider.decide(
        mention_factory(text="Comment les enfants vont-ils à l'école ?", lang="fr"),
        prediction(embedding=E2, multilingual_embedding=M_SCHOOL_FR, path="multi"),
        now=NOW,
    )

    assert founded.cluster_id == french.cluster_id


@pytest.mark.parametrize(("bridged", "together"), [(True, True), (False, False)])
def test_a_bridged_cluster_is_joined_at_the_bridged_threshold(
    triage: TriageFactory,
    mention_factory: MentionFactory,
    prediction: PredictionFactory,
    bridged: bool,
    together: bool,
) -> None:
    """Cosine 0.91: above the bridged threshold (0.90), below the e5 one (0.92)."""
    e5_english, e5_french = vec(1.0), vec(1.0, 0.4556)
    weight = np.zeros((len(E1) + 1, len(e5_english)), dtype=np.float32)
    weight[0] = e5_english
    decider = triage(clusters={"multilingual_similarity": 0.92, "bridged_similarity": 0.90})
    decider.cluster_multilingually(
        Bridge(weight, BridgeMetadata("b-1", "fake-1", "e5", 2, 1.0, 0.9, 0.8)) if bridged else None
    )
    english = decider.decide(
        mention_factory(text="How do the children go to school?"),
        prediction(multilingual_embedding=None if bridged else e5_english),
        now=NOW,
    )
    french = decider.decide(
        mention_factory(text="Comment les enfants vont-ils à l'école ?", lang="fr"),
        prediction(embedding=E2, multilingual_embedding=e5_french, path="multi"),
        now=NOW,
    )

    assert (english.cluster_id == french.cluster_id) is together
