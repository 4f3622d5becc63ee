"""Language identification: right on sentences, undetermined rather than wrong on
short or ambiguous texts (the handmade set MIN_CONFIDENCE was measured on)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.common.langid import (
    LanguageDetector,
    clean_for_detection,
    default_detector,
    with_language,
)
from services.common.messages import LangSource, MentionReceived

SENTENCES = [
    ("en", "When will the clinic in the camp open again for children?"),
    ("en", "Thank you for the water deliveries, they arrived this morning."),
    ("fr", "Quand est-ce que la distribution de nourriture reprendra dans le camp"),
    ("fr", "Merci beaucoup pour votre aide, les familles sont très reconnaissantes."),
    ("de", "Wann öffnet die Schule im Lager wieder für die Kinder"),
    ("de", "Vielen Dank für eure Hilfe, das Wasser ist heute angekommen."),
    ("es", "¿Dónde podemos registrarnos para recibir la ayuda alimentaria?"),
    ("es", "Gracias por todo lo que hacen por las familias desplazadas."),
    ("ar", "متى سيتم فتح المدرسة في المخيم مرة أخرى؟"),
    ("ar", "شكرا جزيلا على المساعدة التي وصلت اليوم إلى العائلات"),
    ("ar", "متى يفتح المستشفى في المخيم"),
    ("sw", "Je, ni lini shule ya watoto itafunguliwa tena kambini"),
    ("sw", "Asante sana kwa msaada wenu, maji yamefika leo asubuhi."),
    ("so", "Goorma ayaa dugsiga xerada dib loo furayaa carruurta"),
    ("so", "Aad iyo aad ayaad u mahadsan tihiin gargaarka aad noo keenteen."),
    ("it", "Quando riaprirà la scuola nel campo per i bambini"),
    ("pt", "Quando a escola do acampamento vai reabrir para as crianças"),
    ("tr", "Kamptaki okul çocuklar için ne zaman yeniden açılacak"),
    ("nl", "Wanneer gaat de school in het kamp weer open voor de kinderen"),
]

UNDETERMINED = [
    "ok",
    "merci",
    "Danke",
    "lol 😂😂",
    "@TakeAction #water https://t.co/abc 🙏",
    "👍👍👍",
    "hahaha hahaha",  # Sesotho at 0.83: the most confident wrong answer measured
    "Mohamed Ali Hassan",
    "Kakuma Dadaab Mogadishu",
    "okay okay sure",
    "no no no no no no",
    "gracias amigo mio",
    "Inshallah habibi",
    "COVID vaccine UNHCR",
]


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return default_detector()


@pytest.mark.parametrize(("lang", "text"), SENTENCES)
def test_sentences_get_their_language(detector: LanguageDetector, lang: str, text: str) -> None:
    assert detector.detect(text) == lang


@pytest.mark.parametrize("text", UNDETERMINED)
def test_short_or_ambiguous_texts_stay_undetermined(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) is None


def test_the_cut_off_separates_right_from_wrong_on_the_set(detector: LanguageDetector) -> None:
    right = [detector.scored(text)[1] for _, text in SENTENCES]
    wrong = [detector.scored(text)[1] for text in UNDETERMINED]
    assert min(right) >= detector.min_confidence > max(wrong)


def test_links_handles_and_tags_are_not_language() -> None:
    text = "@TakeAction wann kommt das Wasser? https://t.co/x1 #Kakuma"
    assert clean_for_detection(text) == "wann kommt das Wasser?"


def test_a_confident_identifier_below_the_cut_off_abstains() -> None:
    class Unsure:
        def classify(self, text: str) -> tuple[str, float]:
            return "de", 0.5

        def rank(self, text: str) -> list[tuple[str, float]]:
            return [("de", 0.5), ("nl", 0.3), ("en", 0.01)]

    assert LanguageDetector(identifier=Unsure()).detect("irgendein langer deutscher Text") is None
    assert LanguageDetector(identifier=Unsure(), min_confidence=0.4).detect("x" * 20) == "de"
    # Abstaining on the tag, it still says how (un)likely a language is.
    assert LanguageDetector(identifier=Unsure()).probability("irgendein langer Text", "en") == 0.01
    assert LanguageDetector(identifier=Unsure()).probability("irgendein langer Text", "fr") == 0.0
    assert LanguageDetector(identifier=Unsure()).probability("kurz", "en") is None


def test_a_mention_without_a_language_gets_the_detected_one(
    mention_factory: Callable[..., MentionReceived],
) -> None:
    text = "Wie sieht ein normaler Schultag im Lager für die Kinder aus"
    untagged = mention_factory(text=text, lang=None)
    tagged = mention_factory(text="Wie sieht ein normaler Schultag im Lager aus", lang="en")
    too_short = mention_factory(text="ok!", lang=None)

    detected = with_language(untagged)

    assert (detected.lang, detected.lang_source, detected.schema_version) == (
        "de",
        LangSource.DETECTED,
        3,
    )
    assert with_language(tagged) is tagged  # the platform's tag is kept, even a wrong one
    assert with_language(too_short).lang is None
