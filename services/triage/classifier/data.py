"""Training and validation data for the classifier heads.

Reads the public data sets described in ``../shared/data/README.md`` from
``TRIAGE_DATA_DIR`` (default ``../shared/data`` next to the repository root);
nothing is ever copied into the repository. Every split is deterministic: it
depends on the seed and the row/dialogue index only (sha256, no RNG state).

One :class:`Example` carries up to three labels. A task a data set says
nothing about is :data:`MISSING` and contributes no loss. Labels derived by an
implication (not by a heuristic) are documented where they are set:

- OLID (TweetEval offensive): ``offensive``; ``not offensive`` implies
  ``not hate`` (hate speech is a subset of offensive language).
- HatEval (TweetEval hate): ``hate``; ``hate`` implies ``offensive``; a
  not-hate training tweet naming a group civilly is an ``offensive`` negative
  (:func:`load_hateval`).
- Davidson: class 0 hate (also offensive), 1 offensive, 2 neither. Its caveats
  (see the paper and the README): the "hate" class is small (6 %) and noisy,
  labels lean on slurs and on African-American English, and the "offensive"
  class is dominated by a few words. It is therefore subsampled (all hate, a
  slice of the rest) and used as a second source, never for tuning.
- DailyDialog: ``question`` is dialogue act 2. Scripted textbook dialogue, so
  ``offensive`` and ``hate`` are set to 0 (an assumption, training only).

Training-only augmentations (never used as evaluation ground truth):

- ``dailydialog-noqmark``: training questions with their ``?`` removed,
  label kept, so the question head learns wording as well as punctuation
  (tweets often drop the ``?``).
- ``question`` = 0 for training tweets with no ``?`` that do not start with
  a question word (:func:`looks_like_statement`) — a heuristic, weighted down
  in the loss, so the head sees tweet-style negatives.
"""

from __future__ import annotations

import csv
import hashlib
import html
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from services.triage.classifier.deobfuscate import ABUSIVE_WORDS, GROUP_WORDS, deobfuscate

MISSING = -1
"""Label value for "this data set says nothing about this task"."""

TRAIN = "train"
VAL = "val"

REPO_ROOT = Path(__file__).resolve().parents[3]

_MENTION = re.compile(r"@\w+")
_URL = re.compile(r"https?://\S+|www\.\S+")
_RT = re.compile(r"^\s*(?:!+\s*)?\"?RT\s+(?=@user)")
_SPACES = re.compile(r"\s+")
_QUESTION_START = re.compile(
    r"^(?:@user\s+)*(?:who|whom|whose|what|when|where|why|how|which|is|are|am|was|were|do|"
    r"does|did|can|could|would|will|should|shall|may|might|have|has|had|isn't|aren't|"
    r"don't|doesn't|didn't|can't|won't|wouldn't|shouldn't|any|anyone|anybody)\b",
    re.IGNORECASE,
)


@lru_cache(maxsize=32_768)
def normalise_text(text: str) -> str:
    """The text normalisation shared by training and inference.

    Memoised: the worker normalises a text for its cache key and the classifier
    again before the model; repeats and retweets come back to the same text.

    Mentions become ``@user`` and links ``URL`` (as in TweetEval/OLID), HTML
    entities are unescaped (Davidson keeps them escaped), a leading retweet
    marker is dropped, whitespace is collapsed, and obfuscated spellings of
    abusive words and group names ("1d10t", "r e f u g e e s") are restored
    (:func:`~services.triage.classifier.deobfuscate.deobfuscate`).
    """
    text = html.unescape(text)
    text = _MENTION.sub("@user", text)
    text = _URL.sub("URL", text)
    text = _RT.sub("", text)
    return deobfuscate(_SPACES.sub(" ", text).strip())


