"""The classifier port. The stream worker, the CLI and the benchmark only see
this; the transformer adapter and test fakes implement it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args, runtime_checkable

import numpy as np
import numpy.typing as npt

#: How the transformer's linear layers compute (``TRIAGE_PRECISION``, where ``auto``
#: picks one; see ``transformer.resolve_precision``).
Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)


@dataclass(frozen=True, slots=True)
class Prediction:
    """Scores for one text. Probabilities are in [0, 1].

    ``embedding`` is the L2-normalised sentence embedding (float32), used for
    relevance to the campaign and for clustering near-duplicate questions; it is
    in the space of the path that scored the text.

    ``path`` says which model scored it: ``"en"`` (the fine-tuned MiniLM, English
    and text no language could be told for) or ``"multi"`` (the heads on
    multilingual-e5-small, every other language); ``model_version`` is the
    version of the artefacts of that path. ``multilingual_embedding`` is the e5
    embedding when the multilingual path ran (``None`` otherwise): translations
    land close together there, so it can cluster the same question across
    languages.
    """

    offensive: float
    hate: float
    question: float
    relevance: float
    embedding: npt.NDArray[np.float32]
    path: str = "en"
    model_version: str = ""
    multilingual_embedding: npt.NDArray[np.float32] | None = None


class Classifier(Protocol):
    #: Recorded with every decision, e.g. ``minilm-l6-top2-2026.11.23``.
    version: str

    def classify(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        """One prediction per text, in input order. Must accept any batch size.

        ``languages``: one BCP-47-ish code per text (the platform's tag or the
        ingest's language identification; ``None`` = unknown), or ``None`` for
        none known. Single-language classifiers accept and ignore it."""
        ...


@runtime_checkable
class CampaignRelevance(Protocol):
    """What measures relevance to the campaign; the decider re-embeds the campaign
    through it when the rules file's campaign changes."""

    def set_campaign(self, texts: Sequence[str]) -> None:
        """Measure relevance against these texts from now on."""
        ...

    def relevance(
        self, embeddings: npt.NDArray[np.float32], *, path: str = "en"
    ) -> npt.NDArray[np.float64]:
        """Relevance in [0, 1] of each L2-normalised embedding (rows), all in the
        space of ``path`` (a :attr:`Prediction.path`)."""
        ...
