"""The multilingual (e5) embedding the worker clusters questions by, across languages.

A multilingual classifier (the language router) scores each text on one path:
English on the fine-tuned MiniLM, the other languages on e5, whose prediction
carries the e5 embedding. The same question in French and English is one
cluster only if both are compared in e5's space, so an English question needs
an e5 embedding too. Paying an e5 pass for every English text would halve the
worker's throughput (e5 costs 2-2.7x MiniLM), so the worker asks for it only
for the mentions that will be clustered (questions that are not abuse), in one
call per batch after the classifier's, and keeps it in the prediction cache.

Only a cluster's first English question pays that pass: English-path questions
are also indexed by their MiniLM embedding, and one that joins a known cluster
there joins its multilingual cluster as it is (``Triage._cluster``).

A classifier offers the embedding by implementing :class:`MultilingualEmbedder`;
the worker then clusters in e5 space (:meth:`Triage.cluster_multilingually`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@runtime_checkable
class MultilingualEmbedder(Protocol):
    """Embeds texts in the multilingual (e5) space of ``Prediction.multilingual_embedding``."""

    def embed_multilingual(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One L2-normalised row per text, in input order."""
        ...


def unit_rows(vectors: Any) -> npt.NDArray[np.float32]:
    """``vectors`` as float32 rows of length 1 (a zero row stays zero)."""
    rows = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    return unit
