"""Training and validation data of the multilingual heads (:mod:`.multitrain`).

- German: GermEval 2018's training split (``germeval/``), task 1
  (``OFFENSE``/``OTHER``) as ``offensive``; a seeded 20 % of it is held out as
  this project's own German validation set (GermEval's test split is never
  read). ``hate``: ``OTHER`` is a negative, the fine labels say nothing about
  groups, so offensive tweets stay unlabelled for hate.
- English: a seeded subsample of the English path's training sources (OLID,
  HatEval, Davidson, DailyDialog and the counterfactual templates of
  :mod:`.augment`) — e5 is slow to run here, and the English path stays on
  MiniLM; the English rows teach the heads what the labels mean, e5's shared
  space carries them to other languages.
- The project's own multilingual texts (``multilingual_train.yaml``): short
  hateful and civil texts about groups and questions/statements in several
  languages, written for this project (separate wording from the functional
  suites and the question evaluation set, which are never trained on).

Questions: for a share of the question-labelled training texts the end
punctuation (``? ¿ ؟ . !``) is stripped and the stripped text added as
another example, so the question head does not rest on "?".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml  # type: ignore[import-untyped, unused-ignore]

from services.triage.classifier.augment import augmented_split
from services.triage.classifier.data import (
    MISSING,
    TRAIN,
    VAL,
    Example,
    bucket,
    load_corpus,
    normalise_text,
)

PACKAGE = Path(__file__).resolve().parent
OWN_TRAIN = PACKAGE / "multilingual_train.yaml"
SUITE = PACKAGE / "functional_suite_multilingual.yaml"
QUESTIONS = PACKAGE / "questions_multilingual.yaml"

#: English training texts kept per source (seeded subsample).
ENGLISH_PER_SOURCE = {
    "olid": 700,
    "hateval": 700,
    "davidson": 600,
    "dailydialog": 700,
    "augment": 500,
}
#: English validation texts kept per set (the e5-against-MiniLM comparison).
ENGLISH_VAL = {"olid": 500, "dailydialog": 400}
GERMEVAL_HELD_OUT = 0.2
#: Share of question-labelled training texts also added without end punctuation.
STRIP_SHARE = 0.8

#: Also the Greek question mark (";", U+037E) and the Devanagari full stops (। ॥).
_END = re.compile(r"[\s?¿؟\uff1f!.。…;\u037e।॥]+$")
_START = re.compile(r"^[¿¡]+")


def strip_end_punctuation(text: str, *, opening: bool = True) -> str:
    """``text`` without its final ``? ؟ ! .`` (and, unless ``opening`` is False, a
    Spanish opening ``¿ ¡``)."""
    text = _END.sub("", text.strip())
    return (_START.sub("", text) if opening else text).strip()


@dataclass(frozen=True, slots=True)
class LangExample:
    """An example with the language it is written in."""

    example: Example
    lang: str


def load_germeval(root: Path, *, seed: int) -> tuple[list[LangExample], list[LangExample]]:
    """(train, own validation) GermEval 2018 training-split tweets."""
    path = root / "germeval" / "germeval2018.training.txt"
    train: list[LangExample] = []
    val: list[LangExample] = []
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or parts[1] not in ("OFFENSE", "OTHER"):
                continue
            text = normalise_text(parts[0].replace("|LBR|", " "))
            offensive = int(parts[1] == "OFFENSE")
            hate = 0 if not offensive else MISSING
            held_out = bucket(f"germeval:{i}", seed) < GERMEVAL_HELD_OUT
            split = VAL if held_out else TRAIN
            example = Example(text, "germeval", split, offensive=offensive, hate=hate)
            (val if held_out else train).append(LangExample(example, "de"))
    return train, val


def _subsample(examples: list[Example], n: int, seed: int, source: str) -> list[Example]:
    ranked = sorted(examples, key=lambda e: bucket(f"{source}:{e.text}", seed))
    return ranked[:n]


def english(root: Path, *, seed: int) -> tuple[list[LangExample], dict[str, list[LangExample]]]:
    """(train, validation sets by name) English examples, subsampled."""
    corpus = load_corpus(root, seed=seed)
    train: list[LangExample] = []
    by_source: dict[str, list[Example]] = {}
    for e in corpus.train:
        by_source.setdefault(e.source, []).append(e)
    by_source["augment"] = augmented_split()[0]
    for source, n in ENGLISH_PER_SOURCE.items():
        train += [
            LangExample(e, "en") for e in _subsample(by_source.get(source, []), n, seed, source)
        ]
    val = {
        name: [LangExample(e, "en") for e in _subsample(corpus.val[name], n, seed, name)]
        for name, n in ENGLISH_VAL.items()
    }
    return train, val


def own_training(path: Path = OWN_TRAIN) -> list[LangExample]:
    """The project's own multilingual training texts (``multilingual_train.yaml``:
    ``abuse`` and ``questions``, each ``{lang: {kind: [texts]}}``)."""
    if not path.exists():
        return []
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: list[LangExample] = []
    labels = {
        "hateful": {"offensive": 1, "hate": 1},
        "abusive": {"offensive": 1, "hate": 0},
        "civil": {"offensive": 0, "hate": 0},
        "question": {"question": 1},
        "statement": {"question": 0},
    }
    for section in ("abuse", "questions"):
        for lang, kinds in doc[section].items():
            for kind, texts in kinds.items():
                for text in texts:
                    example = Example(
                        normalise_text(str(text)), f"own-{lang}", TRAIN, **labels[kind]
                    )
                    out.append(LangExample(example, str(lang)))
    return out


def with_stripped_questions(examples: list[LangExample], *, seed: int) -> list[LangExample]:
    """``examples`` plus, for a seeded share of the question-labelled ones, the
    text without end punctuation (same labels)."""
    out = list(examples)
    seen = {le.example.text for le in examples}
    for le in examples:
        e = le.example
        if e.question == MISSING or bucket(f"strip:{e.text}", seed) >= STRIP_SHARE:
            continue
        stripped = strip_end_punctuation(e.text)
        if stripped and stripped not in seen:
            seen.add(stripped)
            out.append(
                LangExample(Example(stripped, e.source, TRAIN, question=e.question), le.lang)
            )
    return out


@dataclass(frozen=True, slots=True)
class SuiteCase:
    lang: str
    text: str
    hateful: bool
    functionality: str


def load_suite(path: Path = SUITE) -> list[SuiteCase]:
    """The multilingual functional suite: ``{lang: {functionality: {hateful: bool,
    cases: [...]}}}``."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        SuiteCase(str(lang), str(text), bool(spec["hateful"]), str(name))
        for lang, functionalities in doc.items()
        for name, spec in functionalities.items()
        for text in spec["cases"]
    ]


def load_questions(path: Path = QUESTIONS, *, opening: bool = True) -> list[LangExample]:
    """The own question/statement evaluation set, end punctuation removed (and the
    Spanish opening marks too, unless ``opening`` is False)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for lang, kinds in doc.items():
        for kind, texts in kinds.items():
            for text in texts:
                clean = strip_end_punctuation(normalise_text(str(text)), opening=opening)
                out.append(
                    LangExample(
                        Example(clean, f"questions-{lang}", VAL, question=int(kind == "question")),
                        str(lang),
                    )
                )
    return out