def looks_like_statement(text: str) -> bool:
    """Heuristic for the weak question negatives: no ``?`` and no question word first."""
    return "?" not in text and _QUESTION_START.match(text) is None


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    source: str
    split: str
    offensive: int = MISSING
    hate: int = MISSING
    question: int = MISSING


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """``override``, else ``TRIAGE_DATA_DIR``, else ``../shared/data`` from the repo root."""
    if override is not None:
        return Path(override)
    env = os.environ.get("TRIAGE_DATA_DIR")
    if env:
        return Path(env)
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def bucket(key: str, seed: int) -> float:
    """A deterministic number in [0, 1) for ``key``: sha256, independent of any RNG."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _read_lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh]


def _tweeteval(root: Path, task: str, split: str) -> list[tuple[str, int]]:
    texts = _read_lines(root / "tweeteval" / task / f"{split}_text.txt")
    labels = [int(x) for x in _read_lines(root / "tweeteval" / task / f"{split}_labels.txt") if x]
    if len(texts) != len(labels):
        raise ValueError(f"tweeteval/{task}/{split}: {len(texts)} texts, {len(labels)} labels")
    return [(normalise_text(t), y) for t, y in zip(texts, labels, strict=True)]


def _weak_question(text: str) -> int:
    return 0 if looks_like_statement(text) else MISSING


def load_olid(root: Path, split: str) -> list[Example]:
    out = []
    for text, y in _tweeteval(root, "offensive", split):
        question = _weak_question(text) if split == TRAIN else MISSING
        out.append(
            Example(
                text, "olid", split, offensive=y, hate=0 if y == 0 else MISSING, question=question
            )
        )
    return out


_WORDS = re.compile(r"[a-z]+")


def names_group_civilly(text: str) -> bool:
    """The text names a group hate targets (refugees, women, ...) and uses none
    of the insults, profanity, slurs or threats of :data:`ABUSIVE_WORDS`."""
    words = set(_WORDS.findall(text.lower()))
    return bool(words & GROUP_WORDS) and not words & ABUSIVE_WORDS


def load_hateval(root: Path, split: str, *, civil_negatives: bool = True) -> list[Example]:
    """HatEval: ``hate``; ``hate`` implies ``offensive``.

    With ``civil_negatives`` (training), a not-hate tweet that names a target
    group civilly (:func:`names_group_civilly`) is also an ``offensive``
    negative — a hard negative mined against the shortcut "names immigrants
    => offensive" (without it HatEval contributes offensive positives only).
    Other not-hate tweets stay unlabelled for ``offensive``: many are crude
    (HatEval's not-hate is not "not offensive").
    """
    out = []
    for text, y in _tweeteval(root, "hate", split):
        question = _weak_question(text) if split == TRAIN else MISSING
        offensive = 1 if y == 1 else MISSING
        if y == 0 and civil_negatives and split == TRAIN and names_group_civilly(text):
            offensive = 0
        out.append(Example(text, "hateval", split, offensive=offensive, hate=y, question=question))
    return out


def load_davidson(
    root: Path,
    *,
    seed: int,
    held_out: float = 0.2,
    train_per_class: Sequence[int] = (100_000, 1_500, 2_000),
    val_size: int = 2_000,
) -> tuple[list[Example], list[Example]]:
    """(train, held-out) Davidson examples, split by row and then subsampled.

    The train part keeps at most ``train_per_class[c]`` rows of class ``c``
    (default: every hate row, a slice of the rest); the held-out part is a
    sample of ``val_size`` rows with the natural class mix.
    """
    train: list[Example] = []
    val: list[Example] = []
    kept = [0, 0, 0]
    with (root / "davidson" / "labeled_data.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    order = sorted(range(len(rows)), key=lambda i: bucket(f"davidson-order:{i}", seed))
    for i in order:
        row = rows[i]
        cls = int(row["class"])
        text = normalise_text(row["tweet"])
        ex = Example(text, "davidson", TRAIN, offensive=int(cls in (0, 1)), hate=int(cls == 0))
        if bucket(f"davidson:{i}", seed) < held_out:
            if len(val) < val_size:
                val.append(Example(text, "davidson", VAL, ex.offensive, ex.hate))
        elif kept[cls] < train_per_class[cls]:
            kept[cls] += 1
            train.append(
                Example(text, "davidson", TRAIN, ex.offensive, ex.hate, _weak_question(text))
            )
    return train, val


def load_dailydialog(
    root: Path, *, seed: int, held_out: float = 0.2
) -> tuple[list[Example], list[Example]]:
    """(train, held-out) utterances, split by dialogue so no dialogue is on both sides."""
    folder = root / "dailydialog"
    dialogues = _read_lines(folder / "dialogues_validation.txt")
    acts = _read_lines(folder / "dialogues_act_validation.txt")
    train: list[Example] = []
    val: list[Example] = []
    for i, (dialogue, act_line) in enumerate(zip(dialogues, acts, strict=True)):
        if not dialogue.strip():
            continue
        utterances = [u.strip() for u in dialogue.split("__eou__") if u.strip()]
        labels = [int(a) for a in act_line.split()]
        if len(utterances) != len(labels):
            raise ValueError(
                f"dailydialog dialogue {i}: {len(utterances)} utterances, {len(labels)} acts"
            )
        is_val = bucket(f"dailydialog:{i}", seed) < held_out
        for raw, act in zip(utterances, labels, strict=True):
            text = normalise_text(raw)
            question = int(act == 2)
            split = VAL if is_val else TRAIN
            (val if is_val else train).append(
                Example(text, "dailydialog", split, offensive=0, hate=0, question=question)
            )
            if not is_val and question and "?" in text:
                stripped = _SPACES.sub(" ", text.replace("?", " ")).strip()
                if stripped:
                    train.append(Example(stripped, "dailydialog-noqmark", TRAIN, 0, 0, 1))
    return train, val


@dataclass(frozen=True, slots=True)
class Corpus:
    train: list[Example]
    val: dict[str, list[Example]]
    """Validation sets by name: ``olid``, ``hateval``, ``davidson``, ``dailydialog``."""

    def all_texts(self) -> list[str]:
        return unique_texts([*self.train, *(e for v in self.val.values() for e in v)])


def unique_texts(examples: Iterable[Example]) -> list[str]:
    seen: dict[str, None] = {}
    for e in examples:
        seen.setdefault(e.text, None)
    return list(seen)


def load_corpus(root: Path, *, seed: int, civil_negatives: bool = True) -> Corpus:
    """Every training example and every validation set, deterministically
    (``civil_negatives``: see :func:`load_hateval`)."""
    davidson_train, davidson_val = load_davidson(root, seed=seed)
    dd_train, dd_val = load_dailydialog(root, seed=seed)
    train = [
        *load_olid(root, TRAIN),
        *load_hateval(root, TRAIN, civil_negatives=civil_negatives),
        *davidson_train,
        *dd_train,
    ]
    val = {
        "olid": load_olid(root, VAL),
        "hateval": load_hateval(root, VAL),
        "davidson": davidson_val,
        "dailydialog": dd_val,
    }
    return Corpus(train=train, val=val)
