"""Sentence embeddings cached on disk, keyed by ``sha256(model name + text)``.

Embedding with multilingual-e5-small runs at 2-7 texts/s on the project's
loaded 2-core machines, so the multilingual training (:mod:`.multitrain`)
embeds each text once: rows live in an SQLite file under ``var/`` and a rerun
(another seed, another head, another threshold) only embeds texts it has
never seen. Rows are written after every chunk, so an interrupted run keeps
what it did.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from services.triage.classifier.encoders import TextEncoder

log = logging.getLogger(__name__)

#: Texts embedded per encoder call (and per commit).
CHUNK = 32


def text_key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\0{text}".encode()).hexdigest()


class EmbeddingCache:
    """``embed(texts)``: cached rows where known, the encoder's for the rest.

    ``encoder`` is a factory so that a fully cached run never loads the model.
    """

    def __init__(self, path: Path, model: str, encoder: Callable[[], TextEncoder]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model = model
        self._factory = encoder
        self._encoder: TextEncoder | None = None
        self._db = sqlite3.connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, vec BLOB)")

    def _lookup(self, keys: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        found: dict[str, npt.NDArray[np.float32]] = {}
        for start in range(0, len(keys), 500):
            part = list(keys[start : start + 500])
            marks = ",".join("?" * len(part))
            for key, blob in self._db.execute(
                f"SELECT key, vec FROM rows WHERE key IN ({marks})",  # noqa: S608 - only "?"s
                part,
            ):
                found[key] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The distinct texts of ``texts`` not cached yet."""
        keys = {text_key(self.model, t): t for t in texts}
        known = self._lookup(list(keys))
        return [t for k, t in keys.items() if k not in known]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """``[len(texts), dim]`` float32 rows in input order."""
        todo = self.missing(texts)
        if todo:
            if self._encoder is None:
                self._encoder = self._factory()
            started = time.monotonic()
            for start in range(0, len(todo), CHUNK):
                chunk = todo[start : start + CHUNK]
                rows = self._encoder.encode(chunk)
                with self._db:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO rows VALUES (?, ?)",
                        [
                            (text_key(self.model, t), rows[i].astype(np.float32).tobytes())
                            for i, t in enumerate(chunk)
                        ],
                    )
                done = start + len(chunk)
                rate = done / max(time.monotonic() - started, 1e-9)
                log.info("embedded %d/%d new texts (%.1f texts/s)", done, len(todo), rate)
        keys = [text_key(self.model, t) for t in texts]
        found = self._lookup(keys)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def close(self) -> None:
        self._db.close()
