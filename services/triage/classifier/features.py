"""Frozen-base features for training: hidden states of the lower layers, cached.

The lower layers of the base model are frozen, so their output for a training
text never changes. :func:`cached_states` runs the base model once per text
(length-sorted batches), keeps the hidden states that the trainable top layers
start from, plus the final layer (the teacher for the embedding-preservation
loss), and stores them under ``var/train/cache`` keyed by the texts, the base
model and the settings, so a second training run skips the expensive pass.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HiddenStates:
    """Unpadded hidden states of many texts: ``layers[l][offsets[i]:offsets[i+1]]``
    are the token states of text ``i`` after ``l`` layers (``l=0``: embeddings)."""

    texts: list[str]
    offsets: torch.Tensor  # int64 [n + 1]
    layers: dict[int, torch.Tensor]  # layer index -> float16 [total_tokens, hidden]

    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.texts)}

    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]


def cache_key(
    texts: Sequence[str], base_sha256: str, layers: Sequence[int], max_length: int
) -> str:
    h = hashlib.sha256()
    h.update(f"{base_sha256}|{sorted(layers)}|{max_length}|{len(texts)}".encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def compute_states(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    layers: Sequence[int],
    *,
    max_length: int,
    batch_size: int = 64,
) -> HiddenStates:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    empty = torch.empty(0)
    per_text: dict[int, list[torch.Tensor]] = {layer: [empty] * len(texts) for layer in layers}
    lengths = [0] * len(texts)
    start = time.monotonic()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            out = model(**enc, output_hidden_states=True)
            mask = enc["attention_mask"].sum(dim=1).tolist()
            for layer in layers:
                hs = out.hidden_states[layer].to(torch.float16)
                for row, i in enumerate(idx):
                    per_text[layer][i] = hs[row, : mask[row]].clone()
            for row, i in enumerate(idx):
                lengths[i] = int(mask[row])
            done = b + len(idx)
            if (b // batch_size) % 20 == 0 or done == len(order):
                rate = done / max(time.monotonic() - start, 1e-6)
                log.info("base states: %d/%d texts (%.1f texts/s)", done, len(order), rate)
    offsets = torch.zeros(len(texts) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int64), dim=0)
    return HiddenStates(
        texts=list(texts),
        offsets=offsets,
        layers={layer: torch.cat(per_text[layer], dim=0) for layer in layers},
    )


def _bucket_of(text: str, buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % buckets


def cached_states(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    layers: Sequence[int],
    *,
    base_sha256: str,
    max_length: int,
    cache_dir: Path,
    groups: Sequence[Sequence[str]] | None = None,
    piece_size: int = 400,
) -> HiddenStates:
    """:func:`compute_states` of ``texts``, cached in pieces under ``cache_dir``.

    The texts are cut into ``groups`` (default: one; e.g. the public data sets
    and the repository's own augmentation texts) and each group into
    ``buckets`` by a hash of the text; every piece is cached under a key of its
    own texts. So a change to a few texts (a new template, a normalisation
    fix) recomputes only the pieces that hold them. The result's ``texts``
    are in piece order (training looks rows up with :meth:`HiddenStates.index`).
    """
    wanted = set(texts)
    parts: list[list[str]] = []
    seen: set[str] = set()
    for group in groups if groups is not None else [texts]:
        buckets = max(1, min(32, len(group) // piece_size))
        pieces: list[list[str]] = [[] for _ in range(buckets)]
        for t in group:
            if t in wanted and t not in seen:
                seen.add(t)
                pieces[_bucket_of(t, buckets)].append(t)
        parts.extend(p for p in pieces if p)
    rest = [t for t in dict.fromkeys(texts) if t not in seen]
    if rest:
        parts.append(rest)
    done = [
        _cached_piece(
            model,
            tokenizer,
            part,
            layers=layers,
            base_sha256=base_sha256,
            max_length=max_length,
            cache_dir=cache_dir,
        )
        for part in parts
    ]
    all_texts = [t for part in parts for t in part]
    lengths = torch.cat([s.lengths() for s in done])
    offsets = torch.zeros(len(all_texts) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lengths, dim=0)
    merged = {layer: torch.cat([s.layers[layer] for s in done], dim=0) for layer in layers}
    return HiddenStates(texts=all_texts, offsets=offsets, layers=merged)


def _cached_piece(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    layers: Sequence[int],
    base_sha256: str,
    max_length: int,
    cache_dir: Path,
) -> HiddenStates:
    path = cache_dir / f"states-{cache_key(texts, base_sha256, layers, max_length)}.pt"
    if path.exists():
        log.debug("loading cached base states from %s", path)
        blob = torch.load(path, weights_only=True)
        return HiddenStates(texts=list(texts), offsets=blob["offsets"], layers=blob["layers"])
    states = compute_states(model, tokenizer, texts, layers, max_length=max_length)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"offsets": states.offsets, "layers": states.layers}, tmp)
    tmp.replace(path)
    log.info("cached base states of %d texts in %s", len(texts), path)
    return states
